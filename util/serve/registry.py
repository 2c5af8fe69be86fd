"""The registry: every model the store holds, as a ModelGroup of served versions.

Versions are made (specs read) when the app is built and loaded after the fork
(gunicorn.conf.py); at both steps, and at every poll, a version that cannot serve is
reported and the newest one that can keeps or takes its place (util/serve/versions.py).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from util.serve.served import ServedModel
from util.serve.spec import NAME_RE, ModelSpec
from util.serve.store import Store, open_store
from util.serve.versions import ModelGroup, load_group, refresh_group

log = logging.getLogger(__name__)


class Registry:
    """Every model of MODELS_DIR (a directory or a store): a ModelGroup per name."""

    def __init__(self, settings: dict[str, Any], store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings)
        self.groups: dict[str, ModelGroup] = {}
        self._watcher: threading.Thread | None = None
        self.refresh(load=False)  # specs only: interpreters are made after the fork

    @property
    def models(self) -> dict[str, ServedModel]:
        """The default version of every model that serves one."""
        return {name: group.default() for name, group in self.groups.items() if group.versions}

    def _make(self, load: bool) -> Callable[[ModelSpec], ServedModel]:
        def make(spec: ModelSpec) -> ServedModel:
            model = ServedModel(spec, self.settings)
            if load:
                model.load()
            return model
        return make

    def load_all(self) -> bool:
        """Load every version made but not loaded; one that fails gives way to the newest that loads.
        True when a model's default version changed or it lost every version (rebuild the routes)."""
        if all(m.ready for g in self.groups.values() for m in g.versions.values()):
            return False  # the readiness probe calls this: no lock when there is nothing to do
        before = self.defaults()
        with self.store.reading():
            for group in self.groups.values():
                load_group(group, self._make(load=True))
        return before != self.defaults()

    def defaults(self) -> dict[str, int]:
        """The default version of every model that serves one (routes are documented from it)."""
        return {name: model.spec.version for name, model in self.models.items()}

    def close(self) -> None:
        for group in self.groups.values():
            for model in group.versions.values():
                model.close()

    @property
    def ready(self) -> bool:
        """Every model that serves a version has loaded it."""
        return all(m.ready for m in self.models.values())

    @property
    def all_serving(self) -> bool:
        """Every known model serves a loaded version (the V2 protocol's server readiness)."""
        return bool(self.groups) and all(g.versions for g in self.groups.values()) and self.ready

    def failures(self) -> dict[str, dict[str, str]]:
        """What does not serve, by model (`model` for the model itself, `v<n>` per version; `store`)."""
        found: dict[str, dict[str, str]] = {}
        for name, group in self.groups.items():
            rows = ({"model": group.error} if group.error else {}) | {f"v{v}": m for v, m in group.failures.items()}
            if rows:
                found[name] = rows
        for name, versions in self.store.pending.items():
            found.setdefault(name, {}).update({f"v{v}": m for v, m in versions.items()})
        if self.store.error:
            found["store"] = {"error": self.store.error}
        return found

    def refresh(self, load: bool = True) -> bool:
        """Serve what the store holds now; True when model names came or went (the routes change)."""
        before = {n for n, g in self.groups.items() if g.versions}
        dirs = self.store.models()  # fetches what changed, for a store
        with self.store.reading():
            groups = {}
            for name, model_dir in dirs.items():
                if not NAME_RE.match(name):
                    continue
                group = self.groups.get(name) or ModelGroup(name, model_dir)
                refresh_group(group, self._make(load))
                group.pending = self.store.pending.get(name, {})
                groups[name] = group  # also a model that failed: its error is reported, no route
        for name in set(self.groups) - set(groups):
            log.info("model %s removed from %s", name, self.store.url)
            for model in self.groups[name].versions.values():
                model.close()
        self.groups = groups
        return before != {n for n, g in groups.items() if g.versions}

    def watch(self, seconds: float, on_routes_changed: Callable[[], None]) -> None:
        """Poll the store every `seconds` in a daemon thread (0: never)."""
        if seconds <= 0 or self._watcher is not None:
            return

        def loop() -> None:
            while True:
                time.sleep(seconds)
                try:
                    if self.refresh():
                        on_routes_changed()
                except Exception:  # the watcher must outlive any surprise; what serves keeps serving
                    log.exception("polling %s failed", self.store.url)
        self._watcher = threading.Thread(target=loop, name="model-watcher", daemon=True)
        self._watcher.start()
