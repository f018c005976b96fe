"""How a backend's app gets its model arguments, whichever server runs it.

uWSGI serves ``wsgi:app``; ``label-studio-ml start DIR`` (and ``python wsgi.py``) imports the
same module and serves that same ``app``: one app, built once, the same way. The model's
constructor gets, later ones winning:

1. ``config.json`` next to the model's script (the backend directory), when it exists;
2. what the code passes (``create_app(..., model_kwargs=...)``);
3. ``start``'s ``--with KEY=VALUE`` (the command line of the development server).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

from .exceptions import SettingsError

CONFIG_FILE = "config.json"

# start's --with values, for the app its import of wsgi.py builds (see launching())
_start_kwargs: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar(
    "lsml_start_kwargs", default=None
)


@contextlib.contextmanager
def launching(start_kwargs: Dict[str, Any]) -> Iterator[None]:
    """Apps built inside this block (by importing ``wsgi.py``) get ``start_kwargs`` last."""
    token = _start_kwargs.set(dict(start_kwargs))
    try:
        yield
    finally:
        _start_kwargs.reset(token)


def model_directory(model_class: type) -> Optional[Path]:
    """The directory of the script that defines ``model_class`` (None for built-in code)."""
    module = sys.modules.get(model_class.__module__)
    filename = getattr(module, "__file__", None)
    return Path(filename).resolve().parent if filename else None


def read_config_file(path: Path) -> Dict[str, Any]:
    """``config.json``: a JSON object of constructor arguments; anything else is a clear error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingsError(f"{path} is not readable JSON ({exc}): fix or remove it") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise SettingsError(f'{path} must hold a JSON object of model arguments, like {{"threshold": 0.5}}')
    return data


def model_kwargs_for(model_class: type, model_kwargs: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The model's constructor arguments: ``config.json``, then ``model_kwargs``, then ``--with``."""
    merged: Dict[str, Any] = {}
    directory = model_directory(model_class)
    if directory is not None and (directory / CONFIG_FILE).is_file():
        merged.update(read_config_file(directory / CONFIG_FILE))
    merged.update(model_kwargs or {})
    merged.update(_start_kwargs.get() or {})
    return merged


def parse_kwargs(pairs: Tuple[str, ...]) -> Dict[str, Any]:
    """``("a=1", "b=true", "c=x")`` → ``{"a": 1, "b": True, "c": "x"}`` (the ``--with`` rule)."""
    out: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--with {pair!r} is not KEY=VALUE with a Python name as KEY")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        out[key] = value
    return out
