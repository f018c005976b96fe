"""Each example baked through the template: the generated repo's own tests pass, and it serves.

``cookiecutter <template> --no-input script=examples/<name>/model.py`` with the runtime
installed from this working tree (the vendored runtime wheel), the way a user starts a backend.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ..support import clean_env, refresh_locks_if_stale, serve_wsgi
from .conftest import EXAMPLES, NAMES, label_config

cookiecutter_main = pytest.importorskip("cookiecutter.main", reason="cookiecutter is not installed")


def bake(name, template_dir, runtime_requirement, out):
    if not (template_dir / "cookiecutter.json").is_file():
        pytest.skip("the template (cookiecutter.json) is not in this checkout yet")
    path = cookiecutter_main.cookiecutter(
        str(template_dir),
        no_input=True,
        output_dir=str(out),
        extra_context={
            "backend_name": f"{name}_backend",
            "script": str(EXAMPLES / name / "model.py"),
            "_runtime_requirement": runtime_requirement,
        },
    )
    refresh_locks_if_stale(Path(path))  # the example's own requirements (scikit-learn, ...)
    return Path(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_baked_example_passes_its_own_tests(name, template_dir, runtime_requirement, tmp_path):
    project = bake(name, template_dir, runtime_requirement, tmp_path)
    assert (project / "model.py").read_bytes() == (EXAMPLES / name / "model.py").read_bytes()
    # The template took the labeling config from the script's docstring...
    assert (project / "tests" / "label_config.xml").read_text().strip() == label_config(name).strip()
    # ...and the script's own requirements.txt lines.
    requirements = (project / "requirements.txt").read_text()
    for line in (EXAMPLES / name / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.strip() in requirements
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_baked_text_classifier_learns_over_http(template_dir, runtime_requirement, tmp_path):
    """``python wsgi.py`` of the baked text classifier: /setup, /train, /training, /predict."""
    project = bake("text_classifier", template_dir, runtime_requirement, tmp_path)
    proc, url = serve_wsgi(project, free_port(), tmp_path / "models")
    try:
        config = label_config("text_classifier")
        project_id = "4.1700000000"
        tasks = json.loads((EXAMPLES / "text_classifier" / "data.json").read_text())
        train = [t for i, t in enumerate(tasks) if (i // 3) % 2 == 0]
        test = [t for i, t in enumerate(tasks) if (i // 3) % 2 == 1]
        unlabelled = [{"id": t["id"], "data": t["data"]} for t in test]

        def accuracy():
            body = {"tasks": unlabelled, "project": project_id, "label_config": config}
            results = requests.post(f"{url}/predict", json=body, timeout=30).json()["results"]
            gold = [t["annotations"][0]["result"][0]["value"]["choices"] for t in test]
            guess = [r["result"][0]["value"]["choices"] if r["result"] else None for r in results]
            return sum(a == b for a, b in zip(guess, gold)) / len(test)

        setup = requests.post(f"{url}/setup", json={"project": project_id, "schema": config}, timeout=10)
        initial = setup.json()["model_version"]
        before = accuracy()
        body = {"annotations": train, "project": project_id, "label_config": config}
        answer = requests.post(f"{url}/train", json=body, timeout=10)
        assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 60
        while True:
            status = requests.get(f"{url}/training", params={"project": "4"}, timeout=5).json()
            if status["status"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["status"] == "succeeded", status
        version = requests.post(f"{url}/setup", json={"project": project_id, "schema": config}, timeout=10)
        assert version.json()["model_version"] == status["version"] != initial
        after = accuracy()
        assert after >= 0.8 > before
    finally:
        proc.terminate()
        proc.wait(timeout=10)
