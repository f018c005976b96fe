"""label_studio_ml.utils: old-SDK helpers and get_local_path against a real HTTP server."""

from __future__ import annotations

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from label_studio_ml.lsclient import LabelStudioError
from label_studio_ml.utils import get_choice, get_env, get_image_size, get_local_path, is_skipped

KEY = "media-key-42"
PNG_BYTES = b"\x89PNG fake image bytes"
ENV = [
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_HOST",
    "LABEL_STUDIO_API_KEY",
    "LABEL_STUDIO_ACCESS_TOKEN",
    "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT",
    "HEARTEX_LOCAL_FILES_DOCUMENT_ROOT",
    "LOCAL_FILES_DOCUMENT_ROOT",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def media_server() -> Iterator[Tuple[int, List[Tuple[str, str]]]]:
    """Serves ``/public/*`` to anyone and ``/data/*`` only with ``Token KEY``; logs (path, auth)."""
    seen: List[Tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            seen.append((self.path, auth))
            if self.path.startswith("/data/") and auth != f"Token {KEY}":
                status, body = 401, b'{"detail": "Invalid token."}'
            elif self.path.startswith(("/data/", "/public/")) and "missing" not in self.path:
                status, body = 200, PNG_BYTES
            else:
                status, body = 404, b"not found"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_get_env_prefixes_and_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_env("LSML_TEST_X", default="d") == "d"
    monkeypatch.setenv("LSML_TEST_X", "plain")
    assert get_env("LSML_TEST_X") == "plain"
    monkeypatch.setenv("HEARTEX_LSML_TEST_X", "heartex")
    assert get_env("LSML_TEST_X") == "heartex"
    monkeypatch.setenv("LABEL_STUDIO_LSML_TEST_X", "ls")
    assert get_env("LSML_TEST_X") == "ls"
    for value, expected in [("true", True), ("1", True), ("Off", False), ("0", False)]:
        monkeypatch.setenv("LABEL_STUDIO_LSML_TEST_X", value)
        assert get_env("LSML_TEST_X", is_bool=True) is expected
    assert get_env("LSML_TEST_UNSET", default=False, is_bool=True) is False
    monkeypatch.setenv("LABEL_STUDIO_LSML_TEST_X", "maybe")
    with pytest.raises(ValueError, match="LABEL_STUDIO_LSML_TEST_X"):
        get_env("LSML_TEST_X", is_bool=True)


def _task(*annotations: Dict[str, Any], key: str = "annotations") -> Dict[str, Any]:
    return {"id": 1, "data": {}, key: list(annotations)}


def test_get_choice_and_is_skipped() -> None:
    chosen = {"result": [{"value": {"choices": ["Airbus", "Boeing"]}}], "was_cancelled": False}
    assert get_choice(_task(chosen)) == "Airbus"
    assert get_choice(_task(chosen, key="completions")) == "Airbus"
    assert not is_skipped(_task(chosen))
    assert is_skipped(_task({"was_cancelled": True, "result": []}))
    assert is_skipped(_task({"skipped": True}, key="completions"))
    assert not is_skipped(_task())
    with pytest.raises(ValueError, match="no annotations"):
        get_choice(_task())


def test_get_image_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image_module = pytest.importorskip("PIL.Image")
    path = tmp_path / "x.png"
    image_module.new("RGB", (7, 3)).save(path)
    assert get_image_size(str(path)) == (7, 3)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        get_image_size(str(path))


def test_local_path_and_file_url(tmp_path: Path) -> None:
    path = tmp_path / "img one.png"
    path.write_bytes(PNG_BYTES)
    assert get_local_path(str(path)) == str(path)
    assert get_local_path(path.as_uri()) == str(path)
    with pytest.raises(FileNotFoundError):
        get_local_path((tmp_path / "nope.png").as_uri())
    with pytest.raises(FileNotFoundError):
        get_local_path(str(tmp_path / "nope.png"))
    with pytest.raises(ValueError, match="cannot resolve"):
        get_local_path("s3://bucket/key.png")


def test_http_url_downloaded_once_and_cached(
    media_server: Tuple[int, List[Tuple[str, str]]], tmp_path: Path
) -> None:
    port, seen = media_server
    url = f"http://127.0.0.1:{port}/public/cat.png?v=1"
    first = get_local_path(url, cache_dir=str(tmp_path))
    assert first.endswith(".png") and os.path.dirname(first) == str(tmp_path)
    assert Path(first).read_bytes() == PNG_BYTES
    assert get_local_path(url, cache_dir=str(tmp_path)) == first
    assert seen == [("/public/cat.png?v=1", "")]
    assert os.listdir(tmp_path) == [os.path.basename(first)]  # no temp file left behind
    with pytest.raises(LabelStudioError, match="404"):
        get_local_path(f"http://127.0.0.1:{port}/public/missing.png", cache_dir=str(tmp_path))


def test_label_studio_relative_url_uses_token(
    media_server: Tuple[int, List[Tuple[str, str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, seen = media_server
    host = f"http://127.0.0.1:{port}"
    with pytest.raises(FileNotFoundError, match="set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"):
        get_local_path("/data/upload/1/a.png", cache_dir=str(tmp_path))
    path = get_local_path("/data/upload/1/a.png", cache_dir=str(tmp_path), hostname=host, access_token=KEY)
    assert Path(path).read_bytes() == PNG_BYTES and path.endswith(".png")
    assert seen[-1] == ("/data/upload/1/a.png", f"Token {KEY}")
    # environment configuration wins over what /setup sent
    monkeypatch.setenv("LABEL_STUDIO_URL", host)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    get_local_path("/data/upload/1/b.png", cache_dir=str(tmp_path), hostname="http://x:1")
    assert seen[-1] == ("/data/upload/1/b.png", f"Token {KEY}")
    # absolute URL on Label Studio gets the token, another host does not
    get_local_path(f"{host}/data/upload/1/c.png", cache_dir=str(tmp_path))
    assert seen[-1] == ("/data/upload/1/c.png", f"Token {KEY}")
    get_local_path(f"http://localhost:{port}/public/d.png", cache_dir=str(tmp_path))
    assert seen[-1] == ("/public/d.png", "")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "bad-key")
    with pytest.raises(LabelStudioError, match="401.*legacy token.*LABEL_STUDIO_API_KEY") as info:
        get_local_path("/data/upload/1/e.png", cache_dir=str(tmp_path))
    assert "bad-key" not in str(info.value)


def test_local_files_under_document_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, media_server: Tuple[int, List[Tuple[str, str]]]
) -> None:
    port, seen = media_server
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a b.jpg").write_bytes(PNG_BYTES)
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(root))
    assert get_local_path("/data/local-files/?d=images/a%20b.jpg") == str(root / "images" / "a b.jpg")
    # escaping the document root is not served locally: it goes to Label Studio (none configured here)
    with pytest.raises(FileNotFoundError, match="LABEL_STUDIO_URL"):
        get_local_path("/data/local-files/?d=../secret.jpg")
    cached = get_local_path(
        "/data/local-files/?d=images/other.jpg",
        cache_dir=str(tmp_path / "cache"),
        hostname=f"http://127.0.0.1:{port}",
        access_token=KEY,
    )
    assert cached.endswith(".jpg") and seen[-1] == ("/data/local-files/?d=images/other.jpg", f"Token {KEY}")


def test_uploads_found_in_project_dir(tmp_path: Path) -> None:
    (tmp_path / "upload" / "3").mkdir(parents=True)
    (tmp_path / "upload" / "3" / "f.png").write_bytes(PNG_BYTES)
    found = get_local_path("/data/upload/3/f.png", project_dir=str(tmp_path))
    assert found == str(tmp_path / "upload" / "3" / "f.png")
