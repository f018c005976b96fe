"""The generated k8s/ manifests: valid against the Kubernetes schemas (offline, kubernetes-validate
ships them), and wired together (names, labels, settings, probes) for every kind of bake."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from label_studio_ml.settings import ENV_VARS

MANIFESTS = ["config.yaml", "redis.yaml", "api.yaml", "worker.yaml"]
CASES = [
    pytest.param({}, id="default"),
    pytest.param({"backend_name": "my-backend-2", "port": "8080"}, id="dashed-port8080"),
    pytest.param({"backend_name": "b" + "_x" * 31}, id="longest-name"),
    pytest.param({"gpu": "yes"}, id="gpu"),
]
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.fixture(params=CASES)
def k8s(request, bake):
    result = bake(**request.param)
    assert result.exit_code == 0, result.exception
    return request.param, result.project_path / "k8s"


def _validate(tool, files) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manifests_validate_against_the_kubernetes_schemas(k8s, tool):
    _, folder = k8s
    assert sorted(p.name for p in folder.iterdir()) == sorted([*MANIFESTS, "README.md"])
    proc = _validate(tool, [folder / name for name in MANIFESTS])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed for resource") == 7


def test_the_validator_rejects_a_broken_manifest(k8s, tool, tmp_path):
    _, folder = k8s
    api = list(yaml.safe_load_all((folder / "api.yaml").read_text()))
    api[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 10  # a typo
    broken = tmp_path / "api.yaml"
    broken.write_text(yaml.safe_dump_all(api))
    proc = _validate(tool, [broken])
    assert proc.returncode != 0 and "periodSecond" in proc.stdout + proc.stderr


def test_manifests_are_wired_together(k8s):
    answers, folder = k8s
    docs = {name: list(yaml.safe_load_all((folder / name).read_text())) for name in MANIFESTS}
    config, secret = docs["config.yaml"]
    api, service = docs["api.yaml"]
    (worker,) = docs["worker.yaml"]
    redis, redis_service = docs["redis.yaml"]
    port = int(answers.get("port", "9090"))
    for doc in [config, secret, api, service, worker, redis, redis_service]:
        assert len(doc["metadata"]["name"]) <= 63 and DNS_LABEL.fullmatch(doc["metadata"]["name"])
    # every setting in the ConfigMap is one the runtime reads (or boto3's region)
    assert set(config["data"]) - {"AWS_DEFAULT_REGION"} <= set(ENV_VARS)
    assert config["data"]["MODEL_STORE"].startswith("s3://")
    assert config["data"]["REDIS_URL"] == f"redis://{redis_service['metadata']['name']}:6379/0"
    assert redis_service["spec"]["selector"] == redis["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == api["spec"]["template"]["metadata"]["labels"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"} <= set(
        secret["stringData"]
    )
    gpu = answers.get("gpu") == "yes"
    for deployment, command in ((api, "uwsgi"), (worker, "label-studio-ml")):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"][0] == command
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {config["metadata"]["name"], secret["metadata"]["name"]}
        env = {item["name"]: item["value"] for item in container["env"]}
        assert env["MODEL_DIR"] == "/data/models"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert {v["name"]: v for v in pod["volumes"]}[mounts["/data/models"]]["emptyDir"] == {}
        assert ("nvidia.com/gpu" in container["resources"].get("limits", {})) == gpu
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == port and service["spec"]["ports"][0]["port"] == port
    for probe in ("readinessProbe", "livenessProbe"):
        assert "/health" in container[probe]["exec"]["command"][-1]


def test_the_probe_command_passes_basic_auth_to_health(tmp_path, k8s):
    """The probe's Python line really calls GET /health with the Secret's Basic credentials."""
    import base64
    import http.server
    import os
    import sys
    import threading

    _, folder = k8s
    (api, _) = yaml.safe_load_all((folder / "api.yaml").read_text())
    command = api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"u:p-123").decode()
            self.send_response(200 if ok else 401)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "PORT": str(server.server_address[1])}
        ok = subprocess.run(
            [sys.executable, *command[1:]], env={**env, "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p-123"}
        )
        bad = subprocess.run(
            [sys.executable, *command[1:]],
            env={**env, "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "no"},
            capture_output=True,
        )
    finally:
        server.shutdown()
    assert ok.returncode == 0 and bad.returncode != 0
    assert seen[0][0] == "/health"


def test_readme_steps_name_real_files_and_commands(k8s):
    _, folder = k8s
    text = (folder / "README.md").read_text()
    for name in MANIFESTS:
        assert f"`{name}`" in text
    assert (
        "label-studio-ml versions rollback 12" in text and "kubernetes-validate --strict k8s/*.yaml" in text
    )
    assert Path(folder.parent / "requirements.txt").is_file()
