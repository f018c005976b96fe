"""Scripts in the current ML SDK's style (tests/compat/data) driven by a real Label Studio 1.23.2.

* An interactive model answers ``ModelResponse(predictions=[])`` when Label Studio asks without
  context (Retrieve Predictions, opening a task): Label Studio must take that without an
  error in its log and without storing anything, and interactive pre-annotation must work.
* ``fit(event, data)`` gets Label Studio's own ``ANNOTATION_CREATED`` payload
  (``data['annotation']``, ``data['task']``, ``data['project']``) and learns from it.
"""

from __future__ import annotations

from pathlib import Path

COMPAT = Path(__file__).resolve().parents[1] / "compat" / "data"
ERROR = "ER"
# What LS 1.23.2 logs when an answer to /predict is not one it can use (ml/models.py).
LS_COMPLAINTS = ("incorrect response", "Error occurred", "Number of tasks and responses")


def _config(script: str) -> str:
    text = (COMPAT / script).read_text(encoding="utf-8")
    return text[text.index("<View>") : text.index("</View>") + len("</View>")]


def _connect(ls, pid, backend, title, helpers, interactive):
    ml = ls.connect(pid, backend.url, title, is_interactive=interactive, extra_logs=backend.logs)

    def connected():
        current = ls.ml(ml["id"], extra_logs=backend.logs)
        assert current["state"] != ERROR, f"{current}\n{backend.logs()}"
        return current if current["state"] == "CO" else None

    return helpers.wait_for(connected, 30, "the connection to be CO", logs=backend.logs)


def test_interactive_model_without_context(label_studio, baked, serve, project_title, helpers):
    ls = label_studio
    backend = serve(baked(str(COMPAT / "interactive_keywords.py"), "interactive"))
    tasks = [{"text": "Acme bought ACME Labs."}, {"text": "Pears are green."}]
    project = ls.create_project(project_title, tasks, config=_config("interactive_keywords.py"))
    pid = project["id"]
    ml = _connect(ls, pid, backend, "interactive keywords", helpers, interactive=True)
    log_start = len(ls.log.read_text(encoding="utf-8", errors="replace"))

    # Retrieve Predictions twice and open a task: /predict without context, nothing stored
    for _ in range(2):
        answer = ls.retrieve_predictions(pid, extra_logs=backend.logs)
        assert answer.get("processed_items") == 2, answer
    stored = ls.tasks(pid)
    ls.call("GET", f"/api/tasks/{stored[0]['id']}", extra_logs=backend.logs)
    assert ls.predictions(pid) == [], f"{ls.predictions(pid)}\n{backend.logs()}"

    # interactive pre-annotation: the user's region comes as context
    region = {
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "value": {"start": 0, "end": 4, "text": "Acme", "labels": ["ORG"]},
    }
    answer = ls.call(
        "POST",
        f"/api/ml/{ml['id']}/interactive-annotating",
        json={"task": stored[0]["id"], "context": {"result": [region]}},
        extra_logs=backend.logs,
    )
    assert "errors" not in answer, f"{answer}\n{backend.logs()}"
    spans = [(r["value"]["start"], r["value"]["text"]) for r in answer["data"]["result"]]
    assert spans == [(0, "Acme"), (12, "ACME")], answer

    # Label Studio logged no complaint about any of these answers
    log = ls.log.read_text(encoding="utf-8", errors="replace")[log_start:]
    complaints = [line for line in log.splitlines() if any(c in line for c in LS_COMPLAINTS)]
    assert complaints == [], "\n".join(complaints)
    # and the backend saw the calls it should have (two batches, one task open, one interactive)
    predicts = backend.logs(400).count('"POST /predict HTTP/1.1" 200')
    assert predicts >= 4, backend.logs()


def test_fit_learns_from_label_studio_webhooks(label_studio, baked, serve, project_title, helpers):
    ls = label_studio
    backend = serve(baked(str(COMPAT / "sentiment_sdk.py"), "sentiment"))
    tasks = [
        {"text": "great product, love it"},
        {"text": "awful, broken on arrival"},
        {"text": "love it, great value"},
        {"text": "broken and awful"},
    ]
    project = ls.create_project(project_title, tasks, config=_config("sentiment_sdk.py"))
    pid = project["id"]
    ml = _connect(ls, pid, backend, "sentiment", helpers, interactive=False)
    initial = ml["model_version"]
    assert initial == "SentimentClassifier-v0.0.1", ml

    stored = ls.tasks(pid)
    for task, label in zip(stored[:2], ("Positive", "Negative")):
        ls.annotate(task["id"], label, from_name="sentiment", to_name="text")
    status = backend.wait_idle(pid, timeout=120)
    assert status["status"] == "succeeded" and not status.get("error"), f"{status}\n{backend.logs()}"

    def trained():
        version = ls.ml(ml["id"], extra_logs=backend.logs)["model_version"]
        return version if version != initial else None

    version = helpers.wait_for(trained, 60, "a trained version", interval=1, logs=backend.logs)
    ls.retrieve_predictions(pid, extra_logs=backend.logs)
    by_task = {p["task"]: p for p in ls.predictions(pid) if p["model_version"] == version}
    assert set(by_task) == {t["id"] for t in stored}, f"{ls.predictions(pid)}\n{backend.logs()}"
    assert helpers.choice_of(by_task[stored[2]["id"]]) == "Positive", by_task
    assert helpers.choice_of(by_task[stored[3]["id"]]) == "Negative", by_task
