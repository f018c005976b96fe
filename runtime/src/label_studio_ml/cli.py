"""``label-studio-ml``: create, serve and train backends.

* ``label-studio-ml init NAME [--script PATH[:Class]] [--force] [--root-dir DIR]
  [--runtime-requirement REQ]``
* ``label-studio-ml start DIR [--host H] [--port P] [--with k=v ...] [--debug]``
* ``label-studio-ml worker DIR [--burst] [--queue NAME]``
* ``label-studio-ml versions list [PROJECT] | pin PROJECT VERSION | rollback PROJECT | unpin PROJECT``
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .settings import Settings, SettingsError, redis_url_shown


def _fail(message: str, code: int = 2) -> int:
    print(f"ERROR: {message}", file=sys.stderr)
    return code


def _backend_dir(raw: str) -> Path:
    path = Path(raw).resolve()
    return path.parent if path.is_file() else path


def _enter(directory: Path) -> None:
    """Make the backend directory the working directory and importable (like ``rq worker -P``)."""
    os.chdir(directory)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def split_script(value: str) -> tuple[str, str]:
    """``path.py:Class`` -> (path, Class); a Windows drive colon is left alone."""
    path, sep, cls = value.rpartition(":")
    if sep and cls.isidentifier() and path and not path.endswith(("/", "\\")):
        return path, cls
    return value, ""


def template_dir() -> Optional[Path]:
    """The template: this repository's root when run from a checkout, else the bundled copy."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] if len(here.parents) > 3 else None, here.parent / "template"):
        if candidate is not None and (candidate / "cookiecutter.json").is_file():
            return candidate
    return None


# The template's parts, as a repository of it holds them (the runtime bundles these three).
TEMPLATE_PARTS = ("cookiecutter.json", "hooks", "{{cookiecutter.backend_name}}")


def template_with_runtime(template: Path, work: Path, vendor: bool) -> Path:
    """A copy of the template in ``work`` whose vendor/ holds a wheel of this runtime (the one
    ``init`` runs from; the post-gen hook names it in requirements.txt and the locks)."""
    from .wheel import build_running

    copy = work / "template"
    for part in TEMPLATE_PARTS:
        source = template / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.whl"))
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / part)
    if vendor:
        build_running(copy / TEMPLATE_PARTS[2] / "vendor")
    return copy


# ------------------------------------------------------------------ init
def cmd_init(args: argparse.Namespace) -> int:
    try:
        from cookiecutter.exceptions import CookiecutterException, FailedHookException
        from cookiecutter.main import cookiecutter
    except ImportError:
        return _fail(
            'init needs cookiecutter: pip install "lsml-runtime[init]" (or pip install cookiecutter).'
        )
    template = template_dir()
    if template is None:
        return _fail(
            "the template is not bundled with this install: reinstall lsml-runtime from the "
            "lsml-template repository, or run cookiecutter on the template directly."
        )
    root = Path(args.root_dir).resolve()
    target = root / args.name
    if target.exists() and not args.force:
        return _fail(
            f"{target} already exists: pass --force to overwrite its generated files, "
            "or choose another name.",
            1,
        )
    script = args.script
    if script is None and Path("model.py").is_file():
        script = "model.py"  # the seed tutorial's default
    context: Dict[str, Any] = {"backend_name": args.name}
    if script:
        path_part, cls = split_script(script)
        context["script"] = str(Path(path_part).resolve()) + (f":{cls}" if cls else "")
    if args.runtime_requirement:
        context["_runtime_requirement"] = args.runtime_requirement
    os.environ.setdefault("LSML_RUNTIME_SRC", str(Path(__file__).resolve().parents[1]))
    # the hooks' errors then name init's arguments (--script PATH:Class), not Cookiecutter's
    command = os.environ.get("LSML_COMMAND")
    os.environ["LSML_COMMAND"] = "init"
    # cookiecutter logs a failed hook with its traceback; the hook's own ERROR line says it all
    quiet = logging.getLogger("cookiecutter")
    handler = logging.NullHandler()
    propagate = quiet.propagate
    quiet.addHandler(handler)
    quiet.propagate = False
    try:
        with tempfile.TemporaryDirectory(prefix="lsml-init-") as work:
            baked = template_with_runtime(template, Path(work), vendor=not args.runtime_requirement)
            out = cookiecutter(
                str(baked),
                no_input=True,
                extra_context=context,
                output_dir=str(root),
                overwrite_if_exists=args.force,
            )
    except FailedHookException:
        return 1  # the hook printed one "ERROR: ..." line already
    except CookiecutterException as exc:
        return _fail(f"{exc}", 1)
    finally:
        quiet.removeHandler(handler)
        quiet.propagate = propagate
        if command is None:
            os.environ.pop("LSML_COMMAND", None)
        else:
            os.environ["LSML_COMMAND"] = command
    print(f"Created {out}")
    return 0


# ------------------------------------------------------------------ start
def cmd_start(args: argparse.Namespace) -> int:
    directory = _backend_dir(args.dir)
    if not directory.is_dir():
        return _fail(f"backend directory {args.dir!r} does not exist: pass the folder that holds wsgi.py.")
    module_name = next((m for m in ("wsgi", "_wsgi") if (directory / f"{m}.py").is_file()), None)
    if module_name is None:
        return _fail(f"{directory} has no wsgi.py: pass a backend generated by lsml-template.")
    _enter(directory)
    from .launch import launching, parse_kwargs

    try:
        # the same app uWSGI serves (wsgi:app), built once; --with reaches its model arguments.
        # wsgi.py sets the process up (process.setup_process) once the model is imported and
        # before it builds the app, as under uWSGI; an older wsgi.py: create_app does.
        with launching(parse_kwargs(tuple(args.with_ or []))):
            module = importlib.import_module(module_name)
            app = getattr(module, "app", None)
            if app is None and callable(getattr(module, "make_app", None)):
                app = module.make_app()
        if app is None:
            return _fail(f"{directory / module_name}.py defines no 'app': uWSGI serves wsgi:app.")
    except (SettingsError, ValueError) as exc:
        return _fail(str(exc))
    settings = app.extensions["lsml"].settings
    mode = (
        "production (training on RQ workers)"
        if settings.production
        else "development (training in a background thread)"
    )
    print(f"Serving {directory.name} on http://{args.host}:{args.port} in {mode} mode", flush=True)
    if settings.production:
        warning = app.extensions["lsml"].trainer.warning()
        if warning:
            print(f"WARNING: {settings.redis_from} is set; {warning}.", file=sys.stderr, flush=True)
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True, use_reloader=False)
    return 0


# ------------------------------------------------------------------ worker
def cmd_worker(args: argparse.Namespace) -> int:
    directory = _backend_dir(args.dir)
    if not directory.is_dir():
        return _fail(f"backend directory {args.dir!r} does not exist.")
    _enter(directory)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    if not settings.redis_url:
        return _fail(
            "REDIS_URL is not set: a worker needs the Redis the API enqueues to "
            "(e.g. REDIS_URL=redis://localhost:6379/0)."
        )
    from .checks import check_model_dir

    try:
        check_model_dir(settings.model_dir)  # the worker writes the versions
    except SettingsError as exc:
        return _fail(str(exc))
    from redis import Redis
    from rq import Queue

    from .process import setup_process
    from .worker import Worker

    if args.nice:
        # training yields the CPU to the API processes on the same machine (predictions first)
        os.nice(args.nice)

    setup_process(settings, role="worker")
    connection = Redis.from_url(settings.redis_url)
    _wait_for_redis(connection, settings.redis_url, once=args.burst)
    queue = Queue(args.queue or settings.rq_queue_name, connection=connection)
    worker = Worker([queue], connection=connection)
    worker.work(burst=args.burst, logging_level=settings.log_level)
    return 0


def _wait_for_redis(connection: Any, url: str, once: bool = False) -> None:
    """Block until Redis answers, so a worker started during an outage waits instead of exiting
    (supervisord gives up on a program that exits at once three times)."""
    from redis.exceptions import RedisError

    delay = 0.5
    while True:
        try:
            connection.ping()
            return
        except RedisError as exc:
            if once:
                raise
            logging.getLogger("label_studio_ml").warning(
                "Redis at %s does not answer (%s); retrying in %.0f s",
                redis_url_shown(url),
                type(exc).__name__,
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


# ------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="label-studio-ml", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a backend directory from a model script")
    p.add_argument("name", help="backend name (a directory name, e.g. my_backend)")
    p.add_argument("--script", "--from", dest="script", help="model script or its folder: PATH or PATH:Class")
    p.add_argument("--force", action="store_true", help="overwrite an existing directory")
    p.add_argument("--root-dir", default=".", help="where to create the backend (default: .)")
    p.add_argument(
        "--runtime-requirement",
        metavar="REQUIREMENT",
        help="first line of the generated requirements.txt instead of the vendored runtime wheel "
        "(default: vendor/lsml_runtime-<version>-py3-none-any.whl, this runtime; e.g. "
        "lsml-runtime==0.1.0 from your own package index)",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("start", help="serve a backend directory (development server)")
    p.add_argument("dir", help="the backend directory (holds wsgi.py)")
    p.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="interface to listen on (default: %(default)s, from $HOST or 127.0.0.1)",
    )
    p.add_argument(
        "-p",
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "9090") or 9090),
        help="port to listen on (default: %(default)s, from $PORT or 9090)",
    )
    p.add_argument(
        "--with",
        "--kwargs",
        dest="with_",
        nargs="+",
        metavar="KEY=VALUE",
        help="keyword arguments for the model constructor",
    )
    p.add_argument("-d", "--debug", action="store_true")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("worker", help="run an RQ training worker for a backend directory")
    p.add_argument("dir", help="the backend directory (holds model.py)")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument("--queue", help="queue name (default: RQ_QUEUE_NAME)")
    p.add_argument(
        "--nice", type=int, default=10, help="CPU niceness added to the worker (default 10; 0 = none)"
    )
    p.set_defaults(func=cmd_worker)

    from .versions import add_parser as add_versions_parser

    add_versions_parser(sub)  # label-studio-ml versions list|pin|rollback|unpin
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    if argv is None:
        sys.exit(code)
    return code
