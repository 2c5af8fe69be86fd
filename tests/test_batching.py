"""util/serve/batching.py around a real LiteRT runtime: no mixing, failures per batch, draining."""
from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from util.errors import InferenceError, NotReady
from util.serve.batching import BatchingRuntime
from util.serve.runtimes import LiteRTRuntime
from util.serve.spec import read_spec


class Flaky:
    """A real runtime that fails any batch holding a poisoned (negative) input, and can be slowed."""

    def __init__(self, runtime: LiteRTRuntime, delay: float = 0.0) -> None:
        self.runtime, self.delay = runtime, delay
        self.kind, self.input_shape, self.output_units = runtime.kind, runtime.input_shape, runtime.output_units

    def predict(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        if (batch < 0).any():
            raise RuntimeError("poisoned input")
        return self.runtime.predict(batch)


@pytest.fixture(scope="module")
def colors(models_dir: Path) -> LiteRTRuntime:
    return LiteRTRuntime(read_spec(models_dir / "colors").artifact)


def images(n: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 1, (n, 8, 8, 3)).astype(np.float32)


def submit(batcher: BatchingRuntime, x: np.ndarray) -> np.ndarray:
    with batcher.incoming():
        sample = x.copy()
    return batcher.predict(sample[None])


def test_concurrent_requests_each_get_their_own_result(colors: LiteRTRuntime) -> None:
    x = images(200)
    expected = np.concatenate([colors.predict(x[i:i + 1]) for i in range(len(x))])
    batcher = BatchingRuntime(Flaky(colors, delay=0.002), max_batch_size=8, max_batch_delay_ms=5)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: submit(batcher, x[i]), range(len(x))))
    batcher.close()
    np.testing.assert_allclose(np.concatenate(results), expected, atol=1e-6)
    assert max(batcher.batches) > 1, "requests that arrived together should share a batch"
    assert max(batcher.batches) <= 8 and sum(batcher.batches) == len(x)


def test_a_failing_batch_fails_only_its_requests(colors: LiteRTRuntime) -> None:
    batcher = BatchingRuntime(Flaky(colors), max_batch_size=4, max_batch_delay_ms=0)
    with pytest.raises(InferenceError, match=r"inference failed for a batch of 1 request.*poisoned"):
        batcher.predict(-np.ones((1, 8, 8, 3), np.float32))
    good = batcher.predict(images(1))  # the batch thread survived the failure
    np.testing.assert_allclose(good, colors.predict(images(1)), atol=1e-6)
    batcher.close()


def test_shutdown_drains_the_queue(colors: LiteRTRuntime) -> None:
    batcher = BatchingRuntime(Flaky(colors, delay=0.05), max_batch_size=2, max_batch_delay_ms=0)
    x = images(12)
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(batcher.predict, x[i:i + 1]) for i in range(12)]
        while len(batcher._queue) < 6:  # most requests are queued behind the slow runtime
            time.sleep(0.01)
        batcher.close()
        results = [f.result(timeout=30) for f in futures]
    assert len(results) == 12 and all(r.shape == (1, 3) for r in results)
    with pytest.raises(NotReady):
        batcher.predict(x[:1])


def test_a_lone_request_does_not_wait_for_company(colors: LiteRTRuntime) -> None:
    batcher = BatchingRuntime(colors, max_batch_size=8, max_batch_delay_ms=600_000)
    done = threading.Event()
    threading.Thread(target=lambda: (submit(batcher, images(1)[0]), done.set()), daemon=True).start()
    assert done.wait(timeout=60), "a request with nobody else incoming waited for the batch delay"
    batcher.close()


def test_api_maps_batch_failure_to_json_500(models_dir: Path) -> None:
    from application import create_app
    from tests.support import builders
    app = create_app({"MODELS_DIR": str(models_dir), "PRELOAD_MODELS": True, "MAX_BATCH_SIZE": 4})
    served = app.extensions["registry"].models["colors"]
    assert isinstance(served.runtime, BatchingRuntime)
    assert app.test_client().get("/colors/").get_json()["batching"] == {"max_batch_size": 4,
                                                                         "max_batch_delay_ms": 2.0}
    served.runtime.runtime = Flaky(served.runtime.runtime)
    served.runtime.runtime.delay = 0
    served.runtime.runtime.runtime = None  # any call now fails
    response = app.test_client().post("/colors/prediction", data={
        "image": (io.BytesIO(builders.encode(builders.solid((250, 0, 0)))), "r.png")})
    assert response.status_code == 500
    assert response.get_json() == {"error": "inference_failed",
                                   "message": "inference failed for a batch of 1 request(s): "
                                              "'NoneType' object has no attribute 'predict'"}
    app.extensions["registry"].close()


def test_model_yaml_batching_overrides_settings(tmp_path: Path) -> None:
    from tests.support import builders
    from util.errors import ModelLoadError
    path = builders.write_colors_model(tmp_path / "colors")
    (path / "model.yaml").write_text("batching:\n  max_batch_size: 16\n  max_batch_delay_ms: 1\n")
    assert read_spec(path).batching == {"max_batch_size": 16, "max_batch_delay_ms": 1.0}
    (path / "model.yaml").write_text("batching:\n  max_batch_size: 0\n")
    with pytest.raises(ModelLoadError, match="batching takes max_batch_size"):
        read_spec(path)
