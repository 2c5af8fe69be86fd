"""Liveness and readiness probes for Heroku, Docker and Kubernetes."""
from __future__ import annotations

from flask_restx import Namespace, Resource

from api import schemas
from api.dataplane import registry
from api.front import balance

ns = Namespace("health", description="Process liveness and model readiness")
schemas.add_models(ns, schemas.health)


@ns.route("/live")
class Liveness(Resource):
    @ns.response(200, "The process is up", schemas.health)
    def get(self) -> dict:
        """Report that the process is up (does not touch the models)."""
        return {"status": "ok", "models": {name: m.ready for name, m in registry().models.items()}}


@ns.route("/ready")
class Readiness(Resource):
    @ns.response(200, "Models serve (versions or models that failed, and a store error, under `failures`)",
                 schemas.health)
    @ns.response(503, "No model serves, or a worker has not started yet", schemas.health)
    def get(self) -> tuple[dict, int]:
        """Report whether the models serve (failed versions listed), loading them on first call."""
        reg = registry()
        reg.load_all()  # a version that fails is reported below, and an older one serves if it can
        failures = reg.failures()
        models = {n: m.ready for n, m in reg.models.items()}
        if not models and failures:  # nothing at all to serve: no traffic should come here
            reasons = "; ".join(f"{name} {key}: {why}" for name, rows in failures.items() for key, why in rows.items())
            return {"status": "failed", "message": f"no model serves: {reasons}", "models": models,
                    "failures": failures}, 503
        waiting = balance.all_started()
        if waiting:  # traffic sent now would all land on the workers already up
            return {"status": "starting", "message": f"{waiting[0]} of {waiting[1]} workers serving",
                    "models": models}, 503
        # Still ready while any model serves: a failed version or model leaves the others serving.
        return {"status": "ok", "models": models, **({"failures": failures} if failures else {})}, 200
