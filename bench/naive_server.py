"""The seed article's server, for comparison: flask-restx calling Keras `model(x)` per
request in the web process (TensorFlow imported there). Same preprocessing as ours."""
import os

from flask import Flask, request
from flask_restx import Api, Resource

from util.serve.image import preprocess
from util.serve.spec import discover
from util.toolchain.formats import load

SPEC = discover(os.environ["MODELS_DIR"])[0]
MODEL = load(SPEC).model
SHAPE = tuple(int(d) for d in MODEL.inputs[0].shape[1:])

app = Flask(__name__)
api = Api(app, doc="/")


@api.route(f"/{SPEC.name}/prediction")
class Prediction(Resource):
    def post(self) -> dict:
        """Classify with model(x), one request at a time."""
        x = preprocess(request.files["image"].read(), SHAPE, SPEC.preprocessing, 40_000_000)
        probs = MODEL(x[None], training=False).numpy()[0]
        best = int(probs.argmax())
        return {"label": SPEC.labels[best], "confidence": float(probs[best])}


@api.route("/health/ready")
class Ready(Resource):
    def get(self) -> dict:
        """Ready once the model is loaded (at import)."""
        return {"status": "ok"}
