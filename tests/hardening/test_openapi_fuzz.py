"""The API is described (GET /openapi.json) and a live backend holds up to schemathesis.

Schemathesis generates schema-valid and malformed requests for every operation; the checks:
no 5xx, every status / content type / header / body as described. The seed tutorial's model
serves. The run is bounded (examples per operation, a fixed seed) to stay well under 2 minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from label_studio_ml.openapi import build_spec, operations

from .conftest import SEED_CONFIG

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = int(os.environ.get("LSML_FUZZ_EXAMPLES", "60"))


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    if exe.exists():
        return str(exe)
    found = shutil.which("schemathesis") or shutil.which("st")
    if not found:
        pytest.skip("schemathesis is not installed (pip install -r requirements-dev.txt)")
    return found


def _run(
    url: str, tmp_path: Path, *extra: str, examples: int = MAX_EXAMPLES, spec_file: bool = False
) -> dict:
    report = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json"
    location = [f"{url}/openapi.json"]
    if spec_file:  # the description itself is behind the credentials
        path = tmp_path / "openapi.json"
        path.write_text(json.dumps(build_spec()))
        location = [str(path), "--url", url]
    cmd = [
        _schemathesis(), "run", *location, "--checks", CHECKS, "--max-examples", str(examples),
        "--seed", "20261127", "--continue-on-failure", "--request-timeout", "20", "--workers", "1",
        "--suppress-health-check", "all", "--report", "json", "--report-json-path", str(report), *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=tmp_path)
    summary = proc.stdout[-6000:]
    print(summary)
    generated = re.search(r"(\d+) generated", proc.stdout)
    return {
        "code": proc.returncode,
        "out": summary + proc.stderr[-2000:],
        "generated": int(generated.group(1)) if generated else 0,
    }


def test_description_covers_every_route(serve, seed_class):
    server = serve(seed_class)
    spec = server.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    described = set(operations(spec))
    served = {
        f"{method} {rule.rule}"
        for rule in server.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == described
    assert spec["components"]["securitySchemes"]["basicAuth"] == {
        "type": "http", "scheme": "basic", "description": spec["components"]["securitySchemes"]["basicAuth"]["description"],
    }  # fmt: skip
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "detail"]
    # what Label Studio really sends validates against the request schemas
    jsonschema = pytest.importorskip("jsonschema")
    resolver_doc = {"components": spec["components"]}

    def validate(name: str, instance: dict) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", **resolver_doc}
        jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)

    validate("SetupRequest", {"project": "1.1795738540", "schema": SEED_CONFIG,
                              "hostname": "http://localhost:8080", "access_token": "abc", "extra_params": None})  # fmt: skip
    validate("PredictRequest", {"tasks": [{"id": 1, "data": {"image": "x"}, "meta": {}, "annotations": [],
                                           "predictions": []}], "project": "1.1795738540",
                                "label_config": SEED_CONFIG, "params": {"login": None, "password": None, "context": None}})  # fmt: skip
    validate(
        "WebhookRequest",
        {"action": "START_TRAINING", "project": {"id": 1, "title": "p", "label_config": SEED_CONFIG}},
    )
    assert json.dumps(build_spec())  # serialisable, deterministic


def test_schemathesis_finds_no_server_error_and_no_nonconformance(serve, seed_class, tmp_path):
    server = serve(seed_class)
    # a known project with a config, so generated /predict and /setup calls reach the model
    assert server.post("/setup", json={"project": "1.1795738540", "schema": SEED_CONFIG}).status_code == 200
    result = _run(server.url, tmp_path)
    assert result["code"] == 0, result["out"]
    assert result["generated"] >= 11 * 20, result["out"]
    assert "Traceback" not in result["out"]


def test_schemathesis_with_basic_auth(serve, seed_class, tmp_path):
    server = serve(seed_class, basic_auth_user="fuzz", basic_auth_pass="fuzz-pass-4821")
    with_credentials = _run(server.url, tmp_path, "--auth", "fuzz:fuzz-pass-4821", examples=15)
    assert with_credentials["code"] == 0, with_credentials["out"]
    # without credentials: every answer is a described 401 (or a webhook answer)
    without = _run(server.url, tmp_path, examples=10, spec_file=True)
    assert server.get("/openapi.json").status_code == 401
    assert without["code"] == 0, without["out"]


def test_no_traceback_in_any_error_body(serve, seed_class):
    """Hostile bodies on every operation: JSON errors, never a traceback or a 5xx."""
    server = serve(seed_class)
    bodies = [b"", b"{", b"[]", b"null", b'"x"', b"1e999999", b"[" * 100000, b'{"project": "../../etc"}',
              b'{"tasks": [1]}', b'{"tasks": [{}], "project": 1e400}', b'{"tasks": [{}], "project": ' + b"9" * 5000 + b"}",
              b'{"action": "START_TRAINING", "project": {"id": [1]}}', b"\xff\xfe\x00", b'{"\\ud800": 1}',
              b'{"tasks": [{}], "label_config": "<View><!DOCTYPE x [<!ENTITY a \\"b\\">]></View>"}',
              b'{"tasks": [{}], "label_config": "<View>' + b"<V>" * 500 + b'</View>"}']  # fmt: skip
    for operation in operations():
        method, path = operation.split(" ", 1)
        for body in bodies if method == "POST" else [b""]:
            r = server.http.request(method, server.url + path, data=body, timeout=20,
                                    headers={"Content-Type": "application/json"})  # fmt: skip
            assert r.status_code < 500, (operation, body[:80], r.status_code, r.text[:300])
            assert "Traceback" not in r.text and 'File "' not in r.text, (operation, body[:80])
            if r.status_code >= 400:
                assert set(r.json()) == {"error", "detail"}, (operation, body[:80], r.text[:200])
