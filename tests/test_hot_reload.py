"""Hot reload under load (real gunicorn, 2 workers, 16 clients): versions copied in, removed and
broken while requests flow; every answer must be consistent with the version it reports."""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import requests

from bench.servers import RssSampler
from tests.conftest import SERVERS
from tests.support.live import Load, digit_pngs
from tests.support.versions import DIGITS, add_version

pytestmark = pytest.mark.slow
POLL = 0.5
BOUND = POLL + 3.0  # one poll interval plus loading time (digits loads in well under a second)






def remove_version(path: Path) -> None:
    """Remove a version the way the README says: rename it out of sight, then delete it."""
    hidden = path.with_name(f".removed-{path.name}")
    path.rename(hidden)
    shutil.rmtree(hidden)


def test_versions_swap_under_load_without_a_failed_or_mixed_answer(
        server_factory: Callable[..., AbstractContextManager[str]], tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "digits").mkdir(parents=True)
    add_version(models / "digits", 1)
    images = digit_pngs()
    with server_factory(MODELS_DIR=str(models), MODEL_POLL_SECONDS=str(POLL), WEB_CONCURRENCY="2") as url:
        v1 = [requests.post(f"{url}/digits/prediction", files={"image": ("d.png", im)}, timeout=10).json()["label"]
              for im in images]
        switches = []
        with RssSampler(SERVERS[url].proc.pid) as rss, Load(url, images) as load:
            time.sleep(1.0)
            rss_before = rss.peak
            steps = [("copy version 2 in", 2, lambda: add_version(models / "digits", 2, reversed_labels=True)),
                     ("remove version 2", 1, lambda: remove_version(models / "digits" / "2")),
                     ("copy version 2 in again", 2, lambda: add_version(models / "digits", 2, reversed_labels=True))]
            for what, expected, change in steps:
                changed = time.monotonic()
                change()
                time.sleep(BOUND + 1.0)
                late = load.versions_after(changed + BOUND, time.monotonic())
                last_other = max((r[0] for r in load.records if r[0] >= changed and r[2] != expected), default=changed)
                switches.append(f"{what}: last answer from another version {last_other - changed:.2f} s after")
                assert late == {expected}, f"{what}: answers after {BOUND} s came from {late}"
            broken = models / "digits" / ".incoming-3"
            shutil.copytree(DIGITS, broken)
            (broken / "model.json").write_text("{ truncated")
            changed = time.monotonic()
            broken.rename(models / "digits" / "3")
            time.sleep(BOUND + 1.0)
            assert load.versions_after(changed, time.monotonic()) == {2}, "a broken version 3 took over"
            infos = [requests.get(f"{url}/digits/", timeout=5).json() for _ in range(4)]  # both workers, likely
            ready = requests.get(f"{url}/health/ready", timeout=5)
            time.sleep(3 * POLL)  # more polls see the same broken version
            logged = SERVERS[url].log.read_text().count("digits v3 not loaded")
        failed = [r for r in load.records if r[1] != 200]
        mixed = [r for r in load.records if r[1] == 200 and r[3] != (v1[r[4]] if r[2] == 1 else str(9 - int(v1[r[4]])))]
        print(f"{len(load.records)} requests; " + "; ".join(switches)
              + f"; peak RSS {rss.peak:.0f} MB (before the first change {rss_before:.0f} MB)")
        assert not failed, failed[:5]
        assert not mixed, mixed[:5]  # every label is the one the reported version's labels give
        for info in infos:
            assert info["version"] == 2
            assert any(v["version"] == 3 and v["state"] == "failed" and "not valid JSON" in v["error"]
                       for v in info["versions"])
        assert ready.status_code == 200 and "v3" in ready.json()["failures"]["digits"]
        assert logged == 2, f"the failure was logged {logged} times, not once per worker"


def test_a_new_model_gets_routes_in_every_worker_and_a_removed_one_loses_them(
        server_factory: Callable[..., AbstractContextManager[str]], tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "digits").mkdir(parents=True)
    add_version(models / "digits", 1)
    image = digit_pngs(1)[0]
    with server_factory(MODELS_DIR=str(models), MODEL_POLL_SECONDS=str(POLL), WEB_CONCURRENCY="2") as url:
        assert requests.post(f"{url}/again/prediction", files={"image": ("d.png", image)}, timeout=5).status_code == 404
        (models / "again").mkdir()
        add_version(models / "again", 1)
        time.sleep(BOUND)
        # New connections each time, so both workers answer some of these.
        statuses = {requests.post(f"{url}/again/prediction", files={"image": ("d.png", image)},
                                  timeout=5).status_code for _ in range(20)}
        paths = [requests.get(f"{url}/swagger.json", timeout=5).json()["paths"] for _ in range(6)]
        assert statuses == {200} and all("/again/prediction" in p for p in paths)
        remove_version(models / "again")
        time.sleep(BOUND)
        statuses = {requests.post(f"{url}/again/prediction", files={"image": ("d.png", image)},
                                  timeout=5).status_code for _ in range(20)}
        assert statuses == {404}
        assert requests.post(f"{url}/digits/prediction", files={"image": ("d.png", image)},
                             timeout=5).status_code == 200
