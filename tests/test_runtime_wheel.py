"""The runtime wheel the template carries (``{{cookiecutter.backend_name}}/vendor/``) is the wheel
of this checkout's runtime, and the runtime's own wheel does not bundle it.

A generated repo installs its runtime from that wheel (the post-gen hook names it in
requirements.txt and writes its sha256 into the locks). The hook does not build it:
``scripts/build_runtime_wheel.py`` does, and this test says when to run it again.
"""

from __future__ import annotations

import runpy
import zipfile
from pathlib import Path

import pytest
from label_studio_ml import cli
from label_studio_ml.wheel import build_from_source, wheels_in

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "{{cookiecutter.backend_name}}"
VENDOR = TEMPLATE / "vendor"
COMMAND = "python scripts/build_runtime_wheel.py"


def test_the_template_carries_the_wheel_of_this_runtime(tmp_path):
    fresh = build_from_source(ROOT / "runtime", tmp_path)
    committed = wheels_in(VENDOR)
    assert [w.name for w in committed] == [fresh.name], f"{VENDOR} needs a fresh wheel: run `{COMMAND}`"
    assert committed[0].read_bytes() == fresh.read_bytes(), (
        f"the runtime changed since {committed[0].name} was built: run `{COMMAND}` and commit the wheel"
    )


def test_the_build_is_reproducible_and_leaves_the_template_out(tmp_path):
    first = build_from_source(ROOT / "runtime", tmp_path / "a")
    second = build_from_source(ROOT / "runtime", tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as wheel:
        names = wheel.namelist()
        assert wheel.read("label_studio_ml/cli.py") == Path(cli.__file__).read_bytes()
    assert not [n for n in names if n.startswith("label_studio_ml/template/")]
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in zipfile.ZipFile(first).infolist())


def test_the_runtime_wheel_bundles_the_template_without_its_vendored_wheel():
    pytest.importorskip("hatchling")
    bundled = runpy.run_path(str(ROOT / "runtime" / "hatch_build.py"))["bundled"](TEMPLATE)
    targets = set(bundled.values())
    prefix = "label_studio_ml/template/{{cookiecutter.backend_name}}/"
    assert f"{prefix}vendor/README.md" in targets
    assert not [t for t in targets if t.endswith(".whl")]
    files = {
        p.relative_to(TEMPLATE).as_posix()
        for p in TEMPLATE.rglob("*")
        if p.is_file() and p.suffix != ".whl" and "__pycache__" not in p.parts
    }
    assert {t[len(prefix) :] for t in targets} == files


def test_init_bakes_a_template_carrying_a_wheel_of_the_running_runtime(tmp_path):
    template = cli.template_dir()
    copy = cli.template_with_runtime(template, tmp_path, vendor=True)
    (wheel,) = wheels_in(copy / "{{cookiecutter.backend_name}}" / "vendor")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("label_studio_ml/cli.py") == Path(cli.__file__).read_bytes()
    assert sorted(p.name for p in copy.iterdir()) == sorted(cli.TEMPLATE_PARTS)
    bare = cli.template_with_runtime(template, tmp_path / "bare", vendor=False)
    assert not wheels_in(bare / "{{cookiecutter.backend_name}}" / "vendor")


def test_the_runtime_wheel_and_init_carry_every_hook_module(tmp_path):
    """The hooks import their modules from hooks/ (lsml_hooklib, lsml_folder, ...): the
    runtime's own wheel (for ``label-studio-ml init`` from an install) and the template copy init
    bakes hold every one of them."""
    pytest.importorskip("hatchling")
    from hatchling.builders.wheel import WheelBuilder

    hooks = sorted(p.name for p in (ROOT / "hooks").glob("*.py"))
    assert "lsml_hooklib.py" in hooks and "lsml_folder.py" in hooks
    (wheel,) = WheelBuilder(str(ROOT / "runtime")).build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    prefix = "label_studio_ml/template/hooks/"
    assert sorted(n[len(prefix) :] for n in names if n.startswith(prefix)) == hooks
    copy = cli.template_with_runtime(cli.template_dir(), tmp_path / "init", vendor=False)
    assert sorted(p.name for p in (copy / "hooks").glob("*.py")) == hooks
