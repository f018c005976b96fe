"""supervisord event listener: when supervisord gives up on a program, say why, then stop.

The generated ``supervisord.conf`` runs ``python -m label_studio_ml.supervise <log dir>`` as an
``[eventlistener]`` for ``PROCESS_STATE_FATAL``: a program that failed ``startretries`` times
within ``startsecs`` of starting (uWSGI that cannot bind its port, a worker with a bad setting).
It prints one ``ERROR:`` line, the last Python exception in that program's log (uWSGI that
cannot import ``wsgi.py`` logs the traceback, then some 200 lines of its own, ending with "no
app loaded. GAME OVER"), and the end of the log on stderr, which is supervisord's own console
(``docker compose logs``), then stops supervisord, so the deployment ends visibly instead of
running without its API or its worker.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Dict, List, Optional, TextIO

TAIL_LINES = 8
READ_BYTES = 512 * 1024  # of the end of the log, where the failed starts are
TRACEBACK_LINES = 40  # at most, of the exception's traceback: its first line and its end
TRACEBACK = "Traceback (most recent call last):"


def parse_tokens(line: str) -> Dict[str, str]:
    """``"a:1 b:2"`` -> ``{"a": "1", "b": "2"}`` (supervisor's header and payload format)."""
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


def read_end(path: Path, size: int = READ_BYTES) -> List[str]:
    """The non-empty lines of the last ``size`` bytes of a log ([] when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def tail(path: Path, lines: int = TAIL_LINES) -> List[str]:
    return read_end(path)[-lines:]


def last_exception(lines: List[str]) -> List[str]:
    """The last Python traceback in ``lines``, up to its exception line ([] when there is none).

    A long traceback keeps its first line and its last ``TRACEBACK_LINES - 2`` lines.
    """
    starts = [i for i, line in enumerate(lines) if line.startswith(TRACEBACK)]
    if not starts:
        return []
    block = [lines[starts[-1]]]
    for line in lines[starts[-1] + 1 :]:
        block.append(line)
        if not line[:1].isspace():  # "SomeError: message", the end of the traceback
            break
    if len(block) > TRACEBACK_LINES:
        block = [block[0], "  ..."] + block[-(TRACEBACK_LINES - 2) :]
    return block


def report(name: str, log_dir: Path, out: TextIO) -> None:
    log = log_dir / f"{name}.log"
    lines = read_end(log)
    exception = last_exception(lines)
    out.write(
        f"ERROR: supervisord gave up on {name}: it exited too quickly, too many times in a row "
        f"(startsecs/startretries in supervisord.conf). Its cause, from {log}:\n"
    )
    if exception:
        exc_line = exception[-1].strip()
        out.write(f"  {name} | (the last Python exception in the log: {exc_line})\n")
        for line in exception:
            out.write(f"  {name} | {line}\n")
        out.write(f"  {name} | (the end of the log)\n")
    for line in lines[-TAIL_LINES:] or ["(no log output)"]:
        out.write(f"  {name} | {line}\n")
    out.write("Stopping supervisord: fix the cause, then start it again.\n")
    out.flush()


def listen(log_dir: Path, stdin: TextIO, stdout: TextIO, stderr: TextIO, supervisord: Optional[int]) -> None:
    """The event listener protocol: READY, read one event, answer OK, repeat."""
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return  # supervisord closed the pipe: it is shutting down
        header = parse_tokens(header_line)
        payload = parse_tokens(stdin.read(int(header.get("len", "0"))).split("\n", 1)[0])
        stdout.write("RESULT 2\nOK")
        stdout.flush()
        if header.get("eventname") == "PROCESS_STATE_FATAL":
            report(payload.get("processname", "?"), log_dir, stderr)
            if supervisord:
                os.kill(supervisord, signal.SIGTERM)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    log_dir = Path(args[0] if args else "logs").resolve()
    listen(log_dir, sys.stdin, sys.stdout, sys.stderr, os.getppid())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
