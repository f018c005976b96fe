"""The current ML SDK's public surface, name by name, on the runtime (served over real HTTP).

Names and behaviour follow ``label_studio_ml`` at ``HumanSignal/label-studio-ml-backend`` HEAD;
docs/runtime.md has the table this file checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from label_studio_ml import model as model_module
from label_studio_ml import process, utils
from label_studio_ml.api import create_app, init_app
from label_studio_ml.label_config import SDK_REQUIREMENT
from label_studio_ml.model import LabelStudioMLBase, ModelResponse
from label_studio_ml.response import dumps, normalize_predictions
from label_studio_ml.settings import Settings

from ..support import LiveServer
from .conftest import DATA, PROJECT, SCRIPTS, label_config_of

TEXT_CONFIG = label_config_of("interactive_keywords")

# Every public name of upstream's label_studio_ml.model / utils / response / api.
UPSTREAM_MODEL_METHODS = [
    "setup",
    "use_label_config",
    "set_extra_params",
    "extra_params",
    "get",
    "set",
    "has",
    "label_config",
    "parsed_label_config",
    "model_version",
    "bump_model_version",
    "predict",
    "process_event",
    "fit",
    "get_label_studio_access_token",
    "get_local_path",
    "preload_task_data",
    "get_first_tag_occurence",
    "build_label_map",
    "label_interface",
]
UPSTREAM_MODEL_MODULE = [
    "LabelStudioMLBase",
    "ModelResponse",
    "predict_fn",
    "update_fn",
    "get_all_classes_inherited_LabelStudioMLBase",
]
UPSTREAM_UTILS = [
    "DATA_UNDEFINED_NAME",
    "get_single_tag_keys",
    "get_first_tag_keys",
    "is_skipped",
    "get_choice",
    "get_image_local_path",
    "get_image_size",
    "InMemoryLRUDictCache",
    "match_labels",
    "is_valid_url",
    "is_preload_needed",
    "compare_nested_structures",
    "get_env",
    "get_local_path",
]


def test_every_upstream_public_name_exists():
    instance = Interfaced(label_config=TEXT_CONFIG)  # some are instance attributes
    missing = [n for n in UPSTREAM_MODEL_METHODS if not hasattr(instance, n)]
    missing += [n for n in UPSTREAM_MODEL_MODULE if not hasattr(model_module, n)]
    missing += [n for n in UPSTREAM_UTILS if not hasattr(utils, n)]
    assert missing == []
    assert set(UPSTREAM_UTILS) <= set(utils.__all__)
    assert utils.DATA_UNDEFINED_NAME == "$undefined$"
    assert "ANNOTATION_DELETED" in LabelStudioMLBase.TRAIN_EVENTS
    from label_studio_ml import response

    assert ModelResponse is response.ModelResponse
    for name in ("ModelResponse", "PredictionValue", "SingleTaskPredictions"):
        assert hasattr(response, name), name
    assert callable(init_app)


SEEN_INTERFACES = []  # keeps every interface alive, so distinct ones have distinct ids


class Interfaced(LabelStudioMLBase):
    """Answers with the id of the LabelInterface it used and the labels it read from it."""

    def predict(self, tasks, context=None, **kwargs):
        interface = self.label_interface
        SEEN_INTERFACES.append(interface)
        from_name, to_name, value = interface.get_first_tag_occurence("Labels", "Text")
        labels = interface.get_control(from_name).labels
        return [{"result": [], "score": 0, "interface": id(interface), "labels": labels} for _ in tasks]


@pytest.fixture
def live(tmp_path):
    servers = []

    def _live(model_class):
        server = LiveServer(create_app(model_class, settings=Settings(model_dir=str(tmp_path / "models"))))
        servers.append(server)
        return server

    yield _live
    for server in servers:
        server.close()


def _predict(server, tasks, config=TEXT_CONFIG, context=None, project=PROJECT):
    body = {"tasks": tasks, "project": project, "label_config": config, "params": {"context": context}}
    return server.post("/predict", json=body)


def test_label_interface_is_built_once_per_live_model(live):
    server = live(Interfaced)
    first = _predict(server, [{"id": 1, "data": {"text": "a"}}])
    second = _predict(server, [{"id": 2, "data": {"text": "b"}}, {"id": 3, "data": {"text": "c"}}])
    assert first.status_code == second.status_code == 200, first.text + second.text
    ids = {p["interface"] for p in first.json()["results"] + second.json()["results"]}
    assert len(ids) == 1  # one LabelInterface for every request of this model
    assert first.json()["results"][0]["labels"] == ["PER", "ORG", "LOC"]
    # another labeling config: the project gets a new model, with its own interface
    other = TEXT_CONFIG.replace('<Label value="LOC" background="orange"/>', "")
    third = _predict(server, [{"id": 4, "data": {"text": "d"}}], config=other)
    assert third.json()["results"][0]["labels"] == ["PER", "ORG"]
    assert third.json()["results"][0]["interface"] not in ids


def test_label_interface_without_the_sdk_names_the_package(live, monkeypatch):
    # None in sys.modules is how Python spells "this module cannot be imported"
    monkeypatch.setitem(sys.modules, "label_studio_sdk", None)
    monkeypatch.setitem(sys.modules, "label_studio_sdk.label_interface", None)
    server = live(Interfaced)
    response = _predict(server, [{"id": 1, "data": {"text": "a"}}])
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("Interfaced.predict raised SDKNotInstalledError: "), detail
    expected = (  # as docs/runtime.md quotes it
        r"self\.label_interface needs the label-studio-sdk package \(.*\); install it with pip install "
        r"'label-studio-sdk>=2\.1,<3' \(or pip install 'lsml-runtime\[sdk\]'\)"
    )
    assert re.fullmatch(expected, detail.split(": ", 1)[1]), detail
    assert SDK_REQUIREMENT == "label-studio-sdk>=2.1,<3"
    with pytest.raises(ImportError, match="pip install"):
        _ = Interfaced(label_config=TEXT_CONFIG).label_interface


def test_label_interface_without_a_config_says_so():
    with pytest.raises(ValueError, match="labeling config"):
        _ = Interfaced().label_interface


def test_importing_the_runtime_does_not_import_the_sdk():
    code = textwrap.dedent(
        """
        import sys
        from label_studio_ml.model import LabelStudioMLBase
        from label_studio_ml.api import create_app
        from label_studio_ml import utils, response
        class M(LabelStudioMLBase):
            def predict(self, tasks, **kwargs):
                return [{"result": []} for _ in tasks]
        m = M(label_config='<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="A"/></Choices></View>')
        m.get_first_tag_occurence("Choices", "Text")
        m.build_label_map("c", ["a"])
        print(sorted(k for k in sys.modules if k.startswith(("label_studio_sdk", "pydantic"))))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_preload_task_data(tmp_path, monkeypatch):
    root = tmp_path / "files"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "a.txt").write_text("from local storage", encoding="utf-8")
    local = tmp_path / "b.txt"
    local.write_text("from a path", encoding="utf-8")
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(root))
    model = Interfaced(label_config=TEXT_CONFIG)
    task = {
        "id": 5,
        "data": {
            "doc": "/data/local-files/?d=notes/a.txt",
            "pages": [str(local), "plain words"],
            "meta": {"n": 3, "inner": str(local)},
            "missing": None,
        },
    }
    data = model.preload_task_data(task, task["data"])
    assert data is task["data"]  # dicts are filled in place, as upstream does
    assert data == {
        "doc": "from local storage",
        "pages": ["from a path", "plain words"],
        "meta": {"n": 3, "inner": "from a path"},
        "missing": None,
    }
    assert model.preload_task_data(task, str(local), read_file=False) == str(local)
    assert model.preload_task_data(task, None) is None
    assert model.preload_task_data(task, "just text") == "just text"


def test_versions_tokens_and_extra_params(tmp_path, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_ACCESS_TOKEN", raising=False)
    model = Interfaced(label_config=TEXT_CONFIG, model_dir=str(tmp_path), access_token="from-setup")
    model.set("model_version", "1.4.2")
    assert model.bump_model_version() == "1.5.0" and model.get("model_version") == "1.5.0"
    model.set("model_version", "my-model")
    with pytest.raises(ValueError, match="X.Y.Z"):
        model.bump_model_version()
    assert model.get_label_studio_access_token() == "from-setup"
    # the environment is read once per instance (Settings), and a key needs its URL
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:8080")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "configured")
    assert model.get_label_studio_access_token() == "from-setup"
    configured = Interfaced(label_config=TEXT_CONFIG, model_dir=str(tmp_path), access_token="from-setup")
    assert configured.get_label_studio_access_token() == "configured"
    model.set_extra_params('{"watch": ["x"]}')
    assert model.extra_params == {"watch": ["x"]}
    model.use_label_config(label_config_of("preload_reader"))
    assert list(model.parsed_label_config) == ["flag"]
    assert model.label_interface.get_first_tag_occurence("Choices", "Text") == ("flag", "doc", "doc")


def test_predict_fn_and_update_fn_decorators(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(process.functions, "predict", None)  # the process's registrations
    monkeypatch.setattr(process.functions, "update", None)

    @model_module.predict_fn
    def predict(tasks, context, helper, **kwargs):
        calls.append(("predict", helper.project_id, context))
        return [{"result": [], "score": 1} for _ in tasks]

    @model_module.update_fn
    def update(event, data, helper, **kwargs):
        calls.append(("update", event, sorted(data)))

    class FunctionStyle(LabelStudioMLBase):
        pass

    assert model_module.fit_style(FunctionStyle) == "current"
    model = FunctionStyle(project_id="9")
    assert model.predict([{"data": {}}], context={"x": 1}) == [{"result": [], "score": 1}]
    model.fit("START_TRAINING", {"project": {"id": 9}})
    assert calls == [("predict", "9", {"x": 1}), ("update", "START_TRAINING", ["project"])]


def test_get_all_classes_inherited(tmp_path):
    names = model_module.get_all_classes_inherited_LabelStudioMLBase(str(DATA / "preload_reader.py"))
    assert names == ["WatchWords"]


def test_utils_helpers(tmp_path):
    parsed = Interfaced(label_config=TEXT_CONFIG).parsed_label_config
    assert utils.get_first_tag_keys(parsed, "Labels", "Text")[0] == "label"
    assert utils.get_first_tag_keys(parsed, "Choices", "Text") == (None, None)
    assert utils.match_labels("posi\nnegative!", ["Positive", "Negative"]) == ["Positive", "Negative"]
    assert utils.is_valid_url("https://a.b/c") and not utils.is_valid_url("/data/upload/1/a.png")
    for value in (
        "upload/1/a.png",
        "/data/upload/1/a.png",
        "/data/local-files/?d=a.txt",
        "s3://b/k",
        "gs://b/k",
    ):
        assert utils.is_preload_needed(value), value
    assert utils.is_preload_needed(str(tmp_path)) and not utils.is_preload_needed("some words")
    cache = utils.InMemoryLRUDictCache(capacity=2)
    for key in "abc":
        cache.put(key, key.upper())
    assert "a" not in cache and cache.get("c") == "C" and cache.get("a") is None
    utils.compare_nested_structures({"a": [1.0, {"b": "x"}]}, {"a": [1.00001, {"b": "x"}]})
    with pytest.raises(AssertionError, match="Mismatch at .a"):
        utils.compare_nested_structures({"a": [1.0]}, {"a": [2.0]})


def test_result_shapes_upstream_accepts():
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.label_interface.objects import PredictionValue

    control = LabelInterface(config=label_config_of("multi_predictions")).get_control("aircraft")
    region = control.label(["Boeing"])
    wire = {"from_name": "aircraft", "to_name": "image", "type": "choices", "value": {"choices": ["Boeing"]}}
    shapes = {
        "dicts": [{"result": [wire], "score": 0.5}],
        "model_response": ModelResponse(predictions=[{"result": [wire], "score": 0.5}]),
        "sdk_prediction_value": ModelResponse(predictions=[PredictionValue(result=[region], score=0.5)]),
        "sdk_region_in_a_dict": [{"result": [region], "score": 0.5}],
    }
    for name, raw in shapes.items():
        entries, _, count = normalize_predictions(raw, 1, "v7")
        sent = json.loads(dumps(entries))
        assert count == 1, name
        result = sent[0]["result"][0]
        assert {k: result[k] for k in wire} == wire, (name, sent)
        assert sent[0]["model_version"] == "v7" and sent[0]["score"] == 0.5, name
    several = ModelResponse(predictions=[[PredictionValue(result=[region]), {"result": [], "score": 0.1}]])
    entries, _, count = normalize_predictions(several, 1, "v7")
    assert count == 2 and len(entries[0]) == 2
    for empty in (ModelResponse(predictions=[]), [], {"results": []}):
        assert normalize_predictions(empty, 3, "v7") == ([[], [], []], None, 0)


def test_fit_gets_the_webhook_payload_label_studio_sends(live, tmp_path):
    """``fit(event, data)`` sees Label Studio 1.23.2's ANNOTATION_CREATED body minus ``action``."""
    seen = []

    class Recorder(LabelStudioMLBase):
        def predict(self, tasks, context=None, **kwargs):
            return [{"result": []} for _ in tasks]

        def fit(self, event, data, **kwargs):
            seen.append((event, data))

    server = live(Recorder)
    annotation = {
        "id": 31,
        "result": [{"from_name": "label", "value": {"labels": ["ORG"]}}],
        "task": 8,
        "project": 3,
    }
    task = {"id": 8, "data": {"text": "Acme"}, "project": 3, "allow_skip": True}
    project = {"id": 3, "title": "p", "label_config": TEXT_CONFIG, "model_version": "backend title"}
    body = {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task, "project": project}
    response = server.post("/webhook", json=body)
    assert response.status_code == 201, response.text
    assert server.backend.trainer.wait_idle(30)
    assert seen == [("ANNOTATION_CREATED", {"annotation": annotation, "task": task, "project": project})]


def test_upstream_init_app_with_the_test_client(tmp_path, monkeypatch):
    """What upstream's test_api.py files do: ``init_app(model_class=...)``, Flask's test client."""
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    app = init_app(model_class=Interfaced)
    app.config["TESTING"] = True
    with app.test_client() as client:
        response = client.post(
            "/predict",
            data=json.dumps({"tasks": [{"data": {"text": "x"}}], "label_config": TEXT_CONFIG}),
            content_type="application/json",
        )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["results"][0]["labels"] == ["PER", "ORG", "LOC"]


def test_scripts_table_matches_the_data_dir():
    assert {p.stem for p in DATA.glob("*.py")} == set(SCRIPTS)


def test_one_sdk_range_everywhere(repo_root):
    """The hook's pin, the runtime's error message and the [sdk] extra name the same range."""
    hook = (repo_root / "hooks" / "lsml_hooklib.py").read_text(encoding="utf-8")
    assert f'SDK_REQUIREMENT = "{SDK_REQUIREMENT}"' in hook
    pyproject = (repo_root / "runtime" / "pyproject.toml").read_text(encoding="utf-8")
    assert f"sdk = ['{SDK_REQUIREMENT};" in pyproject
    dev = (repo_root / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "label-studio-sdk==2.1.2" in dev  # what Label Studio 1.23.2 installs
