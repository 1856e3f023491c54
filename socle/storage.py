"""Uploaded files written safely under the data directory: copied next to their final place, hashed, bounded in
size and synced to disk before anything names them (documents and ``/v1/files`` alike).

A staged file is moved into place with :func:`os.replace` inside the transaction that records it, so an upload
is either on disk and recorded, or neither; a refused upload (too large, empty) leaves nothing behind.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from socle.errors import InvalidRequest, PayloadTooLarge

BLOCK = 1024 * 1024


class Staged(NamedTuple):
    path: Path
    sha256: str
    size: int


class _Staging:
    """One upload being written: each block counted against the bound and hashed."""

    def __init__(self, directory: Path, max_bytes: int, param: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f".upload-{secrets.token_hex(8)}"
        self._out = self.path.open("wb")
        self._digest = hashlib.sha256()
        self._size = 0
        self._max_bytes = max_bytes
        self._param = param

    def write(self, block: bytes) -> None:
        self._size += len(block)
        if self._size > self._max_bytes:
            raise PayloadTooLarge(f"The file exceeds {self._max_bytes} bytes.", param=self._param)
        self._digest.update(block)
        self._out.write(block)

    def finish(self) -> Staged:
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        if self._size == 0:
            raise InvalidRequest("The file is empty.", param=self._param, code="empty_file")
        return Staged(self.path, self._digest.hexdigest(), self._size)

    def discard(self) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)


def stage(directory: Path, source: BinaryIO, *, max_bytes: int, param: str = "file") -> Staged:
    """Copy a readable file into ``directory`` (blocking: run it in a thread)."""
    staging = _Staging(directory, max_bytes, param)
    try:
        while block := source.read(BLOCK):
            staging.write(block)
        return staging.finish()
    except BaseException:
        staging.discard()
        raise


async def stage_stream(directory: Path, blocks: AsyncIterator[bytes], *, max_bytes: int,
                       param: str = "file") -> Staged:
    """Copy an asynchronous stream of blocks into ``directory``; the disk writes run off the event loop."""
    staging = await asyncio.to_thread(_Staging, directory, max_bytes, param)
    try:
        async for block in blocks:
            await asyncio.to_thread(staging.write, block)
        return await asyncio.to_thread(staging.finish)
    except BaseException:
        await asyncio.to_thread(staging.discard)
        raise
