"""Each current-SDK-style script baked through the template: its generated repo passes its own
tests plus an upstream-style ``test_api.py``, is lint-clean, and serves over real HTTP."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ..support import clean_env, serve_wsgi
from .conftest import DATA, PROJECT, SCRIPTS, UPSTREAM_TESTS, label_config_of

pytest.importorskip("cookiecutter.main", reason="cookiecutter is not installed")
SDK_REQUIREMENT = "label-studio-sdk>=2.1,<3"
VENV_BIN = Path(sys.executable).parent


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_baked_script_passes_its_own_and_upstream_style_tests(name, bake_script):
    project = bake_script(name)
    assert (project / "model.py").read_bytes() == (DATA / f"{name}.py").read_bytes()
    assert (project / "tests" / "label_config.xml").read_text().strip() == label_config_of(name)
    requirements = (project / "requirements.txt").read_text().splitlines()
    uses_sdk = SCRIPTS[name][1]
    assert (SDK_REQUIREMENT in requirements) is uses_sdk, requirements
    assert sum("label-studio-sdk" in line for line in requirements) == int(uses_sdk)
    # what the template generated is lint-clean (model.py is the user's: their rules)
    for cmd in (["check"], ["format", "--check"]):
        lint = subprocess.run(
            [str(VENV_BIN / "ruff"), *cmd, "--no-cache", "--extend-exclude", "model.py", "."],
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    shutil.copy(UPSTREAM_TESTS / f"test_api_{name}.py", project / "tests" / f"test_api_{name}.py")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"test_api_{name}.py" in proc.stdout or " passed" in proc.stdout
    assert " failed" not in proc.stdout and " error" not in proc.stdout.lower()


@pytest.fixture
def served(bake_script, tmp_path):
    procs = []

    def _served(name):
        proc, url = serve_wsgi(bake_script(name), free_port(), tmp_path / f"models-{name}")
        procs.append(proc)
        return url

    yield _served
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _predict(url, name, tasks, context=None):
    body = {
        "tasks": tasks,
        "project": PROJECT,
        "label_config": label_config_of(name),
        "params": {"login": None, "password": None, "context": context},
    }
    response = requests.post(f"{url}/predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
def test_interactive_script_over_http(served):
    url = served("interactive_keywords")
    tasks = [{"id": 1, "data": {"text": "Acme and acme."}}, {"id": 2, "data": {"text": "None here."}}]
    assert _predict(url, "interactive_keywords", tasks)["results"] == [[], []]
    region = {"from_name": "label", "to_name": "text", "type": "labels"}
    region["value"] = {"start": 0, "end": 4, "text": "Acme", "labels": ["ORG"]}
    answer = _predict(url, "interactive_keywords", tasks[:1], context={"result": [region]})
    found = answer["results"][0]["result"]
    assert [(r["value"]["start"], r["value"]["text"], r["score"]) for r in found] == [
        (0, "Acme", 1.0),
        (9, "acme", 0.5),
    ]
    assert answer["results"][0]["model_version"] == answer["model_version"] == "InteractiveKeywords-v0.0.1"


@pytest.mark.slow
def test_several_sdk_predictions_per_task_over_http(served):
    url = served("multi_predictions")
    tasks = [{"id": i, "data": {"image": f"https://example.com/{i}.jpg"}} for i in range(3)]
    results = _predict(url, "multi_predictions", tasks)["results"]
    assert len(results) == 3
    for candidates in results:
        assert [p["score"] for p in candidates] == [0.8, 0.2]
        first, second = (p["result"][0] for p in candidates)
        assert first["type"] == "choices" and first["from_name"] == "aircraft" and first["to_name"] == "image"
        assert first["value"]["choices"] != second["value"]["choices"]


@pytest.mark.slow
def test_preload_and_extra_params_over_http(served, tmp_path):
    url = served("preload_reader")
    doc = tmp_path / "mail.txt"
    doc.write_text("Hello, please send the invoice.", encoding="utf-8")
    tasks = [{"id": 1, "data": {"doc": str(doc)}}]
    config = label_config_of("preload_reader")
    assert _predict(url, "preload_reader", tasks)["results"][0]["result"][0]["value"]["choices"] == [
        "Routine"
    ]
    setup = {"project": PROJECT, "schema": config, "extra_params": {"watch": ["invoice"]}}
    assert requests.post(f"{url}/setup", json=setup, timeout=10).json()["model_version"] == "watch-words-1"
    assert _predict(url, "preload_reader", tasks)["results"][0]["result"][0]["value"]["choices"] == ["Urgent"]


@pytest.mark.slow
def test_sentiment_learns_from_annotation_webhooks_over_http(served):
    url = served("sentiment_sdk")
    config = label_config_of("sentiment_sdk")
    pid = int(PROJECT.split(".")[0])
    project = {"id": pid, "title": "reviews", "label_config": config, "model_version": "sentiment"}
    before = requests.post(f"{url}/setup", json={"project": PROJECT, "schema": config}, timeout=10).json()
    assert before["model_version"] == "SentimentClassifier-v0.0.1"
    examples = [
        (1, "great, love it", "Positive"),
        (2, "awful, broken", "Negative"),
        (3, "love it", "Positive"),
    ]
    for task_id, text, label in examples:
        region = {
            "from_name": "sentiment",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [label]},
        }
        body = {
            "action": "ANNOTATION_CREATED",
            "annotation": {"id": 10 + task_id, "result": [region], "was_cancelled": False, "task": task_id},
            "task": {"id": task_id, "data": {"text": text}, "project": pid},
            "project": project,
        }
        assert requests.post(f"{url}/webhook", json=body, timeout=10).status_code in (200, 201)
        deadline = time.monotonic() + 60
        while requests.get(f"{url}/training?project={pid}", timeout=10).json()["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, "training did not finish"
            time.sleep(0.1)
    status = requests.get(f"{url}/training?project={pid}", timeout=10).json()
    assert status["status"] == "succeeded", status
    tasks = [{"id": 7, "data": {"text": "broken, awful"}}, {"id": 8, "data": {"$undefined$": "love it"}}]
    answer = _predict(url, "sentiment_sdk", tasks)
    assert answer["model_version"] == status["version"] != before["model_version"]
    assert [r["result"][0]["value"]["choices"] for r in answer["results"]] == [["Negative"], ["Positive"]]


def test_hook_reads_the_script_when_the_sdk_is_not_installed(bake_script, tmp_path, monkeypatch):
    """Cookiecutter's environment lacks label-studio-sdk: the hook warns, finds the class by
    reading the script, and the generated requirements.txt still gets the SDK."""
    blocker = tmp_path / "no-sdk"
    blocker.mkdir()
    # sys.modules[name] = None is Python's own "cannot be imported" marker
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['label_studio_sdk'] = None\n", encoding="utf-8"
    )
    paths = [str(blocker), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    check = subprocess.run(
        [sys.executable, "-c", "import label_studio_sdk"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert "ModuleNotFoundError" in check.stderr  # the blocker works in child interpreters
    project = bake_script("interactive_keywords", tmp_path / "out")
    requirements = (project / "requirements.txt").read_text().splitlines()
    assert SDK_REQUIREMENT in requirements
    wsgi = (project / "wsgi.py").read_text()
    assert "from model import InteractiveKeywords" in wsgi


def test_hook_warning_names_the_sdk(tmp_path, template_dir, runtime_requirement):
    """The same, through the cookiecutter CLI: one WARNING line, no traceback."""
    blocker = tmp_path / "no-sdk"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['label_studio_sdk'] = None\n")
    env = clean_env(PYTHONPATH=str(blocker))
    proc = subprocess.run(
        [
            str(VENV_BIN / "cookiecutter"),
            str(template_dir),
            "--no-input",
            "-o",
            str(tmp_path / "out"),
            "backend_name=nosdk",
            f"script={DATA / 'sentiment_sdk.py'}",
            f"_runtime_requirement={runtime_requirement}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1, proc.stderr
    expected = (  # as docs/hooks.md quotes it
        r"WARNING: script '.*/sentiment_sdk\.py' needs 'label_studio_sdk[\w.]*', which is not installed "
        r"here \(the generated requirements\.txt installs label-studio-sdk>=2\.1,<3\); found the model "
        r"class by reading the file instead of importing it\."
    )
    assert re.fullmatch(expected, warnings[0]), warnings
    assert "Traceback" not in proc.stderr
    assert SDK_REQUIREMENT in (tmp_path / "out" / "nosdk" / "requirements.txt").read_text()


def test_hook_warns_about_an_import_the_installed_sdk_lacks(tmp_path, template_dir, runtime_requirement):
    """Older upstream examples import ``label_studio_sdk.objects``, which SDK 2.x does not have."""
    script = tmp_path / "model.py"
    script.write_text(
        "from label_studio_ml.model import LabelStudioMLBase\n"
        "from label_studio_sdk.objects import PredictionValue\n\n\n"
        "class OldSdk(LabelStudioMLBase):\n"
        "    def predict(self, tasks, context=None, **kwargs):\n"
        "        return [PredictionValue(result=[]) for _ in tasks]\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [
            str(VENV_BIN / "cookiecutter"),
            str(template_dir),
            "--no-input",
            "-o",
            str(tmp_path / "out"),
            "backend_name=oldsdk",
            f"script={script}",
            f"_runtime_requirement={runtime_requirement}",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING:")]
    assert warnings == [
        f"WARNING: script '{script}' imports 'label_studio_sdk.objects', which label-studio-sdk 2.1.2 "
        "does not have (the script was written for another SDK version; in 2.x PredictionValue is in "
        "label_studio_sdk.label_interface.objects); found the model class by reading the file instead "
        "of importing it."
    ], proc.stderr
    assert "from model import OldSdk" in (tmp_path / "out" / "oldsdk" / "wsgi.py").read_text()
