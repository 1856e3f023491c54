"""A mock vLLM server with LoRA enabled: a peer of the gateway for serving fine-tuned models' adapters.

It implements vLLM's run-time adapter API as vLLM answers it (``--enable-lora`` with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``):
  POST /v1/load_lora_adapter   {"lora_name", "lora_path"}: 200 and a line of text; 400 when the name is already
                               loaded or the folder holds no ``adapter_config.json``
  POST /v1/unload_lora_adapter {"lora_name"}
  GET  /v1/models              the base model, then each adapter loaded (``parent``: the base, ``root``: its path)
  POST /v1/chat/completions    the base answers "base: <last message>", an adapter "<name>: <last message>"
                               (streamed too); any other model is vLLM's 404
For the tests: ``POST /_restart`` forgets every adapter (as a restarted server does), ``GET /_stats`` counts loads
and lists each ``/v1`` call (path, model, whether it carried the key). Started with ``--api-key`` (vLLM's own
option), every ``/v1`` call without that key is refused with 401, as vLLM does.

    python -m tests.support.vllm_peer --port 19002 --base base-model [--api-key secret]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import ROOT, free_port, wait_until_up

BASE = "base-model"
ADAPTERS: dict[str, str] = {}  # name -> path
API_KEY: str | None = None
STATS: dict[str, Any] = {"loads": 0, "calls": []}


def _error(message: str, status: int, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}}, status)


def _refused(request: Request, body: dict[str, Any] | None = None) -> JSONResponse | None:
    """The call noted; vLLM's 401 when the server has a key and the call does not carry it."""
    keyed = request.headers.get("authorization") == f"Bearer {API_KEY}"
    body = body or {}
    STATS["calls"].append({"path": request.url.path, "model": body.get("model") or body.get("lora_name"),
                           "keyed": keyed})
    if API_KEY is not None and not keyed:
        return JSONResponse({"error": "Unauthorized"}, 401)
    return None


async def load(request: Request) -> Response:
    body = await request.json()
    if refused := _refused(request, body):
        return refused
    name, path = body.get("lora_name"), body.get("lora_path")
    if not name or not path:
        return _error("Both 'lora_name' and 'lora_path' must be provided.", 400, "InvalidUserInput")
    if name in ADAPTERS:
        return _error(f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in "
                      "place, set 'load_inplace' to True.", 400, "InvalidUserInput")
    if not (Path(path) / "adapter_config.json").is_file():
        return _error(f"Loading lora {name} failed: No adapter found for {path}", 400, "BadRequestError")
    ADAPTERS[name] = path
    STATS["loads"] += 1
    return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")


async def unload(request: Request) -> Response:
    body = await request.json()
    if refused := _refused(request, body):
        return refused
    name = body.get("lora_name")
    if ADAPTERS.pop(name, None) is None:
        return _error(f"The lora adapter '{name}' cannot be found.", 404, "NotFoundError")
    return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")


async def models(request: Request) -> Response:
    if refused := _refused(request):
        return refused
    data = [{"id": BASE, "object": "model", "owned_by": "vllm", "root": BASE, "parent": None}]
    data += [{"id": name, "object": "model", "owned_by": "vllm", "root": path, "parent": BASE}
             for name, path in ADAPTERS.items()]
    return JSONResponse({"object": "list", "data": data})


async def chat(request: Request) -> Response:
    body = await request.json()
    if refused := _refused(request, body):
        return refused
    model = body.get("model")
    if model != BASE and model not in ADAPTERS:
        return _error(f"The model `{model}` does not exist.", 404, "NotFoundError")
    text = f"{'base' if model == BASE else model}: {body['messages'][-1]['content']}"
    created = int(time.time())
    if body.get("stream"):
        return StreamingResponse(_stream(model, text, created), media_type="text/event-stream")
    return JSONResponse({"id": "chatcmpl-peer", "object": "chat.completion", "created": created, "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})


def _stream(model: str, text: str, created: int) -> Iterator[str]:
    for piece, finish in ((text, None), ("", "stop")):
        chunk = {"id": "chatcmpl-peer", "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": {"content": piece} if piece else {}, "finish_reason": finish}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


async def restart(_: Request) -> Response:
    ADAPTERS.clear()
    return JSONResponse({})


async def stats(_: Request) -> Response:
    return JSONResponse({**STATS, "adapters": ADAPTERS})


app = Starlette(routes=[
    Route("/v1/load_lora_adapter", load, methods=["POST"]),
    Route("/v1/unload_lora_adapter", unload, methods=["POST"]),
    Route("/v1/models", models),
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/_restart", restart, methods=["POST"]),
    Route("/_stats", stats),
])


def start_vllm_peer(log_dir: Path, *, api_key: str | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """Start the peer in its own process (requiring ``api_key`` when given); its URL (without /v1) and the process."""
    port = free_port()
    log = log_dir / f"vllm-peer-{port}.log"
    command = [sys.executable, "-m", "tests.support.vllm_peer", "--port", str(port)]
    process = subprocess.Popen(command + (["--api-key", api_key] if api_key else []), cwd=ROOT,
                               stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/_stats", process, log)
    return url, process


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--base", default=BASE)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    BASE, API_KEY = args.base, args.api_key
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
