"""LabelStudioClient against a real HTTP server playing Label Studio's export and token endpoints."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from label_studio_ml.lsclient import LabelStudioClient, LabelStudioError, jwt_claims, make_client, same_origin

from ..support import Recorder

LEGACY = "legacy-key-0123456789"
TASKS: List[Dict[str, Any]] = [
    {"id": 1, "data": {"image": "a.png"}, "annotations": [{"id": 10, "was_cancelled": False, "result": []}]},
    {"id": 2, "data": {"image": "b.png"}, "annotations": [{"id": 11, "was_cancelled": True, "result": []}]},
    {"id": 3, "data": {"image": "c.png"}, "annotations": []},
    {
        "id": 4,
        "data": {"image": "d.png"},
        "annotations": [{"id": 12, "was_cancelled": True}, {"id": 13, "was_cancelled": False}],
    },
]


def _b64(data: Dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_jwt(token_type: str = "refresh", jti: str = "abc") -> str:
    """A JWT-shaped token (unsigned: the fake server compares it verbatim)."""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64({"token_type": token_type, "exp": 4102444800, "jti": jti, "user_id": 1})
    return f"{header}.{payload}.c2lnbmF0dXJl"


PAT = make_jwt()


class FakeLabelStudio:
    """State of the fake server: issued access tokens and the requests seen."""

    def __init__(self) -> None:
        self.valid_access: set = set()
        self.issued = 0
        self.requests: List[Tuple[str, str, str]] = []  # (method, path, Authorization)
        self.fail_export_with = 0

    def authorized(self, header: str) -> bool:
        if header == f"Token {LEGACY}":
            return True
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self.valid_access


def _handler(state: FakeLabelStudio) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path, self.headers.get("Authorization", "")))
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/api/token/refresh/":
                return self._json(404, {"detail": "Not found"})
            if body != {"refresh": PAT}:
                return self._json(401, {"detail": "Token is invalid or expired", "code": "token_not_valid"})
            state.issued += 1
            access = f"access-{state.issued}"
            state.valid_access.add(access)
            return self._json(200, {"access": access})

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            state.requests.append(("GET", self.path, auth))
            url = urllib.parse.urlsplit(self.path)
            if not state.authorized(auth):
                return self._json(401, {"detail": "Invalid token."})
            if url.path != "/api/projects/7/export" or urllib.parse.parse_qs(url.query) != {
                "exportType": ["JSON"],
                "download_all_tasks": ["false"],
            }:
                return self._json(404, {"detail": "Not found"})
            if state.fail_export_with:
                return self._json(state.fail_export_with, {"detail": "boom"})
            return self._json(200, TASKS)

    return Handler


@pytest.fixture
def fake_ls() -> Iterator[Tuple[str, FakeLabelStudio]]:
    state = FakeLabelStudio()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_jwt_detection() -> None:
    assert jwt_claims(PAT)["token_type"] == "refresh"
    assert jwt_claims(LEGACY) is None
    assert jwt_claims("a.b.c") is None
    assert jwt_claims("x.!!!.y") is None
    assert LabelStudioClient("http://ls", LEGACY).auth_header() == {"Authorization": f"Token {LEGACY}"}
    access = make_jwt("access")
    assert LabelStudioClient("http://ls", access).auth_header() == {"Authorization": f"Bearer {access}"}
    untyped = f"{_b64({'alg': 'none'})}.{_b64({'sub': '1'})}.sig"
    assert LabelStudioClient("http://ls", untyped).auth_header() == {"Authorization": f"Bearer {untyped}"}


def test_legacy_token_export(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, state = fake_ls
    tasks = LabelStudioClient(url + "/", LEGACY).get_annotated_tasks(7)
    assert [t["id"] for t in tasks] == [1, 4]
    assert state.requests == [
        ("GET", "/api/projects/7/export?exportType=JSON&download_all_tasks=false", f"Token {LEGACY}")
    ]


def test_personal_access_token_refreshes_then_bearer(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, state = fake_ls
    client = LabelStudioClient(url, PAT)
    assert [t["id"] for t in client.get_annotated_tasks("7")] == [1, 4]
    assert [(m, p.split("?")[0], a) for m, p, a in state.requests] == [
        ("POST", "/api/token/refresh/", ""),
        ("GET", "/api/projects/7/export", "Bearer access-1"),
    ]
    client.get_annotated_tasks(7)
    assert state.issued == 1  # the access token is reused


def test_expired_access_token_is_refreshed_once(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, state = fake_ls
    client = LabelStudioClient(url, PAT)
    client.get_annotated_tasks(7)
    state.valid_access.clear()
    assert len(client.get_annotated_tasks(7)) == 2
    assert [a for _, _, a in state.requests if a] == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]


def test_401_with_legacy_token_names_url_kind_and_variable(
    fake_ls: Tuple[str, FakeLabelStudio], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = fake_ls
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LabelStudioError) as info:
        LabelStudioClient(url, "wrong-secret-key").get_annotated_tasks(7)
    message = str(info.value)
    assert "401" in message and f"{url}/api/projects/7/export" in message
    assert "legacy token" in message and "LABEL_STUDIO_API_KEY" in message
    assert "wrong-secret-key" not in message + caplog.text


def test_revoked_personal_access_token(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, _ = fake_ls
    revoked = make_jwt(jti="revoked")
    with pytest.raises(LabelStudioError, match="personal access token") as info:
        LabelStudioClient(url, revoked).get_annotated_tasks(7)
    assert "/api/token/refresh/" in str(info.value) and "401" in str(info.value)
    assert revoked not in str(info.value)


def test_server_error_and_unreachable(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, state = fake_ls
    state.fail_export_with = 500
    with pytest.raises(LabelStudioError, match="answered 500 .*: boom"):
        LabelStudioClient(url, LEGACY).get_annotated_tasks(7)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(LabelStudioError, match="cannot reach"):
        LabelStudioClient(f"http://127.0.0.1:{closed}", LEGACY, timeout=5).get_annotated_tasks(7)


def test_make_client_configuration(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, _ = fake_ls
    with pytest.raises(LabelStudioError, match="set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"):
        make_client(None, None)
    with pytest.raises(
        LabelStudioError, match=r"LABEL_STUDIO_URL=http://127\.0\.0\.1:\d+: set LABEL_STUDIO_API_KEY"
    ):
        make_client(url, None)
    from_setup = make_client(None, None, hostname=url, access_token=LEGACY)
    assert from_setup.url == url and "/setup" in from_setup.key_source
    assert [t["id"] for t in from_setup.get_annotated_tasks(7)] == [1, 4]
    configured = LabelStudioClient.from_settings(url, LEGACY, hostname="http://elsewhere:1", access_token="x")
    assert configured.url == url and configured.auth_header() == {"Authorization": f"Token {LEGACY}"}
    assert (
        make_client(None, None, hostname="ls.internal:8080", access_token="t").url
        == "http://ls.internal:8080"
    )


def test_the_configured_key_never_pairs_with_setup_hostname(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    """Issue 11: LABEL_STUDIO_API_KEY without LABEL_STUDIO_URL used to go to /setup's hostname."""
    url, state = fake_ls
    for hostname, token in [(url, None), (url, "setup-token"), (None, None)]:
        with pytest.raises(LabelStudioError, match="LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not"):
            make_client(None, LEGACY, hostname=hostname, access_token=token)
    assert state.requests == []


def test_setup_token_goes_to_setup_hostname_only(fake_ls: Tuple[str, FakeLabelStudio]) -> None:
    url, state = fake_ls
    port = url.rsplit(":", 1)[1]
    # LABEL_STUDIO_URL set without a key: /setup's token is used only when /setup named that origin
    for same in (url, url + "/", f"HTTP://127.0.0.1:{port}/"):
        client = make_client(url, None, hostname=same, access_token=LEGACY)
        assert client.url == url and "/setup" in client.key_source
    for other in (f"http://localhost:{port}", f"https://127.0.0.1:{port}", "http://127.0.0.1:1", None):
        with pytest.raises(LabelStudioError, match="is only sent there") as info:
            make_client(url, None, hostname=other, access_token=LEGACY)
        assert "set LABEL_STUDIO_API_KEY" in str(info.value) and LEGACY not in str(info.value)
    assert state.requests == []


def test_same_origin() -> None:
    assert same_origin("http://a:80/x", "http://A/y?z") and same_origin("https://a/", "https://a:443")
    assert same_origin("ls:8080", "http://ls:8080/api")
    assert not same_origin("http://a", "https://a") and not same_origin("http://a:1", "http://a:2")
    assert not same_origin("http://a", "http://a.evil") and not same_origin("http://a@b", "http://a")
    assert (
        not same_origin(None, "http://a")
        and not same_origin("", "")
        and not same_origin("/data/x", "/data/x")
    )
    assert not same_origin("http://a:99999", "http://a:99999")


@pytest.fixture
def two_hosts() -> Iterator[Tuple[Recorder, Recorder]]:
    ls, other = Recorder(), Recorder()
    yield ls, other
    ls.close()
    other.close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_the_key_follows_redirects_within_its_origin_only(
    two_hosts: Tuple[Recorder, Recorder], code: int
) -> None:
    ls, other = two_hosts
    client = LabelStudioClient(ls.url, LEGACY)
    # within Label Studio: the key goes along
    ls.redirect("/data/moved.png", "/data/here.png", code)
    ls.routes["/data/here.png"] = (200, {}, b"HERE")
    assert client.download(ls.url + "/data/moved.png") == b"HERE"
    assert ls.seen == [("/data/moved.png", f"Token {LEGACY}"), ("/data/here.png", f"Token {LEGACY}")]
    # presign-style redirect to a storage host: no key there, and none back at Label Studio after it
    ls.redirect("/tasks/1/presign/?fileuri=czM6Ly9i", other.url + "/bucket/key.png?X-Amz-Signature=s", code)
    other.redirect("/bucket/key.png?X-Amz-Signature=s", ls.url + "/data/here.png", code)
    assert client.download(ls.url + "/tasks/1/presign/?fileuri=czM6Ly9i") == b"HERE"
    assert other.seen == [("/bucket/key.png?X-Amz-Signature=s", "")]
    assert ls.seen[-2:] == [("/tasks/1/presign/?fileuri=czM6Ly9i", f"Token {LEGACY}"), ("/data/here.png", "")]


def test_redirect_errors_name_the_storage_and_non_http_redirects_are_refused(
    two_hosts: Tuple[Recorder, Recorder],
) -> None:
    ls, other = two_hosts
    client = LabelStudioClient(ls.url, LEGACY)
    ls.redirect("/tasks/2/presign/?fileuri=x", other.url + "/bucket/gone.png?X-Amz-Signature=secret")
    error = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"
    other.routes["/bucket/gone.png?X-Amz-Signature=secret"] = (404, {}, error)
    with pytest.raises(
        LabelStudioError,
        match=r"redirected to http://127\.0\.0\.1:\d+/bucket/gone\.png, which answered 404 \(NoSuchKey\)",
    ) as info:
        client.download(ls.url + "/tasks/2/presign/?fileuri=x")
    assert "secret" not in str(info.value) and "LABEL_STUDIO_API_KEY" not in str(info.value)
    for target in ("file:///etc/passwd", "ftp://127.0.0.1/x"):
        ls.redirect("/data/odd", target)
        with pytest.raises(LabelStudioError, match="redirected to a (file|ftp) URL: refused"):
            client.download(ls.url + "/data/odd")
    # the client never sends its key to another origin, whatever the caller asks
    with pytest.raises(LabelStudioError, match="refusing to send the key"):
        client.download(other.url + "/data/x.png")
    assert other.seen == [("/bucket/gone.png?X-Amz-Signature=secret", "")]
