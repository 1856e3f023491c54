"""The mock backend's speech-to-text and moderation routes: a peer of the gateway for ``/v1/audio/transcriptions``
and ``/v1/moderations``.

A transcription reads the uploaded WAV with the ``wave`` module and answers ``verbose_json`` (as the gateway always
asks) with the audio's real duration, two segments, and what it received (``seen``), so that a test sees what the
gateway forwarded. A moderation flags any text holding the word ``menace``.
"""
from __future__ import annotations

import io
import wave

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

TEXT = "Bonjour, ceci est une transcription simulée."


async def transcriptions(request: Request) -> Response:
    form = await request.form()
    upload = form["file"]
    data = await upload.read()  # type: ignore[union-attr]
    try:
        with wave.open(io.BytesIO(data)) as audio:
            duration = audio.getnframes() / audio.getframerate()
    except (wave.Error, EOFError):
        return JSONResponse({"error": {"message": "not a WAV file", "type": "invalid_request_error"}},
                            status_code=400)
    seen = {key: form.getlist(key) if key.endswith("[]") else form[key] for key in form if key != "file"}
    seen["filename"] = upload.filename  # type: ignore[union-attr]
    half = round(duration / 2, 3)
    return JSONResponse({"task": "transcribe", "language": form.get("language") or "french", "duration": duration,
                         "text": TEXT, "seen": seen,
                         "segments": [{"id": 0, "start": 0.0, "end": half, "text": " Bonjour,"},
                                      {"id": 1, "start": half, "end": duration,
                                       "text": " ceci est une transcription simulée."}]})


async def moderations(request: Request) -> Response:
    body = await request.json()
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return JSONResponse({"id": "modr-mock", "model": body.get("model"),
                         "results": [{"flagged": "menace" in text, "categories": {"violence": "menace" in text},
                                      "category_scores": {"violence": 0.9 if "menace" in text else 0.01}}
                                     for text in texts]})
