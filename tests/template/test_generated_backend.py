"""Baked backends work: their own tests pass, and the seed model serves over real HTTP."""

import subprocess
import sys

import pytest
import requests

from ..support import clean_env, serve_wsgi

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="choice" toName="image" showInLine="true">
    <Choice value="Boeing" background="blue"/>
    <Choice value="Airbus" background="green" />
  </Choices>
</View>"""


@pytest.mark.parametrize("script", ["", "seed_model.py", "current_model.py"])
def test_baked_repo_own_tests_pass(script, bake, seed_script, run):
    result = bake(script=str(seed_script.parent / script) if script else "")
    assert result.exit_code == 0, result.exception
    run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=result.project_path,
        timeout=180,
        env=clean_env(),
    )


def exercise_seed_backend(project, free_port, tmp_path):
    """/health, /setup and /predict of the seed DummyModel over real HTTP."""
    proc, url = serve_wsgi(project, free_port(), tmp_path / "models")
    try:
        health = requests.get(f"{url}/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "UP"
        assert health.json()["model_class"] == "DummyModel"
        setup = requests.post(
            f"{url}/setup", json={"project": "3.1700000000", "schema": LABEL_CONFIG}, timeout=10
        )
        assert setup.status_code == 200, setup.text
        version = setup.json()["model_version"]
        assert isinstance(version, str) and version
        tasks = [{"id": i, "data": {"image": f"/data/upload/3/{i}.jpg"}} for i in (1, 2)]
        predict = requests.post(
            f"{url}/predict",
            json={"tasks": tasks, "project": "3.1700000000", "label_config": LABEL_CONFIG},
            timeout=10,
        )
        assert predict.status_code == 200, predict.text
        results = predict.json()["results"]
        assert len(results) == 2
        for entry in results:
            region = entry["result"][0]
            assert region["from_name"] == "choice" and region["to_name"] == "image"
            assert region["value"]["choices"] == ["Boeing"]
            assert entry["model_version"] == version
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_seed_model_via_cookiecutter_serves_over_http(bake, seed_script, free_port, tmp_path):
    result = bake(backend_name="seed_backend", script=str(seed_script))
    assert result.exit_code == 0, result.exception
    exercise_seed_backend(result.project_path, free_port, tmp_path)


def test_seed_model_via_label_studio_ml_init(
    seed_script, tool, run, free_port, tmp_path, runtime_requirement
):
    cli = tool("label-studio-ml")
    probe = subprocess.run([cli, "init", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"label-studio-ml init is not available yet: {probe.stderr.strip()[-200:]}")
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.py").write_bytes(seed_script.read_bytes())
    cmd = [cli, "init", "seed_backend", "--script", "model.py"]
    run([*cmd, "--runtime-requirement", runtime_requirement], cwd=work, env=clean_env())
    project = work / "seed_backend"
    assert (project / "model.py").read_bytes() == seed_script.read_bytes()
    assert "from model import DummyModel\n" in (project / "wsgi.py").read_text()
    exercise_seed_backend(project, free_port, tmp_path)
    # Again with --force: the generated files come back, the model stays.
    (project / "model.py").write_text((project / "model.py").read_text() + "\n# edited\n")
    again = [cli, "init", "seed_backend", "--force", "--root-dir", str(work)]
    run([*again, "--runtime-requirement", runtime_requirement], cwd=tmp_path, env=clean_env())
    assert (project / "model.py").read_text().endswith("# edited\n")
    assert "from model import DummyModel\n" in (project / "wsgi.py").read_text()
