"""What a user sees when the pre-generation hook refuses an answer, by either route."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..support import clean_env

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- test: cookiecutter-error script=(\S+) -->\n```text\n(.*?)^```", re.S | re.M)
NO_CLASS = "x = 1\n"


def test_init_prints_the_hook_error_alone(tmp_path, tool):
    script = tmp_path / "model.py"
    script.write_text(NO_CLASS)
    proc = subprocess.run(
        [tool("label-studio-ml"), "init", "my_backend", "--script", "model.py"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"ERROR: --script '{script}' defines no LabelStudioMLBase subclass. "
        "Subclass label_studio_ml.model.LabelStudioMLBase in it."
    ]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "my_backend").exists()


def test_variables_md_shows_what_plain_cookiecutter_prints(tmp_path, tool):
    (doc_script, block), *_ = BLOCK.findall((ROOT / "docs" / "variables.md").read_text())
    script = tmp_path / "model.py"
    script.write_text(NO_CLASS)
    proc = subprocess.run(
        [tool("cookiecutter"), str(ROOT), "--no-input", "backend_name=my_backend", f"script={script}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    seen = proc.stdout.replace(str(script), doc_script).splitlines()
    # every line of the doc block, in order ("  ..." stands for the traceback's frames)
    expected = [line for line in block.splitlines() if line.strip() != "..."]
    positions = [seen.index(line) if line in seen else -1 for line in expected]
    assert -1 not in positions, f"documented lines missing from the real output:\n{proc.stdout}"
    assert positions == sorted(positions), f"the real output has another order:\n{proc.stdout}"
    assert positions[0] == 0, "the hook's ERROR line comes first"
    assert seen[-1] == expected[-1]


def test_init_help_shows_the_runtime_requirement_option(tool):
    out = subprocess.run([tool("label-studio-ml"), "init", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "--runtime-requirement REQUIREMENT" in out.stdout and "vendor/" in out.stdout
