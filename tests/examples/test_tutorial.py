"""docs/tutorial.md, run for real: every marked block, in order, in a fresh directory, against a
real Label Studio 1.23.2 with its default settings (legacy tokens off).

Markers (an HTML comment on the line before a fenced block):

* ``<!-- test: run -->``: a bash block that must exit 0;
* ``<!-- test: file NAME -->``: a block written to NAME;
* ``<!-- test: output -->``: a JSON block equal to what the previous run block printed;
* ``<!-- test: serve -->``: a long-running backend, started in the background (a backend still
  running is stopped first, as the page says); the test waits for ``/health`` and stops it at
  the end;
* ``<!-- test: labelstudio-install REASON -->``: ``pip install label-studio==1.23.2`` into
  ``ls-venv``. The test links ``ls-venv`` to the copy ``scripts/setup_labelstudio.sh`` installs
  with the same command (``~/.cache/lsml``);
* ``<!-- test: labelstudio -->``: ``label-studio start ...``, run as written in the background.
  Only what the user would type at its prompts or what keeps it on loopback is added: the first
  user's email and password (``LABEL_STUDIO_USERNAME``/``_PASSWORD``, which it documents), a copy
  of the pre-migrated data directory (``LABEL_STUDIO_BASE_DATA_DIR``, so it starts in seconds),
  the port (``LABEL_STUDIO_PORT``), ``--internal-host 127.0.0.1``, and no browser;
* ``<!-- test: token REASON -->``: ``export LABEL_STUDIO_API_KEY=...`` with a placeholder for the
  personal access token the user creates in Label Studio's UI. The test logs in as that user and
  makes the token with the call the UI's button makes (``POST /api/token/``); the later blocks
  get it in their environment;
* ``<!-- test: compose -->``: ``docker-compose up``. There is no Docker engine here, so the test
  validates the generated ``docker-compose.yml`` against the Compose specification instead;
* ``<!-- test: checkout REASON -->``: ``git clone`` of the template repository. There is no
  network here but PyPI, so the test makes the same directory from this working tree (its
  tracked and untracked files, what a clone of it holds plus uncommitted work).

Every bash block must carry a marker. The commands run as written, except that ports 9090
(the backend) and 8080 (Label Studio) become free ports. The runtime is installed into a new
virtualenv in the temporary directory with the tutorial's own ``pip install``; nothing else of
this working tree is on the path.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"(?:<!-- test: ([\w-]+)(?: ([^>]*?))? -->\n)?```(\w+)\n(.*?)^```", re.S | re.M)
CLONE = "git clone https://github.com/org/lsml-template"
LS_VERSION = "1.23.2"
LS_HOME = Path(
    os.environ.get("LSML_LS_HOME") or Path.home() / ".cache" / "lsml" / f"labelstudio-{LS_VERSION}"
)
LS_INSTALL = ["python3 -m venv ls-venv", f"ls-venv/bin/pip install label-studio=={LS_VERSION}"]
TOKEN_PLACEHOLDER = "export LABEL_STUDIO_API_KEY=paste-your-personal-access-token-here"
MARKERS = ("run", "serve", "compose", "checkout", "labelstudio-install", "labelstudio", "token")
NEEDS_REASON = ("checkout", "labelstudio-install", "token")
TRAINED = re.compile(r"^v\d+-\d+$")


def checkout(target: Path) -> None:
    """What ``git clone`` of this repository makes: its tracked and untracked (not ignored) files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def blocks():
    """[(marker, argument, language, body)] of the tutorial's fenced blocks, in order."""
    return [(m[0], m[1].strip(), m[2], m[3]) for m in BLOCK.findall(TUTORIAL.read_text())]


def test_every_bash_block_is_marked():
    found = blocks()
    assert any(marker == "run" for marker, *_ in found)
    for marker, argument, language, body in found:
        if language == "bash":
            assert marker in MARKERS, f"unmarked bash block:\n{body}"
        if marker in NEEDS_REASON:
            assert argument, f"a {marker} block needs a reason:\n{body}"
    assert "skip" not in [marker for marker, *_ in found], "every command of the page runs"


def json_objects(text: str) -> List[dict]:
    """The JSON documents curl printed one after the other."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return found
        value, at = decoder.raw_decode(text, at)
        found.append(value)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not serve:\n{log.read_text(errors='replace')[-6000:]}")
            time.sleep(0.3)


def stop(proc: Optional[subprocess.Popen]) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def personal_access_token(url: str, email: str, password: str) -> str:
    """Log in to Label Studio as a browser does, then press *Create* on the Personal Access
    Token page (``POST /api/token/``)."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30)
    login = session.post(
        f"{url}/user/login/",
        data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{url}/user/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert login.status_code == 302, f"login as {email}: {login.status_code} {login.text[:500]}"
    resp = session.post(
        f"{url}/api/token/",
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{url}/"},
        timeout=30,
    )
    assert resp.status_code == 201, f"POST /api/token/: {resp.status_code} {resp.text[:500]}"
    return resp.json()["token"]


def failed_without_key(ls_url: str, backend: str, env: Dict[str, str]) -> None:
    """Start training from Label Studio while the backend has no LABEL_STUDIO_API_KEY: the run
    fails with the message the page quotes."""
    access = requests.post(
        f"{ls_url}/api/token/refresh/", json={"refresh": env["LABEL_STUDIO_API_KEY"]}, timeout=30
    ).json()["access"]
    train = requests.post(
        f"{ls_url}/api/ml/1/train", headers={"Authorization": f"Bearer {access}"}, timeout=60
    )
    assert train.status_code == 200, train.text
    deadline = time.monotonic() + 30
    while True:
        status = requests.get(f"{backend}/training", params={"project": "1"}, timeout=5).json()
        if status["status"] not in ("queued", "running", "idle") or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert status["status"] == "failed", status
    quoted = re.search(r"\(`(legacy token authentication[^`]*)`\)", TUTORIAL.read_text())
    assert quoted, "the page quotes the failure"
    for part in " ".join(quoted.group(1).split()).split(" ... "):
        assert part in status["error"], (part, status)


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    if (
        not (LS_HOME / "venv" / "bin" / "label-studio").exists()
        or not (LS_HOME / "data-template" / ".lsml-migrated").exists()
    ):
        pytest.skip(
            f"Label Studio {LS_VERSION} is not installed in {LS_HOME}: run scripts/setup_labelstudio.sh "
            "(scripts/test.sh does)"
        )
    port, ls_port = str(free_port()), str(free_port())
    work = tmp_path / "tutorial"
    work.mkdir()
    venv_bin = work / ".venv" / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "BASIC_AUTH_", "LABEL_STUDIO_", "PYTEST_", "VIRTUAL_ENV", "MODEL_DIR"))
    }
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(work / ".venv"), PYTHONNOUSERSITE="1"
    )
    email, password = "tutorial@example.com", secrets.token_hex(12)
    server: Optional[subprocess.Popen] = None
    label_studio: Optional[subprocess.Popen] = None
    outputs: List[str] = []
    by_block: Dict[str, str] = {}
    ls_log = tmp_path / "label-studio.log"
    server_logs: List[Path] = []
    try:
        for marker, argument, language, body in blocks():
            body = body.replace("9090", port).replace("8080", ls_port)
            if marker == "checkout":
                assert body.strip() == CLONE, body
                checkout(work / "lsml-template")
            elif marker == "file":
                (work / argument).write_text(body)
            elif marker == "output":
                assert language == "json" and outputs, body
                assert json.loads(outputs[-1]) == json.loads(body), (
                    f"printed {outputs[-1]}, page shows {body}"
                )
            elif marker == "run":
                proc = subprocess.run(
                    ["bash", "-e", "-c", body], cwd=work, env=env, capture_output=True, text=True, timeout=600
                )
                assert proc.returncode == 0, f"{body}\nexited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
                outputs.append(proc.stdout)
                by_block[body] = proc.stdout
            elif marker == "serve":
                if server is not None and "LABEL_STUDIO_API_KEY" in env:
                    # step 6's claim before the restart: without the key, Label Studio's
                    # START_TRAINING fails on the legacy token /setup sent, and /training says so
                    failed_without_key(f"http://127.0.0.1:{ls_port}", f"http://127.0.0.1:{port}", env)
                stop(server)  # "stop the development server (Ctrl+C) and start it again"
                log_path = tmp_path / f"server-{len(server_logs)}.log"
                server_logs.append(log_path)
                with open(log_path, "w") as log:
                    server = subprocess.Popen(
                        ["bash", "-c", body.strip()],
                        cwd=work,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                wait_http(f"http://127.0.0.1:{port}/health", server, log_path, body, 30)
            elif marker == "compose":
                assert body.split() == ["cd", "my_backend/", "docker-compose", "up"], body
                compose = work / "my_backend" / "docker-compose.yml"
                check = Path(sys.executable).parent / "check-jsonschema"
                proc = subprocess.run(
                    [str(check), "--builtin-schema", "vendor.compose-spec", str(compose)],
                    capture_output=True,
                    text=True,
                )
                assert proc.returncode == 0, proc.stdout + proc.stderr
            elif marker == "labelstudio-install":
                assert [line.strip() for line in body.strip().splitlines()] == LS_INSTALL, body
                (work / "ls-venv").symlink_to(LS_HOME / "venv", target_is_directory=True)
            elif marker == "labelstudio":
                assert "--label-config config.xml" in body and "label-studio start" in body, body
                data_dir = tmp_path / "label-studio-data"
                shutil.copytree(LS_HOME / "data-template", data_dir)
                ls_env = {k: v for k, v in env.items() if k not in ("USERNAME", "PASSWORD", "HOST", "PORT")}
                ls_env.update(
                    LABEL_STUDIO_USERNAME=email,
                    LABEL_STUDIO_PASSWORD=password,
                    LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
                    LABEL_STUDIO_PORT=ls_port,
                    BROWSER="true",  # webbrowser.open runs `true`
                    LATEST_VERSION_CHECK="false",
                    COLLECT_ANALYTICS="false",
                    PYTHONUNBUFFERED="1",
                )
                with open(ls_log, "w") as log:
                    label_studio = subprocess.Popen(
                        ["bash", "-c", body.strip() + " --internal-host 127.0.0.1"],
                        cwd=work,
                        env=ls_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                wait_http(f"http://127.0.0.1:{ls_port}/health", label_studio, ls_log, body, 180)
            elif marker == "token":
                assert body.strip() == TOKEN_PLACEHOLDER, body
                env["LABEL_STUDIO_API_KEY"] = personal_access_token(
                    f"http://127.0.0.1:{ls_port}", email, password
                )

        assert label_studio is not None and server is not None and len(server_logs) == 2
        ls_url = f"http://127.0.0.1:{ls_port}"
        text = "\n".join(outputs)
        assert '"status":"UP"' in text and '"model_class":"DummyModel"' in text
        # Label Studio connected the project at start (its /setup had config.xml), and opening
        # the task through its API showed the model's choice
        opened = next(
            out
            for cmd, out in by_block.items()
            if cmd.rstrip().endswith('-H "Authorization: Bearer $ACCESS"') and "/api/tasks/1 " in cmd
        )
        task = json_objects(opened)[-1]
        assert [p["result"][0]["value"]["choices"] for p in task["predictions"]] == [["Boeing"]], task

        # training: Label Studio's START_TRAINING (the annotations fetched with the personal
        # access token) and the legacy /train both made versions; none failed
        backend = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            status = requests.get(f"{backend}/training", params={"project": "1"}, timeout=5).json()
            if status["status"] not in ("queued", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status["status"] == "succeeded", status
        log = server_logs[-1].read_text(errors="replace")
        assert " failed" not in log, log
        assert "401" not in log, log
        versions = sorted(
            p.name for p in (work / "my_backend" / "data" / "models" / "1" / "versions").iterdir()
        )
        assert len(versions) >= 2 and all(TRAINED.match(v) for v in versions), versions
        assert status["version"] in versions

        # Label Studio serves the trained version (it learns it at its next /setup)
        access = requests.post(
            f"{ls_url}/api/token/refresh/", json={"refresh": env["LABEL_STUDIO_API_KEY"]}, timeout=30
        ).json()["access"]
        auth = {"Authorization": f"Bearer {access}"}
        # ...with Label Studio's default token settings: legacy tokens off
        jwt = requests.get(f"{ls_url}/api/jwt/settings", headers=auth, timeout=30).json()
        assert jwt["legacy_api_tokens_enabled"] is False, jwt
        connection = requests.get(f"{ls_url}/api/ml/1", headers=auth, timeout=30).json()
        assert connection["model_version"] in versions, connection
        assert connection["readable_state"] == "Connected", connection

        # the page's warning: a project whose labeling config is still <View></View> cannot
        # connect the seed model, and Label Studio shows the backend's reason
        project = requests.post(f"{ls_url}/api/projects", headers=auth, json={"title": "empty"}, timeout=30)
        assert project.status_code == 201, project.text
        refused = requests.post(
            f"{ls_url}/api/ml",
            headers=auth,
            json={"project": project.json()["id"], "url": f"http://localhost:{port}", "title": "seed"},
            timeout=60,
        )
        assert refused.status_code == 400, refused.text
        quoted = re.search(r"`(422 Client Error: [^`]*?)(?: \.\.\.)?`", TUTORIAL.read_text())
        assert quoted, "the page quotes what Label Studio shows"
        shown = " ".join(quoted.group(1).split()).replace("project 1 ", f"project {project.json()['id']} ")
        assert shown in json.dumps(refused.json(), ensure_ascii=False), refused.text
        assert (work / "my_backend" / "model.py").read_text() == (work / "model.py").read_text()
    finally:
        stop(server)
        stop(label_studio)
