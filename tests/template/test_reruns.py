"""Regenerating over an existing backend (init --force, cruft) never replaces model.py."""

import textwrap

import pytest
from cookiecutter.main import cookiecutter

MODEL = """
from label_studio_ml.model import LabelStudioMLBase as Base


class Mine(Base):
    def predict(self, tasks, **kwargs):
        return []
"""


@pytest.fixture
def generate(tmp_path, template_dir, runtime_requirement):
    def _generate(force=False, **answers):
        context = {"backend_name": "rerun", "_runtime_requirement": runtime_requirement, **answers}
        return cookiecutter(
            str(template_dir),
            no_input=True,
            output_dir=str(tmp_path / "out"),
            extra_context=context,
            overwrite_if_exists=force,
        )

    return _generate


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(MODEL), encoding="utf-8")
    return path


def test_force_without_script_keeps_the_edited_model(generate, script, tmp_path):
    project = tmp_path / "out" / "rerun"
    generate(script=str(script))
    (project / "model.py").write_text(script.read_text() + "# edited\n")
    (project / "wsgi.py").write_text("broken\n")
    generate(force=True)
    assert (project / "model.py").read_text().endswith("# edited\n")
    assert "from model import Mine\n" in (project / "wsgi.py").read_text()
    assert not (project / "example_model.py").exists()
    assert not (project / ".lsml-pregen.json").exists()


def test_force_with_a_vanished_script_warns_and_keeps_the_model(generate, script, tmp_path, capfd):
    project = tmp_path / "out" / "rerun"
    generate(script=str(script))
    (project / "model.py").write_text(script.read_text() + "# edited\n")
    script.unlink()
    generate(force=True, script=str(script))
    assert "WARNING: script" in capfd.readouterr().err
    assert (project / "model.py").read_text().endswith("# edited\n")
    assert "from model import Mine\n" in (project / "wsgi.py").read_text()


def test_a_missing_script_is_an_error_on_a_fresh_bake(generate, tmp_path, capfd):
    from cookiecutter.exceptions import FailedHookException

    with pytest.raises(FailedHookException):
        generate(script=str(tmp_path / "nowhere.py"))
    assert "ERROR: script" in capfd.readouterr().err
    assert not (tmp_path / "out" / "rerun").exists()
