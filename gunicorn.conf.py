"""gunicorn settings for the Procfile, Docker and `make run` (gunicorn also reads this file by default).

Models load in each worker after fork (`post_worker_init`): interpreters are never shared
across processes, and a model that cannot load stops the server with its reason.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # util/, wherever gunicorn starts
from util.serve import activity  # noqa: E402,F401 - its shared count must exist before the workers fork

workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
# Bodies are read on an event loop (api/frontend.py), so slow uploads never hold a thread;
# GUNICORN_WORKER_CLASS=gthread gives the previous thread-per-connection server (for comparison).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "api.frontend.Worker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 60)
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
control_socket_disable = True  # not used, and one fixed path would clash between servers
# util.config shares the cores among workers for LiteRT's thread pools.
os.environ.setdefault("WEB_CONCURRENCY", str(workers))


def _registry(worker):  # noqa: ANN001, ANN202
    app = getattr(worker, "flask_app", None) or getattr(worker, "wsgi", None)  # the front end wraps the Flask app
    return getattr(app, "extensions", {}).get("registry")


def post_worker_init(worker):  # noqa: ANN001 - gunicorn's hook signature
    registry = _registry(worker)
    if registry is not None:  # bench/ servers are plain Flask apps
        registry.load_all()


def worker_exit(server, worker):  # noqa: ANN001
    # Requests already queued in a batcher are answered before the worker goes.
    registry = _registry(worker)
    if registry is not None:
        registry.close()
