"""A GGUF file's chat template, rendered in a child process that is killed when it runs too long.

A chat template is a Jinja program that comes with the model file. llama-cpp-python renders it in Jinja's
sandbox, which keeps it from Python's internals but not from looping: nested ``range(100000)`` would keep a
core busy for hours, and the model's only thread with it. Here the template is rendered in a child process
by llama-cpp-python's own formatter (so the prompt is exactly the one it would have rendered), with a time
limit and a memory cap. Past the limit the child is killed, which really stops the work, and the next call
starts a fresh one. Every failure is an error that names the chat template, never a bare server error.
The child is started with ``python -m`` (not multiprocessing), so it imports nothing of the server's.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import select
import signal
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import orjson

from socle.errors import BackendError, InvalidRequest

_MESSAGE_CHARS = 300
_MAX_PROMPT_CHARS = 16 * 1024 * 1024  # far beyond any context window: a template that inflates is refused
_PR_SET_PDEATHSIG = 1  # prctl(2), Linux


def _failed(reason: str) -> BackendError:
    return BackendError(f"The model's chat template failed: {reason}", code="chat_template_failed")


class TemplateRenderer:
    """The child process that renders one template, started on first use and after each kill. It speaks
    JSON lines on its standard input and output; its standard error is the server's."""

    def __init__(self, template: str, *, bos_token: str, eos_token: str, timeout_s: float,
                 memory_mb: int = 1024) -> None:
        self.template = template
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.start_timeout_s = 60.0  # the child imports llama-cpp-python: seconds on a busy machine
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one render at a time, and close() in between

    def start(self) -> None:
        with self._lock:
            self._ensure()

    def render(self, context: dict[str, Any]) -> str:
        """The prompt for ``context`` (messages, tools...); raises a clear error if the template fails."""
        try:
            request = orjson.dumps(context) + b"\n"
        except orjson.JSONEncodeError as exc:
            raise InvalidRequest(f"The conversation cannot be encoded: {exc}.", param="messages") from exc
        with self._lock:
            process = self._ensure()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(request)
                process.stdin.flush()
                outcome, value = self._reply(process, self.timeout_s)
            except TimeoutError:
                self._kill()
                raise _failed(f"rendering took longer than {self.timeout_s:g} s.") from None
            except (OSError, ValueError) as exc:  # the process died (memory cap, killed): its pipe broke
                self._kill()
                raise _failed("its rendering process stopped (it may have needed more than "
                              f"{self.memory_mb} MB of memory).") from exc
        if outcome == "ok":
            return str(value)
        if outcome == "refused":  # the template's raise_exception(): it refuses this conversation
            raise InvalidRequest(f"The model's chat template refused the conversation: {value}",
                                 param="messages", code="chat_template_refused")
        raise _failed(str(value))

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _ensure(self) -> subprocess.Popen[bytes]:
        """The running child, or a new one once it is ready (its start is not counted as render time)."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._kill()
        process = self._process = subprocess.Popen([sys.executable, "-m", __name__, str(self.memory_mb),
                                                     str(os.getpid())],
                                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert process.stdin is not None
        try:
            process.stdin.write(orjson.dumps({"template": self.template, "bos_token": self.bos_token,
                                              "eos_token": self.eos_token}) + b"\n")
            process.stdin.flush()
            outcome, value = self._reply(process, self.start_timeout_s)
        except (OSError, ValueError, TimeoutError) as exc:
            self._kill()
            raise _failed("its rendering process did not start.") from exc
        if outcome != "ready":
            self._kill()
            raise _failed(str(value))
        return process

    @staticmethod
    def _reply(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[str, str]:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError
        outcome, value = orjson.loads(process.stdout.readline())  # ValueError if it died: "" is not JSON
        return outcome, value

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None


class BoundedChatFormatter:
    """llama-cpp-python's chat formatter protocol, rendering through a :class:`TemplateRenderer`; the rest
    is what its ``Jinja2ChatFormatter`` does (the end-of-sequence token stops the generation)."""

    def __init__(self, renderer: TemplateRenderer, stop_token_ids: list[int]) -> None:
        self.renderer = renderer
        self.stop_token_ids = set(stop_token_ids)

    def __call__(self, *, messages: list[dict[str, Any]], functions: Any = None, function_call: Any = None,
                 tools: Any = None, tool_choice: Any = None, **kwargs: Any) -> Any:
        from llama_cpp.llama import StoppingCriteriaList
        from llama_cpp.llama_chat_format import ChatFormatterResponse

        prompt = self.renderer.render({"messages": messages, "functions": functions, "tools": tools,
                                       "function_call": function_call, "tool_choice": tool_choice, **kwargs})

        def stop_on_last_token(tokens: np.ndarray, logits: np.ndarray) -> bool:
            return bool(tokens[-1] in self.stop_token_ids)

        return ChatFormatterResponse(prompt=prompt, stop=[self.renderer.eos_token],
                                     stopping_criteria=StoppingCriteriaList([stop_on_last_token]),
                                     added_special=True)


# ---- in the child process --------------------------------------------------------------------------

def _serve(memory_mb: int, parent: int) -> None:
    _die_with_parent(parent)
    import jinja2
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the replies
    init = orjson.loads(sys.stdin.buffer.readline())
    try:
        formatter = Jinja2ChatFormatter(template=init["template"], eos_token=init["eos_token"],
                                        bos_token=init["bos_token"])
    except jinja2.exceptions.TemplateError as exc:
        replies.write(orjson.dumps(("failed", f"it is not a valid template ({_short(exc)}).")) + b"\n")
        return
    _cap_memory(memory_mb)
    replies.write(orjson.dumps(("ready", "")) + b"\n")
    replies.flush()
    for line in sys.stdin.buffer:
        try:
            prompt = formatter(**orjson.loads(line)).prompt
            reply: tuple[str, str] = ("ok", prompt) if len(prompt) <= _MAX_PROMPT_CHARS else (
                "failed", f"it rendered a prompt of {len(prompt)} characters, more than {_MAX_PROMPT_CHARS}.")
        except jinja2.exceptions.SecurityError as exc:
            reply = ("failed", f"it does something the template sandbox forbids ({_short(exc)}).")
        except ValueError as exc:
            reply = ("refused", _short(exc))
        except MemoryError:
            reply = ("failed", f"rendering needed more than {memory_mb} MB of memory.")
        except RecursionError:
            reply = ("failed", "it recursed too deeply.")
        except Exception as exc:  # noqa: BLE001 (any error of the template is reported as the template's)
            reply = ("failed", f"{type(exc).__name__}: {_short(exc)}")
        replies.write(orjson.dumps(reply) + b"\n")
        replies.flush()


def _die_with_parent(parent: int) -> None:
    """A render left running by a server that died (killed, crashed) must not burn a core for ever. The
    parent's pid is compared, not 1: in a container the server itself is pid 1."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _cap_memory(megabytes: int) -> None:
    """Leave the child ``megabytes`` of address space beyond what its imports already take."""
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = used + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS - 1] + "…"


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
