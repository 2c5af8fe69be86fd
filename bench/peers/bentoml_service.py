"""BentoML serving the bench's `.tflite`, the way its docs show: a `@bentoml.service` class with
2 workers and a `@bentoml.api` method taking a PIL image (multipart field "image").
Run: bentoml serve bench.peers.bentoml_service:ImageClassifier --port PORT (PEER_MODEL_DIR set)."""
from __future__ import annotations

import bentoml
from PIL import Image

from bench.peers.common import Classifier


@bentoml.service(workers=2)
class ImageClassifier:
    def __init__(self) -> None:
        self.classify = Classifier()

    @bentoml.api
    def prediction(self, image: Image.Image) -> dict:
        return self.classify(image)
