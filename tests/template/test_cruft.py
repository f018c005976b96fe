"""cruft creates, checks and updates a backend from the committed template."""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile

import pytest
from label_studio_ml.wheel import build_from_source

# the template repository as published: the template plus the runtime it vendors
TEMPLATE_PARTS = ["cookiecutter.json", "hooks", "{{cookiecutter.backend_name}}", "runtime"]


def git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def template_repo(tmp_path, template_dir):
    """A git repository holding the template as it is in the working tree (uncommitted too)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "template"
    repo.mkdir()
    for part in TEMPLATE_PARTS:
        source = template_dir / part
        if source.is_dir():
            shutil.copytree(source, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / part)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "template", cwd=repo)
    return repo


def assert_locks_consistent(project, run):
    """Both locks carry the vendored wheel's current sha256, and the repo's own lock test passes."""
    (wheel,) = sorted((project / "vendor").glob("*.whl"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for lock in ("requirements.lock", "requirements-test.lock"):
        text = (project / lock).read_text()
        assert f"./vendor/{wheel.name} \\\n    --hash=sha256:{digest}\n" in text, lock
        assert text.count("./vendor/") == 1, lock
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_lock.py"], cwd=project)


def test_cruft_create_check_and_update_keep_model_py(template_repo, tmp_path, tool, run):
    out = tmp_path / "out"
    out.mkdir()
    extra = json.dumps({"backend_name": "cruft_backend"})
    run([tool("cruft"), "create", str(template_repo), "--no-input", "--extra-context", extra], cwd=out)
    project = out / "cruft_backend"
    assert (project / ".cruft.json").is_file()
    assert (project / "model.py").is_file() and not (project / "example_model.py").exists()
    wheels = sorted((project / "vendor").glob("*.whl"))
    assert len(wheels) == 1, "the runtime is vendored from the template repository's runtime/"
    wheel_bytes = wheels[0].read_bytes()
    assert_locks_consistent(project, run)
    run([tool("cruft"), "check"], cwd=project)

    # The user edits the model and commits; the template moves on.
    git("init", "-q", cwd=project)
    (project / "model.py").write_text("# my own model\n" + (project / "model.py").read_text())
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "generated", cwd=project)
    readme = template_repo / "{{cookiecutter.backend_name}}" / "README.md"
    readme.write_text(readme.read_text() + "\nA template improvement.\n")
    git("commit", "-q", "-am", "improve README", cwd=template_repo)

    run([tool("cruft"), "update", "--skip-apply-ask", "--allow-untracked-files"], cwd=project)
    assert "A template improvement." in (project / "README.md").read_text()
    assert (project / "model.py").read_text().startswith("# my own model\n")
    assert wheels[0].read_bytes() == wheel_bytes, "the same runtime: the same vendored wheel"
    assert_locks_consistent(project, run)
    run([tool("cruft"), "check"], cwd=project)

    # The runtime moves on, its wheel rebuilt with it (tests/test_runtime_wheel.py sees to that):
    # the update brings the new wheel (a binary diff cruft applies).
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "updated", cwd=project)
    init = template_repo / "runtime" / "src" / "label_studio_ml" / "__init__.py"
    init.write_text(init.read_text() + "# a runtime fix\n")
    build_from_source(template_repo / "runtime", template_repo / "{{cookiecutter.backend_name}}" / "vendor")
    git("add", "-A", cwd=template_repo)
    git("commit", "-q", "-m", "runtime fix", cwd=template_repo)
    run([tool("cruft"), "update", "--skip-apply-ask", "--allow-untracked-files"], cwd=project)
    (wheel,) = sorted((project / "vendor").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("label_studio_ml/__init__.py").decode().endswith("# a runtime fix\n")
    assert (project / "model.py").read_text().startswith("# my own model\n")
    assert wheel.read_bytes() != wheel_bytes
    assert_locks_consistent(project, run)  # the update brought the new wheel's hash into the locks
