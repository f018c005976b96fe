"""A loopback Label Studio URL that fails inside a container: the error names the fix."""

from __future__ import annotations

import socket

import pytest
from label_studio_ml import lsclient
from label_studio_ml.lsclient import LabelStudioError, container_hint, fetch


@pytest.fixture
def in_container(tmp_path, monkeypatch):
    marker = tmp_path / ".dockerenv"
    marker.touch()
    monkeypatch.setattr(lsclient, "CONTAINER_MARKERS", (str(marker),))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: connections are refused


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.1.1", "[::1]"])
def test_loopback_url_in_a_container_names_host_docker_internal(in_container, host):
    hint = container_hint(f"http://{host}:8080/api/projects/1/export")
    assert "LABEL_STUDIO_URL=http://host.docker.internal:8080 and LABEL_STUDIO_API_KEY in .env" in hint
    assert "is the container itself" in hint


def test_other_hosts_and_hosts_outside_containers_get_no_hint(in_container, monkeypatch):
    assert container_hint("http://label-studio:8080/api") == ""
    assert container_hint("http://host.docker.internal:8080/api") == ""
    monkeypatch.setattr(lsclient, "CONTAINER_MARKERS", ("/nonexistent/.dockerenv",))
    assert container_hint("http://localhost:8080/api") == ""


def test_a_refused_fetch_in_a_container_says_what_to_set(in_container):
    port = closed_port()
    with pytest.raises(LabelStudioError) as caught:
        fetch(f"http://localhost:{port}/api/projects/1", {"Authorization": "Token secret-token"}, timeout=5)
    message = str(caught.value)
    assert message.startswith(f"cannot reach http://localhost:{port}/api/projects/1: ")
    assert f"LABEL_STUDIO_URL=http://host.docker.internal:{port}" in message
    assert "secret-token" not in message
