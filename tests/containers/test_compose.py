"""``docker-compose up`` of a baked backend, as generated, on the Docker engine.

One stack serves the tests of this module in file order (its lifecycle: up, train, restart,
down + up, stop mid-run, a worker killed mid-fit); the tests after them start stacks of their
own (checkouts owned by other uids, Compose v2, Podman).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import List

import pytest

from .conftest import stack_wait

pytestmark = pytest.mark.slow

GRACE = 40  # stop_grace_period in the generated docker-compose.yml


def children(pid: int) -> List[int]:
    out: List[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def served(stack, project: str, version: str) -> dict:
    """The first /predict answer on ``version`` (every uWSGI process looks at LATEST per request)."""
    return stack_wait(
        lambda: (body := stack.predict(project)) and body["model_version"] == version and body,
        10,
        f"/predict of project {project} on {version}",
        stack,
    )


@pytest.fixture(scope="module")
def life(compose, images, module_stacks):
    stack = module_stacks(images.backend("container_model.py", compose), compose)
    seconds = stack.up()
    print(f"{compose.name}: compose up -> /health 200 in {seconds:.1f} s")
    return stack


def test_up_as_generated_healthy_on_loopback_as_the_checkout_owner(life):
    assert life.wait_healthy() == "healthy"  # the image's HEALTHCHECK, run by the engine
    health = life.get("/health").json()
    assert health["mode"] == "production" and health["status"] == "UP", health
    # published on 127.0.0.1 only (BIND_ADDRESS in .env)
    published = life.engine("port", life.container()).stdout
    assert f"127.0.0.1:{life.port}" in published and "0.0.0.0" not in published, published
    # the checkout is root's: supervisord runs as uid 1000, not as root
    status = life.exec("cat", "/proc/1/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == ["1000"] * 4, status
    # every program started (supervisord reopens the engine's log pipes as that user)
    supervisord_log = (life.dir / "logs" / "supervisord.log").read_text()
    assert "spawnerr" not in supervisord_log and "spawned: 'fatal'" in supervisord_log, supervisord_log
    # host.docker.internal names the host (extra_hosts: host-gateway)
    resolved = life.exec("python", "-c", "import socket; print(socket.gethostbyname('host.docker.internal'))")
    assert resolved.stdout.strip().count(".") == 3, resolved


def test_predict_train_new_version_and_logs_in_both_places(life):
    before = life.predict("1")
    assert before["results"][0]["result"][0]["value"]["choices"] == ["pos"]
    job = life.train("1", tag="first")
    done = life.wait_status("1", "succeeded", job_id=job["job_id"])
    version = done["version"]
    body = served(life, "1", version)
    assert body["results"][0]["result"][0]["value"]["choices"] == ["neg"]
    assert body["results"][0]["train_output"]["tag"] == "first"
    assert (life.dir / "data" / "models" / "1" / "versions" / version).is_dir()

    # a failing run: the last good version keeps serving, the traceback is in rq.log and in
    # `compose logs`, like the API's lines in uwsgi.log
    failed = life.train("1", fail="boom-in-container")
    status = life.wait_status("1", "failed", job_id=failed["job_id"])
    assert "boom-in-container" in status["error"] and status["served_version"] == version
    rq_log = (life.dir / "logs" / "rq.log").read_text()
    assert "Traceback" in rq_log and "RuntimeError: fit failed on purpose: boom-in-container" in rq_log
    uwsgi_line = next(
        line for line in (life.dir / "logs" / "uwsgi.log").read_text().splitlines() if "POST /webhook" in line
    )

    def in_compose_logs():
        logs = life.compose_logs()
        return (
            "Traceback" in logs
            and "RuntimeError: fit failed on purpose: boom-in-container" in logs
            and uwsgi_line.strip() in logs
        )

    stack_wait(in_compose_logs, 15, "rq.log's traceback and uwsgi.log's lines in compose logs", life)


def test_restart_and_down_up_keep_every_version(life):
    job = life.train("1", tag="second")
    latest = life.wait_status("1", "succeeded", job_id=job["job_id"])["version"]
    versions = life.versions("1")
    assert len(versions) >= 2 and latest in versions, versions

    life.run("restart")
    life.wait_up()
    assert life.versions("1") == versions
    assert served(life, "1", latest)["results"][0]["train_output"]["tag"] == "second"

    life.run("down")
    life.up()
    assert life.versions("1") == versions
    served(life, "1", latest)
    again = life.train("1", tag="after-down-up")
    assert life.wait_status("1", "succeeded", job_id=again["job_id"])["version"] not in versions


def test_stop_mid_run_ends_within_the_grace_period(life):
    good = life.training("1")["served_version"]
    job = life.train("1", fit_seconds=300, tag="stopped")
    life.wait_status("1", "running", job_id=job["job_id"])
    started = time.monotonic()
    life.run("stop", timeout=GRACE + 60)
    took = time.monotonic() - started
    container = life.container()
    state = life.engine("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", container).stdout
    print(f"compose stop with a run in progress: {took:.1f} s, exit code {state.split()[0]}")
    assert took < GRACE, f"compose stop took {took:.1f} s"
    assert state.split()[0] != "137", f"the engine had to SIGKILL the backend: {state}"

    life.run("start")
    life.wait_up()
    # the run that was stopped is reported failed (interrupted); the last good version serves
    status = life.wait_status("1", "failed", job_id=job["job_id"], timeout=60)
    assert status.get("interrupted") is True, status
    assert status["served_version"] == good
    served(life, "1", good)


def test_worker_killed_mid_fit_then_next_run_succeeds(life):
    good = life.training("1")["served_version"]
    job = life.train("1", fit_seconds=300, tag="doomed")
    life.wait_status("1", "running", job_id=job["job_id"])
    supervisord = int(life.engine("inspect", "--format", "{{.State.Pid}}", life.container()).stdout)
    worker = next(pid for pid in children(supervisord) if "label-studio-ml worker" in cmdline(pid))
    horses = children(worker)
    assert horses, "no work horse under the RQ worker"
    for pid in horses:
        os.kill(pid, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)

    failed = life.wait_status("1", "failed", job_id=job["job_id"], timeout=75)  # the run lock's TTL: 30 s
    assert failed["served_version"] == good, failed
    assert served(life, "1", good)
    retry = life.train("1", tag="after-kill")
    done = life.wait_status("1", "succeeded", job_id=retry["job_id"], timeout=60)
    assert served(life, "1", done["version"])["results"][0]["train_output"]["tag"] == "after-kill"


# ------------------------------------------------------------------ checkouts of other owners
@pytest.mark.parametrize("owner, runs_as", [(0, 1000), (1000, 1000), (4242, 4242)])
def test_checkout_of_any_owner_comes_up_and_trains(owner, runs_as, compose, images, stacks):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the checkout to another uid")
    stack = stacks(images.backend("container_model.py", compose), compose, owner=owner)
    stack.up()
    job = stack.train("5", tag=f"uid-{owner}")
    version = stack.wait_status("5", "succeeded", job_id=job["job_id"])["version"]
    stored = stack.dir / "data" / "models" / "5" / "versions" / version
    assert stored.stat().st_uid == runs_as, f"{stored} belongs to uid {stored.stat().st_uid}"
    for log in ("uwsgi.log", "rq.log", "supervisord.log"):
        assert (stack.dir / "logs" / log).stat().st_uid == runs_as
    assert served(stack, "5", version)["results"][0]["train_output"]["uid"] == runs_as
    restarts = stack.engine("inspect", "--format", "{{.RestartCount}}", stack.container()).stdout.strip()
    assert restarts == "0", f"the backend restarted {restarts} times\n{stack.logs()}"
