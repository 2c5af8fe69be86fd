"""gunicorn settings for the Procfile, Docker and `make run` (gunicorn also reads this file by default).

Models load in each worker after fork (`post_worker_init`): interpreters are never shared
across processes, nor is an S3 store's client (obstore's runtime, once used, does not survive a
fork: never `--preload`). A version that cannot load is reported and the newest one that can serves.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # util/, wherever gunicorn starts
from api.front import balance
from util.serve import activity  # noqa: F401 - its shared count must exist before the workers fork

workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
# Bodies are read on an event loop (api/front/), so slow uploads never hold a thread;
# GUNICORN_WORKER_CLASS=gthread gives the previous thread-per-connection server (for comparison).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "api.front.worker.Worker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 60)
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one access line per request itself (api/requestlog.py), with its request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
control_socket_disable = True  # not used, and one fixed path would clash between servers
# util.config shares the cores among workers for LiteRT's thread pools.
os.environ.setdefault("WEB_CONCURRENCY", str(workers))
# prometheus_client's multiprocess mode: every worker writes its metrics to files here, /metrics sums them.
# Set before any worker imports prometheus_client; our own directory unless the operator gives one.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="keras-serve-metrics-")


def on_starting(server):
    # A directory left by an earlier run would add its counts to ours.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    balance.leave(worker.age)  # a dead worker must not hold the others back from accepting
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)  # its in-flight gauge must not count any more


def on_exit(server):
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def _registry(worker):
    app = getattr(worker, "flask_app", None) or getattr(worker, "wsgi", None)  # the front end wraps the Flask app
    return getattr(app, "extensions", {}).get("registry")


def post_worker_init(worker):
    registry = _registry(worker)
    if registry is not None:  # bench/ servers are plain Flask apps
        from application import rebuild_routes, watch_models  # already imported by the worker: its app
        app = getattr(worker, "flask_app", None) or worker.wsgi
        if registry.load_all():  # a version failed to load and an older one serves, or none does
            rebuild_routes(app)
        watch_models(app)  # each worker sees changes itself


def worker_exit(server, worker):
    # Requests already queued in a batcher are answered before the worker goes.
    registry = _registry(worker)
    if registry is not None:
        registry.close()
