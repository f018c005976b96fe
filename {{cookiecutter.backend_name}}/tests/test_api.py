"""The model behind the HTTP API, the way Label Studio calls it."""

import pytest
from label_studio_ml.model import LabelStudioMLBase

from conftest import (
    config_labels,
    model_class,
    predict,
    sample_task,
    setup_version,
    start_training,
    wait_for_new_version,
)


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "UP"


def test_setup_returns_a_version(client):
    version = setup_version(client)
    assert isinstance(version, str) and version


def test_predict_answers_every_task_with_labels_from_the_config(client):
    results = predict(client, [sample_task(i) for i in range(1, 4)])
    assert len(results) == 3
    allowed = config_labels()
    for entry in results:
        for prediction in entry if isinstance(entry, list) else [entry]:
            assert isinstance(prediction["result"], list)
            for region in prediction["result"]:
                for key in ("choices", "labels", "rectanglelabels", "polygonlabels"):
                    assert set(region["value"].get(key, [])) <= allowed, region


def test_training_produces_a_new_version(client):
    cls = model_class()
    if cls.fit is LabelStudioMLBase.fit:
        pytest.skip(f"{cls.__name__} does not define fit()")
    before = setup_version(client)
    start_training(client, cls)
    assert wait_for_new_version(client, before) != before
