"""The same generated files with every Compose implementation here, Podman, and the demo backend.

* every Compose implementation that answers (docker-compose 1.29, docker compose v2) accepts
  docker-compose.yml as generated, CPU and GPU variants (``config``), and the ones after the
  first run the stack too;
* podman-compose runs the stack on Podman (HOST_GATEWAY set: Podman 4.3 cannot resolve
  host-gateway, docs/deployment.md);
* ``scripts/demo.sh``'s backend (demo/my_backend) builds and serves as an image.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("gpu", ["no", "yes"])
def test_every_compose_here_accepts_the_generated_file(gpu, composes, tmp_path):
    from cookiecutter.main import cookiecutter

    root = Path(cookiecutter(str(REPO), no_input=True, output_dir=str(tmp_path), extra_context={"gpu": gpu}))
    names = []
    for compose in composes:
        proc = subprocess.run(
            [*compose.argv, "-p", "lsmlctconfig", "config", "-q"],
            cwd=root,
            env=compose.environ(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{compose.name} refuses docker-compose.yml: {proc.stderr}"
        names.append(compose.name)
    print(f"docker-compose.yml (gpu={gpu}) accepted by: {', '.join(names)}")


def test_other_compose_implementations_run_the_stack(composes, images, stacks):
    """Compose v2 (and any other here) on the same engine: up, healthy, train, versions kept."""
    others = composes[1:]
    if not others:
        pytest.skip(f"only {composes[0].name} here (scripts/setup_containers.sh adds Compose v2)")
    for compose in others:
        stack = stacks(images.backend("container_model.py", composes[0]), compose)
        stack.up()
        assert stack.wait_healthy() == "healthy"
        job = stack.train("4", tag=compose.name)
        version = stack.wait_status("4", "succeeded", job_id=job["job_id"])["version"]
        stack.run("restart")
        stack.wait_up()
        assert stack.versions("4") == [version]
        print(f"{compose.name}: up, healthy, trained {version}, kept across restart")


def host_address() -> str:
    """This machine's address on its default route (what Podman 4.3 users put in HOST_GATEWAY)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("203.0.113.1", 9))  # TEST-NET-3; UDP connect sends nothing, only picks the route
        return sock.getsockname()[0]


def test_podman_compose_runs_the_stack(podman, images, stacks):
    stack = stacks(images.backend("container_model.py", podman), podman, env={"HOST_GATEWAY": host_address()})
    stack.up(timeout=180)
    # Podman runs HEALTHCHECKs from systemd timers; without systemd, run the image's check once
    check = stack.engine("healthcheck", "run", stack.container(), check=False)
    assert check.returncode == 0 and "unhealthy" not in check.stdout, f"{check.stdout}{check.stderr}"
    assert stack.get("/health").json()["mode"] == "production"
    job = stack.train("3", tag="podman")
    version = stack.wait_status("3", "succeeded", job_id=job["job_id"])["version"]
    assert stack.predict("3")["model_version"] == version
    hosts = stack.exec("cat", "/etc/hosts").stdout
    assert f"{host_address()}\thost.docker.internal" in hosts or "host.docker.internal" in hosts, hosts


def test_demo_backend_builds_and_serves_as_an_image(compose, stacks, tmp_path):
    out = tmp_path / "demo"
    port = str(free_port())
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out), "--port", port],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "LABEL_STUDIO_"))},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    backend = out / "my_backend"
    first = (backend / "requirements.txt").read_text().splitlines()[0]
    assert first.startswith("./vendor/lsml_runtime-") and first.endswith(".whl"), first
    stack = stacks(backend, compose)
    try:
        # the demo answers python_version's default; the stand-in base image here is 3.11
        stack.run("build", "--build-arg", "PYTHON_VERSION=3.11", timeout=900)
        stack.up()
        assert stack.get("/health").json()["mode"] == "production"
    finally:
        stack.down()
        subprocess.run(["docker", "rmi", "-f", "my_backend:latest"], capture_output=True, timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
