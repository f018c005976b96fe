"""label_studio_ml.store on its own: the on-disk layout every API process and worker shares."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from label_studio_ml.exceptions import LabelStudioMLError
from label_studio_ml.store import (
    LS_PROJECT_RE,
    VERSION_RE,
    ModelStore,
    StoreError,
    check_project_id,
    check_version,
    version_number,
)


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def _train(store: ModelStore, pid: str, output: dict | None = None) -> str:
    """One complete version, as a training run leaves it."""
    version, path = store.new_version(pid)
    (path / "weights.bin").write_bytes(b"w")
    store.commit_version(pid, version, output or {"v": version}, {"version": version})
    return version


# ------------------------------------------------------------------ project ids
@pytest.mark.parametrize("pid", ["12", "default", "a_b-C", "x" * 64])
def test_valid_project_ids(store, pid):
    assert check_project_id(pid) == pid
    assert store.project_dir(pid) == store.root / pid


@pytest.mark.parametrize("pid", ["", "x" * 65, "../x", "a/b", "12.5", ".", "..", "a b", "ü", 12, None])
def test_project_ids_that_cannot_name_a_directory_are_refused(store, pid):
    with pytest.raises(StoreError, match="is not a valid project id"):
        check_project_id(pid)
    with pytest.raises(StoreError):
        store.project_dir(pid)
    assert not store.root.exists(), "nothing is created for a refused id"


def test_store_errors_are_value_errors_and_runtime_errors():
    with pytest.raises(ValueError):
        check_project_id("../etc")
    with pytest.raises(LabelStudioMLError):
        check_version("latest")


@pytest.mark.parametrize("sent, pid", [("12", "12"), ("12.1719830400", "12"), ("a_b", "a_b"), ("7.0", "7")])
def test_label_studio_project_field_names_the_store_project(sent, pid):
    match = LS_PROJECT_RE.fullmatch(sent)
    assert match and match.group(1) == pid


def test_projects_lists_only_directories_a_project_id_names(store):
    store.ensure_project("12")
    store.ensure_project("b")
    (store.root / "not a project").mkdir()
    (store.root / "stray.txt").write_text("x")
    assert store.projects() == ["12", "b"]
    assert store.has_project("12") and not store.has_project("13")
    assert ModelStore(store.root / "missing").projects() == []


# ------------------------------------------------------------------ versions
@pytest.mark.parametrize("name, number", [("v3-20261127023015", 3), ("v12-20261127023015", 12), ("v3", -1),
                                          ("latest", -1), (None, -1), ("", -1)])  # fmt: skip
def test_version_number(name, number):
    assert version_number(name) == number


def test_versions_count_up_per_project_and_show_only_once_complete(store):
    v1, path = store.new_version("1")
    assert VERSION_RE.fullmatch(v1) and version_number(v1) == 1 and path.is_dir()
    assert store.versions("1") == [] and store.latest("1") is None, "reserved is not visible"
    store.commit_version("1", v1, {"acc": 0.5}, {"version": v1})
    assert store.versions("1") == [v1] and store.latest("1") == v1
    assert store.train_output("1", v1) == {"acc": 0.5}
    assert json.loads((path / "meta.json").read_text())["version"] == v1
    v2 = _train(store, "1")
    assert version_number(v2) == 2 and store.versions("1") == [v1, v2] == [v1, store.newest("1")]
    assert version_number(_train(store, "2")) == 1, "numbers are per project"
    assert store.train_output("1", None) == {}


def test_numbers_are_never_reused_even_after_a_discarded_run(store):
    v1 = _train(store, "p")
    v2, _ = store.new_version("p")  # a run that is still going (or died) keeps its number
    v3 = _train(store, "p")
    assert [version_number(v) for v in (v1, v2, v3)] == [1, 2, 3]
    store.discard_version("p", v2, only_incomplete=True)
    assert not store.version_dir("p", v2).exists()
    store.discard_version("p", v3, only_incomplete=True)
    assert store.version_dir("p", v3).is_dir(), "only_incomplete keeps a committed version"
    assert version_number(store.new_version("p")[0]) == 4


def test_an_older_run_finishing_last_does_not_move_latest_back(store):
    old, _ = store.new_version("p")
    new = _train(store, "p")
    store.commit_version("p", old, {}, {})
    assert store.latest("p") == new and store.versions("p") == [old, new]


def test_committing_a_removed_version_is_an_error(store):
    version, _ = store.new_version("p")
    store.discard_version("p", version)
    with pytest.raises(StoreError, match="removed before it was committed"):
        store.commit_version("p", version, {}, {})
    assert store.latest("p") is None


@pytest.mark.parametrize("bad", ["../v1-20260101000000", "v1", "LATEST", ""])
def test_version_names_are_checked_before_any_path_is_built(store, bad):
    with pytest.raises(StoreError, match="is not a version of this store"):
        store.version_dir("p", bad)


# ------------------------------------------------------------------ the LATEST pointer
def test_latest_follows_every_rename_and_ignores_what_this_store_did_not_write(store):
    v1 = _train(store, "p")
    assert store.latest("p") == v1
    v2 = _train(store, "p")
    assert store.latest("p") == v2, "a new LATEST (a new inode) is seen at once"
    (store.project_dir("p") / "LATEST").write_text("../../etc\n")
    assert store.latest("p") is None, "a foreign value is never followed"
    (store.project_dir("p") / "LATEST").unlink()
    assert store.latest("p") is None


def test_latest_is_replaced_whole_no_reader_sees_half_a_pointer(store):
    """Readers in other store objects (other processes' view) never see an empty or foreign LATEST."""
    first = _train(store, "p")
    seen, stop, errors = set(), threading.Event(), []

    def read() -> None:
        reader = ModelStore(store.root)
        last = 0
        while not stop.is_set():
            value = reader.latest("p")
            if value is None or version_number(value) < last:
                errors.append(value)
                return
            last = version_number(value)
            seen.add(value)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        written = [_train(store, "p") for _ in range(40)]
    finally:
        stop.set()
        for thread in readers:
            thread.join(10)
    assert errors == []
    assert seen <= {first, *written} and store.latest("p") == written[-1]
    leftovers = [name for name in os.listdir(store.project_dir("p")) if name.endswith(".tmp")]
    assert leftovers == [], "every temporary file was renamed into place"


def test_pin_holds_latest_until_unpin(store):
    v1, v2 = _train(store, "p"), _train(store, "p")
    pin = store.pin("p", v1, reason="rolled back")
    assert pin["version"] == v1 and pin["reason"] == "rolled back"
    assert store.latest("p") == v1 and store.pinned("p")["version"] == v1
    assert not store.follows_newest("p")
    v3 = _train(store, "p")
    assert store.latest("p") == v1 and store.newest("p") == v3, "stored, not served, while pinned"
    assert store.unpin("p") == v3 and store.latest("p") == v3 and store.pinned("p") is None
    assert store.follows_newest("p") and v2 in store.versions("p")
    assert store.unpin("unknown") is None and not store.has_project("unknown")


@pytest.mark.parametrize("version", ["v9-20260101000000", "nonsense"])
def test_pinning_a_version_the_project_lacks_is_an_error(store, version):
    _train(store, "p")
    with pytest.raises(StoreError):
        store.pin("p", version)
    assert store.pinned("p") is None


# ------------------------------------------------------------------ training status
# (training.status.RunBook is change_status's one caller: these test the store's part, the
# read-modify-write under the project's lock, with plain changes)
def _merge(**fields):
    return lambda current: fields


def _only_for(job_id, **fields):
    """A change that applies while the status still describes ``job_id`` (the old only_if)."""
    return lambda current: fields if current.get("job_id") == job_id else None


def test_status_read_and_merge(store):
    assert store.status("p") == {}
    store.change_status("p", _merge(job_id="j1", status="queued"))
    assert store.change_status("p", _merge(status="running")) == {"job_id": "j1", "status": "running"}
    assert store.status("p") == {"job_id": "j1", "status": "running"}
    assert ModelStore(store.root).status("p")["status"] == "running", "on disk, for every process"


def test_status_change_guards_another_runs_status(store):
    store.change_status("p", _merge(job_id="j2", status="running"))
    unchanged = store.change_status("p", _only_for("j1", status="failed"))
    assert unchanged["status"] == "running" and store.status("p")["status"] == "running"
    store.change_status("p", _only_for("j2", status="completed"))
    assert store.status("p")["status"] == "completed"


def test_an_unreadable_status_reads_as_none(store):
    store.ensure_project("p")
    (store.project_dir("p") / "status.json").write_text("{half")
    assert store.status("p") == {}
    store.change_status("p", _merge(status="queued"))
    assert store.status("p") == {"status": "queued"}


def test_concurrent_status_updates_lose_nothing(store):
    def update(i: int) -> None:
        for j in range(10):
            store.change_status("p", _merge(**{f"k{i}_{j}": j}))

    threads = [threading.Thread(target=update, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(store.status("p")) == 40


# ------------------------------------------------------------------ key/value cache, config
def test_kv_cache_is_the_projects_kv_json_and_the_model_reads_it(store):
    from label_studio_ml.model import LabelStudioMLBase, build_model
    from label_studio_ml.registry import served_version

    assert store.read_json("p", "kv.json") == {}
    model = build_model(LabelStudioMLBase, project_id="p", model_dir=str(store.ensure_project("p")))
    model.set("model_version", "mine-1")
    model.set("other", "x")
    assert store.read_json("p", "kv.json") == {"model_version": "mine-1", "other": "x"}
    assert served_version(store, "p", LabelStudioMLBase) == "mine-1", "before any training"
    store.write_json("p", "kv.json", {"model_version": "mine-2"})
    assert model.get("model_version") == "mine-2" and not model.has("other")
    (store.project_dir("p") / "kv.json").write_text("not json")
    assert store.read_json("p", "kv.json") == {} and model.get("model_version") is None


def test_label_config_is_written_only_when_it_changes(store):
    assert store.label_config("p") is None
    store.save_label_config("p", "<View/>")
    path = store.project_dir("p") / "label_config.xml"
    inode = path.stat().st_ino
    store.save_label_config("p", "<View/>")
    assert path.stat().st_ino == inode, "the same config is not written again"
    store.save_label_config("p", "<View></View>")
    assert store.label_config("p") == "<View></View>"


def test_last_used_orders_projects_by_their_last_request(store):
    assert store.last_used("p") == 0.0
    store.save_label_config("p", "<View/>")
    assert store.last_used("p") > 0
    store.mark_used("q")
    os.utime(store.project_dir("q") / ".used", (1000, 1000))
    store.mark_used("q")
    assert store.last_used("q") > 1000
