"""Liveness and readiness probes for Heroku, Docker and Kubernetes."""
from __future__ import annotations

from flask import current_app
from flask_restx import Namespace, Resource

from api import balance, schemas

ns = Namespace("health", description="Process liveness and model readiness")
schemas.add_models(ns, schemas.health, schemas.error)


def registry():  # type: ignore[no-untyped-def]
    return current_app.extensions["registry"]


@ns.route("/live")
class Liveness(Resource):
    @ns.response(200, "The process is up", schemas.health)
    def get(self) -> dict:
        """Report that the process is up (does not touch the models)."""
        return {"status": "ok", "models": {name: m.ready for name, m in registry().models.items()}}


@ns.route("/ready")
class Readiness(Resource):
    @ns.response(200, "Every model is loaded", schemas.health)
    @ns.response(503, "A model is still loading or failed to load, or a worker has not started yet", schemas.health)
    def get(self) -> tuple[dict, int]:
        """Report whether every model is loaded, loading them on first call."""
        reg = registry()
        try:
            reg.load_all()
        except Exception as exc:  # report, don't crash: the probe's job is to say "not ready"
            return {"status": "failed", "message": str(exc),
                    "models": {n: m.ready for n, m in reg.models.items()}}, 503
        failures = {name: ({"model": group.error} if group.error else {})
                    | {f"v{v}": message for v, message in group.failures.items()}
                    for name, group in reg.groups.items() if group.error or group.failures}
        waiting = balance.all_started()
        if waiting:  # traffic sent now would all land on the workers already up
            return {"status": "starting", "message": f"{waiting[0]} of {waiting[1]} workers serving",
                    "models": {n: m.ready for n, m in reg.models.items()}}, 503
        # Still ready: every model keeps a serving version (a failed new one never replaced it).
        return {"status": "ok", "models": {n: m.ready for n, m in reg.models.items()},
                **({"failures": failures} if failures else {})}, 200
