"""Bad answers stop the bake with one self-contained ERROR line and leave nothing on disk."""

import re
import textwrap

import pytest
from cookiecutter.exceptions import FailedHookException

ERROR_LINE = re.compile(r"^ERROR: \S.* \S.*\. \S.*\.$")

GOOD = """
from label_studio_ml.model import LabelStudioMLBase


class Good(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        return []
"""

# name -> file content (None: a directory). Written into tmp_path/scripts.
SCRIPTS = {
    "good.py": GOOD,
    "syntax.py": "def broken(:\n",
    "plain.py": "class NotAModel:\n    pass\n",
    "two.py": GOOD + "\n\nclass Other(LabelStudioMLBase):\n    pass\n",
    "raises.py": GOOD + "\nraise RuntimeError('no GPU here')\n",
    "model.txt": GOOD,
    "folder.py": None,
    "needs_torch.py": "import torch_not_installed_here\n" + GOOD,
}

# id, answers, substring the ERROR line must contain.
UNSUPPORTED = [
    ("name-space", {"backend_name": "My Backend"}, "backend_name 'My Backend' is not a valid name"),
    ("name-digit", {"backend_name": "1backend"}, "backend_name '1backend'"),
    ("name-short", {"backend_name": "a"}, "backend_name 'a'"),
    ("name-dot", {"backend_name": "my.backend"}, "backend_name 'my.backend'"),
    ("name-upper", {"backend_name": "MyBackend"}, "backend_name 'MyBackend'"),
    ("name-long", {"backend_name": "b" * 64}, "is not a valid name"),
    ("class-digit", {"model_class": "9Model"}, "model_class '9Model' is not a Python class name"),
    ("class-keyword", {"model_class": "class"}, "model_class 'class'"),
    ("port-text", {"port": "http"}, "port 'http' is not a TCP port"),
    ("port-zero", {"port": "0"}, "port '0'"),
    ("port-big", {"port": "70000"}, "port '70000'"),
    (
        "workers-zero",
        {"workers": "0"},
        "ERROR: workers '0' is not a whole number from 1 to 64. Use e.g. workers=2.",
    ),
    ("workers-text", {"workers": "two"}, "workers 'two' is not a whole number"),
    ("threads-big", {"threads": "1000"}, "threads '1000' is not a whole number from 1 to 256"),
    ("script-missing", {"script": "S/missing.py"}, "missing.py' does not exist"),
    # a folder is accepted (the model's file is found in it): this one holds none
    (
        "script-folder",
        {"script": "S/folder.py"},
        "folder.py' is a folder whose .py files define no LabelStudioMLBase",
    ),
    ("script-not-python", {"script": "S/model.txt"}, "model.txt' is not a Python file"),
    ("script-syntax", {"script": "S/syntax.py"}, "is not valid Python at line 1"),
    ("script-no-subclass", {"script": "S/plain.py"}, "defines no LabelStudioMLBase subclass"),
    ("script-two", {"script": "S/two.py"}, "defines several LabelStudioMLBase subclasses (Good, Other)"),
    ("script-wrong-class", {"script": "S/good.py:Nope"}, "model class 'Nope' is not a"),
    ("model-class-wrong", {"script": "S/good.py", "model_class": "Nope"}, "(found: Good)"),
    ("class-conflict", {"script": "S/good.py:Good", "model_class": "Other"}, "Give the class once"),
    ("script-raises", {"script": "S/raises.py"}, "raised RuntimeError: no GPU here on import"),
]


@pytest.fixture
def scripts(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, content in SCRIPTS.items():
        if content is None:
            (folder / name).mkdir()
        else:
            (folder / name).write_text(textwrap.dedent(content), encoding="utf-8")
    return folder


def with_scripts(answers, scripts):
    return {k: v.replace("S/", f"{scripts}/") if k == "script" else v for k, v in answers.items()}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [pytest.param(answers, expected, id=case) for case, answers, expected in UNSUPPORTED],
)
def test_bad_answers_fail_with_one_error_line(bake, scripts, tmp_path, capfd, answers, expected):
    result = bake(**with_scripts(answers, scripts))
    assert result.exit_code == -1
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
    err = capfd.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("ERROR: ") and "hook" not in line]
    assert len(ours) == 1, err
    assert ERROR_LINE.match(ours[0]), ours[0]
    assert expected in ours[0], ours[0]
    # cookiecutter removed the project directory it had created: nothing is left.
    leftovers = [p for p in (tmp_path / "cookies").rglob("*")]
    assert leftovers == [p for p in leftovers if p.is_dir() and not any(p.iterdir())]


def test_missing_dependency_falls_back_to_the_syntax_tree(bake, scripts, capfd):
    result = bake(script=f"{scripts}/needs_torch.py")
    assert result.exit_code == 0, result.exception
    err = capfd.readouterr().err
    assert "WARNING: script" in err and "torch_not_installed_here" in err
    assert "from model import Good\n" in (result.project_path / "wsgi.py").read_text()


def test_relative_script_resolves_against_the_output_dir(tmp_path, template_dir, runtime_requirement):
    from cookiecutter.main import cookiecutter

    (tmp_path / "model.py").write_text(textwrap.dedent(GOOD), encoding="utf-8")
    project = cookiecutter(
        str(template_dir),
        no_input=True,
        output_dir=str(tmp_path),
        extra_context={"script": "model.py", "_runtime_requirement": runtime_requirement},
    )
    wsgi = (tmp_path / "my_ml_backend" / "wsgi.py").read_text()
    assert project == str(tmp_path / "my_ml_backend")
    assert "from model import Good\n" in wsgi


def test_relative_script_resolves_against_the_shell_directory(bake, scripts, monkeypatch):
    monkeypatch.setenv("PWD", str(scripts))
    result = bake(script="good.py")
    assert result.exit_code == 0, result.exception
    assert "class Good(" in (result.project_path / "model.py").read_text()


def test_sibling_requirements_are_merged(bake, scripts):
    (scripts / "requirements.txt").write_text(
        "# model deps\nscikit-learn>=1.3\nlabel-studio-ml==1.0.9\nuwsgi\nnumpy\n", encoding="utf-8"
    )
    result = bake(script=f"{scripts}/good.py")
    assert result.exit_code == 0, result.exception
    lines = (result.project_path / "requirements.txt").read_text().splitlines()
    assert lines[0].startswith("./vendor/lsml_runtime-")
    assert lines[-2:] == ["scikit-learn>=1.3", "numpy"]
    assert not any("label-studio-ml" in line for line in lines)


def test_label_config_in_the_script_is_used_by_the_tests(bake, scripts):
    config = '<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text">'
    config += '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
    (scripts / "with_config.py").write_text(
        f"LABEL_CONFIG = '''{config}'''\n" + textwrap.dedent(GOOD), encoding="utf-8"
    )
    result = bake(script=f"{scripts}/with_config.py")
    assert result.exit_code == 0, result.exception
    assert (result.project_path / "tests" / "label_config.xml").read_text() == config + "\n"
