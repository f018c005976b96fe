"""ModelRegistry on its own: builds, bounds, swaps and reports models without an app or HTTP."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

import pytest
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.registry import (
    LiveModel,
    ModelLoadError,
    ModelLoading,
    ModelRegistry,
    served_version,
)
from label_studio_ml.store import ModelStore

CONFIG = '<View><Text name="text" value="$text"/><Choices name="label" toName="text"><Choice value="a"/></Choices></View>'
OTHER_CONFIG = CONFIG.replace('value="a"', 'value="b"')


class Counted(LabelStudioMLBase):
    """Counts its constructions per project; ``gate`` (when set) holds a construction back;
    ``broken`` makes it raise."""

    built: List[str] = []
    gate: threading.Event | None = None
    broken = False

    def setup(self) -> None:
        if Counted.gate is not None:
            assert Counted.gate.wait(10), "the test never opened the gate"
        if Counted.broken:
            raise RuntimeError("weights missing")
        Counted.built.append(self.project_id)

    def predict(self, tasks: List[Dict[str, Any]], **kwargs: Any) -> List[Dict[str, Any]]:
        return [{"result": [], "score": 1.0} for _ in tasks]


@pytest.fixture(autouse=True)
def _fresh_counts():
    Counted.built, Counted.gate, Counted.broken = [], None, False
    yield
    if Counted.gate is not None:
        Counted.gate.set()  # a builder thread left waiting must end


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def registry_of(store: ModelStore, **options: Any) -> ModelRegistry:
    return ModelRegistry(Counted, store, **options)


def train(store: ModelStore, pid: str, output: Dict[str, Any]) -> str:
    """What a finished training run leaves: a committed version, LATEST moved to it."""
    version, _ = store.new_version(pid)
    store.commit_version(pid, version, output, {})
    return version


# ------------------------------------------------------------------ building
def test_acquire_builds_once_and_reuses_the_model(store):
    registry = registry_of(store)
    live = registry.acquire("1", CONFIG, timeout=10)
    assert isinstance(live, LiveModel)
    assert live.model.project_id == "1" and live.model.label_config == CONFIG
    assert live.version == "initial" and live.predict([{"data": {}}]) == [{"result": [], "score": 1.0}]
    assert registry.acquire("1", timeout=10).model is live.model  # the config is remembered
    assert Counted.built == ["1"]
    assert registry.state() == {"loaded": ["1"], "loading": [], "failed": []}
    assert store.label_config("1") == CONFIG  # kept for the next process


def test_request_answers_at_once_and_wait_is_bounded(store):
    Counted.gate = threading.Event()
    registry = registry_of(store)
    t0 = time.monotonic()
    key = registry.request("1", CONFIG)
    assert time.monotonic() - t0 < 1.0, "request() must not wait for the construction"
    assert key == (None, CONFIG)
    assert registry.state()["loading"] == ["1"]
    with pytest.raises(ModelLoading, match="project 1 is still loading after 0.05 s"):
        registry.wait("1", key, 0.05)
    assert registry.version_for("1", key) == "initial"  # the store's answer, no model needed
    Counted.gate.set()
    assert registry.wait("1", key, 10).model.project_id == "1"
    assert registry.wait_idle(10) and registry.state()["loading"] == []


def test_the_least_recently_used_model_is_dropped(store):
    registry = registry_of(store, max_live=2)
    for pid in ("1", "2"):
        registry.acquire(pid, CONFIG, timeout=10)
    registry.acquire("1", timeout=10)  # 1 is now the most recently used
    registry.acquire("3", CONFIG, timeout=10)
    assert registry.state()["loaded"] == ["1", "3"]
    registry.acquire("2", timeout=10)  # built again; 1 is now the oldest
    assert registry.state()["loaded"] == ["3", "2"]
    assert Counted.built == ["1", "2", "3", "2"]


# ------------------------------------------------------------------ versions
def test_a_new_version_in_the_store_replaces_the_live_model(store):
    registry = registry_of(store)
    first = registry.acquire("1", CONFIG, timeout=10)
    version = train(store, "1", {"weights": 2})
    second = registry.acquire("1", timeout=10)
    assert second.model is not first.model
    assert second.version == version and second.model.train_output == {"weights": 2}
    assert second.model.workdir == str(store.version_dir("1", version))
    assert registry.version_for("1", registry.request("1")) == version


def test_invalidate_builds_the_committed_version_in_the_background(store):
    registry = registry_of(store)
    registry.acquire("1", CONFIG, timeout=10)
    version = train(store, "1", {})
    registry.invalidate("1")
    assert registry.wait_idle(10)
    assert Counted.built == ["1", "1"]
    assert registry.acquire("1", timeout=10).version == version and Counted.built == ["1", "1"]


def test_a_new_config_builds_a_new_model(store):
    registry = registry_of(store)
    first = registry.acquire("1", CONFIG, timeout=10)
    second = registry.acquire("1", OTHER_CONFIG, timeout=10)
    assert second.model is not first.model and second.model.label_config == OTHER_CONFIG
    assert registry.label_config("1") == OTHER_CONFIG == store.label_config("1")


# ------------------------------------------------------------------ failures
def test_a_failed_build_is_reported_until_a_retry_succeeds(store):
    Counted.broken = True
    registry = registry_of(store)
    with pytest.raises(ModelLoadError, match="Counted\\(\\) raised RuntimeError: weights missing"):
        registry.acquire("1", CONFIG, timeout=10)
    assert registry.state()["failed"] == ["1"]
    Counted.broken = False
    with pytest.raises(ModelLoadError):  # a request does not build it again...
        registry.acquire("1", timeout=10)
    assert Counted.built == []
    key = registry.request("1", retry=True)  # ...the next /setup does
    assert registry.wait("1", key, 10).model.project_id == "1"
    assert registry.state() == {"loaded": ["1"], "loading": [], "failed": []}


def test_a_failed_build_is_retried_for_a_new_version(store):
    Counted.broken = True
    registry = registry_of(store)
    with pytest.raises(ModelLoadError):
        registry.acquire("1", CONFIG, timeout=10)
    Counted.broken = False
    version = train(store, "1", {})  # another key: built without a retry
    assert registry.acquire("1", timeout=10).version == version


# ------------------------------------------------------------------ the served version
class Declares(Counted):
    """Declares its own version, as current-style models do before any training."""

    def setup(self) -> None:
        super().setup()
        if not self.has("model_version"):
            self.set("model_version", "mine-1")


def test_the_model_owns_its_served_version(store):
    registry = ModelRegistry(Declares, store)
    live = registry.acquire("1", CONFIG, timeout=10)
    assert live.version == live.model.served_version == live.model.model_version == "mine-1"
    assert served_version(store, "1", Declares) == "mine-1"  # the store's view agrees
    live.model.set("model_version", "mine-2")  # fixed when built: requests do not read kv.json
    assert live.version == "mine-1" and registry.version_for("1", registry.request("1")) == "mine-1"
    version = train(store, "1", {})
    trained = registry.acquire("1", timeout=10)
    assert trained.version == trained.model.model_version == version == served_version(store, "1", Declares)


def test_a_model_built_outside_the_runtime_serves_its_own_version(tmp_path):
    model = Counted(project_id="1", model_dir=str(tmp_path))
    assert model.served_version is None and model.model_version == "initial"
    model.set("model_version", "own")
    assert model.model_version == "own"
    assert model.serve_as("v3-20260101000000") == model.served_version == model.model_version


# ------------------------------------------------------------------ /setup's connection
def test_connection_reaches_the_live_model_without_a_rebuild(store):
    registry = registry_of(store)
    assert registry.connection("1").hostname is None and registry.access_tokens() == []
    live = registry.acquire("1", CONFIG, timeout=10)
    registry.update_info("1", "http://ls:8080", "secret-token", {"k": 1})
    registry.update_info("2", "", None, "not a dict")
    assert live.model.hostname == "http://ls:8080" and live.model.access_token == "secret-token"
    assert live.model.extra_params == {"k": 1} and Counted.built == ["1"]
    assert registry.connection("2").extra_params == {} and registry.connection("2").hostname is None
    assert registry.access_tokens() == ["secret-token"]
    registry.acquire("2", CONFIG, timeout=10)
    registry.update_info("3", "http://other", "t3", {})
    built = registry.acquire("3", CONFIG, timeout=10).model  # a new build gets the connection
    assert (built.hostname, built.access_token) == ("http://other", "t3")


# ------------------------------------------------------------------ preload
def test_preload_builds_known_projects_and_a_newer_registry_takes_over(store):
    store.save_label_config("1", CONFIG)
    store.save_label_config("2", CONFIG)
    first = registry_of(store, max_live=1)
    first.start_preload()
    assert first.wait_preloaded(10) and len(first.state()["loaded"]) == 1
    second = registry_of(store, max_live=2)
    second.start_preload()
    assert second.wait_preloaded(10) and sorted(second.state()["loaded"]) == ["1", "2"]
    assert first.state()["loaded"] == [], "the older registry drops what it preloaded"
