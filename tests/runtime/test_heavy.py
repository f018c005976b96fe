"""Heavy models: background builds, bounded memory, preload, one version across processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.settings import Settings, SettingsError
from label_studio_ml.store import ModelStore

from .conftest import SEED_CONFIG, load_class

PROJECT = "12.1719830400"

# setup() blocks until the test opens GATE (or FAIL makes it raise): the test knows the model is
# still loading without timing anything. BUILT counts finished constructions.
GATED_MODEL = """
import threading
from label_studio_ml.model import LabelStudioMLBase

GATE = threading.Event()
STARTED = threading.Event()
FAIL = []
BUILT = []
ACTIVE = [0, 0]  # predicts running now, most at once
LOCK = threading.Lock()

class Heavy(LabelStudioMLBase):
    def setup(self):
        STARTED.set()
        assert GATE.wait(30), "the test never opened the gate"
        if FAIL:
            raise RuntimeError(FAIL[0])
        self.weights = "loaded"
        BUILT.append(self.project_id)

    def predict(self, tasks, **kwargs):
        with LOCK:
            ACTIVE[0] += 1
            ACTIVE[1] = max(ACTIVE[1], ACTIVE[0])
        try:
            if kwargs.get("slow"):
                import time
                time.sleep(0.2)
            return [{"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                 "value": {"choices": ["Boeing"]}}], "score": 0.5} for _ in tasks]
        finally:
            with LOCK:
                ACTIVE[0] -= 1
"""


def heavy(tmp_path):
    cls = load_class(tmp_path / "m", GATED_MODEL, "Heavy")
    return cls, sys.modules[cls.__module__]


def predict_body(project: str = PROJECT, **params) -> dict:
    return {
        "tasks": [{"id": 1, "data": {"image": "/data/upload/1.jpg"}}],
        "project": project,
        "label_config": SEED_CONFIG,
        "params": params,
    }


def test_setup_answers_before_a_slow_model_is_built_and_predict_waits(serve, tmp_path):
    cls, mod = heavy(tmp_path)
    server = serve(cls)
    r = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    assert r.status_code == 200, r.text
    assert r.json() == {"model_version": "initial"}
    assert mod.STARTED.wait(10) and mod.BUILT == [], "/setup answered before the model was built"
    assert server.get("/health").json()["models"] == {"loaded": [], "loading": ["12"], "failed": []}

    answers = []
    waiter = threading.Thread(target=lambda: answers.append(server.post("/predict", json=predict_body())))
    waiter.start()
    time.sleep(0.2)  # let /predict start waiting (either order gives the same answer)
    mod.GATE.set()
    waiter.join(20)
    r = answers[0]
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["result"][0]["value"]["choices"] == ["Boeing"]
    assert r.json()["model_version"] == "initial"
    assert mod.BUILT == ["12"], "built once, in the background"
    assert server.get("/health").json()["models"] == {"loaded": ["12"], "loading": [], "failed": []}


def test_predict_wait_is_bounded_by_model_load_timeout(serve, tmp_path):
    cls, mod = heavy(tmp_path)
    server = serve(cls, model_load_timeout=0.3)
    r = server.post("/predict", json=predict_body())
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "model_loading"
    assert "MODEL_LOAD_TIMEOUT" in r.json()["detail"]
    assert r.headers["Retry-After"]
    mod.GATE.set()
    server.backend.registry.wait_idle(10)
    assert server.post("/predict", json=predict_body()).status_code == 200


def test_construction_that_raises_is_a_json_500_until_the_next_setup(serve, tmp_path, caplog):
    cls, mod = heavy(tmp_path)
    mod.FAIL.append("weights file is corrupt")
    server = serve(cls)
    caplog.set_level(logging.ERROR, logger="label_studio_ml")
    assert server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).status_code == 200
    mod.GATE.set()
    server.backend.registry.wait_idle(10)
    for _ in range(2):  # not rebuilt by /predict: the same answer, at once
        r = server.post("/predict", json=predict_body())
        assert r.status_code == 500, r.text
        assert r.json()["error"] == "model_load_failed"
        assert "Heavy() raised RuntimeError: weights file is corrupt" in r.json()["detail"]
        assert "Traceback" not in r.text
    logged = "\n".join(rec.getMessage() + str(rec.exc_text or "") for rec in caplog.records)
    assert "building Heavy for project 12 failed" in logged
    assert "Traceback" in caplog.text and "weights file is corrupt" in caplog.text
    assert server.get("/health").json()["models"]["failed"] == ["12"]

    mod.FAIL.clear()  # fixed: the next /setup builds again
    r = server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG})
    assert r.status_code == 200, r.text
    r = server.post("/predict", json=predict_body())
    assert r.status_code == 200, r.text
    assert mod.BUILT == ["12"]


def test_a_version_answered_by_one_process_is_never_undercut_by_another(serve, tmp_path, models_dir):
    """Two apps on one store stand for two API processes."""
    cls, mod = heavy(tmp_path)
    mod.GATE.set()
    first, second = serve(cls, preload_models=False), serve(cls, preload_models=False)
    assert second.post("/predict", json=predict_body()).json()["model_version"] == "initial"
    store = ModelStore(models_dir)
    version, _ = store.new_version("12")
    store.commit_version("12", version, {"trained": True}, {})
    assert first.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).json() == {
        "model_version": version
    }
    r = second.post("/predict", json=predict_body())  # at once: no grace period
    assert r.status_code == 200 and r.json()["model_version"] == version


def test_predict_waits_for_the_new_version_rather_than_serve_the_old_one(serve, tmp_path, models_dir):
    cls, mod = heavy(tmp_path)
    mod.GATE.set()
    server = serve(cls, preload_models=False)
    assert server.post("/predict", json=predict_body()).json()["model_version"] == "initial"
    mod.GATE.clear()
    mod.STARTED.clear()
    store = ModelStore(models_dir)
    version, _ = store.new_version("12")
    store.commit_version("12", version, {}, {})
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(server.post("/predict", json=predict_body())))
    waiter.start()
    assert mod.STARTED.wait(10), "the new version is being built"
    assert not answers, "/predict did not answer with the old version meanwhile"
    mod.GATE.set()
    waiter.join(20)
    assert answers[0].status_code == 200 and answers[0].json()["model_version"] == version


def test_predict_concurrency_serialises_predict_per_model(serve, tmp_path):
    cls, mod = heavy(tmp_path)
    mod.GATE.set()
    server = serve(cls, predict_concurrency=1)
    assert server.post("/predict", json=predict_body()).status_code == 200
    codes = []

    def one():
        codes.append(
            requests.post(server.url + "/predict", json=predict_body(slow=True), timeout=20).status_code
        )

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [200] * 6
    assert mod.ACTIVE[1] == 1, "two predict calls ran at once on one model"


# ------------------------------------------------------------------ preload
COUNTING_MODEL = """
import os
from label_studio_ml.model import LabelStudioMLBase

class Counting(LabelStudioMLBase):
    def setup(self):
        with open(os.environ["LSML_TEST_COUNT"], "a") as fh:
            fh.write(self.project_id + "\\n")

    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": 0} for _ in tasks]
"""


def constructions(path: Path) -> list:
    return path.read_text().split() if path.exists() else []


def test_preload_serves_the_first_predict_after_a_restart_without_a_load(
    serve, tmp_path, models_dir, monkeypatch
):
    count = tmp_path / "count.txt"
    monkeypatch.setenv("LSML_TEST_COUNT", str(count))
    cls = load_class(tmp_path / "m", COUNTING_MODEL, "Counting")
    before = serve(cls)
    for project in ("1", "2", "3"):
        assert before.post("/setup", json={"project": project, "schema": SEED_CONFIG}).status_code == 200
    before.backend.registry.wait_idle(10)
    assert sorted(constructions(count)) == ["1", "2", "3"]
    store = ModelStore(models_dir)
    for project, age in (("1", 300), ("2", 100), ("3", 200)):  # 2 used last, then 3, then 1
        store.mark_used(project)
        stamp = time.time() - age
        os.utime(store.project_dir(project) / ".used", (stamp, stamp))
    count.unlink()

    after = serve(cls, max_live_models=2)  # a restart: a new app on the same store
    assert after.backend.registry.wait_preloaded(10)
    assert constructions(count) == ["2", "3"], "the two most recently used, newest first"
    r = after.post("/predict", json={"tasks": [{"id": 1, "data": {}}], "project": "2"})
    assert r.status_code == 200, r.text
    assert constructions(count) == ["2", "3"], "the first /predict found its model loaded"

    count.unlink()
    cold = serve(cls, preload_models=False)
    assert cold.backend.registry.wait_preloaded(10) and constructions(count) == []
    assert cold.post("/predict", json={"tasks": [{"id": 1, "data": {}}], "project": "2"}).status_code == 200
    assert constructions(count) == ["2"]


def test_shared_loads_once_per_key_and_retries_a_failed_load():
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)
        return object()

    key = ("test_shared", time.time())
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(LabelStudioMLBase.shared(key, load))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len({id(g) for g in got}) == 1

    def broken():
        raise OSError("no such weights")

    other = ("test_shared_broken", time.time())
    with pytest.raises(OSError):
        LabelStudioMLBase.shared(other, broken)
    assert LabelStudioMLBase.shared(other, lambda: 42) == 42


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"MAX_LIVE_MODELS": "0"}, "MAX_LIVE_MODELS='0' is not valid"),
        ({"MODEL_LOAD_TIMEOUT": "soon"}, "MODEL_LOAD_TIMEOUT='soon' is not valid"),
        ({"PRELOAD_MODELS": "maybe"}, "PRELOAD_MODELS='maybe' is not valid: use true or false"),
        ({"PREDICT_CONCURRENCY": "-1"}, "PREDICT_CONCURRENCY='-1' is not valid"),
    ],
)
def test_bad_heavy_settings_name_the_variable(env, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_heavy_settings_defaults():
    settings = Settings.from_env({})
    assert settings.max_live_models == 4 and settings.model_load_timeout == 60
    assert settings.preload_models is True and settings.predict_concurrency == 0
    assert Settings.from_env({"PRELOAD_MODELS": "false"}).preload_models is False


# ------------------------------------------------------------------ memory, in a process of its own
MEMORY_MODEL = """
import os
from label_studio_ml.model import LabelStudioMLBase

MB = 55

def load_weights():
    return bytearray(b"\\1") * (MB * 1024 * 1024)  # touched: resident

class Big(LabelStudioMLBase):
    def setup(self):
        if os.environ.get("SHARED") == "1":
            self.weights = self.shared(("big", MB), load_weights)
        else:
            self.weights = load_weights()

    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": len(self.weights) // 1024 // 1024} for _ in tasks]
"""

SERVER = """
import sys, threading
from werkzeug.serving import make_server
from label_studio_ml import create_app
from big_model import Big

app = create_app(Big)
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def run_projects(tmp_path: Path, n: int, **env: str) -> dict:
    """Ten projects through a fresh server process; RSS in MiB at start, at the end, at peak."""
    src = tmp_path / f"srv-{len(list(tmp_path.glob('srv-*')))}"
    src.mkdir()
    (src / "big_model.py").write_text(MEMORY_MODEL)
    (src / "server.py").write_text(SERVER)
    from ..support import clean_env

    proc = subprocess.Popen(
        [sys.executable, "server.py"],
        cwd=src,
        env=clean_env(MODEL_DIR=str(src / "models"), LOG_LEVEL="WARNING", **env),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{proc.stdout.readline().strip()}"
        assert requests.get(url + "/health", timeout=10).status_code == 200
        base = rss_kb(proc.pid)
        for i in range(1, n + 1):
            project = f"{i}.1719830400"
            r = requests.post(url + "/setup", json={"project": project, "schema": SEED_CONFIG}, timeout=30)
            assert r.status_code == 200, r.text
            r = requests.post(url + "/predict", json=predict_body(project), timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["score"] == 55
        health = requests.get(url + "/health", timeout=10).json()
        return {
            "base": base / 1024,
            "end": rss_kb(proc.pid) / 1024,
            "peak": rss_kb(proc.pid, "VmHWM") / 1024,
            "loaded": health["models"]["loaded"],
        }
    finally:
        proc.terminate()
        proc.wait(10)


def test_ten_projects_stay_near_base_plus_three_models(tmp_path):
    out = run_projects(tmp_path, 10, MAX_LIVE_MODELS="2")
    assert out["loaded"] == ["9", "10"], "the two most recently used stay live"
    assert out["peak"] - out["base"] < 3.6 * 55, out  # 2 live + 1 being built
    assert out["end"] - out["base"] < 2.6 * 55, out


def test_shared_weights_hold_one_copy_for_ten_projects(tmp_path):
    out = run_projects(tmp_path, 10, MAX_LIVE_MODELS="10", SHARED="1")
    assert len(out["loaded"]) == 10
    assert out["peak"] - out["base"] < 1.6 * 55, out


def test_a_newer_app_on_the_same_store_takes_over_preloading(serve, tmp_path, models_dir, monkeypatch):
    """An older ``wsgi.py`` built an app at import and another to serve: one set of preloaded models."""
    count = tmp_path / "count.txt"
    monkeypatch.setenv("LSML_TEST_COUNT", str(count))
    cls = load_class(tmp_path / "m", COUNTING_MODEL, "Counting")
    first = serve(cls, preload_models=False)
    assert first.post("/setup", json={"project": "1", "schema": SEED_CONFIG}).status_code == 200
    first.backend.registry.wait_idle(10)
    imported = serve(cls)  # the app wsgi.py builds at import: would preload project 1
    served = serve(cls)  # the app that serves, built right after: it preloads, the other does not
    assert served.backend.registry.wait_preloaded(10) and imported.backend.registry.wait_preloaded(10)
    assert served.backend.registry.state()["loaded"] == ["1"]
    assert imported.backend.registry.state()["loaded"] == []
    assert constructions(count) == ["1", "1"], "built for the request, then once by preload"
    later = serve(cls)  # an app built after the previous one preloaded: it takes over
    assert later.backend.registry.wait_preloaded(10)
    assert later.backend.registry.state()["loaded"] == ["1"]
    assert served.backend.registry.state()["loaded"] == [], "the older app drops what it preloaded"
    assert first.backend.registry.state()["loaded"] == ["1"], "a model a request asked for stays"


def test_the_gil_is_handed_over_often_while_a_model_builds(serve, tmp_path):
    """A loader running Python code must not hold up the requests of loaded projects for 5 ms
    slices: the switch interval is shortened during builds and restored after."""
    cls, mod = heavy(tmp_path)
    before = sys.getswitchinterval()
    server = serve(cls, preload_models=False)
    assert server.post("/setup", json={"project": PROJECT, "schema": SEED_CONFIG}).status_code == 200
    assert mod.STARTED.wait(10)
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    mod.GATE.set()
    assert server.backend.registry.wait_idle(10)
    assert sys.getswitchinterval() == pytest.approx(before)


HANGING_MODEL = """
import threading
from label_studio_ml.model import LabelStudioMLBase

RELEASE = threading.Event()

class Hanging(LabelStudioMLBase):
    def setup(self):
        if self.project_id == "1":
            RELEASE.wait(30)  # a constructor stuck on a network mount

    def predict(self, tasks, **kwargs):
        return [{"result": [], "score": 1} for _ in tasks]
"""


def test_a_hung_construction_does_not_block_other_projects_for_ever(serve, tmp_path):
    cls = load_class(tmp_path / "m", HANGING_MODEL, "Hanging")
    mod = sys.modules[cls.__module__]
    server = serve(cls, model_load_timeout=0.5, preload_models=False)
    try:
        assert server.post("/setup", json={"project": "1", "schema": SEED_CONFIG}).status_code == 200
        r = server.post("/predict", json=predict_body("1"))
        assert r.status_code == 503 and r.json()["error"] == "model_loading", r.text
        assert server.post("/setup", json={"project": "2", "schema": SEED_CONFIG}).status_code == 200
        deadline = time.monotonic() + 10  # project 2 waits for the slot at most 0.5 s, then builds
        while "2" not in server.backend.registry.state()["loaded"] and time.monotonic() < deadline:
            time.sleep(0.05)
        r = server.post("/predict", json=predict_body("2"))
        assert r.status_code == 200, r.text
        assert server.get("/health").json()["models"] == {"loaded": ["2"], "loading": ["1"], "failed": []}
    finally:
        mod.RELEASE.set()
