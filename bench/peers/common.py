"""What both peers share with this server: the compiled `.tflite`, the same preprocessing
function and the same answer shape. Imports only LiteRT, numpy and Pillow (the peers' venv)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from util.serve.image import Preprocessing, preprocess_image

MODEL_DIR = Path(os.environ.get("PEER_MODEL_DIR", "."))
PREPROCESSING = Preprocessing(scale="tf")  # bench/assets.py's model.yaml
TOP_K = 5


class Classifier:
    """One LiteRT interpreter (1 thread: 2 workers on 2 cores), as a user of either peer would write it."""

    def __init__(self, model_dir: Path = MODEL_DIR) -> None:
        self.labels = (model_dir / "labels.txt").read_text().split()
        self.interpreter = Interpreter(model_path=str(model_dir / "model.tflite"), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.shape = tuple(int(v) for v in self.input["shape"][1:])

    def __call__(self, image: Image.Image) -> dict:
        x = preprocess_image(image, self.shape, PREPROCESSING)
        self.interpreter.set_tensor(self.input["index"], x[None])
        self.interpreter.invoke()
        scores = self.interpreter.get_tensor(self.output["index"])[0]
        top = np.argsort(scores)[::-1][:TOP_K]
        predictions = [{"label": self.labels[i], "confidence": float(scores[i])} for i in top]
        return {**predictions[0], "predictions": predictions}
