"""Parsing uploaded documents into text sections, one module per format, in a resource-limited process.

``parse_file`` picks the parser from the file name, and checks the content is what the name says
(a PDF starts with ``%PDF``, DOCX and ODT are zip files, text is not binary). ``Sandbox`` runs it in a
separate process whose memory is capped and whose time is bounded: a PDF, zip or XML bomb, or a
parser stuck on a malformed file, fails that document only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import multiprocessing
import resource
from pathlib import Path

from socle.rag.parsing.base import Limits, ParsedDocument, ParseError, Section

__all__ = ["Limits", "ParsedDocument", "ParseError", "Sandbox", "Section", "SUPPORTED", "parse_file"]

_MODULES = {".pdf": "pdf", ".docx": "docx", ".odt": "odt", ".html": "html", ".htm": "html", ".md": "markdown",
            ".markdown": "markdown", ".txt": "text", ".text": "text", ".csv": "text", ".json": "text"}
SUPPORTED = frozenset(_MODULES)
_ZIPPED = {"docx", "odt"}


def parse_file(path: Path, filename: str, limits: Limits = Limits()) -> ParsedDocument:
    """Parse one file in this process (``Sandbox`` runs this in a limited one)."""
    suffix = Path(filename).suffix.lower()
    kind = _MODULES.get(suffix)
    if kind is None:
        raise ParseError(f"Unsupported file type {suffix or '(none)'}: accepted are "
                         f"{', '.join(sorted(SUPPORTED))}.")
    size = path.stat().st_size
    if size == 0:
        raise ParseError("The file is empty.")
    if size > limits.max_bytes:
        raise ParseError(f"The file is {size} bytes, above the limit of {limits.max_bytes}.")
    with path.open("rb") as handle:
        head = handle.read(8)
    if (kind == "pdf") != head.startswith(b"%PDF") or (kind in _ZIPPED) != head.startswith(b"PK\x03\x04"):
        raise ParseError(f"The content does not match the extension {suffix}: check the file's type.")
    document = importlib.import_module(f"socle.rag.parsing.{kind}").parse(path, limits)
    if not document.sections:
        raise ParseError("No text found in the document (a scanned PDF would need OCR, which is not offered).")
    return document


def _limit_memory(megabytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (megabytes * 1024 * 1024, megabytes * 1024 * 1024))


class Sandbox:
    """A pool of parsing processes with capped memory; each parse has a time limit."""

    def __init__(self, limits: Limits = Limits(), *, processes: int = 1) -> None:
        self.limits = limits
        self._processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            self._processes, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_memory,
            initargs=(self.limits.memory_mb,))

    async def parse(self, path: Path, filename: str) -> ParsedDocument:
        future = asyncio.get_running_loop().run_in_executor(self._pool, parse_file, path, filename, self.limits)
        try:
            return await asyncio.wait_for(future, self.limits.timeout_s)
        except TimeoutError as exc:
            self._restart()  # the stuck process must go, with it
            raise ParseError(f"Parsing took longer than {self.limits.timeout_s:g} s.") from exc
        except MemoryError as exc:
            raise ParseError(f"Parsing needed more than {self.limits.memory_mb} MB of memory.") from exc
        except concurrent.futures.process.BrokenProcessPool as exc:
            self._restart()
            raise ParseError("The parser crashed on this file (it is malformed or too large).") from exc

    def _restart(self) -> None:
        old = self._pool
        self._pool = self._new_pool()
        for process in list(getattr(old, "_processes", {}).values()):
            process.kill()
        old.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
