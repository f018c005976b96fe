"""Every example model, called the way Label Studio calls it, learns from annotations."""

from __future__ import annotations

import ast
import functools
import http.server
import json
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from .conftest import EXAMPLES, NAMES, PROJECT, label_config


# ---------------------------------------------------------------------- every example
@pytest.mark.parametrize("name", NAMES)
def test_example_ships_its_files(name):
    folder = EXAMPLES / name
    for file in ("model.py", "requirements.txt", "label_config.xml"):
        assert (folder / file).is_file(), f"examples/{name}/{file} is missing"


@pytest.mark.parametrize("name", NAMES)
def test_docstring_config_matches_label_config_xml(name):
    """The template reads the config from the script's docstring: it must equal the XML file."""
    doc = ast.get_docstring(ast.parse((EXAMPLES / name / "model.py").read_text()), clean=False)
    start, end = doc.find("<View"), doc.rfind("</View>") + len("</View>")
    assert doc[start:end].strip() == label_config(name).strip()


# ---------------------------------------------------------------------- dummy
def test_dummy_predicts_first_choice_and_trains(backend):
    b = backend("dummy")
    before = b.setup()
    results = b.predict([{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}}])
    assert results[0]["result"][0]["value"] == {"choices": ["Boeing"]}
    # The seed stamps 'delorean-20151021'; the runtime serves every prediction as the /setup version.
    assert results[0]["model_version"] == before
    task = {"id": 1, "data": {"image": "x.jpg"}, "annotations": [{"result": []}]}
    status = b.wait_trained(b.train([task]))
    assert status["version"] != before
    assert b.setup() == status["version"]
    assert b.predict([{"id": 2, "data": {"image": "y.jpg"}}])[0]["model_version"] == status["version"]


# ---------------------------------------------------------------------- text classifier
def split_data():
    """The shipped labelled set: pairs of similar sentences, the first of each pair to train."""
    tasks = json.loads((EXAMPLES / "text_classifier" / "data.json").read_text())
    train = [t for i, t in enumerate(tasks) if (i // 3) % 2 == 0]
    test = [t for i, t in enumerate(tasks) if (i // 3) % 2 == 1]
    return train, test


def accuracy(results, tasks):
    def gold(task):
        return task["annotations"][0]["result"][0]["value"]["choices"][0]

    def guess(entry):
        return entry["result"][0]["value"]["choices"][0] if entry["result"] else None

    return sum(guess(e) == gold(t) for e, t in zip(results, tasks)) / len(tasks)


def test_text_classifier_learns(backend, capsys):
    train, test = split_data()
    assert len(train) == len(test) == 24
    assert {t["annotations"][0]["result"][0]["value"]["choices"][0] for t in train} == {
        "Sports",
        "Technology",
        "Food",
    }
    b = backend("text_classifier")
    initial = b.setup()
    unlabelled = [{"id": t["id"], "data": t["data"]} for t in test]
    before = b.predict(unlabelled)
    assert all(e["result"] == [] and e["score"] == 0 for e in before)
    acc_before = accuracy(before, test)

    status = b.wait_trained(b.train(train))
    version = b.setup()
    assert version == status["version"] != initial
    after = b.predict(unlabelled)
    acc_after = accuracy(after, test)
    with capsys.disabled():
        print(f"\ntext_classifier accuracy on the held-out half: {acc_before:.2f} -> {acc_after:.2f}")
    assert acc_after >= 0.8 > acc_before
    assert all(e["model_version"] == version for e in after)
    region = after[0]["result"][0]
    assert region["from_name"] == "topic" and region["to_name"] == "text" and region["type"] == "choices"
    assert 0 < region["score"] <= 1

    # The artefact lives in the version directory the runtime made for fit().
    versions = b.client.get(f"/versions?project={PROJECT}").get_json()["versions"]
    assert versions == [version]
    model_dir = Path(b.app.extensions["lsml"].store.version_dir("7", version))
    assert (model_dir / "model.joblib").is_file()
    assert json.loads((model_dir / "train_output.json").read_text())["model_file"] == "model.joblib"


def test_text_classifier_survives_a_restart(backend):
    train, test = split_data()
    b = backend("text_classifier")
    b.setup()
    b.wait_trained(b.train(train))
    # A new app on the same store (a restarted process, or another uWSGI worker) loads it.
    again = backend("text_classifier")
    assert again.setup() == b.setup()
    assert accuracy(again.predict([{"id": 1, "data": test[0]["data"]}]), test[:1]) == 1


def test_text_classifier_with_one_class_still_trains(backend):
    b = backend("text_classifier")
    b.setup()
    task = {
        "id": 1,
        "data": {"text": "anything"},
        "annotations": [
            {
                "result": [
                    {
                        "from_name": "topic",
                        "to_name": "text",
                        "type": "choices",
                        "value": {"choices": ["Food"]},
                    }
                ]
            }
        ],
    }
    b.wait_trained(b.train([task]))
    assert b.predict([{"id": 2, "data": {"text": "else"}}])[0]["result"][0]["value"]["choices"] == ["Food"]


# ---------------------------------------------------------------------- NER
NER_TEXT = "Alice joined Globex in Paris."


def ner_annotation(text, spans):
    """An ANNOTATION_CREATED payload labelling ``spans`` ([(text, label), ...]) in ``text``."""
    result = []
    for n, (span, label) in enumerate(spans):
        start = text.index(span)
        result.append(
            {
                "id": f"r{n}",
                "from_name": "label",
                "to_name": "text",
                "type": "labels",
                "value": {"start": start, "end": start + len(span), "text": span, "labels": [label]},
            }
        )
    return {
        "task": {"id": 1, "data": {"text": text}},
        "annotation": {"id": 1, "result": result, "was_cancelled": False},
        "project": {"id": 7, "label_config": label_config("ner")},
    }


def test_ner_learns_spans_from_annotation_webhooks(backend):
    b = backend("ner")
    initial = b.setup()
    assert initial == "ner-dictionary-0"  # set by the model's setup()
    new_text = "Yesterday Alice met Bob of Globex; Alice flew to Paris, not Parisville."
    before = b.predict([{"id": 5, "data": {"text": new_text}}])
    assert before[0]["result"] == [] and before[0]["model_version"] == initial

    answer = b.webhook(
        "ANNOTATION_CREATED",
        **ner_annotation(NER_TEXT, [("Alice", "PER"), ("Globex", "ORG"), ("Paris", "LOC")]),
    )
    assert answer["status"] == "queued"
    status = b.wait_trained(answer["job_id"])
    assert b.setup() == status["version"] != initial

    after = b.predict([{"id": 5, "data": {"text": new_text}}])[0]
    found = [
        (r["value"]["text"], r["value"]["labels"], r["value"]["start"], r["value"]["end"])
        for r in after["result"]
    ]
    assert [(t, lab) for t, lab, _, _ in found] == [
        ("Alice", ["PER"]),
        ("Globex", ["ORG"]),
        ("Alice", ["PER"]),
        ("Paris", ["LOC"]),  # whole words only: "Parisville" is not Paris
    ]
    for text, _, start, end in found:
        assert new_text[start:end] == text
    ids = [r["id"] for r in after["result"]]
    assert len(set(ids)) == len(ids)
    for region in after["result"]:
        assert region["from_name"] == "label" and region["to_name"] == "text" and region["type"] == "labels"
        assert region["score"] == 1.0
    assert after["score"] == 1.0

    # A second annotation adds to the dictionary (stored with self.set, kept per project).
    answer = b.webhook("ANNOTATION_UPDATED", **ner_annotation("Bob works here.", [("Bob", "PER")]))
    b.wait_trained(answer["job_id"])
    labelled = {r["value"]["text"] for r in b.predict([{"id": 5, "data": {"text": new_text}}])[0]["result"]}
    assert labelled == {"Alice", "Bob", "Globex", "Paris"}


def test_ner_start_training_without_label_studio_keeps_the_dictionary(backend, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    b = backend("ner")
    b.setup()
    b.wait_trained(b.webhook("ANNOTATION_CREATED", **ner_annotation(NER_TEXT, [("Globex", "ORG")]))["job_id"])
    status = b.wait_trained(b.webhook("START_TRAINING", project={"id": 7})["job_id"])
    assert status["versions"][-1] == status["version"]
    result = b.predict([{"id": 1, "data": {"text": "Globex"}}])[0]["result"]
    assert [r["value"]["labels"] for r in result] == [["ORG"]]


def test_ner_ignores_events_that_are_not_training_events(backend):
    b = backend("ner")
    b.setup()
    assert b.webhook("TASK_CREATED", project={"id": 7})["status"] == "ignored"


# ---------------------------------------------------------------------- image boxes
COLOURS = {"Tomato": (220, 30, 30), "Blueberry": (40, 60, 200)}


def make_image(path: Path, label: str, box, size=(200, 100)):
    """A white image with one filled rectangle of the label's colour at ``box`` (pixels)."""
    image = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(image).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=COLOURS[label])
    image.save(path)


def percent_box(box, size=(200, 100)):
    w, h = size
    return {
        "x": 100 * box[0] / w,
        "y": 100 * box[1] / h,
        "width": 100 * (box[2] - box[0]) / w,
        "height": 100 * (box[3] - box[1]) / h,
    }


@pytest.fixture
def http_dir(tmp_path):
    """A loopback HTTP server over a temporary directory: yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_boxes_finds_boxes_and_learns_labels(backend, tmp_path, http_dir):
    www, base = http_dir
    # (label, box in pixels, where the image is): local path, file:// URL, or http URL.
    specs = [
        ("Tomato", (20, 10, 60, 50), "path"),
        ("Blueberry", (100, 30, 180, 90), "http"),
        ("Tomato", (120, 5, 150, 35), "file"),
        ("Blueberry", (10, 40, 70, 95), "http"),
        ("Blueberry", (50, 20, 90, 60), "path"),
        ("Tomato", (140, 60, 190, 95), "http"),
    ]
    tasks = []
    for i, (label, box, where) in enumerate(specs, start=1):
        folder = www if where == "http" else tmp_path
        path = folder / f"img{i}.png"
        make_image(path, label, box)
        url = {"path": str(path), "file": path.as_uri(), "http": f"{base}/{path.name}"}[where]
        tasks.append({"id": i, "data": {"image": url}})

    b = backend("image_boxes")
    initial = b.setup()
    before = b.predict(tasks)
    for entry, (_, box, _) in zip(before, specs):
        region = entry["result"][0]
        assert (
            region["type"] == "rectanglelabels"
            and region["from_name"] == "label"
            and region["to_name"] == "image"
        )
        assert (region["original_width"], region["original_height"]) == (200, 100)
        for key, want in percent_box(box).items():
            assert region["value"][key] == pytest.approx(want, abs=1e-6), (key, region)
        assert region["value"]["rectanglelabels"] == ["Tomato"]  # untrained: the first label
        assert region["score"] == 0
    labels_before = [e["result"][0]["value"]["rectanglelabels"][0] for e in before]

    # Annotate the first two images (one of each label) and train through /train.
    annotated = []
    for task, (label, box, _) in list(zip(tasks, specs))[:2]:
        region = {
            "id": "a",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 200,
            "original_height": 100,
            "value": {**percent_box(box), "rotation": 0, "rectanglelabels": [label]},
        }
        annotated.append({**task, "annotations": [{"id": task["id"], "result": [region]}]})
    status = b.wait_trained(b.train(annotated))
    assert b.setup() == status["version"] != initial

    after = b.predict(tasks)
    labels_after = [e["result"][0]["value"]["rectanglelabels"][0] for e in after]
    gold = [label for label, _, _ in specs]
    correct_before = sum(a == g for a, g in zip(labels_before, gold))
    correct_after = sum(a == g for a, g in zip(labels_after, gold))
    assert (correct_before, correct_after) == (3, 6)
    assert all(0.5 < e["score"] <= 1 for e in after)


def test_image_boxes_unreadable_image_gives_an_empty_result(backend, tmp_path):
    b = backend("image_boxes")
    b.setup()
    results = b.predict([{"id": 1, "data": {"image": str(tmp_path / "missing.png")}}])
    assert results[0]["result"] == []
