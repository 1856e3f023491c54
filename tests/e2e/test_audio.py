"""``/v1/audio/transcriptions`` through the official openai SDK against a running server, routed to the mock
backend's speech-to-text route (a peer) with failover, in every response format; usage counted in audio seconds;
errors in the OpenAI envelope."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.mock_audio import TEXT
from tests.support.servers import Server, stop
from tests.support.speech import AUDIO_MAX_BYTES, start_speech_server, wav

SPOKEN = wav(1.5)  # 1.5 s: counted as 2 seconds


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Iterator[Server]:
    server = start_speech_server(tmp_path_factory.mktemp("speech"), mock_backend)
    yield server
    stop(server.process)


@pytest.fixture
def speech(speech_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=speech_server.base_url, api_key=speech_server.admin_key, max_retries=0, timeout=60)


def test_a_wav_is_transcribed_through_a_failover_with_its_seconds_counted(speech: openai.OpenAI,
                                                                         speech_server: Server) -> None:
    answer = speech.audio.transcriptions.create(model="remote-whisper", file=("bonjour.wav", SPOKEN, "audio/wav"),
                                                language="fr")
    assert answer.text == TEXT
    assert answer.usage is not None and (answer.usage.type, answer.usage.seconds) == ("duration", 2)
    rows = _usage_rows(speech_server)
    assert (rows[0]["model"], rows[0]["endpoint"], rows[0]["prompt_tokens"]) == (
        "remote-whisper", "audio/transcriptions", 2)
    assert (rows[0]["backend"], rows[0]["attempts"]) == ("whisper-up", 2)  # the first backend is down


def test_verbose_json_carries_segments_and_the_fields_forwarded(speech: openai.OpenAI) -> None:
    answer = speech.audio.transcriptions.create(
        model="remote-asr-albert", file=("note.wav", SPOKEN, "audio/wav"), response_format="verbose_json",
        timestamp_granularities=["segment"], prompt="Compte rendu", temperature=0.2, language="fr")
    assert answer.duration == 1.5 and answer.language == "fr"
    assert [segment.text for segment in answer.segments] == [" Bonjour,", " ceci est une transcription simulée."]
    seen = answer.model_extra["seen"]  # what the backend received: always verbose_json, the rest as asked
    assert seen == {"model": "remote-asr-albert", "response_format": "verbose_json", "language": "fr",
                    "prompt": "Compte rendu", "temperature": "0.2", "timestamp_granularities[]": ["segment"],
                    "filename": "note.wav"}


def test_text_srt_and_vtt_are_written_from_the_segments(speech: openai.OpenAI) -> None:
    def transcribe(response_format: str) -> str:
        return speech.audio.transcriptions.create(model="remote-whisper", file=("a.wav", SPOKEN, "audio/wav"),
                                                  response_format=response_format)  # type: ignore[call-overload]

    assert transcribe("text") == TEXT + "\n"
    assert transcribe("srt") == ("1\n00:00:00,000 --> 00:00:00,750\nBonjour,\n\n"
                                 "2\n00:00:00,750 --> 00:00:01,500\nceci est une transcription simulée.\n\n")
    assert transcribe("vtt") == ("WEBVTT\n\n00:00:00.000 --> 00:00:00.750\nBonjour,\n\n"
                                 "00:00:00.750 --> 00:00:01.500\nceci est une transcription simulée.\n\n")


def test_a_model_of_another_type_is_refused(speech: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        speech.audio.transcriptions.create(model="remote-chat", file=("a.wav", SPOKEN, "audio/wav"))
    assert refused.value.code == "model_not_supported" and refused.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError) as unknown:
        speech.audio.transcriptions.create(model="whisper-1", file=("a.wav", SPOKEN, "audio/wav"))
    assert unknown.value.code == "model_not_found"


def test_a_file_above_the_limit_is_refused_with_413(speech: openai.OpenAI) -> None:
    big = wav(4)
    assert len(big) > AUDIO_MAX_BYTES
    with pytest.raises(openai.APIStatusError) as refused:
        speech.audio.transcriptions.create(model="remote-whisper", file=("long.wav", big, "audio/wav"))
    assert refused.value.status_code == 413 and refused.value.code == "request_too_large"
    assert refused.value.body["param"] == "file"


def test_what_the_backend_refuses_and_a_stream_come_back_as_400(speech: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:  # not a WAV: the backend's own reason
        speech.audio.transcriptions.create(model="remote-whisper", file=("a.wav", b"RIFF...", "audio/wav"))
    assert "not a WAV file" in refused.value.message
    with pytest.raises(openai.BadRequestError) as streamed:
        speech.audio.transcriptions.create(model="remote-whisper", file=("a.wav", SPOKEN, "audio/wav"),
                                           extra_body={"stream": "true"})
    assert streamed.value.body["param"] == "stream"


def test_without_a_speech_model_the_error_says_so(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", SPOKEN, "audio/wav"))
    assert missing.value.code == "model_not_found"
    assert missing.value.body["message"] == "No speech-to-text model is configured on this platform."


def test_models_report_the_albert_type(speech_server: Server) -> None:
    models = httpx.get(speech_server.base_url + "/models",
                       headers={"Authorization": f"Bearer {speech_server.admin_key}"}).json()["data"]
    types = {model["id"]: (model["type"], model["kind"]) for model in models}
    assert types["remote-whisper"] == types["remote-asr-albert"] == ("automatic-speech-recognition", "transcription")


def _usage_rows(server: Server) -> list[dict]:
    deadline = time.monotonic() + 15
    while True:
        rows = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {server.admin_key}"},
                         params={"model": "remote-whisper"}).json()["data"]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_the_wav_helper_makes_what_it_says(tmp_path: Path) -> None:
    import wave

    (tmp_path / "a.wav").write_bytes(SPOKEN)
    with wave.open(str(tmp_path / "a.wav")) as audio:
        assert (audio.getnframes(), audio.getframerate(), audio.getnchannels()) == (24_000, 16_000, 1)
