"""The generated GitHub Actions workflow, run natively: every job's own steps, in order.

``run:`` steps run as written (bash -e, the job's ``env``, the repository as working directory).
The ``uses:`` steps have native equivalents: ``actions/checkout`` = a copy of the generated repo
away from this working tree, ``actions/setup-python`` = a fresh virtualenv of that Python
version, ``hadolint/hadolint-action`` = ``hadolint <dockerfile>``. The Redis service container
publishes 6379 on localhost: the local Redis answers there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import redis
import yaml

from .install_check import fresh_env, make_venv, sh

pytestmark = pytest.mark.slow
HADOLINT = Path(sys.executable).parent / "hadolint"


def run_job(job: dict, repo: Path, tmp: Path) -> list:
    env = fresh_env(**{k: str(v) for k, v in job.get("env", {}).items()})
    done = []
    for step in job["steps"]:
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout@"):
            checkout = tmp / "checkout"
            shutil.copytree(repo, checkout, ignore=shutil.ignore_patterns("__pycache__"))
        elif uses.startswith("actions/setup-python@"):
            want = str(step["with"]["python-version"])
            assert want == f"{sys.version_info.major}.{sys.version_info.minor}", "bake with this Python"
            python = make_venv(tmp / "venv")
            env.update(
                VIRTUAL_ENV=str(python.parent.parent), PATH=f"{python.parent}{os.pathsep}{env['PATH']}"
            )
        elif uses.startswith("hadolint/hadolint-action@"):
            sh([HADOLINT, step["with"]["dockerfile"]], checkout, env)
        elif "run" in step:
            sh(["bash", "-e", "-c", step["run"]], checkout, env)
        else:
            raise AssertionError(f"no native equivalent for step {step}")
        done.append(step.get("name") or uses)
    return done


def test_generated_workflow_steps_pass(bake, seed_script, tmp_path):
    try:
        redis.Redis(host="localhost", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on localhost:6379 (the workflow's service container)")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    # the seed script: a user's model, not lint-clean by our rules (pyproject.toml excludes it)
    result = bake(backend_name="ci_backend", script=str(seed_script), python_version=version)
    assert result.exit_code == 0, result.exception
    repo = result.project_path
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "ci.yml").read_text())
    assert set(workflow["jobs"]) == {"test", "dockerfile"}
    test_job = workflow["jobs"]["test"]
    assert test_job["services"]["redis"]["ports"] == ["6379:6379"]
    steps = run_job(test_job, repo, tmp_path / "test")
    assert steps[-1] == "Tests"
    run_job(workflow["jobs"]["dockerfile"], repo, tmp_path / "dockerfile")


def test_generated_production_tests_run_against_redis(bake, tmp_path):
    """TEST_REDIS_URL (what the workflow sets): the repo's production tests run, not skip."""
    try:
        redis.Redis(host="localhost", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on localhost:6379")
    result = bake(backend_name="prod_tests")
    repo = result.project_path
    out = sh(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_production.py"],
        repo,
        fresh_env(TEST_REDIS_URL="redis://localhost:6379/0", PATH=os.environ["PATH"]),
    )
    assert "2 passed" in out.stdout, out.stdout
