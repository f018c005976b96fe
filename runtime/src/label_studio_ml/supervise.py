"""supervisord event listener: when supervisord gives up on a program, say why, then stop.

The generated ``supervisord.conf`` runs ``python -m label_studio_ml.supervise <log dir>`` as an
``[eventlistener]`` for ``PROCESS_STATE_FATAL``: a program that failed ``startretries`` times
within ``startsecs`` of starting (uWSGI that cannot bind its port, a worker with a bad setting).
It prints one ``ERROR:`` line and the end of that program's log on stderr, which is
supervisord's own console (``docker compose logs``), then stops supervisord, so the deployment
ends visibly instead of running without its API or its worker.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Dict, List, Optional, TextIO

TAIL_LINES = 8


def parse_tokens(line: str) -> Dict[str, str]:
    """``"a:1 b:2"`` -> ``{"a": "1", "b": "2"}`` (supervisor's header and payload format)."""
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


def tail(path: Path, lines: int = TAIL_LINES) -> List[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def report(name: str, log_dir: Path, out: TextIO) -> None:
    log = log_dir / f"{name}.log"
    out.write(
        f"ERROR: supervisord gave up on {name}: it exited too quickly, too many times in a row "
        f"(startsecs/startretries in supervisord.conf). Its cause, from the end of {log}:\n"
    )
    for line in tail(log) or ["(no log output)"]:
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
