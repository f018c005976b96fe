"""label_studio_ml.launch on its own: where a model's constructor arguments come from.

``config.json`` next to the script, then what the code passes, then ``start --with``; and the old
``init_app`` keywords (``init_app`` lives in ``api`` next to ``create_app``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from label_studio_ml.api import init_app
from label_studio_ml.exceptions import LabelStudioMLError
from label_studio_ml.launch import (
    CONFIG_FILE,
    launching,
    model_directory,
    model_kwargs_for,
    parse_kwargs,
    read_config_file,
)
from label_studio_ml.model import build_model
from label_studio_ml.settings import SettingsError

from .conftest import load_class

NARROW = """
from label_studio_ml.model import LabelStudioMLBase

class Narrow(LabelStudioMLBase):
    def __init__(self, project_id=None, label_config=None, threshold=0.1):
        super().__init__(project_id=project_id, label_config=label_config)
        self.threshold = threshold

class Wide(LabelStudioMLBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = dict(kwargs)
"""


@pytest.fixture
def script_dir(tmp_path: Path) -> Path:
    return tmp_path / "backend"


@pytest.fixture
def narrow(script_dir: Path) -> type:
    return load_class(script_dir, NARROW, "Narrow")


# ------------------------------------------------------------------ --with
@pytest.mark.parametrize(
    "pairs, expected",
    [
        (("a=1",), {"a": 1}),
        (("a=-2", "b=0.5", "c=1e3"), {"a": -2, "b": 0.5, "c": 1000.0}),
        (("on=true", "off=FALSE", "word=True"), {"on": True, "off": False, "word": True}),
        (("name=resnet", "empty="), {"name": "resnet", "empty": ""}),
        (("url=http://x/?a=b",), {"url": "http://x/?a=b"}),  # the first '=' splits
        (("a=1", "a=2"), {"a": 2}),
        (("flag=yes",), {"flag": "yes"}),  # JSON's true/false only: "yes" stays a string
        ((), {}),
    ],
)
def test_parse_kwargs(pairs, expected):
    result = parse_kwargs(pairs)
    assert result == expected
    assert [type(v) for v in result.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("pair", ["novalue", "=1", "1a=2", "a-b=3", "a b=4"])
def test_parse_kwargs_refuses_what_is_not_key_equals_value(pair):
    with pytest.raises(ValueError, match=f"--with {pair!r} is not KEY=VALUE"):
        parse_kwargs((pair,))


# ------------------------------------------------------------------ config.json
def test_model_directory_is_the_scripts_directory(narrow, script_dir):
    assert model_directory(narrow) == script_dir.resolve()
    assert model_directory(int) is None, "built-in code has no directory"


def test_read_config_file(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text(json.dumps({"threshold": 0.7, "labels": ["a"]}))
    assert read_config_file(path) == {"threshold": 0.7, "labels": ["a"]}


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "is not readable JSON"),
        ("[1, 2]", "must hold a JSON object of model arguments"),
        ('"text"', "must hold a JSON object of model arguments"),
        (b"\xff\xfe", "is not readable JSON"),
    ],
)
def test_a_bad_config_file_is_a_settings_error_naming_it(tmp_path, content, needle):
    path = tmp_path / CONFIG_FILE
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SettingsError, match=needle) as caught:
        read_config_file(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, LabelStudioMLError)


def test_model_kwargs_merge_config_then_code_then_with(narrow, script_dir):
    assert model_kwargs_for(narrow) == {}
    assert model_kwargs_for(narrow, {"a": 1}) == {"a": 1}
    (script_dir / CONFIG_FILE).write_text(json.dumps({"a": "file", "b": "file", "c": "file"}))
    assert model_kwargs_for(narrow) == {"a": "file", "b": "file", "c": "file"}
    assert model_kwargs_for(narrow, {"b": "code", "c": "code"}) == {"a": "file", "b": "code", "c": "code"}
    with launching({"c": "with"}):
        assert model_kwargs_for(narrow, {"b": "code"}) == {"a": "file", "b": "code", "c": "with"}
        with launching({"d": 1}):
            inner = model_kwargs_for(narrow)
            assert inner["d"] == 1 and inner["c"] == "file", "an inner block replaces the outer one"
        assert model_kwargs_for(narrow)["c"] == "with", "the inner block restores the outer one"
    assert model_kwargs_for(narrow)["c"] == "file", "--with ends with its block"


def test_launching_copies_its_arguments(narrow):
    given = {"a": 1}
    with launching(given):
        given["a"] = 2
        assert model_kwargs_for(narrow) == {"a": 1}


def test_a_broken_config_file_stops_the_launch(narrow, script_dir):
    (script_dir / CONFIG_FILE).write_text("[]")
    with pytest.raises(SettingsError, match=CONFIG_FILE):
        model_kwargs_for(narrow)


def test_the_model_gets_only_the_arguments_its_init_accepts(narrow, script_dir):
    """The launcher's arguments reach ``__init__`` filtered by its signature (all with **kwargs)."""
    wide = sys.modules[narrow.__module__].Wide
    (script_dir / CONFIG_FILE).write_text(json.dumps({"threshold": 0.9, "unknown": "x"}))
    kwargs = model_kwargs_for(narrow)
    model = build_model(narrow, project_id="3", **kwargs)
    assert model.threshold == 0.9 and model.project_id == "3"
    assert model.extra_kwargs["unknown"] == "x", "the rest reaches the base class (old scripts' attributes)"
    assert build_model(wide, project_id="3", **kwargs).seen["unknown"] == "x"
    with pytest.raises(TypeError):
        narrow(unknown="x")  # what the filter spares the user


# ------------------------------------------------------------------ the old init_app
def test_init_app_takes_the_old_keyword_names(tmp_path, narrow, monkeypatch):
    for name in ("REDIS_URL", "REDIS_HOST", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    app = init_app(
        narrow,
        model_dir=str(tmp_path / "old"),
        redis_queue="q1",
        redis_host="cache",
        redis_port=6380,
        basic_auth_user="u",
        basic_auth_pass="p4ss-word",
        threshold=0.4,
    )
    settings = app.extensions["lsml"].settings
    assert settings.model_dir == str(tmp_path / "old") and settings.rq_queue_name == "q1"
    assert settings.redis_url == "redis://cache:6380/0" and settings.production
    assert (settings.basic_auth_user, settings.basic_auth_pass) == ("u", "p4ss-word")
    assert app.extensions["lsml"].registry.model_kwargs == {"threshold": 0.4}


def test_init_app_use_redis_false_and_an_environment_redis_url_win_over_redis_host(
    tmp_path, narrow, monkeypatch
):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_HOST", raising=False)
    app = init_app(narrow, model_dir=str(tmp_path), redis_host="cache", use_redis=False)
    assert app.extensions["lsml"].settings.redis_url is None
    assert app.extensions["lsml"].registry.model_kwargs == {}, "old keywords never reach the model"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    app = init_app(narrow, model_dir=str(tmp_path), redis_host="cache", redis_port=1)
    assert app.extensions["lsml"].settings.redis_url == "redis://127.0.0.1:6379/9"


def test_init_app_without_keywords_is_create_app_from_the_environment(tmp_path, narrow, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "env"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_HOST", raising=False)
    app = init_app(model_class=narrow)
    assert app.extensions["lsml"].settings.model_dir == str(tmp_path / "env")
    assert app.test_client().get("/health").json["model_class"] == "Narrow"


def test_old_imports_of_init_app_and_parse_kwargs_keep_working():
    import label_studio_ml
    from label_studio_ml import api, launch

    assert label_studio_ml.init_app is api.init_app is init_app
    assert api.parse_kwargs is launch.parse_kwargs
