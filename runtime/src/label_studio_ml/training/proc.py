"""Process identity: a token that names one process even after its pid is reused.

A run records the token of the process that runs it (``runner``); whoever looks at the run
later (``GET /training``, the project's next run) asks :func:`process_alive` whether that
process still runs. Linux reads the start time from ``/proc``; elsewhere the token is the pid.

Imports: the standard library only.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Tuple


def _process_token(pid: int) -> Optional[str]:
    """``"<pid>:<start time>"``: names a process even after its pid is reused (Linux), else the pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return f"{pid}:{fields[19]}"  # field 22 of stat(5): the start time, in clock ticks since boot
    except (OSError, IndexError):
        if sys.platform.startswith("linux"):
            return None  # no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass  # it exists, owned by someone else
        return str(pid)


_own_token: Tuple[int, str] = (0, "")


def this_process() -> str:
    """This process's token (computed again after a fork: uWSGI and RQ fork after import)."""
    global _own_token
    pid = os.getpid()
    if _own_token[0] != pid:
        _own_token = (pid, _process_token(pid) or str(pid))
    return _own_token[1]


def process_alive(token: str) -> bool:
    """Whether the process named by a :func:`this_process` token (of this machine) still runs."""
    pid = token.split(":", 1)[0]
    return pid.isdigit() and _process_token(int(pid)) == token
