"""Speech to text: what the gateway asks a transcription backend, how it counts the audio, and how it writes the
answer in each of the OpenAI API's formats.

The backend is always asked for ``verbose_json``: it carries the audio's ``duration``, which is what usage and
quotas count (one second of audio counts as one prompt token, rounded up), and its segments, from which the
gateway writes ``text``, ``srt`` and ``vtt`` itself, the same for every backend.
"""
from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass
from typing import Literal

import aiohttp

from socle.endpoints import Json

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
# The lowest bit rate of recorded speech (16 kbit/s): a file cannot hold more seconds than this reckons, which
# bounds what a call may cost before the backend says how long the audio was.
BYTES_PER_SECOND_AT_LEAST = 2_000
# Fields passed on to the backend as the client gave them (``timestamp_granularities`` is a list, sent as the
# OpenAI SDK sends it).
_FORWARDED = ("language", "prompt", "temperature")


@dataclass(frozen=True, slots=True)
class Audio:
    """An uploaded audio file, as the request body carries it to the backend."""

    filename: str
    data: bytes
    content_type: str


def silence(seconds: float, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of silence: what a backend's connection test transcribes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def seconds_at_most(body: Json) -> int:
    """The longest the uploaded audio can last, for the quota's worst case."""
    audio: Audio = body["file"]
    return max(1, len(audio.data) // BYTES_PER_SECOND_AT_LEAST)


def form(body: Json, model: str) -> aiohttp.MultipartWriter:
    """The multipart request for a backend's ``/v1/audio/transcriptions``, always asking for ``verbose_json``."""
    audio: Audio = body["file"]
    writer = aiohttp.MultipartWriter("form-data")
    writer.append(audio.data, {"content-type": audio.content_type}).set_content_disposition(
        "form-data", name="file", filename=audio.filename)
    fields = [("model", model), ("response_format", "verbose_json")]
    fields += [(name, str(body[name])) for name in _FORWARDED if body.get(name) is not None]
    fields += [("timestamp_granularities[]", value) for value in body.get("timestamp_granularities") or ()]
    for name, value in fields:
        writer.append(value).set_content_disposition("form-data", name=name)
    return writer


def with_usage(answer: Json) -> Json:
    """The backend's answer with its usage in audio seconds, in the OpenAI API's shape (``type: duration``) and
    as prompt tokens for the platform's accounting."""
    seconds = math.ceil(float(answer.get("duration") or 0))
    answer["usage"] = {"type": "duration", "seconds": seconds, "prompt_tokens": seconds, "total_tokens": seconds}
    return answer


def render(answer: Json, response_format: ResponseFormat) -> tuple[str | Json, str]:
    """The answer in the format asked, and its media type."""
    usage = {"type": "duration", "seconds": (answer.get("usage") or {}).get("seconds", 0)}
    if response_format == "verbose_json":
        return {**answer, "usage": usage}, "application/json"
    if response_format == "json":
        return {"text": answer.get("text", ""), "usage": usage}, "application/json"
    if response_format == "text":
        return str(answer.get("text", "")) + "\n", "text/plain; charset=utf-8"
    cues = _cues(answer)
    if response_format == "srt":
        return "".join(f"{n}\n{_stamp(start, ',')} --> {_stamp(end, ',')}\n{text}\n\n"
                       for n, (start, end, text) in enumerate(cues, 1)), "text/plain; charset=utf-8"
    return "WEBVTT\n\n" + "".join(f"{_stamp(start, '.')} --> {_stamp(end, '.')}\n{text}\n\n"
                                  for start, end, text in cues), "text/vtt; charset=utf-8"


def _cues(answer: Json) -> list[tuple[float, float, str]]:
    """The subtitles: one per segment, or one for the whole audio when the backend gave no segments."""
    segments = [segment for segment in answer.get("segments") or () if isinstance(segment, dict)]
    if segments:
        return [(float(s.get("start") or 0), float(s.get("end") or 0), str(s.get("text", "")).strip())
                for s in segments]
    return [(0.0, float(answer.get("duration") or 0), str(answer.get("text", "")).strip())]


def _stamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"
