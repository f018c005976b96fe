"""The hooks' helpers, rendered the way Cookiecutter renders them and loaded as modules."""

import ast
import importlib
import json
import os
import sys
import types
from pathlib import Path

import pytest
from cookiecutter.environment import StrictEnvironment


def load_hook(template_dir, name, **answers):
    context = json.loads((template_dir / "cookiecutter.json").read_text())
    context = {k: (v[0] if isinstance(v, list) else v) for k, v in context.items()}
    context["_repo_dir"] = str(template_dir)  # as cookiecutter gives it: the hooks import lsml_hooklib
    context.update(answers)
    env = StrictEnvironment(context={"cookiecutter": context}, keep_trailing_newline=True)
    source = env.from_string((template_dir / "hooks" / f"{name}.py").read_text())
    module = types.ModuleType(name)
    sys.modules[name] = module  # as an import would (dataclasses look their module up there)
    exec(compile(source.render(cookiecutter=context), name, "exec"), module.__dict__)
    return module


def hook_module(template_dir, name):
    """One of the modules beside the hooks (lsml_answers, lsml_script, ...), imported as the
    hooks import it: from hooks/, which loading the pre-gen hook puts on sys.path."""
    load_hook(template_dir, "pre_gen_project")
    return importlib.import_module(name)


@pytest.fixture
def pre(template_dir):
    return load_hook(template_dir, "pre_gen_project", description='a "quoted" \\ caf\u00e9')


def test_context_survives_special_characters(pre):
    assert pre.CONTEXT["description"] == 'a "quoted" \\ caf\u00e9'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("model.py", ("model.py", "")),
        ("model.py:MyModel", ("model.py", "MyModel")),
        ("/abs/dir/model.py:My_Model2", ("/abs/dir/model.py", "My_Model2")),
        ("C:\\models\\model.py", ("C:\\models\\model.py", "")),
        ("C:\\models\\model.py:Mine", ("C:\\models\\model.py", "Mine")),
        ("weird:/path.py", ("weird:/path.py", "")),
    ],
)
def test_split_script(template_dir, raw, expected):
    from label_studio_ml.cli import split_script

    assert hook_module(template_dir, "lsml_script").split_script(raw) == expected
    assert split_script(raw) == expected, "label-studio-ml init splits PATH:Class the same way"


def test_split_script_is_one_function_in_two_places(template_dir):
    """The hook cannot import the runtime (plain cookiecutter has none): it keeps a copy, and the
    copy is the runtime's function character for character."""
    from label_studio_ml import cli

    def source(path: Path) -> str:
        text = path.read_text(encoding="utf-8")
        node = next(n for n in ast.parse(text).body if getattr(n, "name", "") == "split_script")
        return ast.get_source_segment(text, node)

    hook = source(template_dir / "hooks" / "lsml_script.py")
    assert hook == source(Path(cli.__file__))
    assert "rpartition" in hook


def test_syntax_tree_finds_direct_aliased_dotted_and_derived_subclasses(template_dir):
    tree = ast.parse(
        "from label_studio_ml.model import LabelStudioMLBase as Base\n"
        "import label_studio_ml.model as lsm\n"
        "class A(Base): pass\n"
        "class B(lsm.LabelStudioMLBase): pass\n"
        "class C(A): pass\n"
        "class D(object): pass\n"
    )
    assert hook_module(template_dir, "lsml_inspect").ast_classes(tree) == ["A", "B", "C"]


def test_label_config_from_a_module_constant_or_docstring(template_dir):
    inspect = hook_module(template_dir, "lsml_inspect")
    view = '<View><Text name="t" value="$t"/></View>'
    assert inspect.label_config_of(ast.parse(f"LABEL_CONFIG = '{view}'")) == view + "\n"
    assert inspect.label_config_of(ast.parse(f'"""Doc.\n\n{view}\n"""')) == view + "\n"
    assert inspect.label_config_of(ast.parse(f'class M:\n    """{view}"""')) == view + "\n"
    assert inspect.label_config_of(ast.parse("x = '<View>'")) is None


def test_relative_script_candidates(template_dir, tmp_path, monkeypatch):
    script = hook_module(template_dir, "lsml_script")
    project = tmp_path / "out" / "my_ml_backend"
    project.mkdir(parents=True)
    shell = tmp_path / "shell"
    shell.mkdir()
    (shell / "model.py").write_text("")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PWD", str(shell))
    ctx = {"_output_dir": str(tmp_path / "out")}
    assert script.base_dirs(ctx) == [(tmp_path / "out").resolve(), shell.resolve()]
    assert script.resolve_script("model.py", ctx) == (shell / "model.py").resolve()
    # Nowhere to be found: the error names the first candidate.
    assert script.resolve_script("other.py", ctx) == (tmp_path / "out").resolve() / "other.py"


def test_post_gen_removal_tolerates_missing_paths(template_dir, tmp_path):
    load_hook(template_dir, "post_gen_project")
    lib = hook_module(template_dir, "lsml_hooklib")
    lib.remove(tmp_path / "never-existed.py")
    (tmp_path / "d").mkdir()
    lib.remove(tmp_path / "d")
    assert not (tmp_path / "d").exists()
    assert lib.PROVIDED.match("label-studio-ml==1.0.9")
    assert lib.PROVIDED.match("uWSGI>=2")
    assert lib.PROVIDED.match("supervisor")
    assert not lib.PROVIDED.match("supervision==0.20")
    assert not lib.PROVIDED.match("uwsgi-tools")
    assert Path(hook_module(template_dir, "lsml_install").EXAMPLE).name == "example_model.py"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"gpu": "maybe"}, "gpu 'maybe' is not yes or no"),  # cruft and old cookiecutters pass it through
        ({"workers": "1.5"}, "workers '1.5' is not a whole number from 1 to 64"),
        ({"threads": "0"}, "threads '0' is not a whole number from 1 to 256"),
    ],
)
def test_worker_shape_answers_are_validated(pre, template_dir, answers, expected):
    good = {"backend_name": "ok_name", "port": "9090", "python_version": "3.12", "gpu": "no"}
    with pytest.raises(pre.HookError, match=expected.replace(".", r"\.")):
        hook_module(template_dir, "lsml_answers").validate_answers(
            {**good, "workers": "2", "threads": "4", **answers}
        )


UNDECLARED_SCRIPT = """
import json
import numpy as np
from sklearn.linear_model import LogisticRegression
import helpers
from label_studio_ml.model import LabelStudioMLBase


class Classifier(LabelStudioMLBase):
    def predict(self, tasks, **kwargs):
        import yaml  # imported inside a method: still a dependency
        return []
"""


@pytest.mark.parametrize(
    "sibling_requirements, expected",
    [
        (None, "numpy, sklearn (scikit-learn), yaml (PyYAML)"),
        ("numpy==2.2.6\nPyYAML>=6\n", "sklearn (scikit-learn)"),
        ("scikit_learn==1.9.1\nnumpy\npyyaml\n", None),
    ],
)
def test_undeclared_third_party_imports_are_named(bake, tmp_path, capfd, sibling_requirements, expected):
    """A script's third-party imports missing from requirements.txt get one WARNING line
    (distribution names from the installed packages); stdlib, the runtime's own and sibling
    modules never do."""
    script_dir = tmp_path / "src"
    script_dir.mkdir()
    (script_dir / "model.py").write_text(UNDECLARED_SCRIPT)
    (script_dir / "helpers.py").write_text("X = 1\n")
    if sibling_requirements:
        (script_dir / "requirements.txt").write_text(sibling_requirements)
    result = bake(script=str(script_dir / "model.py"))
    assert result.exit_code == 0, result.exception
    out = capfd.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("WARNING: model.py imports")]
    if expected is None:
        assert warnings == [], out
    else:
        assert warnings == [
            f"WARNING: model.py imports {expected}, which requirements.txt does not list: "
            "add them, pinned, or the backend fails with ModuleNotFoundError on a fresh machine."
        ], out


def test_unknown_cli_key_is_an_error_on_an_exact_command_line_else_a_warning(
    pre, template_dir, monkeypatch, capsys
):
    """Linux gives the cookiecutter command line exactly (/proc); ``ps`` splits it at spaces,
    where a value like ``description='a b=c'`` would look like a key ``b``: only a warning."""
    answers = hook_module(template_dir, "lsml_answers")
    monkeypatch.delenv("LSML_COMMAND", raising=False)
    monkeypatch.setattr(answers, "cookiecutter_cli_args", lambda pid: (["scirpt=m.py"], True))
    with pytest.raises(
        pre.HookError, match=r"^scirpt 'm.py' is not a variable .*Did you mean script=\.\.\.\?"
    ):
        answers.check_cli_keys(pre.CONTEXT, 1)
    monkeypatch.setattr(answers, "cookiecutter_cli_args", lambda pid: (["scirpt=m.py"], False))
    answers.check_cli_keys(pre.CONTEXT, 1)
    assert capsys.readouterr().err.startswith("WARNING: scirpt 'm.py' is not a variable of this template")
    monkeypatch.setenv("LSML_COMMAND", "init")  # init has no key=value arguments to check
    monkeypatch.setattr(answers, "cookiecutter_cli_args", lambda pid: (["scirpt=m.py"], True))
    answers.check_cli_keys(pre.CONTEXT, 1)


def test_cookiecutter_cli_args_reads_only_a_cookiecutter_parent(template_dir):
    import os

    # this test's own parent is no cookiecutter process (pytest's, or a shell)
    assert hook_module(template_dir, "lsml_answers").cookiecutter_cli_args(os.getppid()) is None


def test_post_gen_names_the_wheel_the_template_brought(template_dir, tmp_path, monkeypatch):
    """post-gen builds nothing: it names the newest wheel in vendor/ (an older one a re-run left
    goes), and stops with one line when there is none."""
    post = load_hook(template_dir, "post_gen_project")
    locks = hook_module(template_dir, "lsml_locks")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "requirements.txt").write_text("placeholder\nuWSGI==2.0.31\n")
    with pytest.raises(post.HookError, match=r"^cannot find the lsml-runtime runtime to put in vendor/"):
        locks.vendor_runtime(post.CONTEXT)
    old = tmp_path / "vendor" / "lsml_runtime-0.0.9-py3-none-any.whl"
    new = tmp_path / "vendor" / "lsml_runtime-0.1.0-py3-none-any.whl"
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    os.utime(old, ns=(1, 1))
    assert locks.vendor_runtime(post.CONTEXT) == f"./vendor/{new.name}"
    assert sorted(p.name for p in (tmp_path / "vendor").iterdir()) == [new.name]
    assert (tmp_path / "requirements.txt").read_text() == f"./vendor/{new.name}\nuWSGI==2.0.31\n"
    assert new.read_bytes() == b"new", "named as it came, never rebuilt"


def test_handoff_round_trip_is_typed(template_dir, tmp_path, monkeypatch):
    pre = load_hook(template_dir, "pre_gen_project")
    monkeypatch.chdir(tmp_path)
    bundle = hook_module(template_dir, "lsml_hooklib").Bundle(
        root="/m", files=[("a.py", "a.py")], alias="old"
    )
    pre.Handoff(script="/m/model.py", model_class="M", bundle=bundle).write()
    handoff = pre.Handoff.take()
    assert handoff == pre.Handoff(script="/m/model.py", model_class="M", bundle=bundle)
    assert not handoff.uses_example and handoff.bundle.files == [("a.py", "a.py")]
    assert pre.Handoff.take() is None, "read once: the file is gone"


@pytest.mark.parametrize("pwd", ["shell", "none"])
def test_a_template_given_as_a_relative_path_finds_its_hook_library(tmp_path, repo_root, tool, run, pwd):
    """`cookiecutter ./lsml-template` (the tutorial's command): cookiecutter hands the hooks the
    path as typed, relative to where it was run, while the hooks run in the new project. From a
    shell ($PWD set) and from a program that sets no $PWD, the hooks find lsml_hooklib."""
    import subprocess

    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=repo_root, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    copy = tmp_path / "lsml-template"
    for name in filter(None, files):
        if name.startswith(("cookiecutter.json", "hooks/", "{{cookiecutter.backend_name}}/")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes((repo_root / name).read_bytes())
    (tmp_path / "out").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PWD"}
    if pwd == "shell":
        env["PWD"] = str(tmp_path)
    result = run(
        [tool("cookiecutter"), "./lsml-template", "--no-input", "-o", "out", "backend_name=rel_backend"],
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out" / "rel_backend" / "model.py").is_file()
    assert "lsml_hooklib" not in result.stderr


MODEL = (
    "from label_studio_ml.model import LabelStudioMLBase\n\n\nclass {name}(LabelStudioMLBase):\n    pass\n"
)


@pytest.mark.parametrize("command", ["cookiecutter", "init"])
def test_model_folder_errors_name_the_answer_as_the_users_command_does(
    template_dir, tmp_path, monkeypatch, command
):
    """Under label-studio-ml init (LSML_COMMAND=init) the folder's errors say --script, as the
    script's own do; under Cookiecutter, script= (byte for byte as before)."""
    folder = hook_module(template_dir, "lsml_folder")
    error = hook_module(template_dir, "lsml_hooklib").HookError
    if command == "init":
        monkeypatch.setenv("LSML_COMMAND", "init")
    else:
        monkeypatch.delenv("LSML_COMMAND", raising=False)
    init = command == "init"
    what = "--script" if init else "script"
    empty, several = tmp_path / "empty", tmp_path / "several"
    empty.mkdir()
    several.mkdir()
    (several / "a.py").write_text(MODEL.format(name="A"))
    (several / "b.py").write_text(MODEL.format(name="B"))
    with pytest.raises(error) as none:
        folder.find_model_file(empty, "Nope")
    fix = f"--script {empty / 'model.py'} (or --script " if init else f"script={empty / 'model.py'} (or "
    assert str(none.value) == (
        f"{what} '{empty}' is a folder whose .py files define no LabelStudioMLBase subclass named "
        f"Nope. Pass the model's file as {fix}folder/file.py:Class)."
    )
    with pytest.raises(error) as two:
        folder.find_model_file(several, "")
    name = "--script " if init else "script="
    assert str(two.value) == (
        f"{what} '{several}' is a folder with several model files (a.py, b.py). "
        f"Name one: {name}{several / 'a.py'} or {name}{several}:<Class>."
    )
    with pytest.raises(error) as clash:
        folder.check_collisions(several, {"wsgi.py": "wsgi.py"}, "a")
    assert str(clash.value).startswith(f"{what} '{several / 'wsgi.py'}' cannot be brought along: ")
