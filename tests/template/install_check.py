"""A generated repository installs on its own: a fresh venv, PyPI, and nothing but its files.

``install_and_test(project, tmp)`` copies the repo somewhere else, makes a new virtualenv (no
system site-packages, no PYTHONPATH, PIP_FIND_LINKS unset; pip's cache is fine), runs
``pip install --require-hashes -r requirements-test.lock`` there (what its CI runs: the locked
tree of requirements.txt and requirements-test.txt) and the repo's own tests.
``docker_build_steps(project, tmp)`` runs the Dockerfile's builder-stage install steps (WORKDIR,
ENV, COPY, RUN pip/venv) natively, with the image's absolute paths under a temporary root.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PKG = ROOT / "runtime" / "src" / "label_studio_ml"


def fresh_env(**extra: str) -> dict:
    """The environment of a fresh shell: nothing points at this working tree or its venv."""
    drop = ("REDIS_", "BASIC_AUTH_", "LABEL_STUDIO_", "PYTEST_", "LSML_", "MODEL_DIR")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(drop) and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_FIND_LINKS", "PYTHONHOME")
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith(str(ROOT))
    )
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def base_python() -> str:
    """The interpreter this venv was made from (a venv of a venv would inherit nothing anyway)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def sh(cmd, cwd, env, timeout=900):
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{cmd} in {cwd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def make_venv(path: Path, interpreter: str | None = None) -> Path:
    sh([interpreter or base_python(), "-m", "venv", str(path)], cwd=path.parent, env=fresh_env())
    return path / "bin" / "python"


def install_and_test(project: Path, tmp: Path, interpreter: str | None = None, **extra_env: str) -> Path:
    """Copy, install, test; returns the copy. Asserts the venv runs this working tree's runtime.

    ``interpreter``: the Python to make the venv with (default: this one's base interpreter);
    ``extra_env``: variables for the repo's tests (e.g. ``TEST_REDIS_URL``).
    """
    moved = tmp / "elsewhere" / project.name
    shutil.copytree(project, moved, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    python = make_venv(tmp / "fresh-venv", interpreter)
    env = fresh_env(VIRTUAL_ENV=str(python.parent.parent), **extra_env)
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
    version = sh([python, "-c", "import sys; print(sys.version_info[:2] >= (3, 10))"], moved, env)
    if version.stdout.strip() == "True":
        install = ["--require-hashes", "-r", "requirements-test.lock"]
    else:  # the locks cover 3.10-3.13 (README): on 3.9 a repo installs from its requirements files
        install = ["-r", "requirements.txt", "-r", "requirements-test.txt"]
    sh([python, "-m", "pip", "install", "-q", *install], moved, env)
    where = sh(
        [python, "-c", "import label_studio_ml.cli as m; print(m.__file__)"], moved, env
    ).stdout.strip()
    installed = Path(where)
    assert str(installed).startswith(str(python.parent.parent)), f"runtime imported from {installed}"
    for module in RUNTIME_PKG.glob("*.py"):
        assert (installed.parent / module.name).read_bytes() == module.read_bytes(), (
            f"{module.name}: the generated repo does not pin the runtime that generated it"
        )
    sh([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], moved, env)
    return moved


# ------------------------------------------------------------------ the Dockerfile, natively
def dockerfile_stage(text: str, index: int = 0) -> list[tuple[str, str]]:
    """[(INSTRUCTION, arguments)] of one FROM stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages[index]


def dockerignored(name: str, project: Path) -> bool:
    ignore = project / ".dockerignore"
    patterns = ignore.read_text().split() if ignore.is_file() else []
    return any(fnmatch.fnmatch(name.rstrip("/"), p.rstrip("/")) for p in patterns)


def docker_build_steps(project: Path, tmp: Path) -> Path:
    """Run the builder stage's install steps; returns the image root (tmp/image)."""
    image = tmp / "image"
    image.mkdir()
    context = tmp / "context"
    shutil.copytree(project, context, ignore=shutil.ignore_patterns("__pycache__"))

    def rooted(text: str) -> str:  # /opt/venv -> <image>/opt/venv
        return re.sub(r"(?<![\w.$/-])/(?=[A-Za-z])", f"{image}/", text)

    env = fresh_env()
    cwd = image
    ran = []
    for instruction, args in dockerfile_stage((project / "Dockerfile").read_text()):
        if instruction == "WORKDIR":
            cwd = Path(rooted(args)) if args.startswith("/") else cwd / args
            cwd.mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = os.path.expandvars(rooted(value).replace("$PATH", env["PATH"]))
        elif instruction == "COPY":
            *sources, dest = shlex.split(args)
            assert not any(s.startswith("--") for s in sources), args
            for source in sources:
                assert not dockerignored(source, project), f".dockerignore excludes {source}"
                src = context / source
                target = Path(rooted(dest)) if dest.startswith("/") else cwd / dest
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True)
                else:
                    if dest.endswith("/"):
                        target.mkdir(parents=True, exist_ok=True)
                        target = target / src.name
                    shutil.copy2(src, target)
        elif instruction == "RUN":
            if "apt-get" in args:
                # system packages: the host has them (uWSGI's build needs a C compiler)
                assert shutil.which("gcc"), "gcc is needed to build uWSGI"
                continue
            # pip's cache is allowed here (no network but PyPI, and uWSGI compiles slowly)
            command = rooted(args).replace("--no-cache-dir", "")
            sh(["bash", "-e", "-c", command], cwd, env)
            ran.append(args)
        # ARG, LABEL, hadolint comments: nothing to run
    assert any("pip install" in r and "--require-hashes -r requirements.lock" in r for r in ran), ran
    return image
