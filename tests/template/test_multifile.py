"""Models spread over several files: the bake brings the model's folder along (docs/hooks.md,
"What a bake brings"), and the generated repo runs it as the folder did.

The folders under data/folders/ are written in label-studio-ml-backend's example style:
``keywords`` (model.py, a helper module, a package with relative imports, a data file read
through ``os.path.dirname(__file__)``, an upstream ``_wsgi.py``, ``test_api.py``, requirement
files, Dockerfile and compose file) and ``segmenter`` (the model file is ``segmenter.py``, its
helper imports a package that is not installed where cookiecutter runs, its tests sit in
``tests/`` with a data file, its weights come from ``MODEL_ROOT``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import DATA
from .install_check import fresh_env, install_and_test

FOLDERS = DATA / "folders"
VENV_BIN = Path(sys.executable).parent
KEYWORDS_LABELS = [("Acme", ["ORG"]), ("Paris", ["LOC"])]


def copy_folder(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / "src" / name
    shutil.copytree(FOLDERS / name, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def tree(root: Path) -> set:
    """Every file of a generated repo, vendor/ aside."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != "vendor" and "__pycache__" not in p.parts
    }


def bake_cli(template_dir, out: Path, script: str, name: str = "folder", env=None):
    """The cookiecutter CLI (hooks' stdout and stderr as a user sees them)."""
    return subprocess.run(
        [
            str(VENV_BIN / "cookiecutter"),
            str(template_dir),
            "--no-input",
            "-o",
            str(out),
            f"backend_name={name}",
            f"script={script}",
        ],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=300,
    )


def missing_package_env(tmp_path: Path, module: str) -> dict:
    """An environment where ``module`` cannot be imported (it stands in for torch)."""
    blocker = tmp_path / f"no-{module}"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocker), env.get("PYTHONPATH", "")) if p)
    return env


def run_own_tests(project: Path, *args: str, **env):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(args or ["-q"])],
        cwd=project,
        capture_output=True,
        text=True,
        env={**fresh_env(), **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def lint(project: Path) -> None:
    for cmd in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            [str(VENV_BIN / "ruff"), *cmd, "--no-cache", "."], cwd=project, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------ what comes along
def test_folder_brings_what_the_model_needs_and_nothing_else(bake, tmp_path):
    folder = copy_folder("keywords", tmp_path)
    # what a working folder also holds: a virtualenv, VCS data, caches, build output, secrets
    (folder / ".venv" / "lib").mkdir(parents=True)
    (folder / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (folder / ".venv" / "lib" / "site.py").write_text("x = 1\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    (folder / "build" / "lib").mkdir(parents=True)
    (folder / "build" / "lib" / "helpers.py").write_text("x = 1\n")
    (folder / ".env").write_text("LABEL_STUDIO_API_KEY=secret\n")
    (folder / "data" / "models" / "1").mkdir(parents=True)  # a store its own runs left
    (folder / "data" / "models" / "1" / "kv.json").write_text("{}")
    result = bake(script=str(folder))
    assert result.exit_code == 0, result.exception
    root = Path(result.project_path)
    brought = tree(root)
    for path in (
        "model.py",
        "helpers.py",
        "matching/__init__.py",
        "matching/spans.py",
        "matching/tokens.py",
        "data/keywords.txt",
        "tests/model_tests/__init__.py",
        "tests/model_tests/test_api.py",
        "tests/model_tests/samples/news.txt",  # the moved test reads it beside itself
        "README.model.md",
        "_wsgi.py",
    ):
        assert path in brought, path
        if path not in ("_wsgi.py", "tests/model_tests/__init__.py", "README.model.md"):
            source = folder / path.replace("tests/model_tests/", "")
            assert (root / path).read_bytes() == source.read_bytes(), path
    assert (root / "README.model.md").read_bytes() == (folder / "README.md").read_bytes()
    # never brought: code nothing imports, caches, virtualenvs, VCS data, build output, secrets
    for path in (
        "convert.py",
        ".venv/lib/site.py",
        ".git/HEAD",
        "build/lib/helpers.py",
        "data/models/1/kv.json",
    ):
        assert path not in brought, path
    assert not (root / ".env").exists()
    assert not any(p.endswith(".pyc") for p in brought)
    assert not any(p.startswith("tests/model_tests/data") for p in brought)  # "data" is a dict key there
    # the generated repo's own files stand in for upstream boilerplate
    assert "gunicorn" not in (root / "Dockerfile").read_text()
    assert "supervisord" in (root / "Dockerfile").read_text()
    assert "redis" in (root / "docker-compose.yml").read_text()
    shim = (root / "_wsgi.py").read_text()
    assert "from label_studio_ml.api import init_app" in shim and "argparse" not in shim
    # requirements merged: nothing of upstream's servers or runtime, one pytest (ours, pinned)
    requirements = (root / "requirements.txt").read_text()
    assert "gunicorn" not in requirements and "label-studio-ml" not in requirements
    assert "rq==1.10.1" not in requirements  # the runtime's rq, not an old pin of the folder's
    assert requirements.splitlines()[0].startswith("./vendor/lsml_runtime-")
    tests_req = (root / "requirements-test.txt").read_text().splitlines()
    # our pytest pins (one per Python range), none of the folder's
    template = Path(__file__).resolve().parents[2] / "{{cookiecutter.backend_name}}" / "requirements-test.txt"
    pins = [line for line in tests_req if line.split("=")[0].strip() == "pytest"]
    assert pins == [
        line for line in template.read_text().splitlines() if line.split("=")[0].strip() == "pytest"
    ]
    # the model's data/ shares the folder with the store, and git and docker still see it
    assert "!data/keywords.txt" in (root / ".gitignore").read_text().splitlines()
    assert "!data/keywords.txt" in (root / ".dockerignore").read_text().splitlines()
    assert "data/models" not in {"/".join(Path(p).parts[:2]) for p in brought}
    # the model's code is the user's: ruff leaves it alone, and everything else is clean
    excluded = re.search(r"^extend-exclude = (\[.*\])$", (root / "pyproject.toml").read_text(), re.M)
    assert json.loads(excluded.group(1)) == [
        "model.py",
        "helpers.py",
        "matching/__init__.py",
        "matching/spans.py",
        "matching/tokens.py",
        "tests/model_tests",
    ]
    lint(root)
    # its tests and the folder's own test (which reads data/ through the model's __file__) pass
    verbose = run_own_tests(root, "-v")
    assert "tests/model_tests/test_api.py::test_predict PASSED" in verbose


@pytest.mark.parametrize(
    "form",
    ["{folder}", "{folder}/model.py", "{folder}:KeywordSpotter", "{folder}/model.py:KeywordSpotter"],
)
def test_every_way_to_name_the_model_gives_the_same_repo(bake, tmp_path, form):
    folder = copy_folder("keywords", tmp_path)
    result = bake(script=form.format(folder=folder))
    assert result.exit_code == 0, result.exception
    root = Path(result.project_path)
    assert "from model import KeywordSpotter" in (root / "wsgi.py").read_text()
    assert {"helpers.py", "matching/spans.py", "data/keywords.txt", "tests/model_tests/test_api.py"} <= tree(
        root
    )


def test_a_folder_with_two_model_files_must_name_one(bake, tmp_path, capfd):
    folder = copy_folder("keywords", tmp_path)
    (folder / "model.py").rename(folder / "spotter.py")
    (folder / "other.py").write_text(
        "from label_studio_ml.model import LabelStudioMLBase\n\n\nclass Other(LabelStudioMLBase):\n    pass\n"
    )
    result = bake(script=str(folder))
    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert f"ERROR: script '{folder}' is a folder with several model files (other.py, spotter.py)." in err
    assert result.project_path is None or not Path(result.project_path).exists()
    result = bake(script=f"{folder}:Other")
    assert result.exit_code == 0, result.exception
    assert "from model import Other" in (Path(result.project_path) / "wsgi.py").read_text()


def test_big_files_are_left_out_with_a_warning_and_lsmlinclude_overrides(template_dir, tmp_path):
    folder = copy_folder("keywords", tmp_path)
    (folder / "data" / "weights.bin").write_bytes(b"\0" * (11 * 1024 * 1024))
    proc = bake_cli(template_dir, tmp_path / "out", str(folder))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING:")]
    assert warnings == [
        f"WARNING: {folder / 'data' / 'weights.bin'} is 11.0 MB, over the 10 MB limit for files baked "
        "into the repo: left out. Put it in the weights folder (MODEL_ROOT, ./weights, mounted by "
        "docker compose) or download it at image build or first start (docs/hooks.md); or list it in "
        f"{folder / '.lsmlinclude'} to bake it in anyway."
    ], proc.stderr
    assert not (tmp_path / "out" / "folder" / "data" / "weights.bin").exists()
    assert "Left out of requirements.txt (the runtime installs its own): rq==1.10.1" in proc.stdout
    # the override: bring the big file and the tool, leave the README out
    (folder / ".lsmlinclude").write_text(
        "# what the rule gets wrong\ndata/weights.bin\nconvert.py\n!README.md\n"
    )
    proc = bake_cli(template_dir, tmp_path / "out2", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    root = tmp_path / "out2" / "folder"
    assert (root / "data" / "weights.bin").stat().st_size == 11 * 1024 * 1024
    assert (root / "convert.py").is_file() and not (root / "README.model.md").exists()


def test_a_module_may_not_take_a_generated_file_name(bake, tmp_path, capfd):
    folder = copy_folder("keywords", tmp_path)
    (folder / "wsgi.py").write_text("X = 1\n")
    (folder / "helpers.py").write_text("from wsgi import X\n\n\ndef normalise(word):\n    return word\n")
    result = bake(script=str(folder))
    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert (
        f"ERROR: script '{folder / 'wsgi.py'}' cannot be brought along: wsgi.py is a file of the "
        f"generated repo. Rename it in {folder}, or leave it out with '!wsgi.py' in "
        f"{folder / '.lsmlinclude'}." in err
    )


def test_missing_package_in_a_helper_is_one_warning(template_dir, tmp_path):
    """Baking needs only the standard library and the model's files: the helper's third-party
    import is missing here (one WARNING), the model's own modules are found in its folder."""
    folder = copy_folder("segmenter", tmp_path)
    proc = bake_cli(
        template_dir, tmp_path / "out", str(folder), env=missing_package_env(tmp_path, "tabulate")
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in (proc.stderr + proc.stdout).splitlines() if "WARNING" in line]
    # one about the import; the folder's requirement also needs the locks refreshed (its own line)
    assert [w for w in warnings if "lock.sh" not in w] == [
        f"WARNING: script '{folder / 'segmenter.py'}' needs 'tabulate', which is not installed here; "
        "found the model class by reading the file instead of importing it."
    ], proc.stderr + proc.stdout
    assert len([w for w in warnings if "requirements.lock does not pin tabulate" in w]) == 1
    root = tmp_path / "out" / "folder"
    assert "tabulate==0.10.0" in (root / "requirements.txt").read_text().splitlines()
    assert (root / "model.py").read_bytes() == (folder / "segmenter.py").read_bytes()
    assert "from model import Segmenter" in (root / "wsgi.py").read_text()
    assert {
        "nets.py",
        "segmenter.py",
        "tests/model_tests/series.csv",
        "tests/model_tests/test_segmenter.py",
    } <= tree(root)
    lint(root)


def test_a_third_party_import_of_a_helper_is_checked_against_requirements(template_dir, tmp_path):
    folder = copy_folder("segmenter", tmp_path)
    (folder / "requirements.txt").write_text("# forgot tabulate\n")
    proc = bake_cli(
        template_dir, tmp_path / "out", str(folder), env=missing_package_env(tmp_path, "tabulate")
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "WARNING: model.py imports tabulate, which requirements.txt does not list: add them, pinned, "
        "or the backend fails with ModuleNotFoundError on a fresh machine." in proc.stdout
    )


# ------------------------------------------------------------------ fresh venv, served
@pytest.mark.slow
def test_keywords_repo_installs_alone_and_trains_on_a_worker(template_dir, tmp_path, monkeypatch):
    """Fresh venv from the repo's own files; its tests (ours and the folder's, with
    TEST_REDIS_URL: the RQ worker imports the model's modules and trains) pass."""
    folder = copy_folder("keywords", tmp_path)
    proc = bake_cli(template_dir, tmp_path / "out", str(folder))
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("TEST_REDIS_URL", os.environ.get("LSML_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    moved = install_and_test(tmp_path / "out" / "folder", tmp_path)
    python = tmp_path / "fresh-venv" / "bin" / "python"
    env = fresh_env(VIRTUAL_ENV=str(python.parent.parent), TEST_REDIS_URL=os.environ["TEST_REDIS_URL"])
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=moved,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    for test in (
        "tests/model_tests/test_api.py::test_predict",  # the folder's own test, through _wsgi
        "tests/test_production.py::test_the_worker_trains_a_new_version",  # RQ worker runs fit
        "tests/test_server.py::test_health_over_http",  # label-studio-ml start
    ):
        assert f"{test} PASSED" in proc.stdout, proc.stdout[-4000:]


@pytest.fixture
def uwsgi_server(tmp_path):
    procs = []

    def start(project: Path, python: Path, **env_extra):
        port = _free_port()
        ini = project / "uwsgi.ini"
        ini.write_text(ini.read_text().replace("http = :%(_)", "http = 127.0.0.1:%(_)"))
        env = fresh_env(PORT=str(port), MODEL_DIR=str(tmp_path / "models"), LOG_LEVEL="WARNING", **env_extra)
        env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
        log = (tmp_path / "uwsgi.log").open("wb")
        proc = subprocess.Popen(
            [str(python.parent / "uwsgi"), "--ini", "uwsgi.ini"],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"uWSGI did not come up:\n{(tmp_path / 'uwsgi.log').read_text()}")
            time.sleep(0.2)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_segmenter_installs_alone_and_serves_weights_from_model_root(template_dir, tmp_path, uwsgi_server):
    """Baked where its heavy import is missing; in a fresh venv its own tests pass, and uWSGI
    serves it with its weights from a mounted MODEL_ROOT folder."""
    folder = copy_folder("segmenter", tmp_path)
    proc = bake_cli(
        template_dir, tmp_path / "out", str(folder), env=missing_package_env(tmp_path, "tabulate")
    )
    assert proc.returncode == 0, proc.stderr
    # as the bake's WARNING says: the folder's requirement (tabulate) goes into the locks
    lock_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["sh", "lock.sh"], cwd=tmp_path / "out" / "folder", env=lock_env, check=True)
    moved = install_and_test(tmp_path / "out" / "folder", tmp_path)
    python = tmp_path / "fresh-venv" / "bin" / "python"
    weights = tmp_path / "mounted-weights"
    weights.mkdir()
    (weights / "segmenter.json").write_text(json.dumps({"threshold": 8, "label": "Spike"}))
    url = uwsgi_server(moved, python, MODEL_ROOT=str(weights))
    config = (moved / "tests" / "label_config.xml").read_text()
    body = {"tasks": [{"id": 1, "data": {"text": "1 9 9 2 7"}}], "label_config": config, "project": "1.1"}
    answer = requests.post(f"{url}/predict", json=body, timeout=30).json()
    result = answer["results"][0]["result"]
    assert [(r["value"]["text"], r["value"]["labels"]) for r in result] == [("9 9", ["Spike"])]
    assert answer["results"][0]["score"] == 8.0  # the threshold of the mounted weights, not the default 5


# ------------------------------------------------------------------ the rule's pieces
@pytest.fixture
def folder_rules(template_dir):
    from .test_hook_units import hook_module

    return hook_module(template_dir, "lsml_folder")


def test_generated_names_cover_the_template(folder_rules, template_dir):
    """Every top-level file of the template is either refused as a name for the model's files,
    replaced (upstream boilerplate), or handled on its own (model.py, data/, logs/, weights/,
    hidden files); and every refused name is one the template has."""
    top = {p.name for p in (template_dir / "{{cookiecutter.backend_name}}").iterdir()}
    handled = {"model.py", "data", "logs", "weights", ".env.example"}
    assert top - folder_rules.GENERATED_NAMES - folder_rules.REPLACED - handled == set()
    assert folder_rules.GENERATED_NAMES - top == set()


def test_lsmlinclude_last_matching_line_wins(folder_rules, tmp_path):
    (tmp_path / ".lsmlinclude").write_text("# comment\nconfigs\n!configs/secret.yaml\n\n*.bin\n")
    rules = folder_rules.include_rules(tmp_path)
    assert folder_rules.override("configs/a.yaml", rules) is True  # a folder's pattern matches its files
    assert folder_rules.override("configs/secret.yaml", rules) is False
    assert folder_rules.override("deep/w.bin", rules) is True  # fnmatch: * crosses /
    assert folder_rules.override("model.py", rules) is None


def test_a_folder_without_a_model_is_refused(bake, tmp_path, capfd):
    folder = tmp_path / "tools"
    folder.mkdir()
    (folder / "convert.py").write_text("print('hi')\n")
    result = bake(script=str(folder))
    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert (
        f"ERROR: script '{folder}' is a folder whose .py files define no LabelStudioMLBase subclass. "
        f"Pass the model's file as script={folder / 'model.py'} (or folder/file.py:Class)." in err
    )


def test_another_projects_subfolder_and_a_huge_folder_stay_out(template_dir, tmp_path):
    folder = copy_folder("keywords", tmp_path)
    other = folder / "other_model"
    other.mkdir()
    (other / "model.py").write_text("x = 1\n")
    (other / "labels.txt").write_text("not ours\n")
    proc = bake_cli(template_dir, tmp_path / "out", str(folder))
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "out" / "folder"
    assert not (root / "other_model").exists()
    assert (root / "data" / "keywords.txt").is_file()
    # a folder of thousands of files (a home directory): what the model imports, no data
    bulk = folder / "dump"
    bulk.mkdir()
    for i in range(5000):
        (bulk / f"{i}.txt").write_text("")
    proc = bake_cli(template_dir, tmp_path / "out2", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert f"WARNING: {folder} holds over 5000 files; brought only what the model imports" in proc.stderr
    root = tmp_path / "out2" / "folder"
    assert (root / "helpers.py").is_file() and (root / "matching" / "tokens.py").is_file()
    assert not (root / "dump").exists()


def test_hooks_import_only_the_standard_library(template_dir):
    """Baking needs only the standard library (and, in post-gen, cookiecutter's own config)."""
    import ast

    hooks = sorted((template_dir / "hooks").glob("*.py"))
    assert {"pre_gen_project.py", "post_gen_project.py", "lsml_hooklib.py"} <= {p.name for p in hooks}
    for hook in hooks:
        tree = ast.parse(hook.read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
        # lsml_hooklib, lsml_folder, ...: the hooks' own modules, beside them in hooks/ (checked too)
        own = {p.stem for p in hooks if p.stem.startswith("lsml_")}
        allowed = set(sys.stdlib_module_names) | {"__future__", "cookiecutter", "pip"} | own
        assert names - allowed == set(), hook


def test_a_rerun_keeps_what_an_earlier_bake_brought(tmp_path):
    """label-studio-ml init --force after the folder is gone: the model, its neighbours, the
    _wsgi.py shim and their exclusion from ruff stay; the repo still passes its tests."""
    folder = copy_folder("keywords", tmp_path)
    init = [str(VENV_BIN / "label-studio-ml"), "init", "kw"]
    run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=300)
    proc = subprocess.run([*init, "--script", str(folder)], **run)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "kw"
    before = (root / "pyproject.toml").read_text()
    shutil.rmtree(folder)
    proc = subprocess.run([*init, "--force", "--script", str(folder)], **run)
    assert proc.returncode == 0, proc.stderr
    assert f"WARNING: script '{folder}' no longer exists; keeping the existing model.py." in proc.stderr
    assert (root / "pyproject.toml").read_text() == before
    assert (root / "_wsgi.py").is_file() and (root / "helpers.py").is_file()
    lint(root)
    assert "tests/model_tests/test_api.py::test_predict PASSED" in run_own_tests(root, "-v")
