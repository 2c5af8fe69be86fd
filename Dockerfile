# syntax=docker/dockerfile:1
# The Python of .python-version, for both stages (tests/test_docker_build.py checks they match).
ARG PYTHON_VERSION=3.11

# Build stage: TensorFlow (requirements-dev.txt) compiles every stale model to model.tflite + manifest.
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY requirements.txt requirements-dev.txt requirements-client.txt ./
RUN python -m pip install -r requirements-dev.txt
# What `flask --app application` imports (application.py, api/, util/), and the models it compiles.
COPY application.py ./
COPY api/ api/
COPY util/ util/
COPY saved_models/ saved_models/
RUN flask --app application models compile --if-stale && flask --app application models list

# Runtime stage: requirements.txt only (LiteRT, no TensorFlow), non-root. Models come from the image
# (compiled above) or from MODELS_DIR given at run time.
FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH PORT=5000 AUTO_COMPILE=false
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --chown=root:root application.py gunicorn.conf.py Procfile ./
COPY --chown=root:root api/ api/
COPY --chown=root:root util/ util/
COPY --from=build --chown=root:root /app/saved_models/ saved_models/
USER 10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"5000\")}/health/ready', timeout=4)"
# The Procfile's web command (tests/test_docker_build.py checks they match, and runs it).
CMD ["sh", "-c", "exec gunicorn --config gunicorn.conf.py --bind ${HOST:-0.0.0.0}:${PORT:-5000} application:app"]
