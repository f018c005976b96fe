"""A real Label Studio 1.23.2 on the host drives the container stack, as the generated README
says to set it up: ``LABEL_STUDIO_URL=http://host.docker.internal:<port>`` and
``LABEL_STUDIO_API_KEY=<token>`` in ``.env``.

Label Studio listens on 0.0.0.0 (the container reaches it through the host gateway); the tests
talk to it and to the backend on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from .conftest import stack_wait

pytestmark = pytest.mark.slow

CONNECTED = "CO"
ERROR = "ER"


@pytest.fixture(scope="module")
def ls(host_label_studio):
    return host_label_studio


def connected(ls, ml_id, stack, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        ml = ls.ml(ml_id, extra_logs=stack.logs)
        if ml["state"] == CONNECTED:
            return ml
        if time.monotonic() > deadline:
            raise AssertionError(
                f"connection {ml_id} is {ml['state']!r}: {ml.get('error_message')}\n{stack.logs()}"
            )
        time.sleep(0.5)


def choice_of(prediction):
    (region,) = prediction["result"]
    (label,) = region["value"]["choices"]
    return label


def test_label_studio_on_the_host_trains_the_container(ls, ls_support, compose, images, stacks):
    port = urlsplit(ls.url).port
    backend = images.backend("majority_model.py", compose)
    # the two lines the generated README gives for a Label Studio on the same host, as given
    # (with this Label Studio's port and token), and the way it says to start Label Studio
    readme = (backend / "README.md").read_text()
    lines = [
        line
        for line in readme.splitlines()
        if line.startswith(("LABEL_STUDIO_URL=", "LABEL_STUDIO_API_KEY="))
    ]
    assert lines == ["LABEL_STUDIO_URL=http://host.docker.internal:8080", "LABEL_STUDIO_API_KEY=<your token>"]
    assert "label-studio start --internal-host 0.0.0.0" in readme
    env = dict(
        line.replace(":8080", f":{port}").replace("<your token>", ls.token).split("=", 1) for line in lines
    )
    stack = stacks(backend, compose, env=env)
    stack.up()
    project = ls.create_project(f"container-{stack.project}", ls_support.image_tasks(4))
    pid = project["id"]
    ml = ls.connect(pid, stack.url, "container", is_interactive=True, extra_logs=stack.logs)
    ml = connected(ls, ml["id"], stack)
    initial = ml["model_version"]

    ls.retrieve_predictions(pid, extra_logs=stack.logs)
    preds = ls.predictions(pid)
    assert len(preds) == 4 and {choice_of(p) for p in preds} == {"Boeing"}, preds

    tasks = ls.tasks(pid)
    for task in tasks[:3]:
        ls.annotate(task["id"], "Airbus")
    wait_idle(stack, pid)
    before = connected(ls, ml["id"], stack)["model_version"]

    ls.call("POST", f"/api/ml/{ml['id']}/train", extra_logs=stack.logs)  # Start Training

    def new_version():
        current = ls.ml(ml["id"], extra_logs=stack.logs)
        assert current["state"] != ERROR, f"{current}\n{stack.logs()}"
        return current["model_version"] if current["model_version"] not in (before, initial) else None

    trained = stack_wait(
        new_version, 90, "Label Studio to see the version trained in the container", stack, interval=1.0
    )
    status = wait_idle(stack, pid)
    assert status["status"] == "succeeded" and not status.get("error"), status
    # the worker fetched the annotations from Label Studio: 3 x Airbus
    assert status["versions"] and trained in status["versions"], status

    ls.retrieve_predictions(pid, extra_logs=stack.logs)
    latest = [p for p in ls.predictions(pid) if p["model_version"] == trained]
    assert len(latest) == 4 and {choice_of(p) for p in latest} == {"Airbus"}, latest
    ls.retrieve_predictions(pid, extra_logs=stack.logs)
    counts = Counter((p["task"], p["model_version"]) for p in ls.predictions(pid))
    assert max(counts.values()) == 1, counts

    listed = ls.call("GET", f"/api/ml/{ml['id']}/versions", extra_logs=stack.logs)
    assert trained in listed["versions"] and set(status["versions"]) <= set(listed["versions"]), listed
    print(f"container + host Label Studio: initial {initial}, trained {trained}, listed {listed['versions']}")


def test_loopback_label_studio_url_fails_naming_the_fix(ls, ls_support, compose, images, stacks):
    """LABEL_STUDIO_URL=http://localhost:<port>, as for a backend outside a container: inside
    it that is the container itself. The run fails with the lines to set; the key is not shown.

    (Not via /setup's hostname: /setup's hostname and token live in the uWSGI process that
    received /setup, so with two processes the webhook's process may not know them and the run
    fails earlier with "a URL and an API key missing".)"""
    port = urlsplit(ls.url).port
    env = {"LABEL_STUDIO_URL": f"http://localhost:{port}", "LABEL_STUDIO_API_KEY": ls.token}
    stack = stacks(images.backend("majority_model.py", compose), compose, env=env)
    stack.up()
    project = ls.create_project(f"loopback-{stack.project}", ls_support.image_tasks(2))
    pid = project["id"]
    ml = connected(ls, ls.connect(pid, stack.url, "loopback", extra_logs=stack.logs)["id"], stack)
    ls.annotate(ls.tasks(pid)[0]["id"], "Airbus")
    ls.call("POST", f"/api/ml/{ml['id']}/train", extra_logs=stack.logs)
    status = stack_wait(
        lambda: (s := stack.training(str(pid))).get("status") == "failed" and s,
        90,
        "the run to fail",
        stack,
        interval=1.0,
    )
    error = status["error"]
    assert f"cannot reach http://localhost:{port}/" in error, error
    assert f"LABEL_STUDIO_URL=http://host.docker.internal:{port}" in error, error
    assert "LABEL_STUDIO_API_KEY" in error, error
    assert ls.token not in error and ls.token not in stack.compose_logs()


def wait_idle(stack, pid, timeout=120):
    return stack_wait(
        lambda: (s := stack.training(str(pid))).get("status") not in ("queued", "running") and s,
        timeout,
        f"project {pid}'s training to finish",
        stack,
        interval=1.0,
    )
