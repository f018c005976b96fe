"""Basic auth, and configuration errors that name the variable."""

from __future__ import annotations

import pytest
from label_studio_ml.settings import Settings, SettingsError

from .conftest import SEED_CONFIG

AUTH = ("ls", "s3cret")


def test_basic_auth_protects_every_route(serve, seed_class):
    server = serve(seed_class, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
    for method, path in [
        ("get", "/health"),
        ("post", "/setup"),
        ("post", "/predict"),
        ("get", "/versions"),
        ("get", "/training"),
        ("get", "/metrics"),
        ("post", "/train"),
    ]:
        r = getattr(server, method)(path, json={})
        assert r.status_code == 401, path
        assert r.json()["error"] == "unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    wrong = server.get("/health", auth=("ls", "nope"))
    assert wrong.status_code == 401
    ok = server.post("/setup", json={"project": "12.1", "schema": SEED_CONFIG}, auth=AUTH)
    assert ok.status_code == 200
    assert (
        server.post("/predict", json={"tasks": [{"id": 1}], "project": "12.1"}, auth=AUTH).status_code == 200
    )


def test_unauthenticated_webhook_may_only_enqueue_for_known_projects(serve, seed_class):
    server = serve(seed_class, basic_auth_user=AUTH[0], basic_auth_pass=AUTH[1])
    # unknown project: nothing is created
    r = server.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 99}})
    assert r.status_code == 404
    assert not server.app.extensions["lsml"].store.has_project("99")
    # other events are acknowledged without credentials (Label Studio ignores the answer)
    r = server.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 99}})
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    # once Label Studio set the project up (with credentials), its webhooks train
    server.post("/setup", json={"project": "12.1", "schema": SEED_CONFIG}, auth=AUTH)
    r = server.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 12}})
    assert r.status_code in (200, 201) and r.json()["status"] in ("queued", "coalesced")
    # wrong credentials are refused outright
    r = server.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 12}}, auth=("ls", "bad"))
    assert r.status_code == 401


def test_settings_from_env_defaults_and_aliases():
    s = Settings.from_env({})
    assert s.model_dir == "./data/models" and not s.production and s.rq_job_timeout == 86400
    s = Settings.from_env(
        {
            "REDIS_HOST": "redis",
            "REDIS_PORT": "6380",
            "LABEL_STUDIO_HOST": "http://ls:8080/",
            "LABEL_STUDIO_ACCESS_TOKEN": "tok-SECRET-9",
        }
    )
    assert s.redis_url == "redis://redis:6380/0" and s.production
    assert s.label_studio_url == "http://ls:8080" and s.label_studio_api_key == "tok-SECRET-9"
    assert "tok-SECRET-9" not in repr(s), "the key is not in the repr"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RQ_JOB_TIMEOUT": "soon"}, "RQ_JOB_TIMEOUT='soon'"),
        ({"RQ_JOB_TIMEOUT": "-5"}, "positive whole number"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL="),
        ({"BASIC_AUTH_USER": "u"}, "BASIC_AUTH_PASS is not set"),
        ({"LABEL_STUDIO_URL": "ls:8080"}, "LABEL_STUDIO_URL="),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL="),
        ({"RQ_QUEUE_NAME": "a b"}, "RQ_QUEUE_NAME="),
        ({"MAX_REQUEST_MB": "0"}, "MAX_REQUEST_MB="),
        (
            {"LABEL_STUDIO_API_KEY": "k"},
            "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: set LABEL_STUDIO_URL",
        ),
        ({"LABEL_STUDIO_ACCESS_TOKEN": "k", "HOSTNAME": "http://x"}, "set LABEL_STUDIO_URL"),
    ],
)
def test_bad_settings_name_the_variable(env, needle):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert needle in str(info.value)
