"""``python -m socle.finetuning._child SPEC.json``: the training process that :func:`engine.train` starts.

Its stdout carries only the JSON lines of the protocol (anything a library prints goes to stderr, the
training log). It ends as soon as its parent does (its stdin, a pipe from the parent, reaches its end), so a
worker killed with kill -9 leaves no training behind it, only its checkpoints.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, TextIO


def _events_channel() -> TextIO:
    """The real stdout, kept for the protocol; file descriptor 1 then points at stderr."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _exit_with_parent() -> None:
    def watch() -> None:
        sys.stdin.buffer.read()  # returns at end of file: the parent is gone
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(spec_path: str) -> int:
    channel = _events_channel()
    _exit_with_parent()

    def emit(event: str, **fields: Any) -> None:
        channel.write(json.dumps({"event": event, **fields}) + "\n")

    from socle.finetuning.engine import spec_from_json

    spec = spec_from_json(json.loads(Path(spec_path).read_text()))
    try:
        from socle.finetuning.training import run

        run(spec, emit)
    except Exception as exc:  # the message goes to the job; the traceback to the training log
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        channel.flush()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stderr.flush()
    os._exit(code)  # not sys.exit: the interpreter's shutdown would wait on the thread blocked reading stdin
