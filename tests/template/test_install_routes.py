"""Whichever way a backend is generated, it installs on a machine that reaches PyPI only.

Routes: ``cookiecutter`` on a local checkout, ``cookiecutter`` on the template's git URL (a
``git+file://`` clone here: cookiecutter clones it exactly as it would clone GitHub), and
``label-studio-ml init`` from a regular (non-editable) install of the runtime. Each generated
repo is copied away from this working tree, installed into a fresh venv from its own
``requirements.txt`` and must pass its own tests with the runtime that generated it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .install_check import ROOT, base_python, docker_build_steps, fresh_env, install_and_test, sh

SEED = ROOT / "tests" / "template" / "data" / "seed_model.py"
TEMPLATE_REPO_PARTS = ["cookiecutter.json", "hooks", "{{cookiecutter.backend_name}}", "runtime", "README.md"]

pytestmark = pytest.mark.slow


def git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def cookiecutter_tool(tmp_path_factory) -> Path:
    """cookiecutter from a venv of its own, as a user has it: no lsml-runtime installed there,
    so the hook must find the runtime in the template it renders."""
    requirements = (ROOT / "requirements-dev.txt").read_text().splitlines()
    pin = next(line for line in requirements if line.startswith("cookiecutter=="))
    venv = tmp_path_factory.mktemp("cookiecutter-venv") / "venv"
    sh([base_python(), "-m", "venv", str(venv)], venv.parent, fresh_env())
    sh([venv / "bin" / "pip", "install", "-q", pin], venv.parent, fresh_env())
    probe = subprocess.run([venv / "bin" / "python", "-c", "import label_studio_ml"], capture_output=True)
    assert probe.returncode != 0, "the cookiecutter venv must not have the runtime"
    return venv / "bin" / "cookiecutter"


def vendored(project: Path) -> Path:
    lines = (project / "requirements.txt").read_text().splitlines()
    wheels = list((project / "vendor").glob("lsml_runtime-*.whl"))
    assert len(wheels) == 1 and lines[0] == f"./vendor/{wheels[0].name}", lines[0]
    return wheels[0]


def test_cookiecutter_on_a_local_checkout(tmp_path, cookiecutter_tool):
    out = tmp_path / "out"
    out.mkdir()
    sh(
        [cookiecutter_tool, str(ROOT), "--no-input", "backend_name=local_route", f"script={SEED}"],
        out,
        fresh_env(),
    )
    project = out / "local_route"
    vendored(project)
    install_and_test(project, tmp_path)


def test_cookiecutter_on_the_template_git_url(tmp_path, cookiecutter_tool):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "lsml-template"
    repo.mkdir()
    for part in TEMPLATE_REPO_PARTS:
        source = ROOT / part
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        if source.is_dir():
            shutil.copytree(source, repo / part, ignore=ignore)
        else:
            shutil.copy2(source, repo / part)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "template", cwd=repo)
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'clones'}\nreplay_dir: {tmp_path / 'replay'}\n")
    out = tmp_path / "out"
    out.mkdir()
    env = fresh_env(COOKIECUTTER_CONFIG=str(config))
    sh([cookiecutter_tool, f"git+file://{repo}", "--no-input", "backend_name=git_route"], out, env)
    assert (tmp_path / "clones" / "lsml-template" / "runtime").is_dir(), "cookiecutter cloned the repo"
    project = out / "git_route"
    vendored(project)
    install_and_test(project, tmp_path)


def test_label_studio_ml_init_from_an_installed_runtime(tmp_path):
    venv = tmp_path / "tool-venv"
    sh([base_python(), "-m", "venv", str(venv)], tmp_path, fresh_env())
    sh([venv / "bin" / "pip", "install", "-q", f"{ROOT / 'runtime'}[init]"], tmp_path, fresh_env())
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.py").write_text(SEED.read_text())
    sh([venv / "bin" / "label-studio-ml", "init", "init_route"], work, fresh_env())
    project = work / "init_route"
    wheel = vendored(project)
    direct = json.loads(
        next(
            (venv / "lib").glob("python*/site-packages/lsml_runtime-*.dist-info/direct_url.json")
        ).read_text()
    )
    assert not direct.get("dir_info", {}).get("editable"), "the route under test is a regular install"
    assert wheel.name.startswith("lsml_runtime-")
    install_and_test(project, tmp_path)


def test_dockerfile_install_steps_run(bake, tmp_path):
    result = bake(backend_name="docker_route")
    assert result.exit_code == 0, result.exception
    image = docker_build_steps(result.project_path, tmp_path)
    venv = image / "opt" / "venv" / "bin"
    for tool in ("uwsgi", "supervisord", "label-studio-ml"):
        assert (venv / tool).is_file(), f"the image's venv lacks {tool}"
    out = sh(
        [venv / "python", "-c", "import label_studio_ml, rq; print(label_studio_ml.__version__)"],
        image,
        fresh_env(),
    )
    assert out.stdout.strip()
