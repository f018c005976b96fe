"""The built-in example: training on annotations visibly changes its predictions."""

from conftest import (
    LABEL_CONFIG,
    PROJECT,
    annotated_task,
    predict,
    sample_task,
    setup_version,
    wait_for_new_version,
)


def chosen(results):
    region = results[0]["result"][0]
    return region["value"]["choices"][0], region["score"]


def test_predicts_the_first_label_before_training(client):
    label, score = chosen(predict(client, [sample_task(1)]))
    assert (label, score) == ("Boeing", 0.5)


def test_predicts_the_most_annotated_label_after_training(client):
    before = setup_version(client)
    tasks = [annotated_task(1, "Airbus"), annotated_task(2, "Airbus"), annotated_task(3, "Boeing")]
    response = client.post(
        "/train", json={"annotations": tasks, "project": PROJECT, "label_config": LABEL_CONFIG}
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    wait_for_new_version(client, before)
    label, score = chosen(predict(client, [sample_task(4)]))
    assert label == "Airbus"
    assert abs(score - 2 / 3) < 1e-9
