"""A server whose catalogue has speech-to-text and moderation models on the mock backend, and WAV files made here."""
from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

from tests.support.servers import Server, free_port, start_server

CATALOGUE = """
models:
  - id: remote-whisper
    type: transcription
    backends:
      - {{type: openai, url: "http://127.0.0.1:{closed_port}/v1", name: whisper-down}}
      - {{type: openai, url: "{mock}/v1", model: mock-whisper, name: whisper-up}}
  - {{id: remote-asr-albert, type: automatic-speech-recognition, backends: [{{type: openai, url: "{mock}/v1"}}]}}
  - {{id: remote-moderation, type: moderation, backends: [{{type: openai, url: "{mock}/v1"}}]}}
  - {{id: remote-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""
AUDIO_MAX_BYTES = 100_000


def start_speech_server(data_dir: Path, mock_backend: str) -> Server:
    config = data_dir / "models.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(CATALOGUE.format(mock=mock_backend, closed_port=free_port()))
    return start_server(data_dir / "server", config=config,
                        extra_env={"SOCLE_AUDIO_MAX_BYTES": str(AUDIO_MAX_BYTES)})


def wav(seconds: float, rate: int = 16_000) -> bytes:
    """A mono 16-bit WAV of a 440 Hz tone."""
    frames = int(seconds * rate)
    samples = struct.pack(f"<{frames}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / rate))
                                            for i in range(frames)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buffer.getvalue()
