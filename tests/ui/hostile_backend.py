"""An OpenAI-compatible backend whose every answer tries to inject HTML: the web UI must show it as text.
Like a real model, it refuses (HTTP 400, OpenAI's error envelope) a conversation longer than its context,
and its refusal tries the same.

    python -m tests.ui.hostile_backend --port 19002
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = ("Voici **la réponse** <script>window.__pwned = 1</script> et "
          "<img src=x onerror=\"window.__pwned = 2\"> puis [un lien](javascript:window.__pwned=3).")
CODE = "Voici du code :\n\n```html\n<script>window.__pwned = 5</script>\n```\n\nFin **du code**."  # asked for "bloc de code"
CONTEXT_CHARS = 40_000
REFUSAL = "context too long <img src=x onerror=\"window.__pwned = 4\">"


def _chunk(content: str | None, finish: str | None = None) -> dict:
    delta = {"content": content} if content is not None else {}
    return {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "hostile", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _pieces(answer: str) -> list[str]:
    return [answer[i:i + 12] for i in range(0, len(answer), 12)]  # tags cut across chunks, as a model would


async def _events(answer: str) -> AsyncIterator[bytes]:
    pieces = _pieces(answer)
    for piece in pieces:
        yield f"data: {json.dumps(_chunk(piece))}\n\n".encode()
    yield f"data: {json.dumps(_chunk(None, 'stop'))}\n\n".encode()
    usage = {"prompt_tokens": 5, "completion_tokens": len(pieces), "total_tokens": 5 + len(pieces)}
    yield f"data: {json.dumps({**_chunk(None), 'choices': [], 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"


async def chat(request: Request) -> Response:
    body = await request.json()
    if sum(len(str(message.get("content") or "")) for message in body.get("messages") or ()) > CONTEXT_CHARS:
        return JSONResponse({"error": {"message": REFUSAL, "type": "invalid_request_error",
                                       "code": "context_length_exceeded"}}, status_code=400)
    asked = str((body.get("messages") or [{}])[-1].get("content") or "")
    if body.get("stream"):
        return StreamingResponse(_events(CODE if "bloc de code" in asked else ANSWER), media_type="text/event-stream")
    return JSONResponse({"id": "chatcmpl-hostile", "object": "chat.completion", "created": int(time.time()),
                         "model": "hostile", "choices": [{"index": 0, "finish_reason": "stop",
                                                          "message": {"role": "assistant", "content": ANSWER}}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25}})


async def models(_: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "hostile", "object": "model"}]})


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models),
                        Route("/stats", models)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
