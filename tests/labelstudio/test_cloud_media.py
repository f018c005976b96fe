"""Cloud storage media end to end: a Label Studio 1.23.2 project with an S3 import storage on
a real S3 endpoint on loopback (moto_server), tasks whose image is ``s3://bucket/key``, and a
current-SDK-style model that reads the image's bytes through ``self.get_local_path(url,
task_id=...)``. Label Studio presigns (``/tasks/<id>/presign/?fileuri=<base64url>`` answers
303 to the presigned S3 URL); the backend follows the redirect without Label Studio's key.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid

import pytest

pytestmark = pytest.mark.slow

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <TextArea name="digest" toName="image"/>
</View>"""


def _png(seed: str) -> bytes:
    """A small PNG whose pixels depend on ``seed`` (Pillow is a dev requirement)."""
    from PIL import Image

    digest = hashlib.sha256(seed.encode()).digest() * 2
    image = Image.new("RGB", (4, 3))
    image.putdata([tuple(digest[i : i + 3]) for i in range(0, 36, 3)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("credentials", ["configured", "setup"])
def test_s3_image_reaches_the_model_through_presign(
    credentials, label_studio, moto_s3, baked, serve, project_title, helpers, tmp_path, monkeypatch
):
    """``configured``: LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY. ``setup``: nothing configured,
    the backend uses the ``hostname`` and project creator's token that ``/setup`` sent."""
    ls = label_studio
    for name in (
        "LABEL_STUDIO_URL",
        "LABEL_STUDIO_HOST",
        "LABEL_STUDIO_API_KEY",
        "LABEL_STUDIO_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    bucket = f"lsml-{uuid.uuid4().hex[:12]}"  # new names each run: nothing can come from a cache
    images = {f"planes/{name}.png": _png(f"{bucket}/{name}") for name in ("boeing 747", "airbus")}
    s3 = moto_s3.client()
    s3.create_bucket(Bucket=bucket)
    for key, body in images.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/png")

    project = ls.call("POST", "/api/projects", json={"title": project_title, "label_config": CONFIG})
    pid = project["id"]
    storage = ls.call(
        "POST",
        "/api/storages/s3",
        json={
            "project": pid,
            "title": "moto",
            "bucket": bucket,
            "prefix": "planes/",
            "regex_filter": r".*\.png",
            "use_blob_urls": True,
            "presign": True,
            "presign_ttl": 15,
            "aws_access_key_id": moto_s3.ACCESS_KEY,
            "aws_secret_access_key": moto_s3.SECRET_KEY,
            "region_name": moto_s3.REGION,
            "s3_endpoint": moto_s3.url,
        },
        extra_logs=moto_s3.logs,
    )
    ls.call("POST", f"/api/storages/s3/{storage['id']}/sync", extra_logs=moto_s3.logs)
    helpers.wait_for(lambda: len(ls.tasks(pid)) == len(images), 60, "the S3 storage sync", logs=ls.logs)
    # the export format (what the backend gets) keeps the storage URIs; /api/tasks shows them
    # resolved for the browser (/tasks/<id>/resolve/?fileuri=...)
    exported = ls.call(
        "GET", f"/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
    )
    uris = {task["id"]: task["data"]["image"] for task in exported}
    assert sorted(uris.values()) == sorted(f"s3://{bucket}/{key}" for key in images), uris

    cache = tmp_path / "xdg-cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    if credentials == "configured":
        env.update(LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=ls.token)
    backend = serve(baked("cloud_media_model.py", f"cloud-{credentials}"), env=env)
    ml = ls.connect(pid, backend.url, "cloud media", is_interactive=False, extra_logs=backend.logs)
    ls.retrieve_predictions(pid, extra_logs=backend.logs)

    predictions = {p["task"]: p for p in ls.predictions(pid)}
    assert sorted(predictions) == sorted(uris), f"{predictions}\n{backend.logs()}\n{ls.logs()}"
    for task_id, uri in uris.items():
        body = images[uri.split("/", 3)[3]]
        text = predictions[task_id]["result"][0]["value"]["text"][0]
        name = uri.rsplit("/", 1)[1].replace(" ", "_")
        expected = f"sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)} file="
        assert text.startswith(expected) and text.endswith("__" + name), (text, expected, backend.logs())
        # cached as label-studio-sdk does: <cache>/label-studio/<hash of the URI>__<file name>
        assert (cache / "label-studio" / text.split("file=", 1)[1]).read_bytes() == body
    # the bytes came from S3 through a presigned URL (Label Studio redirected, it did not proxy)
    moto_log = moto_s3.log.read_text(errors="replace")
    for key in images:
        quoted = key.replace(" ", "%20")
        assert re.search(rf"GET /{bucket}/{re.escape(quoted)}\?[^ ]*Signature=", moto_log), moto_s3.logs()
    assert ls.ml(ml["id"])["state"] == "CO"
    if credentials == "configured":
        _what_the_docs_say(ls, moto_s3, pid, storage["id"], uris, images, tmp_path / "in-process")


def _what_the_docs_say(ls, moto_s3, pid, storage_id, uris, images, cache) -> None:
    """docs/labelstudio.md's claims, checked in this process against the same Label Studio."""
    from label_studio_ml.lsclient import LabelStudioError
    from label_studio_ml.utils import get_local_path

    task_id, uri = next(iter(uris.items()))
    body = images[uri.split("/", 3)[3]]
    kw = {"hostname": ls.url, "access_token": ls.token, "cache_dir": str(cache)}
    # the browser API's rewritten form is accepted too
    resolved = next(t["data"]["image"] for t in ls.tasks(pid) if t["id"] == task_id)
    assert resolved.startswith(f"/tasks/{task_id}/resolve/?fileuri="), resolved
    with open(get_local_path(resolved, **kw), "rb") as fh:
        assert fh.read() == body
    # a URI no storage of the project matches: Label Studio's 404, named
    bucket = uri.split("/")[2]
    with pytest.raises(LabelStudioError, match=r"answered 404 to .*/tasks/\d+/presign/"):
        get_local_path(f"s3://not-{bucket}/x.png", task_id=task_id, **kw)
    # files uploaded to Label Studio keep working: /data/upload/... and its storage proxy URL
    upload = _png("uploaded")
    ls.call("POST", f"/api/projects/{pid}/import", files={"file": ("upload me.png", upload, "image/png")})
    uploaded = [t["data"]["image"] for t in ls.call("GET", f"/api/projects/{pid}/export",
                params={"exportType": "JSON", "download_all_tasks": "true"}) if t["id"] not in uris]  # fmt: skip
    assert len(uploaded) == 1 and uploaded[0].startswith(f"/data/upload/{pid}/"), uploaded
    with open(get_local_path(uploaded[0], **kw), "rb") as fh:
        assert fh.read() == upload
    # LS's storage proxy serves uploads only from a cloud default storage: why /data/upload/ goes first
    proxy = "/storage-data/uploaded/?filepath=" + uploaded[0][len("/data/") :]
    with pytest.raises(LabelStudioError, match="answered 400 .*NGINX mode for uploads is not supported"):
        get_local_path(proxy, **kw)
    # "Use pre-signed URLs" off: Label Studio streams the bytes itself
    ls.call("PATCH", f"/api/storages/s3/{storage_id}", json={"project": pid, "presign": False})
    assert ls.call("GET", f"/api/storages/s3/{storage_id}")["presign"] is False
    presigned_gets = moto_s3.log.read_text(errors="replace").count("Signature=")
    proxied = get_local_path(uri, task_id=task_id, **{**kw, "cache_dir": str(cache / "proxied")})
    with open(proxied, "rb") as fh:
        assert fh.read() == body
    assert moto_s3.log.read_text(errors="replace").count("Signature=") == presigned_gets, moto_s3.logs()
