"""Speech to text (``/v1/audio/transcriptions``): an uploaded audio file, bounded in size, routed like every other
call (quotas, usage in audio seconds, failover) to a model of type ``transcription`` (the Albert API's
``automatic-speech-recognition``), and answered in the format asked."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import JSONResponse, Response

from socle.api.deps import Caller, Inference, platform
from socle.api.strict import StrictRoute
from socle.endpoints import Endpoint
from socle.errors import InvalidRequest, PayloadTooLarge
from socle.inference import audio

router = APIRouter(prefix="/v1", tags=["audio"], route_class=StrictRoute)

Granularity = Literal["word", "segment"]


@router.post("/audio/transcriptions", summary="Transcribe an audio file (a speech-to-text model: Whisper served "
             "by vLLM or any OpenAI-compatible server); usage counts seconds of audio")
async def transcriptions(
        http: Request, caller: Caller, inference: Inference,
        file: Annotated[UploadFile, File(description="The audio: wav, mp3, m4a, ogg, webm, flac...")],
        model: Annotated[str, Form(min_length=1, max_length=256)],
        language: Annotated[str | None, Form(max_length=16, description="ISO-639-1, e.g. fr")] = None,
        prompt: Annotated[str | None, Form(max_length=4000, description="Text to guide the style")] = None,
        response_format: Annotated[audio.ResponseFormat, Form()] = "json",
        temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
        timestamp_granularities: Annotated[list[Granularity] | None,
                                           Form(alias="timestamp_granularities[]")] = None,
        stream: Annotated[bool, Form(description="Not offered: transcriptions are answered whole")] = False,
) -> Response:
    if stream:
        raise InvalidRequest("Transcriptions are not streamed here: leave 'stream' out.", param="stream")
    limit = platform(http).settings.audio_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The audio file is larger than {limit} bytes (SOCLE_AUDIO_MAX_BYTES).", param="file")
    if not data:
        raise InvalidRequest("The audio file is empty.", param="file")
    name = inference.model_for(caller, "transcription", model)
    upload = audio.Audio(file.filename or "audio", data, file.content_type or "application/octet-stream")
    body = {"model": name, "file": upload, "language": language, "prompt": prompt, "temperature": temperature,
            "timestamp_granularities": timestamp_granularities}
    answer = await inference.call(caller, Endpoint.TRANSCRIPTIONS, body)
    content, media_type = audio.render(answer, response_format)
    if isinstance(content, str):
        return Response(content, media_type=media_type)
    return JSONResponse(content, media_type=media_type)
