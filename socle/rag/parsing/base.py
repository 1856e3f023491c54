"""What every parser returns, what may go wrong, and the limits parsing runs under."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path


class ParseError(Exception):
    """This document cannot be read; the message is shown to its owner as the failure reason."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_unzipped_bytes: int = 200 * 1024 * 1024  # DOCX and ODT are zip files: a bomb stops here
    max_ratio: int = 100  # uncompressed ÷ compressed, per archive member
    memory_mb: int = 1024  # of the parsing process
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading (``title`` None before the first), with its page when known."""

    text: str
    title: str | None = None
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    sections: list[Section]
    title: str | None = None
    pages: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


def check_zip(path: Path, limits: Limits) -> None:
    """Refuse decompression bombs before any parser inflates a member."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for member in archive.infolist():
                total += member.file_size
                if member.compress_size and member.file_size / member.compress_size > limits.max_ratio \
                        and member.file_size > 1024 * 1024:
                    raise ParseError(f"Refused: the member {member.filename!r} inflates "
                                     f"{member.file_size // member.compress_size}× (a decompression bomb?).")
            if total > limits.max_unzipped_bytes:
                raise ParseError(f"Refused: {total} bytes once decompressed, above the limit of "
                                 f"{limits.max_unzipped_bytes}.")
    except zipfile.BadZipFile as exc:
        raise ParseError("The file is corrupt: not a valid zip container.") from exc


def clean(text: str) -> str:
    """Normalise whitespace and Unicode (NFC), drop control characters."""
    import unicodedata

    text = unicodedata.normalize("NFC", text).replace("\u00ad", "")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
