"""label_studio_ml.utils: old-SDK helpers and get_local_path against a real HTTP server."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from label_studio_ml.lsclient import LabelStudioError
from label_studio_ml.settings import SettingsError
from label_studio_ml.utils import get_choice, get_env, get_image_size, get_local_path, is_skipped

from ..support import Recorder

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
        get_local_path("ftp://host/key.png")


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
    assert seen == []
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
    assert cached.endswith("__other.jpg") and seen[-1] == (
        "/data/local-files/?d=images/other.jpg",
        f"Token {KEY}",
    )


def test_uploads_found_in_project_dir(tmp_path: Path) -> None:
    (tmp_path / "upload" / "3").mkdir(parents=True)
    (tmp_path / "upload" / "3" / "f.png").write_bytes(PNG_BYTES)
    found = get_local_path("/data/upload/3/f.png", project_dir=str(tmp_path))
    assert found == str(tmp_path / "upload" / "3" / "f.png")


# ------------------------------------------------------------------ cloud storage URIs and credentials
@pytest.fixture
def ls_and_storage() -> Iterator[Tuple[Recorder, Recorder]]:
    """A Label Studio that presigns like LS 1.23.2 (303 to the storage) and a storage host."""
    ls, storage = Recorder(), Recorder()
    yield ls, storage
    ls.close()
    storage.close()


def _presign(ls: Recorder, storage: Recorder, task_id: int, uri: str, body: bytes) -> str:
    fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
    path = f"/tasks/{task_id}/presign/?fileuri={fileuri}"
    ls.redirect(path, f"{storage.url}/signed/{task_id}?X-Amz-Signature=sig")
    storage.routes[f"/signed/{task_id}?X-Amz-Signature=sig"] = (200, {}, body)
    return path


@pytest.mark.parametrize(
    "uri", ["s3://bucket/dir/cat 1.png", "gs://bucket/a.jpg", "azure-blob://container/b.wav"]
)
def test_cloud_uri_resolved_by_presign_key_only_to_label_studio(
    ls_and_storage: Tuple[Recorder, Recorder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    ls, storage = ls_and_storage
    presign = _presign(ls, storage, 17, uri, PNG_BYTES)
    monkeypatch.setenv("LABEL_STUDIO_URL", ls.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    path = get_local_path(uri, cache_dir=str(tmp_path), task_id=17)
    assert Path(path).read_bytes() == PNG_BYTES
    name = uri.rsplit("/", 1)[1].replace(" ", "_")
    assert os.path.basename(path) == hashlib.sha256(uri.encode()).hexdigest()[:16] + "__" + name
    assert ls.seen == [(presign, f"Token {KEY}")]
    assert storage.seen == [("/signed/17?X-Amz-Signature=sig", "")]  # no Label Studio key at the storage
    # cached by the URI: another task with the same file downloads nothing
    assert get_local_path(uri, cache_dir=str(tmp_path), task_id="18") == path
    assert len(ls.seen) == 1 and os.listdir(tmp_path) == [os.path.basename(path)]
    # download_resources=False names the file without fetching it
    other = get_local_path(uri + "2", cache_dir=str(tmp_path), task_id=17, download_resources=False)
    assert not os.path.exists(other) and len(ls.seen) == 1


def test_cloud_uri_errors(
    ls_and_storage: Tuple[Recorder, Recorder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ls, storage = ls_and_storage
    with pytest.raises(
        ValueError,
        match=r"^s3://bucket/x\.png is a cloud storage URI: Label Studio resolves it for a task, "
        r"so pass the task's id: get_local_path\(url, task_id=task\['id'\]\)$",
    ):
        get_local_path("s3://bucket/x.png", cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"):
        get_local_path("s3://bucket/x.png", cache_dir=str(tmp_path), task_id=1)
    monkeypatch.setenv("LABEL_STUDIO_URL", ls.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    for bad in ("../../api/projects", "1/../2", True, 1.5):
        with pytest.raises(ValueError, match="task_id must be a Label Studio task id"):
            get_local_path("s3://bucket/x.png", cache_dir=str(tmp_path), task_id=bad)
    # Label Studio knows no storage for the URI: its 404, named
    with pytest.raises(LabelStudioError, match=r"answered 404 to http://127\.0\.0\.1:\d+/tasks/3/presign/"):
        get_local_path("s3://bucket/unknown.png", cache_dir=str(tmp_path), task_id=3)
    # the storage refuses (an expired presigned URL): named as the storage's answer, not a key problem
    _presign(ls, storage, 4, "s3://bucket/old.png", b"")
    storage.routes["/signed/4?X-Amz-Signature=sig"] = (403, {}, b"<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(LabelStudioError, match=r"which answered 403 \(AccessDenied\)") as info:
        get_local_path("s3://bucket/old.png", cache_dir=str(tmp_path), task_id=4)
    assert "X-Amz-Signature" not in str(info.value) and KEY not in str(info.value)
    assert os.listdir(tmp_path) == []  # nothing half-written
    assert all(auth == "" for _, auth in storage.seen)


def test_setup_hostname_never_receives_the_configured_key(
    ls_and_storage: Tuple[Recorder, Recorder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: downloads follow the rule too; ``listener`` plays a /setup naming a foreign host."""
    ls, listener = ls_and_storage
    ls.routes["/data/upload/1/a.png"] = (200, {}, PNG_BYTES)
    listener.routes["/data/upload/1/a.png"] = (200, {}, b"forged")
    # the key without its URL: a startup error, and get_local_path refuses the same way
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    with pytest.raises(SettingsError, match="set LABEL_STUDIO_URL"):
        get_local_path("/data/upload/1/a.png", cache_dir=str(tmp_path), hostname=listener.url)
    # configured URL and key: Label Studio's URLs go to LABEL_STUDIO_URL, whatever /setup named
    monkeypatch.setenv("LABEL_STUDIO_URL", ls.url)
    path = get_local_path(
        "/data/upload/1/a.png", cache_dir=str(tmp_path), hostname=listener.url, access_token="t"
    )
    assert Path(path).read_bytes() == PNG_BYTES and ls.seen == [("/data/upload/1/a.png", f"Token {KEY}")]
    # an absolute URL on the /setup host gets no key at all
    get_local_path(listener.url + "/data/upload/1/a.png", cache_dir=str(tmp_path), hostname=listener.url)
    assert listener.seen == [("/data/upload/1/a.png", "")]
    # URL without key: /setup's token is used only when /setup named that same Label Studio
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with pytest.raises(FileNotFoundError, match="only sent there"):
        get_local_path(
            "/data/upload/1/b.png", cache_dir=str(tmp_path), hostname=listener.url, access_token="tok"
        )
    get_local_path(
        "/data/upload/1/a.png", cache_dir=str(tmp_path / "2"), hostname=ls.url + "/", access_token="tok"
    )
    assert ls.seen[-1] == ("/data/upload/1/a.png", "Token tok")
    assert listener.seen == [("/data/upload/1/a.png", "")]


def test_model_get_local_path_has_the_sdk_signature(
    ls_and_storage: Tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    from label_studio_ml.model import LabelStudioMLBase

    ls, storage = ls_and_storage
    presign = _presign(ls, storage, 5, "s3://b/k.png", PNG_BYTES)
    model = LabelStudioMLBase(project_id="1", hostname=ls.url, access_token="setup-tok")
    path = model.get_local_path("s3://b/k.png", task_id=5, cache_dir=str(tmp_path))
    assert Path(path).read_bytes() == PNG_BYTES and ls.seen == [(presign, "Token setup-tok")]
    # upstream's positional order: (url, project_dir, ls_host, ls_access_token, task_id)
    (tmp_path / "upload" / "3").mkdir(parents=True)
    (tmp_path / "upload" / "3" / "f.png").write_bytes(b"local")
    assert model.get_local_path("/data/upload/3/f.png", str(tmp_path)) == str(
        tmp_path / "upload" / "3" / "f.png"
    )
    # an explicit ls_host does not receive /setup's token
    with pytest.raises(FileNotFoundError, match="an API key missing"):
        model.get_local_path("s3://b/k2.png", ls_host=storage.url, task_id=5, cache_dir=str(tmp_path))
    assert storage.seen == [("/signed/5?X-Amz-Signature=sig", "")]


def test_cache_names_keep_the_file_name_safely(tmp_path: Path) -> None:
    ls = {"hostname": "http://ls.invalid:8080", "access_token": "t", "cache_dir": str(tmp_path)}
    fileuri = base64.urlsafe_b64encode(b"s3://b/dir/x y.png").decode()
    cases = {
        f"/tasks/9/resolve/?fileuri={fileuri}": "x_y.png",
        "/data/upload/3/ab.jpg": "ab.jpg",
        "/data/local-files/?d=some/dir/c%20d.wav": "c_d.wav",
        "/storage-data/uploaded/?filepath=upload/3/e.png": "e.png",
        "s3://b/..%2F..%2Fetc%2Fpasswd": "passwd",
        "gs://b/../..": "file",
        "azure-blob://c/" + "n" * 300 + ".tif": "n" * 96 + ".tif",
        "http://example.invalid/a/%00%0a.png?x=1": "__.png",
    }
    for url, name in cases.items():
        path = get_local_path(url, task_id=1, download_resources=False, **ls)
        assert os.path.dirname(path) == str(tmp_path), (url, path)
        assert os.path.basename(path).split("__", 1)[1] == name, (url, path)
    assert not os.listdir(tmp_path)


def test_upload_falls_back_to_the_storage_proxy(
    ls_and_storage: Tuple[Recorder, Recorder], tmp_path: Path
) -> None:
    """Label Studio with a cloud default storage serves uploads at /storage-data/uploaded/ only."""
    ls, _ = ls_and_storage
    ls.routes["/storage-data/uploaded/?filepath=upload/2/x%20y.png"] = (200, {}, PNG_BYTES)
    kw = {"hostname": ls.url, "access_token": KEY, "cache_dir": str(tmp_path)}
    path = get_local_path("/data/upload/2/x y.png", **kw)
    assert Path(path).read_bytes() == PNG_BYTES and path.endswith("__x_y.png")
    assert ls.seen == [
        ("/data/upload/2/x%20y.png", f"Token {KEY}"),
        ("/storage-data/uploaded/?filepath=upload/2/x%20y.png", f"Token {KEY}"),
    ]
    # neither has it: the proxy's 404 is the error; other statuses are not retried
    with pytest.raises(LabelStudioError, match="404 to .*/storage-data/uploaded/"):
        get_local_path("/data/upload/2/gone.png", **kw)
    ls.routes["/data/upload/2/locked.png"] = (403, {}, b'{"detail": "no"}')
    with pytest.raises(LabelStudioError, match="403"):
        get_local_path("/data/upload/2/locked.png", **kw)
    assert ls.seen[-1][0] == "/data/upload/2/locked.png" and len(ls.seen) == 5
