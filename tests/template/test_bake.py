"""Every supported set of answers bakes a complete, lint-clean, parseable backend."""

import ast
import configparser
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from supervisor import events
from supervisor.options import ServerOptions

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_VERSION = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]["version"]
WHEEL = f"vendor/lsml_runtime-{RUNTIME_VERSION}-py3-none-any.whl"
SPECIAL = 'He said "hi" & it\'s a back\\slash: caf\u00e9 \u2713 {x} %(y)s $z'

# Each case: an id, the answers (on top of default_context) and whether a script is used.
SUPPORTED = [
    pytest.param({}, id="default"),
    pytest.param({"python_version": "3.11"}, id="py311"),
    pytest.param({"python_version": "3.13", "port": "8080"}, id="py313-port8080"),
    pytest.param({"backend_name": "my-backend-2"}, id="dashed-name"),
    pytest.param({"model_class": "FlightClassifier"}, id="example-class-name"),
    pytest.param({"description": SPECIAL}, id="special-description"),
    pytest.param({"script": "SEED"}, id="seed-script"),
    pytest.param({"script": "SEED:DummyModel"}, id="seed-script-with-class"),
    pytest.param({"script": "SEED", "model_class": "DummyModel"}, id="seed-script-model-class"),
    pytest.param({"gpu": "yes"}, id="gpu"),
    pytest.param(
        {"gpu": "yes", "workers": "2", "threads": "1", "python_version": "3.13"}, id="gpu-2x1-py313"
    ),
    pytest.param({"workers": "8", "threads": "16", "script": "SEED"}, id="cpu-8x16-seed"),
]

FILES = {
    ".dockerignore",
    ".github/workflows/ci.yml",
    ".github/workflows/latest.yml",
    ".pre-commit-config.yaml",
    ".env.example",
    ".gitattributes",
    ".gitignore",
    "Dockerfile",
    "README.md",
    "data/.gitkeep",
    "docker-compose.yml",
    "k8s/README.md",
    "k8s/api.yaml",
    "k8s/config.yaml",
    "k8s/redis.yaml",
    "k8s/worker.yaml",
    "lock.sh",
    "docker-entrypoint.sh",
    "logs/.gitkeep",
    "weights/.gitkeep",
    "model.py",
    "pyproject.toml",
    "renovate.json",
    "requirements-test.lock",
    "requirements-test.txt",
    "requirements.lock",
    "requirements.txt",
    "rq_settings.py",
    "supervisord.conf",
    "tests/conftest.py",
    "tests/label_config.xml",
    "tests/test_api.py",
    "tests/test_example_model.py",
    "tests/test_lock.py",
    "tests/test_production.py",
    "tests/test_server.py",
    "uwsgi.ini",
    "vendor/README.md",
    WHEEL,
    "wsgi.py",
}
EXAMPLE_ONLY = {"tests/test_example_model.py"}


def answers_for(case, seed_script):
    return {
        key: value.replace("SEED", str(seed_script)) if key == "script" else value
        for key, value in case.items()
    }


def file_set(root):
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(params=SUPPORTED)
def baked(request, bake, seed_script):
    """(answers, project path) of a successful bake."""
    answers = answers_for(request.param, seed_script)
    result = bake(**answers)
    assert result.exit_code == 0, result.exception
    assert result.exception is None
    assert result.project_path.name == answers.get("backend_name", "my_ml_backend")
    return answers, result.project_path


def test_exact_file_set(baked, seed_script):
    answers, root = baked
    expected = FILES - EXAMPLE_ONLY if answers.get("script") else FILES
    assert file_set(root) == expected
    if answers.get("script"):  # the user's script is installed byte for byte
        assert (root / "model.py").read_bytes() == seed_script.read_bytes()


def test_no_unrendered_jinja(baked):
    _, root = baked
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".whl":  # the wheel carries the template itself
            text = path.read_text(encoding="utf-8")
            for mark in ("{{", "{%", "{#"):
                assert mark not in text, f"{path.relative_to(root)} contains {mark}"


def test_files_use_lf_line_endings(baked):
    _, root = baked
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".whl":
            assert b"\r\n" not in path.read_bytes(), path


def test_python_files_parse(baked):
    _, root = baked
    for path in root.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_wsgi_wires_the_model_class(baked):
    answers, root = baked
    wsgi = (root / "wsgi.py").read_text(encoding="utf-8")
    if answers.get("script"):
        expected = "DummyModel"
    else:
        expected = answers.get("model_class") or "NewModel"
        assert f"class {expected}(LabelStudioMLBase)" in (root / "model.py").read_text()
    assert f"from model import {expected}\n" in wsgi
    assert f"return create_app({expected}, model_kwargs=model_kwargs)" in wsgi
    assert "app = make_app()" in wsgi


def test_config_files_parse_and_keep_the_description(baked):
    answers, root = baked
    description = answers.get("description", "A Label Studio ML backend")
    port = answers.get("port", "9090")
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == description
    assert pyproject["tool"]["cruft"]["skip"][0] == "model.py"
    compose = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))
    backend = compose["services"]["backend"]
    assert backend["labels"]["org.opencontainers.image.description"] == description
    assert backend["ports"] == [f"${{BIND_ADDRESS:-0.0.0.0}}:${{PORT:-{port}}}:{port}"]
    assert backend["extra_hosts"] == ["host.docker.internal:${HOST_GATEWAY:-host-gateway}"]
    assert "name" not in compose, "docker-compose 1.29 refuses a top-level name:"
    assert backend["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert compose["services"]["redis"]["healthcheck"]
    uwsgi = configparser.ConfigParser(interpolation=None, strict=False)
    uwsgi.read(root / "uwsgi.ini")
    assert uwsgi["uwsgi"]["module"] == "wsgi:app"
    gpu = answers.get("gpu", "no") == "yes"
    assert uwsgi["uwsgi"]["processes"] == answers.get("workers", "1" if gpu else "2")
    assert uwsgi["uwsgi"]["threads"] == answers.get("threads", "4")
    assert uwsgi["uwsgi"]["enable-threads"] == "true"  # background model builds need threads
    devices = backend.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert devices == ([{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}] if gpu else None)
    assert description in (root / "README.md").read_text(encoding="utf-8")


def test_requirements_pin_the_runtime(baked):
    _, root = baked
    lines = (root / "requirements.txt").read_text().splitlines()
    assert lines[0] == f"./{WHEEL}"
    # the vendored wheel is the runtime of this working tree
    with zipfile.ZipFile(root / WHEEL) as wheel:
        names = set(wheel.namelist())
        src = ROOT / "runtime" / "src" / "label_studio_ml"
        for module in src.glob("*.py"):
            assert wheel.read(f"label_studio_ml/{module.name}") == module.read_bytes(), module.name
        # ...without the template copy that init uses (a template change alone keeps vendor/)
        assert not [n for n in names if n.startswith("label_studio_ml/template/")]
        info = f"lsml_runtime-{RUNTIME_VERSION}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        assert f"Version: {RUNTIME_VERSION}\n" in metadata
        # every dependency line is valid and says what runtime/pyproject.toml says
        project = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
        requires = {
            str(Requirement(line.split(": ", 1)[1]))
            for line in metadata.splitlines()
            if line.startswith("Requires-Dist: ")
        }
        wanted = {str(Requirement(dep)) for dep in project["dependencies"]}
        for extra, deps in project["optional-dependencies"].items():
            for dep in map(Requirement, deps):
                marker = f"({dep.marker}) and " if dep.marker else ""
                dep.marker = Marker(f'{marker}extra == "{extra}"')
                wanted.add(str(dep))
        assert requires == wanted
        assert "label-studio-ml = label_studio_ml.cli:main" in wheel.read(f"{info}/entry_points.txt").decode()
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert any(line.lower().startswith("uwsgi") for line in lines)
    assert any(line.startswith("supervisor") for line in lines)


def test_vendored_wheel_is_reproducible(bake, tmp_path):
    """The same runtime gives the same bytes, so cruft update sees no change in vendor/."""
    first = bake().project_path / WHEEL
    copy = tmp_path / "first.whl"
    copy.write_bytes(first.read_bytes())
    assert (bake().project_path / WHEEL).read_bytes() == copy.read_bytes()


def test_runtime_requirement_answer_replaces_the_wheel(bake):
    result = bake(_runtime_requirement="lsml-runtime==0.1.0")
    assert result.exit_code == 0, result.exception
    root = result.project_path
    assert (root / "requirements.txt").read_text().splitlines()[0] == "lsml-runtime==0.1.0"
    assert not list((root / "vendor").glob("*.whl"))


def test_ruff_clean(baked, run, tool):
    # the commands of the generated CI workflow; a user's script is excluded by pyproject.toml
    _, root = baked
    run([tool("ruff"), "check", "--no-cache", "."], cwd=root)
    run([tool("ruff"), "format", "--check", "--no-cache", "."], cwd=root)


def test_ci_workflow_validates(baked, run, tool):
    _, root = baked
    workflow = root / ".github" / "workflows" / "ci.yml"
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)], cwd=root)
    steps = yaml.safe_load(workflow.read_text())["jobs"]["test"]["steps"]
    runs = [step.get("run") for step in steps]
    assert "ruff check ." in runs and "ruff format --check ." in runs and "python -m pytest" in runs
    # CI installs the locked tree, hashes checked
    assert "pip install --require-hashes -r requirements-test.lock" in runs


def test_latest_workflow_and_renovate_config_validate(baked, run, tool):
    """The weekly job tests the newest releases, unlocked; Renovate updates the locks."""
    answers, root = baked
    latest = root / ".github" / "workflows" / "latest.yml"
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(latest)], cwd=root)
    workflow = yaml.safe_load(latest.read_text())
    assert workflow[True]["schedule"] and "workflow_dispatch" in workflow[True]  # yaml: on -> True
    (job,) = workflow["jobs"].values()
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == answers.get("python_version", "3.12")
    runs = [step.get("run", "") for step in job["steps"]]
    install = next(r for r in runs if "pip install" in r)
    assert "--upgrade" in install and "-r requirements.txt -r requirements-test.txt" in install
    assert ".lock" not in install and "--require-hashes" not in install
    assert runs[-1] == "python -m pytest"
    assert job["env"]["TEST_REDIS_URL"] == "redis://localhost:6379/0"
    renovate = root / "renovate.json"
    run([tool("check-jsonschema"), "--builtin-schema", "vendor.renovate", str(renovate)], cwd=root)
    config = json.loads(renovate.read_text())
    (pattern,) = config["pip-compile"]["managerFilePatterns"]
    matches = re.compile(pattern.strip("/"))
    assert matches.search("requirements.lock") and matches.search("requirements-test.lock")
    assert not matches.search("requirements.txt")
    assert config["pip_requirements"]["enabled"] is False  # the locks' inputs go with the locks
    # Renovate re-runs the command in each lock's header: it must be the one lock.sh runs
    flags = re.search(r'pip compile --quiet (.*) "\$@"', (root / "lock.sh").read_text()).group(1)
    for lock, inputs in [
        ("requirements.lock", "requirements.txt"),
        ("requirements-test.lock", "requirements.txt requirements-test.txt"),
    ]:
        header = (root / lock).read_text().splitlines()[1]
        assert header == f"#    uv pip compile {flags} {inputs} -o {lock}", header


def test_pre_commit_runs_the_pinned_ruff(baked):
    _, root = baked
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "https://github.com/astral-sh/ruff-pre-commit"
    assert [hook["id"] for hook in repo["hooks"]] == ["ruff-check", "ruff-format"]
    pins = dict(
        line.split("==") for line in (root / "requirements-test.txt").read_text().splitlines() if "==" in line
    )
    assert repo["rev"] == f"v{pins['ruff']}", "pre-commit and CI run the same ruff"


def test_dockerfile_passes_hadolint(baked, run, tool):
    answers, root = baked
    run([tool("hadolint"), "Dockerfile"], cwd=root)
    dockerfile = (root / "Dockerfile").read_text()
    version = answers.get("python_version", "3.12")
    assert f"ARG PYTHON_VERSION={version}\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "useradd --create-home --uid 1000 app" in dockerfile
    # root only until docker-entrypoint.sh has prepared the mounts and dropped privileges
    assert 'ENTRYPOINT ["/bin/sh", "/app/docker-entrypoint.sh"]' in dockerfile
    assert "exec setpriv --reuid=" in (root / "docker-entrypoint.sh").read_text()
    froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    if answers.get("gpu") == "yes":
        assert froms == ["python:${PYTHON_VERSION}-slim-bookworm", "${CUDA_IMAGE}"]
        assert "ARG CUDA_IMAGE=nvidia/cuda:" in dockerfile and "-cudnn-runtime-" in dockerfile
    else:
        assert froms == ["python:${PYTHON_VERSION}-slim"] * 2


def test_compose_file_validates(baked, run, tool):
    _, root = baked
    run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=root,
    )


def test_supervisord_conf_loads(baked):
    _, root = baked
    options = ServerOptions()
    options.realize(args=["-c", str(root / "supervisord.conf")])
    groups = {group.name: group for group in options.process_group_configs}
    assert set(groups) == {"uwsgi", "rq", "logs", "fatal"}
    follower = groups.pop("logs").process_configs[0]  # the log files, followed onto the console
    assert "tail -n 0 -F logs/uwsgi.log logs/rq.log" in follower.command
    assert follower.stdout_logfile == "/dev/stdout" and follower.priority == 1
    listener = groups.pop("fatal")
    assert listener.pool_events == [events.EventTypes.PROCESS_STATE_FATAL]
    assert listener.process_configs[0].command == f"python -m label_studio_ml.supervise {root}/logs"
    programs = {p.name: p for group in groups.values() for p in group.process_configs}
    for program in programs.values():  # a few quick failures, then the listener reports and stops
        assert program.startsecs == 10 and program.startretries == 3
    assert programs["uwsgi"].command == "uwsgi --ini uwsgi.ini"
    assert programs["rq"].command == "label-studio-ml worker ."
    for name, program in programs.items():
        assert program.directory == str(root)
        assert program.stdout_logfile == str(root / "logs" / f"{name}.log")
        assert program.autorestart and program.stopasgroup and program.killasgroup
    assert options.nodaemon


def test_readme_names_the_class_wsgi_serves(baked):
    _, root = baked
    served = re.search(r"^from model import (\w+)$", (root / "wsgi.py").read_text(), re.M).group(1)
    readme = (root / "README.md").read_text()
    assert f"(class `{served}`, served by `wsgi.py`)" in readme
    assert readme.count("(class `") == 1


def test_generated_python_runs_on_the_runtime_floor(baked, run):
    """requires-python is the runtime's; every generated .py compiles on that oldest Python."""
    _, root = baked
    runtime = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]["requires-python"]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == runtime == ">=3.9"
    assert project["tool"]["ruff"]["target-version"] == "py39"
    candidates = [
        shutil.which("python3.9"),
        *map(str, Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")),
    ]
    working = [c for c in candidates if c and subprocess.run([c, "-V"], capture_output=True).returncode == 0]
    if not working:
        pytest.skip("no working python3.9 here")
    oldest = working[0]
    files = [str(p) for p in root.rglob("*.py")]
    code = "import sys, ast\nfor f in sys.argv[1:]: ast.parse(open(f, encoding='utf-8').read(), f)"
    run([oldest, "-c", code, *files], cwd=root)


def test_cookiecutter_json_is_ascii(template_dir):
    raw = (template_dir / "cookiecutter.json").read_bytes()
    raw.decode("ascii")
    data = json.loads(raw)
    assert data["python_version"] == ["3.12", "3.11", "3.13"]
    assert data["_new_lines"] == "\n"


def test_hooks_are_valid_python_before_rendering(template_dir):
    for hook in (template_dir / "hooks").glob("*.py"):
        compile(hook.read_text(), str(hook), "exec")
    assert sys.version_info >= (3, 9)


def test_supervisord_gives_uwsgi_a_fixed_mmap_threshold(baked):
    """Big request buffers are mapped and returned, not kept in glibc's heaps (docs/deployment.md)."""
    _, root = baked
    options = ServerOptions()
    options.realize(args=["-c", str(root / "supervisord.conf")])
    programs = {p.name: p for group in options.process_group_configs for p in group.process_configs}
    assert programs["uwsgi"].environment["MALLOC_MMAP_THRESHOLD_"] == "131072"
    assert "MALLOC_MMAP_THRESHOLD_" not in (programs["rq"].environment or {})  # training untouched
    for program in programs.values():  # still set for every program
        assert program.environment["PROMETHEUS_MULTIPROC_DIR"] == str(root / "logs" / "metrics")
