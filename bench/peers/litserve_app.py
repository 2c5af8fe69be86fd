"""LitServe serving the bench's `.tflite`, the way its docs show: a LitAPI with setup /
decode_request / predict / encode_response, `workers_per_device=2` on the CPU and LitServe's
default API-server processes. Run: python -m bench.peers.litserve_app PORT (PEER_MODEL_DIR set)."""
from __future__ import annotations

import sys

import litserve as ls
from PIL import Image

from bench.peers.common import Classifier


class ClassifierAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.classify = Classifier()

    def decode_request(self, request):  # unannotated: LitServe hands over the parsed form
        return Image.open(request["image"].file)  # multipart field "image", as this server's

    def predict(self, image: Image.Image) -> dict:
        return self.classify(image)

    def encode_response(self, output: dict) -> dict:
        return output


if __name__ == "__main__":
    server = ls.LitServer(ClassifierAPI(api_path="/prediction"), accelerator="cpu", workers_per_device=2)
    server.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", generate_client_file=False)
