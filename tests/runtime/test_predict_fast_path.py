"""normalize_predictions: the fast path for plain dicts answers exactly as the general path does.

The fast path (``_plain_dicts``) checks a whole answer of plain dicts in C; anything else goes
through the general path, which converts objects and names the bad entry. Every case runs both
ways (the fast path switched off by monkeypatching) and the answers must be equal.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
from collections import OrderedDict

import pytest
from label_studio_ml import api, process, response
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import PredictionError, PredictionValue, normalize_predictions
from label_studio_ml.settings import Settings

REGION = {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["A"]}}

GOOD = {
    "plain": [{"result": [REGION], "score": 0.5} for _ in range(3)],
    "own version": [{"result": [], "model_version": "mine"}, {"result": [], "model_version": "v2"}],
    "same object twice": [{"result": []}] * 2,
    "tuple of dicts": ({"result": []}, {"result": [REGION]}),
    "dict subclass": [OrderedDict(result=[]), {"result": []}],
    "list subclass result": [{"result": type("L", (list,), {})([REGION])}],
    "several per task": [[{"result": []}, {"result": [REGION]}], {"result": []}],
    "no prediction for a task": [[], {"result": []}],
    "objects": [PredictionValue(result=[REGION], score=0.1), {"result": []}],
    "wrapped": {"predictions": [{"result": []}, {"result": []}]},
}

BAD = {
    "missing result": ([{"result": []}, {"score": 1}], "prediction 1 has no 'result' key"),
    "result not a list": ([{"result": []}, {"result": "x"}], "prediction 1: 'result' must be a list"),
    "result a tuple": ([{"result": ()}], "prediction 0: 'result' must be a list"),
    "not a dict": ([{"result": []}, 5], "prediction 1 is a int"),
    "wrong count": ([{"result": []}], "1 predictions for 2 tasks"),
    "none": (None, "returned None"),
}


def _general(monkeypatch, raw, n, version):
    with monkeypatch.context() as m:
        m.setattr(response, "_plain_dicts", lambda raw, version: None)
        return normalize_predictions(raw, n, version)


@pytest.mark.parametrize("case", sorted(GOOD))
@pytest.mark.parametrize("version", ["v2", None])
def test_fast_and_general_paths_agree(monkeypatch, case, version):
    raw = GOOD[case]
    n = len(raw["predictions"]) if isinstance(raw, dict) else len(raw)
    fast = normalize_predictions(copy.deepcopy(raw), n, version)
    general = _general(monkeypatch, copy.deepcopy(raw), n, version)
    assert fast == general
    results, foreign, count = fast
    assert len(results) == n
    if version is not None:
        for entry in results:
            for pred in entry if isinstance(entry, list) else [entry]:
                assert pred["model_version"] == version


def test_fast_path_stamps_the_version_and_reports_a_foreign_one():
    raw = [{"result": [], "model_version": "delorean"}, {"result": [REGION]}]
    results, foreign, count = normalize_predictions(raw, 2, "initial")
    assert [r["model_version"] for r in results] == ["initial", "initial"]
    assert foreign == "delorean" and count == 2
    assert normalize_predictions([{"result": [], "model_version": "initial"}], 1, "initial")[1] is None


def test_plain_dicts_take_the_fast_path():
    raw = [{"result": []} for _ in range(5)]
    assert response._plain_dicts(raw, "v") is not None
    assert response._plain_dicts([*raw, [{"result": []}]], "v") is None
    assert response._plain_dicts([*raw, {"score": 1}], "v") is None
    assert response._plain_dicts([*raw, PredictionValue()], "v") is None


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_answers_name_the_entry_on_either_path(monkeypatch, case):
    raw, needle = BAD[case]
    for run in (normalize_predictions, lambda r, n, v: _general(monkeypatch, r, n, v)):
        with pytest.raises(PredictionError, match=needle.replace("(", r"\(")):
            run(copy.deepcopy(raw), 2 if case == "wrong count" else len(raw or [0]), "v")


def test_the_first_app_freezes_startup_objects_once(tmp_path):
    """Full collections triggered by big batches skip what existed once the app was built."""

    class Model(LabelStudioMLBase):
        def predict(self, tasks, **kwargs):
            return [{"result": []} for _ in tasks]

    settings = dataclasses.replace(Settings.from_env(), model_dir=str(tmp_path), redis_url=None)
    api.create_app(Model, settings)
    frozen = gc.get_freeze_count()
    assert frozen > 1000 and process.process_role() == "api"  # create_app set the process up
    api.create_app(Model, settings)  # later apps (tests build many) stay collectable
    assert gc.get_freeze_count() == frozen
