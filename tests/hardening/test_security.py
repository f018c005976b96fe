"""No way in: project ids cannot leave MODEL_DIR, bodies are bounded, Basic auth compares in
constant time, secrets never leak, and unauthenticated webhooks cannot flood training."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from label_studio_ml.store import ModelStore, StoreError

from .conftest import SEED_CONFIG

HOSTILE_PROJECTS = [
    "..", "../x", "../../etc/passwd", "..%2f..%2fetc", "%2e%2e", "%2e%2e%2f", "%252e%252e", "/etc/passwd",
    "/tmp", "\\..\\x", "12/../../x", "12/..", "12.1719830400/../..", "....//", "./12", ".hidden", "~root",
    "12\x00", "12\x00/../x", "\x00", "12\n", " 12", "12 ", "C:\\Windows", "１２",  # fullwidth digits
    "12\u2024", "\u2025", "\uff0e\uff0e", "12\u2215..", "\u0130", "a" * 65, "12.abc", "12.1.2", "",
]  # fmt: skip
HOSTILE_OBJECTS = [
    {"id": "../x"},
    {"id": "/etc"},
    {"id": ".."},
    {"id": None},
    {"id": [1]},
    ["../x"],
    1.5,
    True,
]


def _snapshot(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _through_every_endpoint(server, value) -> list:
    """(endpoint, response) for every way a request names a project."""
    out = []
    body_routes = [
        ("/setup", {"project": value, "schema": SEED_CONFIG}),
        ("/predict", {"project": value, "tasks": [{"id": 1, "data": {"image": "x"}}], "label_config": SEED_CONFIG}),
        ("/webhook", {"action": "START_TRAINING", "project": value}),
        ("/webhook", {"action": "START_TRAINING", "project": {"id": value, "label_config": SEED_CONFIG}}),
        ("/train", {"project": value, "annotations": [{"id": 1, "annotations": []}]}),
        ("/versions", {"project": value}),
    ]  # fmt: skip
    for path, body in body_routes:
        out.append((f"POST {path} {body['project']!r}", server.post(path, json=body)))
    if isinstance(value, str):
        for path in ("/versions", "/training", "/is_training"):
            for encoded in {quote(value, safe=""), quote(value, safe="/%")}:
                if not encoded:
                    continue
                r = server.http.get(f"{server.url}{path}?project={encoded}", timeout=10)
                out.append((f"GET {path}?project={encoded}", r))
    return out


def test_project_ids_never_leave_model_dir(serve, seed_class, tmp_path, models_dir):
    server = serve(seed_class)
    outside = _snapshot(tmp_path)
    for value in HOSTILE_PROJECTS + HOSTILE_OBJECTS:
        for what, r in _through_every_endpoint(server, value):
            if value == "" or value == {"id": None}:  # an empty id means the 'default' project
                assert r.status_code < 500, (what, r.status_code, r.text)
                continue
            assert r.status_code == 400, (what, r.status_code, r.text[:300])
            assert r.json()["error"] == "bad_request", (what, r.text)
    server.backend.trainer.wait_idle(20)
    # nothing appeared outside MODEL_DIR, and inside it only well-formed project directories
    after = _snapshot(tmp_path)
    assert {p for p in after - outside if not p.startswith("models")} == set()
    if models_dir.exists():
        assert {p.name for p in models_dir.iterdir()} <= {"default"}


def test_store_refuses_hostile_names_and_a_tampered_latest(tmp_path):
    store = ModelStore(tmp_path / "models")
    for value in HOSTILE_PROJECTS:
        with pytest.raises(StoreError):
            store.project_dir(value)
    for version in ("../x", "..", "/etc", "v1-20261127023015/../../x", "v1-20261127023015\x00", "v1"):
        with pytest.raises(StoreError):
            store.version_dir("12", version)
    # a LATEST that names something outside the project's versions is not served
    store.ensure_project("12")
    (tmp_path / "models" / "12" / "LATEST").write_text("../../../etc\n")
    assert store.latest("12") is None


def test_a_tampered_latest_is_not_followed_over_http(serve, seed_class, models_dir):
    server = serve(seed_class)
    assert server.post("/setup", json={"project": "7.1", "schema": SEED_CONFIG}).status_code == 200
    (models_dir / "7" / "LATEST").write_text("../../../../etc\n")
    time.sleep(0.6)  # the registry looks again after 0.5 s
    r = server.post("/predict", json={"project": "7.1", "tasks": [{"id": 1}], "label_config": SEED_CONFIG})
    assert r.status_code == 200 and r.json()["model_version"] != "../../../../etc"


# ------------------------------------------------------------------ request size
def _raw_post(port: int, head: bytes, chunks, read_timeout: float = 10) -> tuple:
    """Send a request by hand (chunked bodies); return (status, body) as far as the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early: fine
        data = b""
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
                if b"\r\n\r\n" in data:
                    header, _, rest = data.partition(b"\r\n\r\n")
                    length = [
                        line for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
                    ]
                    if length and len(rest) >= int(length[0].split(b":")[1]):
                        break
        except (ConnectionResetError, socket.timeout):
            pass
    header, _, rest = data.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1]) if header else 0
    return status, rest


def test_body_size_limit_with_content_length_and_chunked(serve, seed_class):
    limit = 64 * 1024
    server = serve(seed_class, max_request_bytes=limit)
    big = json.dumps({"tasks": [{"id": i, "data": {"image": "x" * 100}} for i in range(2000)]})
    assert len(big) > limit
    for path in ("/predict", "/setup", "/webhook", "/train", "/versions"):
        r = server.post(path, data=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert r.json() == {"error": "payload_too_large", "detail": r.json()["detail"]}
        assert str(limit) in r.json()["detail"]

    # chunked: no Content-Length, the server must stop reading at the limit
    def chunks(total: int, size: int = 8192):
        sent = 0
        while sent < total:
            piece = b" " * size
            sent += size
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"

    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    started = time.monotonic()
    status, body = _raw_post(server.port, head, chunks(4 * 1024 * 1024))
    assert status == 413, (status, body[:200])
    assert json.loads(body)["error"] == "payload_too_large"
    assert time.monotonic() - started < 10
    # a small chunked body is read and answered normally
    small = json.dumps({"tasks": [{"id": 1}], "project": "3.1", "label_config": SEED_CONFIG}).encode()
    status, body = _raw_post(server.port, head, [f"{len(small):x}\r\n".encode() + small + b"\r\n0\r\n\r\n"])
    assert status == 200, body[:300]
    assert len(json.loads(body)["results"]) == 1


# ------------------------------------------------------------------ Basic auth
def test_basic_auth_compares_with_compare_digest_both_parts_always(serve, seed_class, monkeypatch):
    import label_studio_ml.gate as api  # the auth middleware

    calls = []
    real = api.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.hmac, "compare_digest", spy)
    server = serve(seed_class, basic_auth_user="alice", basic_auth_pass="s3cret-pass")

    def header(user: str, password: str) -> dict:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    cases = [
        (header("alice", "s3cret-pass"), 200),
        (header("alice", "wrong"), 401),
        (header("mallory", "s3cret-pass"), 401),  # wrong user: the password is still compared
        (header("a", "s"), 401),
        (header("", ""), 401),
    ]
    for headers, expected in cases:
        calls.clear()
        r = server.get("/health", headers=headers)
        assert r.status_code == expected
        assert len(calls) == 2, calls  # user and password, always both, always compare_digest
        assert {c[1] for c in calls} == {b"alice", b"s3cret-pass"}
    # malformed headers never reach a comparison and are a 401 JSON answer
    for bad in ("Basic !!!", "Bearer x", "Basic " + base64.b64encode(b"nocolon").decode(), "basic"):
        r = server.get("/health", headers={"Authorization": bad})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert "WWW-Authenticate" in r.headers


# ------------------------------------------------------------------ secrets
class _EchoingLabelStudio:
    """A Label Studio that refuses every key and echoes it back in the error (as some proxies do)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = json.dumps({"detail": f"Invalid token: {self.headers.get('Authorization')}"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("key_from", ["env", "setup"])
def test_secrets_never_leak(serve, seed_class, models_dir, caplog, key_from):
    caplog.set_level(logging.DEBUG)
    api_key = f"LSKEY{uuid.uuid4().hex}"
    access_token = f"SETUPTOK{uuid.uuid4().hex}"
    password = f"BAPASS{uuid.uuid4().hex}"
    secrets = [api_key, access_token, password, base64.b64encode(f"u:{password}".encode()).decode()]
    ls = _EchoingLabelStudio()
    overrides = {"basic_auth_user": "u", "basic_auth_pass": password}
    if key_from == "env":
        overrides.update(label_studio_url=ls.url, label_studio_api_key=api_key)
    server = serve(seed_class, **overrides)
    auth = ("u", password)
    bodies = []

    def call(method, path, **kw):
        kw.setdefault("auth", auth)
        r = server.http.request(method, server.url + path, timeout=20, **kw)
        bodies.append(f"{method} {path} {r.status_code} {dict(r.headers)} {r.text}")
        return r

    call("GET", "/health")
    call("GET", "/")
    assert call("POST", "/setup", json={"project": "5.1", "schema": SEED_CONFIG, "hostname": ls.url,
                                        "access_token": access_token, "extra_params": None}).status_code == 200  # fmt: skip
    call("POST", "/predict", json={"project": "5.1", "tasks": [{"id": 1}], "label_config": SEED_CONFIG})
    # training that fails: Label Studio refuses the key and echoes it
    r = call(
        "POST",
        "/webhook",
        json={"action": "START_TRAINING", "project": {"id": 5, "label_config": SEED_CONFIG}},
    )
    assert r.status_code == 201, r.text
    server.backend.trainer.wait_idle(20)
    status = call("GET", "/training?project=5").json()
    assert status["status"] == "failed" and "401" in status["error"], status
    # an unauthenticated webhook, a training that succeeds, and error paths
    call("POST", "/webhook", auth=None, json={"action": "ANNOTATION_CREATED", "project": {"id": 5}})
    call("POST", "/train", json={"project": "5.1", "annotations": [{"id": 1, "annotations": []}]})
    server.backend.trainer.wait_idle(20)
    call("POST", "/setup", json={"project": "5.1", "schema": "<View", "access_token": access_token})
    call("POST", "/setup", json={"project": "../5", "access_token": access_token})
    call(
        "POST",
        "/setup",
        data=f'{{"access_token": "{access_token}", ',
        headers={"Content-Type": "application/json"},
    )
    call("POST", "/predict", json={"project": "5.1", "tasks": "no", "access_token": access_token})
    call("POST", "/setup", auth=("u", "wrong-" + password), json={"access_token": access_token})
    call("GET", "/nowhere")
    call("DELETE", "/setup")
    for path in ("/versions", "/training", "/is_training?project=5", "/metrics", "/openapi.json"):
        call("GET", path)
    call("POST", "/versions", json={"project": "5.1"})
    ls.close()

    logs = "\n".join(
        f"{rec.getMessage()}\n{rec.exc_text or ''}\n{logging.Formatter().formatException(rec.exc_info) if rec.exc_info else ''}"
        for rec in caplog.records
    )
    files = {str(p): p.read_bytes().decode("utf-8", "replace") for p in models_dir.rglob("*") if p.is_file()}
    assert any(p.endswith("status.json") for p in files)
    for secret in secrets:
        assert secret not in logs, f"a secret is in the log: {logs[logs.find(secret) - 300 :][:600]}"
        for text in bodies:
            assert secret not in text, text[:500]
        for path, text in files.items():
            assert secret not in text, (path, text[:500])
    assert "[redacted]" in status["error"]  # the echo was there, and was cut out


# ------------------------------------------------------------------ webhook flood
def test_burst_of_unauthenticated_webhooks_queues_at_most_one_follow_up(serve, models_dir, tmp_path):
    from .conftest import load_seed_class

    gate = tmp_path / "gate"
    gate.mkdir()
    base = load_seed_class()

    class GatedModel(base):  # type: ignore[misc, valid-type]
        fits = []

        def fit(self, annotations, **kwargs):
            GatedModel.fits.append(time.time())
            deadline = time.time() + 20
            while not (gate / "open").exists() and time.time() < deadline:
                time.sleep(0.01)
            return {"n": len(GatedModel.fits)}

    server = serve(GatedModel, basic_auth_user="u", basic_auth_pass="p4ss-word")
    auth = ("u", "p4ss-word")
    assert server.post("/setup", auth=auth, json={"project": "9.1", "schema": SEED_CONFIG}).status_code == 200
    # unknown projects cannot be trained without credentials
    r = server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 404}})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    # one authenticated run in progress ...
    r = server.post(
        "/train", auth=auth, json={"project": "9.1", "annotations": [{"id": 1, "annotations": []}]}
    )
    assert r.status_code == 201
    deadline = time.time() + 10
    while not GatedModel.fits and time.time() < deadline:
        time.sleep(0.01)
    # ... then 50 unauthenticated webhooks at once
    body = {"action": "ANNOTATION_CREATED", "project": {"id": 9, "label_config": SEED_CONFIG},
            "annotation": {"id": 1}, "task": {"id": 1}}  # fmt: skip

    def hook(_):
        return requests.post(server.url + "/webhook", json=body, timeout=10)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(hook, range(50)))
    statuses = [a.json()["status"] for a in answers]
    assert all(a.status_code in (200, 201) for a in answers)
    assert statuses.count("queued") <= 1, statuses
    assert {a.json()["job_id"] for a in answers if a.json()["status"] in ("queued", "coalesced")} == {
        next(a.json()["job_id"] for a in answers if a.json()["status"] == "queued")
    }
    (gate / "open").write_text("")
    assert server.backend.trainer.wait_idle(30)
    metrics = server.get("/metrics", auth=auth).text
    # the running one and exactly one follow-up (which fails: no Label Studio to fetch from)
    runs = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("lsml_training_runs_total{"))  # fmt: skip
    assert runs == 2, metrics
    assert 'lsml_training_requests_total{status="coalesced"} 49.0' in metrics


def test_dockerfile_runs_as_non_root_with_a_healthcheck():
    """The image starts as root only in docker-entrypoint.sh, which drops privileges before it
    runs supervisord (tests/containers checks the running uid for checkouts of uid 0/1000/4242)."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "{{cookiecutter.backend_name}}" / "Dockerfile").read_text()
    final_stage = text.split("\nFROM ")[-1]
    users = [line.split()[1] for line in final_stage.splitlines() if line.startswith("USER ")]
    assert not users or users[-1].split(":")[0] not in ("root", "0"), users
    assert 'ENTRYPOINT ["/bin/sh", "/app/docker-entrypoint.sh"]' in final_stage
    entrypoint = (root / "{{cookiecutter.backend_name}}" / "docker-entrypoint.sh").read_text()
    execs = [line.strip() for line in entrypoint.splitlines() if line.strip().startswith("exec ")]
    # as root: only through setpriv to a non-root uid; "$@" as is only when not root already
    # (`user:` set) or in a user namespace (rootless Podman: root there is an ordinary user)
    assert execs[-1].startswith('exec setpriv --reuid="$uid"'), execs
    assert 'if [ "$(id -u)" != 0 ]; then\n    exec "$@"' in entrypoint
    assert "uid=1000\n" in entrypoint.split('if [ "$uid" = 0 ]; then', 1)[1]
    assert "HEALTHCHECK" in final_stage and "/health" in final_stage
    assert "CMD [" in final_stage.split("HEALTHCHECK", 1)[1]


# ------------------------------------------------------------------ credentials go only where they came from
_EXPORT = "/api/projects/5/export?exportType=JSON&download_all_tasks=false"
_ANNOTATED = [{"id": 1, "data": {"image": "/data/upload/5/a.png"}, "annotations": [{"id": 1, "result": []}]}]


def _attack(server, listener_url: str) -> dict:
    """What anyone who reaches a backend without Basic auth can do (issue 11, reproduced):
    ``/setup`` naming their own host, then an unauthenticated ``START_TRAINING`` webhook."""
    r = server.post("/setup", json={"project": "5.1", "schema": SEED_CONFIG, "hostname": listener_url,
                                    "access_token": "attacker-token"})  # fmt: skip
    assert r.status_code == 200, r.text
    r = server.post(
        "/webhook", json={"action": "START_TRAINING", "project": {"id": 5, "label_config": SEED_CONFIG}}
    )
    assert r.status_code == 201, r.text
    assert server.backend.trainer.wait_idle(20)
    return server.get("/training?project=5").json()


def test_key_without_url_is_a_startup_error(seed_class, monkeypatch, models_dir):
    from label_studio_ml.api import create_app
    from label_studio_ml.settings import Settings, SettingsError

    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST", "LABEL_STUDIO_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_DIR", str(models_dir))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-key")
    with pytest.raises(
        SettingsError, match="LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: set LABEL_STUDIO_URL"
    ):
        create_app(seed_class)
    with pytest.raises(SettingsError, match="set LABEL_STUDIO_URL"):
        Settings(model_dir=str(models_dir), label_studio_api_key="env-key")


def test_the_attack_of_issue_11_sends_the_key_nowhere(serve, seed_class):
    """The reproduced attack: LABEL_STUDIO_API_KEY set, LABEL_STUDIO_URL unset, no Basic auth;
    ``/setup`` names a listener, an unauthenticated START_TRAINING follows. Such a backend no
    longer starts (above); this forces the configuration past that check into a running backend
    to show the training job itself refuses to pair the key with /setup's hostname."""
    from ..support import Recorder

    listener = Recorder()
    listener.routes[_EXPORT] = (200, {"Content-Type": "application/json"}, json.dumps(_ANNOTATED).encode())
    try:
        server = serve(seed_class, label_studio_url="http://127.0.0.1:9", label_studio_api_key="env-key")
        object.__setattr__(server.backend.settings, "label_studio_url", None)  # the startup check bypassed
        status = _attack(server, listener.url)
        assert listener.seen == [], "the environment's key went to the host /setup named"
        assert status["status"] == "failed" and "set LABEL_STUDIO_URL" in status["error"], status
    finally:
        listener.close()


def test_setup_hostname_never_gets_the_configured_key(serve, seed_class, tmp_path, monkeypatch):
    """The configured key goes to LABEL_STUDIO_URL only: training fetches and model downloads."""
    from ..support import Recorder

    ls, listener = Recorder(), Recorder()
    ls.routes[_EXPORT] = (200, {"Content-Type": "application/json"}, json.dumps(_ANNOTATED).encode())
    ls.routes["/data/upload/5/a.png"] = (200, {}, b"png")
    listener.routes["/data/upload/5/a.png"] = (200, {}, b"forged")
    downloads = []

    class Downloading(seed_class):  # type: ignore[misc, valid-type]
        def predict(self, tasks, **kwargs):
            for task in tasks:
                downloads.append(
                    Path(
                        self.get_local_path(
                            task["data"]["image"], task_id=task["id"], cache_dir=str(tmp_path)
                        )
                    ).read_bytes()
                )
            return super().predict(tasks, **kwargs)

    try:
        # the same configuration in the environment (where the model's downloads read it) and the app
        monkeypatch.setenv("LABEL_STUDIO_URL", ls.url)
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-key")
        server = serve(Downloading, label_studio_url=ls.url, label_studio_api_key="env-key")
        status = _attack(server, listener.url)
        assert status["status"] == "succeeded", status
        assert ls.seen == [(_EXPORT, "Token env-key")]
        # the model's downloads: Label Studio's URLs go to LABEL_STUDIO_URL; the /setup host's own URL gets no key
        tasks = [{"id": 1, "data": {"image": "/data/upload/5/a.png"}},
                 {"id": 2, "data": {"image": listener.url + "/data/upload/5/a.png"}}]  # fmt: skip
        r = server.post("/predict", json={"project": "5.1", "tasks": tasks, "label_config": SEED_CONFIG})
        assert r.status_code == 200, r.text
        assert downloads == [b"png", b"forged"]
        assert ls.seen[-1] == ("/data/upload/5/a.png", "Token env-key")
        assert listener.seen == [("/data/upload/5/a.png", "")]
    finally:
        ls.close()
        listener.close()


def test_setup_token_goes_to_setup_hostname_only(serve, seed_class):
    """With LABEL_STUDIO_URL but no key, a /setup naming another host gets nothing and the URL gets
    no token; without any configuration the token goes back to the host it came with, alone."""
    from ..support import Recorder

    ls, listener = Recorder(), Recorder()
    listener.routes[_EXPORT] = (200, {"Content-Type": "application/json"}, json.dumps(_ANNOTATED).encode())
    try:
        server = serve(seed_class, label_studio_url=ls.url)
        status = _attack(server, listener.url)
        assert status["status"] == "failed" and "only sent there" in status["error"], status
        assert "set LABEL_STUDIO_API_KEY" in status["error"]
        assert ls.seen == [] and listener.seen == []
        server.close()
        server = serve(seed_class)
        status = _attack(server, listener.url)
        assert status["status"] == "succeeded", status
        assert listener.seen == [(_EXPORT, "Token attacker-token")] and ls.seen == []
    finally:
        ls.close()
        listener.close()
