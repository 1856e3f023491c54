"""A mock OpenAI-compatible inference backend: a peer of the gateway in routing and failure tests.

Behaviour is chosen by the requested model name, so one process serves every case:
  mock-chat     answers normally (``n`` choices of 7 tokens); streams ``--chunks`` events ``tok0 tok1 ...``
  mock-fail     HTTP 500
  mock-reject   HTTP 400 with an OpenAI error envelope
  mock-slow     waits 30 s before answering (the gateway's timeout must fire first)
  mock-midfail  streams two events, then drops the connection
  mock-endless  streams one event every 50 ms for a minute (to test cancellation)
  mock-paced    streams ten events, one every 300 ms, then ends properly (a stream in flight for 3 s)
  mock-garbage  answers text that is not JSON, even when a ``response_format`` asks for JSON
  mock-flaky    with a ``response_format``: not JSON the first time, a valid instance once corrected
  mock-truncated   streams two events, then ``[DONE]`` with no ``finish_reason``: an answer cut short
  mock-multiline   streams valid SSE the hard way: JSON spread over several ``data:`` lines, CRLF and CR line
                   ends, comments, ``event:`` and ``id:`` fields, a BOM
  mock-huge        streams one event, then one of 600 KB (``HUGE`` repeated), then ends properly
With ``tools``, the others call the first tool (streamed too, its arguments in pieces); once the last message is
a tool's answer, they answer a text that quotes it.
Embeddings of a model whose name ends with ``-slow`` take 5 s (a job in flight).
Asked for a ``response_format`` JSON schema, the others answer the simplest instance of that schema.
``GET /stats`` counts requests and streams opened, completed and aborted (the client went away).
``/v1/audio/transcriptions`` and ``/v1/moderations`` are :mod:`tests.support.mock_audio`'s.

    python -m tests.support.mock_backend --port 19001 [--latency-ms 200]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import mock_audio

STATS = {"requests": 0, "streams_open": 0, "streams_completed": 0, "streams_aborted": 0}
CHUNKS = 5
LATENCY_S = 0.0
PORT = 0  # in stream chunk ids, so a test can tell which backend serves a stream


def _chunk(model: str, content: str | None, finish: str | None = None) -> dict:
    delta = {"content": content} if content is not None else {}
    return {"id": f"chatcmpl-mock-{PORT}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def chat(request: Request) -> Response:
    STATS["requests"] += 1
    body = await request.json()
    model = body.get("model", "")
    if model.endswith("mock-fail"):
        return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
    if model.endswith("mock-reject"):
        return JSONResponse({"error": {"message": "context too long", "type": "invalid_request_error"}},
                            status_code=400)
    if model.endswith("mock-slow"):
        for _ in range(300):  # 30 s, unless the gateway gives up first
            if await request.is_disconnected():
                return Response(status_code=499)
            await asyncio.sleep(0.1)
    if LATENCY_S:
        await asyncio.sleep(LATENCY_S)
    if body.get("tools") and body.get("stream"):
        return StreamingResponse(_tool_stream(model, body), media_type="text/event-stream")
    if (body.get("messages") or [{}])[-1].get("role") == "tool":  # a tool answered: the model says what it got
        content = f"L'outil a répondu : {body['messages'][-1].get('content')}"
        return JSONResponse({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}})
    if body.get("stream"):
        if model.endswith(("mock-truncated", "mock-multiline", "mock-huge")):
            return StreamingResponse(_odd_stream(model), media_type="text/event-stream")
        return StreamingResponse(_stream(model, body), media_type="text/event-stream")
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
    if schema is not None or model.endswith("mock-garbage"):
        retried = len(body.get("messages") or []) > 2
        valid = not model.endswith("mock-garbage") and (retried or not model.endswith("mock-flaky"))
        content = json.dumps(_instance(schema or {}), ensure_ascii=False) if valid else "Je ne sais pas répondre."
        return JSONResponse({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}})
    if body.get("tools"):  # call the first tool, echoing what the gateway passed through
        tool = body["tools"][0]["function"]["name"]
        call = {"id": "call_1", "type": "function",
                "function": {"name": tool, "arguments": json.dumps({"seen": sorted(body)})}}
        return JSONResponse({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": None, "tool_calls": [call]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}})
    choices = body.get("n") or 1  # each choice is generated, and counted, as a real backend does
    return JSONResponse({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": i, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Bonjour, ceci est une réponse simulée."}}
                    for i in range(choices)],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7 * choices, "total_tokens": 11 + 7 * choices}})


def _instance(schema: dict):  # noqa: ANN202 (any JSON value)
    """The simplest value a JSON schema accepts: first enum value, required properties, one array item."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: _instance(schema["properties"][name]) for name in schema.get("required", [])}
    if kind == "array":
        return [_instance(schema["items"])] if schema.get("items") and schema.get("maxItems", 1) else []
    return {"string": "exemple", "number": 0.5, "integer": 1, "boolean": False, "null": None}[kind]


async def _stream(model: str, body: dict) -> AsyncIterator[bytes]:
    STATS["streams_open"] += 1
    count = 1200 if model.endswith("mock-endless") else 10 if model.endswith("mock-paced") else CHUNKS
    try:
        for i in range(count):
            if model.endswith("mock-midfail") and i == 2:
                raise RuntimeError("backend crashed mid-stream")  # uvicorn drops the connection
            if model.endswith("mock-endless"):
                await asyncio.sleep(0.05)
            elif model.endswith("mock-paced"):
                await asyncio.sleep(0.3)
            yield f"data: {json.dumps(_chunk(model, f'tok{i} '))}\n\n".encode()
        yield f"data: {json.dumps(_chunk(model, None, 'stop'))}\n\n".encode()
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 11, "completion_tokens": count, "total_tokens": 11 + count}
            yield f"data: {json.dumps({**_chunk(model, None), 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"
        STATS["streams_completed"] += 1
    except asyncio.CancelledError:
        STATS["streams_aborted"] += 1
        raise
    finally:
        STATS["streams_open"] -= 1


async def _tool_stream(model: str, body: dict) -> AsyncIterator[bytes]:
    """With tools, a stream calls the first one, its arguments in three pieces; once a tool answered, it says
    what it got."""
    last = (body.get("messages") or [{}])[-1]
    if last.get("role") == "tool":
        for word in ("L'outil", " a répondu : ", str(last.get("content"))):
            yield f"data: {json.dumps(_chunk(model, word))}\n\n".encode()
        finish = "stop"
    else:
        tool = body["tools"][0]["function"]["name"]
        pieces = ['{"seen": ', json.dumps(sorted(body)), "}"]
        for i, piece in enumerate(pieces):
            call = {"index": 0, "function": {"arguments": piece}}
            if i == 0:
                call.update(id="call_1", type="function", function={"name": tool, "arguments": piece})
            chunk = _chunk(model, None)
            chunk["choices"][0]["delta"] = {"tool_calls": [call]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        finish = "tool_calls"
    yield f"data: {json.dumps(_chunk(model, None, finish))}\n\n".encode()
    usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
    yield f"data: {json.dumps({**_chunk(model, None), 'choices': [], 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"


async def _odd_stream(model: str) -> AsyncIterator[bytes]:
    """The streams of the mock-truncated, mock-multiline and mock-huge models."""
    if model.endswith("mock-truncated"):
        for i in range(2):
            yield f"data: {json.dumps(_chunk(model, f'tok{i} '))}\n\n".encode()
        yield b"data: [DONE]\n\n"
    elif model.endswith("mock-multiline"):
        yield "\ufeff: un commentaire\r\n".encode()
        for i in range(3):
            lines = json.dumps(_chunk(model, f"ligne{i} "), indent=1).split("\n")  # one data: line each
            ends = "\r\n" if i % 2 else "\r"
            yield (f"event: message{ends}id: {i}{ends}" + "".join(f"data:{line}{ends}" for line in lines)
                   + ends).encode()
        yield f"data: {json.dumps(_chunk(model, None, 'stop'))}\n\ndata: [DONE]\n\n".encode()
    else:
        yield f"data: {json.dumps(_chunk(model, 'tok0 '))}\n\n".encode()
        yield f"data: {json.dumps(_chunk(model, 'HUGE' * 150_000))}\n\n".encode()
        yield f"data: {json.dumps(_chunk(model, None, 'stop'))}\n\ndata: [DONE]\n\n".encode()


async def completions(request: Request) -> Response:
    STATS["requests"] += 1
    body = await request.json()
    if body.get("stream"):
        return StreamingResponse(_completion_stream(body), media_type="text/event-stream")
    return JSONResponse({"id": "cmpl-mock", "object": "text_completion", "created": int(time.time()),
                         "model": body.get("model"), "choices": [{"index": 0, "text": " suite.", "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


async def _completion_stream(body: dict) -> AsyncIterator[str]:
    chunk = {"id": "cmpl-mock", "object": "text_completion", "created": int(time.time()), "model": body.get("model"),
             "choices": [{"index": 0, "text": " suite.", "finish_reason": "stop"}]}
    yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


async def embeddings(request: Request) -> Response:
    STATS["requests"] += 1
    body = await request.json()
    if str(body.get("model", "")).endswith("-slow"):
        await asyncio.sleep(5)
    given = body["input"]  # a text, texts, a text's token ids, or several texts' token ids
    inputs = given if isinstance(given, list) and given and not isinstance(given[0], int) else [given]
    return JSONResponse({"object": "list", "model": body.get("model"),
                         "data": [{"object": "embedding", "index": i, "embedding": [0.5, 0.25, float(len(text))]}
                                  for i, text in enumerate(inputs)],
                         "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})


async def models(_: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "mock-chat", "object": "model"}]})


async def stats(_: Request) -> Response:
    return JSONResponse(STATS)


app = Starlette(routes=[
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/audio/transcriptions", mock_audio.transcriptions, methods=["POST"]),
    Route("/v1/moderations", mock_audio.moderations, methods=["POST"]),
    Route("/v1/models", models),
    Route("/stats", stats),
])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Added before every chat answer")
    args = parser.parse_args()
    LATENCY_S, PORT = args.latency_ms / 1000, args.port
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
