"""The HTTP floor: flask-restx under the same gunicorn config, reading the same multipart
upload and answering constant JSON: what HTTP + Flask cost before any image work."""
from flask import Flask, request
from flask_restx import Api, Resource

app = Flask(__name__)
api = Api(app, doc="/")
ANSWER = {"label": "7", "confidence": 1.0, "predictions": [{"label": "7", "confidence": 1.0}],
          "model": "floor", "version": 1}


@api.route("/floor/prediction")
class Floor(Resource):
    def post(self) -> dict:
        """Read the upload and answer a constant."""
        request.files["image"].read()
        return ANSWER


@api.route("/health/ready")
class Ready(Resource):
    def get(self) -> dict:
        """Always ready."""
        return {"status": "ok"}
