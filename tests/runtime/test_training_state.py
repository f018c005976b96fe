"""The run record's state machine (training/status.py) and the Trainer interface, without a server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from label_studio_ml import training
from label_studio_ml.settings import Settings
from label_studio_ml.store import ModelStore
from label_studio_ml.training import (
    InvalidTransition,
    RunBook,
    RunRecord,
    RunStatus,
    Submitted,
    ThreadTrainer,
    make_trainer,
)
from label_studio_ml.training.status import now

TOKEN = "4242:99"


class Model:
    INITIAL_MODEL_VERSION = "initial"


def lifecycle():
    """A development run's records: queued, running, succeeded (the writes of today's code)."""
    idle = RunRecord.from_json({})
    queued = idle.apply(idle.queue("job-1", queued_at=1.0, runner=TOKEN))
    running = queued.apply(
        queued.start("job-1", started_at=2.0, event="START_TRAINING", runner=TOKEN, run_version="v1-x")
    )
    done = running.apply(running.succeed("job-1", version="v1-x", ended_at=3.5, duration_s=1.5))
    return idle, queued, running, done


# ------------------------------------------------------------------ the enum
def test_status_strings_are_todays():
    assert [s.value for s in RunStatus] == ["idle", "queued", "running", "succeeded", "failed"]
    assert [s.value for s in Submitted] == ["queued", "coalesced"]
    assert str(RunStatus.QUEUED) == "queued" and f"{Submitted.COALESCED}" == "coalesced"
    assert json.dumps({"s": RunStatus.FAILED}) == '{"s": "failed"}'
    assert {s for s in RunStatus if s.busy} == {RunStatus.QUEUED, RunStatus.RUNNING}


# ------------------------------------------------------------------ valid transitions
def test_a_run_goes_queued_running_succeeded_writing_todays_keys_in_order():
    idle, queued, running, done = lifecycle()
    assert idle.status is RunStatus.IDLE and idle.to_json() == {}
    assert list(queued.to_json()) == ["job_id", "status", "queued_at", "pending_job_id", "runner"]
    assert queued.status is RunStatus.QUEUED and queued.busy
    assert running.to_json() == {
        "job_id": "job-1", "status": "running", "queued_at": 1.0, "pending_job_id": None, "runner": TOKEN,
        "started_at": 2.0, "ended_at": None, "error": None, "interrupted": None, "event": "START_TRAINING",
        "run_version": "v1-x",
    }  # fmt: skip
    assert list(done.to_json())[-3:] == ["version", "duration_s", "last_good_version"]
    assert done.status is RunStatus.SUCCEEDED and not done.busy
    assert (done.version, done.last_good_version, done.run_version, done.error) == (
        "v1-x",
        "v1-x",
        None,
        None,
    )


def test_production_writes_pending_first_then_queues_only_the_pending_job():
    idle = RunRecord.from_json({})
    waiting = idle.apply(idle.wait("job-1", queued_at=1.0))
    assert waiting.to_json() == {"pending_job_id": "job-1", "queued_at": 1.0}
    assert waiting.status is RunStatus.IDLE and waiting.reported is RunStatus.QUEUED and waiting.busy
    assert waiting.queue("job-2", only_pending=True) is None, "not the job that waits: left alone"
    queued = waiting.apply(waiting.queue("job-1", only_pending=True))
    assert queued.to_json() == {
        "pending_job_id": None,
        "queued_at": 1.0,
        "job_id": "job-1",
        "status": "queued",
    }


def test_a_run_fails_from_queued_running_or_after_it_was_reported_interrupted():
    _, queued, running, _ = lifecycle()
    for record in (queued, running):
        failed = record.apply(record.fail("job-1", error="ValueError: bad", ended_at=9.0, duration_s=7.0))
        assert failed.status is RunStatus.FAILED and failed.error == "ValueError: bad"
        assert failed.run_version is None and list(failed.to_json())[-1] in ("run_version", "duration_s")
    interrupted = running.apply(running.interrupt(running, "gone", clear_pending=False))
    again = interrupted.fail("job-1", error="lost the lock", ended_at=9.0, duration_s=7.0)
    assert again is not None and again["error"] == "lost the lock"
    # a run reported interrupted whose version was committed after all: it succeeded
    assert interrupted.succeed("job-1", version="v1-x", ended_at=9.0, duration_s=7.0)["status"] == "succeeded"


def test_a_follow_up_waits_behind_a_running_job_and_a_new_job_replaces_any_state():
    _, _, running, done = lifecycle()
    waiting = running.apply(running.wait("job-2"))
    assert waiting.status is RunStatus.RUNNING and waiting.pending_job_id == "job-2"
    for record in (waiting, done):
        queued = record.apply(record.queue("job-2", queued_at=5.0, runner=TOKEN))
        assert (queued.job_id, queued.status, queued.pending_job_id) == ("job-2", RunStatus.QUEUED, None)
    # executed without queueing (a direct execute(), or a worker faster than the API's write)
    started = done.apply(done.start("job-3", started_at=6.0, event="E", runner=TOKEN, run_version="v2-x"))
    assert started.status is RunStatus.RUNNING and started.job_id == "job-3"


def test_interrupt_fails_the_job_it_saw_and_only_that_one():
    _, queued, running, done = lifecycle()
    for record in (queued, running):
        change = record.interrupt(record, "the worker stopped", clear_pending=False)
        assert change is not None and list(change) == [
            "status",
            "interrupted",
            "error",
            "ended_at",
            "run_version",
        ]
        after = record.apply(change)
        assert after.status is RunStatus.FAILED and after.interrupted is True
        assert after.error == "interrupted: the worker stopped"
    moved_on = running.apply(running.succeed("job-1", version="v1-x", ended_at=3.0, duration_s=1.0))
    assert moved_on.interrupt(running, "late", clear_pending=True) is None, "it ended meanwhile"
    assert done.interrupt(done, "x", clear_pending=False) is None, "nothing to do"
    waiting = done.apply(done.wait("job-2"))
    assert waiting.interrupt(waiting, "server stopped", clear_pending=True) == {"pending_job_id": None}


def test_a_transition_for_another_job_leaves_the_record_alone():
    _, _, running, done = lifecycle()
    # production: a worker took the job before the API that enqueued it marked it waiting
    assert running.wait("job-1", queued_at=9.0) is None and done.wait("job-1") is None
    assert running.succeed("job-0", version="v1-x", ended_at=3.0, duration_s=1.0) is None
    assert running.fail("job-0", error="x", ended_at=3.0, duration_s=1.0) is None


# ------------------------------------------------------------------ invalid transitions
def test_invalid_transitions_raise():
    idle, queued, running, done = lifecycle()
    failed = running.apply(running.fail("job-1", error="x", ended_at=3.0, duration_s=1.0))
    refused = [
        lambda: queued.queue("job-1", queued_at=1.0),  # a job is queued once
        lambda: done.queue("job-1"),
        lambda: done.start("job-1", started_at=1.0, event="E", runner=TOKEN, run_version="v2-x"),
        lambda: queued.succeed("job-1", version="v1-x", ended_at=1.0, duration_s=0.0),
        lambda: done.succeed("job-1", version="v1-x", ended_at=1.0, duration_s=0.0),
        lambda: failed.succeed("job-1", version="v1-x", ended_at=1.0, duration_s=0.0),
        lambda: done.fail("job-1", error="x", ended_at=1.0, duration_s=0.0),
    ]
    for attempt in refused:
        with pytest.raises(InvalidTransition, match="cannot"):
            attempt()
    # a failed job may run again (rq requeue)
    assert (
        failed.start("job-1", started_at=1.0, event="E", runner=TOKEN, run_version="v2-x")["status"]
        == "running"
    )


# ------------------------------------------------------------------ JSON
def test_json_round_trip_keeps_keys_order_nulls_and_what_it_does_not_know():
    doc = {
        "pending_job_id": None, "queued_at": 1.5, "job_id": "j", "status": "failed", "started_at": 2.0,
        "ended_at": 3.0, "error": "boom", "interrupted": True, "event": "E", "runner": "1:2",
        "run_version": None, "version": "v3-x", "duration_s": 1.0, "last_good_version": "v2-x",
        "a_newer_key": {"x": [1]},
    }  # fmt: skip
    record = RunRecord.from_json(doc)
    assert record.to_json() == doc and list(record.to_json()) == list(doc)
    assert json.dumps(record.to_json(), indent=2) == json.dumps(doc, indent=2)
    assert record.status is RunStatus.FAILED and record.interrupted is True and record.version == "v3-x"
    assert RunRecord.from_json({"job_id": "j"}).to_json() == {"job_id": "j"}, "absent stays absent"
    newer = RunRecord.from_json({"job_id": "j", "status": "cancelled"})
    assert newer.to_json() == {"job_id": "j", "status": "cancelled"} and not newer.busy


def test_apply_merges_as_the_store_does(tmp_path):
    store = ModelStore(tmp_path)
    book = RunBook(store)
    record = book.read("5")
    for step in (
        lambda r: r.wait("job-1", queued_at=1.0),
        lambda r: r.queue("job-1", only_pending=True),
        lambda r: r.start("job-1", started_at=2.0, event="E", runner=TOKEN, run_version="v1-x"),
        lambda r: r.fail("job-1", error="x", ended_at=3.0, duration_s=1.0),
    ):
        record = record.apply(step(record))
        written = book.change("5", step)
        assert written == record and written.to_json() == record.to_json()
        assert list(json.loads((tmp_path / "5" / "status.json").read_text())) == list(record.to_json())
    assert book.change("5", lambda r: None) == record, "no change, no write"


# ------------------------------------------------------------------ the answer
def test_the_status_answer_shape():
    assert RunRecord.from_json({}).answer("5", None, []) == {
        "status": "idle", "project": "5", "served_version": None, "versions": [],
    }  # fmt: skip
    waiting = RunRecord.from_json({"pending_job_id": "j", "queued_at": 1.0})
    body = waiting.answer("5", None, [], warning="no worker")
    assert list(body) == [
        "pending_job_id",
        "queued_at",
        "status",
        "warning",
        "project",
        "served_version",
        "versions",
    ]
    assert body["status"] == "queued"
    _, _, running, done = lifecycle()
    body = done.apply(done.wait("job-2")).answer("5", "v1-x", ["v1-x"])
    assert body["status"] == "queued", "a follow-up waits: /training says queued"
    assert list(body)[:2] == ["job_id", "status"], "status keeps its place in the file's order"
    assert running.answer("5", None, [])["status"] == "running"


def test_now_is_rounded_to_the_millisecond():
    assert round(now(), 3) == now()


# ------------------------------------------------------------------ the trainers' interface
def test_both_trainers_answer_the_interface_without_isinstance(tmp_path):
    store = ModelStore(tmp_path / "models")
    dev = make_trainer(Model, store, Settings(model_dir=str(tmp_path / "models")))
    assert isinstance(dev, ThreadTrainer) and dev.mode == "development"
    assert dev.health() == {} and dev.warning() is None and dev.queue_length() == 0
    assert dev.report("5") == {"status": "idle", "project": "5", "served_version": None, "versions": []}
    # production, with a Redis that does not answer: no exception, a warning that says so
    settings = Settings(model_dir=str(tmp_path / "models"), redis_url="redis://127.0.0.1:1/0")
    prod = make_trainer(Model, store, settings)
    assert prod.mode == "production" and prod.queue_length() is None
    health = prod.health()
    assert health["workers"] is None and "does not answer" in health["warning"]
    assert prod.warning() == health["warning"]
    RunBook(store).change("5", lambda r: r.wait("job-1", queued_at=1.0))
    answer = prod.report("5")
    assert answer["status"] == "queued" and answer["warning"] == health["warning"]
    assert prod.wait_idle(1) and dev.wait_idle(1)


def test_the_job_function_named_in_redis_resolves():
    from label_studio_ml.training.job import run_job
    from label_studio_ml.training.rqtrainer import JOB_FUNCTION
    from rq.utils import import_attribute

    assert JOB_FUNCTION == "label_studio_ml.training.run_job"
    assert import_attribute(JOB_FUNCTION) is run_job is training.run_job


def test_development_mode_never_imports_rq():
    code = (
        "import sys, label_studio_ml.api, label_studio_ml.training as t\n"
        "assert 'rq' not in sys.modules and 'redis' not in sys.modules, 'loaded'\n"
        "t.RQTrainer\n"
        "assert 'rq' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------ after the commit
class Counting:
    """A seed-style model whose fit writes an artefact into its new version's directory."""

    INITIAL_MODEL_VERSION = "initial"

    def __init__(self, project_id="", label_config=None, train_output=None, **kwargs):
        self.project_id, self.label_config, self.train_output = project_id, label_config, train_output

    def predict(self, tasks, **kwargs):
        return []

    def fit(self, annotations, workdir=None, **kwargs):
        with open(f"{workdir}/weights.txt", "w") as f:
            f.write(str(len(annotations)))
        return {"seen": len(annotations)}


def _run(tmp_path, on_commit):
    from label_studio_ml.training import TrainRequest, execute, new_job_id

    store = ModelStore(tmp_path / "models")
    settings = Settings(model_dir=str(store.root))
    request = TrainRequest(
        project_id="3", event="START_TRAINING", annotations=[{"id": 1}], label_config="<View/>"
    )
    return store, execute(Counting, store, settings, request, new_job_id("3"), on_commit=on_commit)


def test_a_listener_that_raises_after_the_commit_does_not_unmake_the_run(tmp_path, caplog):
    def broken(pid):
        raise RuntimeError("the registry is broken")

    store, status = _run(tmp_path, broken)
    assert status["status"] == "succeeded"
    version = status["version"]
    assert store.latest("3") == version
    assert (store.version_dir("3", version) / "weights.txt").read_text() == "1"
    assert "on_commit failed" in caplog.text and "the registry is broken" in caplog.text


def test_a_committed_version_is_never_removed_when_the_run_is_cut_short_after_it(tmp_path):
    """An interrupt after LATEST moved (here: in the listener) reports the run failed but keeps
    the version LATEST names: removing it would leave the project serving a missing version."""

    def interrupted(pid):
        raise KeyboardInterrupt

    store = None
    with pytest.raises(KeyboardInterrupt):
        store, _ = _run(tmp_path, interrupted)
    store = ModelStore(tmp_path / "models")
    version = store.latest("3")
    assert version is not None
    assert (store.version_dir("3", version) / "weights.txt").read_text() == "1"
    assert store.train_output("3", version) == {"seen": 1}
    assert RunRecord.from_json(store.status("3")).status is RunStatus.FAILED
