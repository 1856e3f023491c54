"""Benchmark of the embedded chat model (SmolLM2-135M, llama.cpp on the CPU), direct and through the gateway.

In one run:

1. Generation speed (tokens/s) of the bundled GGUF called directly with llama-cpp-python, against the
   same model behind the real gateway (``socle serve`` in a subprocess, official ``openai`` SDK). Both
   sides stream, with the same prompt, temperature 0 and max_tokens; rounds alternate direct/gateway so
   that machine noise hits both. The two never generate at the same time.
2. Time to first token through the gateway for 1 and for N concurrent streams (``openai.AsyncOpenAI``),
   each stream with a prompt made unique at its start, so that prompt processing is included.
   The embedded model serves one generation at a time (FIFO queue), so with N streams the TTFT of the
   k-th stream includes the k-1 generations queued before it: the figure is reported as measured.

Results go to ``bench/results/embedded_model.json``; a markdown table is printed.

    python bench/embedded_model.py [--rounds 5] [--max-tokens 128] [--port PORT]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
import openai
from llama_cpp import Llama

from socle.inference.backends.llamacpp import bundled_smollm2

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "embedded_model.json"
MODEL_ID = "smollm2-135m"  # the embedded chat model's id in the default catalogue
N_CTX = 4096  # as the default catalogue's llamacpp backend
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a detailed explanation of how a city's public library works: who "
                                "runs it, how books are chosen, lent and returned, and what else it offers."},
]


def fresh_messages() -> list[dict[str, str]]:
    """The benchmark prompt behind a unique tag at its very start. llama.cpp reuses the evaluated prefix
    of the previous prompt: with the same prompt each time, TTFT would leave out prompt processing."""
    tag = uuid.uuid4().hex[:8]
    return [{"role": "system", "content": f"[{tag}] {MESSAGES[0]['content']}"}, *MESSAGES[1:]]


# ---- measurement helpers ---------------------------------------------------------------------------

def _run_stats(start: float, first: float | None, last: float, tokens: int) -> dict[str, Any]:
    """Throughput over the whole request (request sent → last chunk), as a client sees it; plus the
    decode-only rate (first token → last chunk), which leaves out prompt processing."""
    total = last - start
    ttft = (first - start) if first is not None else None
    decode = (last - first) if first is not None else None
    return {
        "completion_tokens": tokens,
        "seconds": total,
        "ttft_s": ttft,
        "tokens_per_s": tokens / total if total > 0 else None,
        "decode_tokens_per_s": (tokens - 1) / decode if decode and tokens > 1 else None,
    }


def direct_round(llm: Llama, max_tokens: int, messages: list[dict[str, str]] = MESSAGES,
                 ) -> tuple[dict[str, Any], str]:
    start = time.perf_counter()
    first = None
    last = start
    parts: list[str] = []
    finish = None
    chunks = llm.create_chat_completion(messages=messages, temperature=0, max_tokens=max_tokens, stream=True)
    for chunk in chunks:
        last = time.perf_counter()
        choice = chunk["choices"][0]
        content = choice["delta"].get("content")
        if content:
            first = first or last
            parts.append(content)
        finish = choice.get("finish_reason") or finish
    text = "".join(parts)
    # Token count, direct side: llama-cpp-python's streamed chat chunks carry no usage, and one chunk is
    # not always one token (it holds back incomplete UTF-8 and possible stop strings). We re-tokenize the
    # answer text (no BOS, no special tokens). At temperature 0 the gateway produces the same text, and
    # its usage chunk counts sampled tokens minus the end token; the JSON records both counts so any
    # tokenizer round-trip difference is visible.
    tokens = len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    stats = _run_stats(start, first, last, tokens)
    stats["finish_reason"] = finish
    return stats, text


def gateway_round(client: openai.OpenAI, max_tokens: int, messages: list[dict[str, str]] = MESSAGES,
                  ) -> tuple[dict[str, Any], str]:
    start = time.perf_counter()
    first = None
    last = start
    parts: list[str] = []
    usage = None
    finish = None
    stream = client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0,
                                            max_tokens=max_tokens, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        last = time.perf_counter()
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                first = first or last
                parts.append(choice.delta.content)
            finish = choice.finish_reason or finish
    if usage is None:
        raise RuntimeError("The gateway sent no usage chunk despite stream_options.include_usage")
    stats = _run_stats(start, first, last, usage.completion_tokens)
    stats["finish_reason"] = finish
    return stats, "".join(parts)


async def _one_stream(client: openai.AsyncOpenAI, max_tokens: int, t0: float) -> dict[str, Any]:
    first = None
    last = t0
    tokens = prompt_tokens = None
    stream = await client.chat.completions.create(model=MODEL_ID, messages=fresh_messages(), temperature=0,
                                                  max_tokens=max_tokens, stream=True,
                                                  stream_options={"include_usage": True})
    async for chunk in stream:
        last = time.perf_counter()
        if chunk.usage is not None:
            tokens, prompt_tokens = chunk.usage.completion_tokens, chunk.usage.prompt_tokens
        if first is None and any(c.delta.content for c in chunk.choices):
            first = last
    return {"ttft_s": (first - t0) if first is not None else None, "seconds": last - t0,
            "prompt_tokens": prompt_tokens, "completion_tokens": tokens}


async def ttft_burst(base_url: str, key: str, concurrency: int, max_tokens: int) -> dict[str, Any]:
    """Fire `concurrency` streams at once; TTFT of each is measured from the common start."""
    async with openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600) as client:
        await client.models.list()  # open a connection first, outside the timed part
        t0 = time.perf_counter()
        streams = await asyncio.gather(*(_one_stream(client, max_tokens, t0) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    tokens = sum(s["completion_tokens"] or 0 for s in streams)
    return {"streams": streams, "wall_s": wall, "aggregate_tokens_per_s": tokens / wall}


# ---- the gateway in a subprocess -------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(data_dir: Path, port: int, log_path: Path,
                  timeout_s: float = 300) -> tuple[subprocess.Popen, str]:
    # A clean environment for the server: no SOCLE_* variables inherited, and its working directory is
    # the temporary one, so no developer .env or catalogue changes what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update(SOCLE_DATA_DIR=str(data_dir), SOCLE_PORT=str(port))
    socle = shutil.which("socle", path=str(Path(sys.executable).parent)) or "socle"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([socle, "serve"], env=env, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}/health"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"socle serve exited with code {proc.returncode}:\n{_tail(log_path)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"socle serve not healthy after {timeout_s:g} s:\n{_tail(log_path)}")
        time.sleep(0.25)
    return proc, (data_dir / "admin.key").read_text().strip()


def stop_gateway(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log.close()  # type: ignore[attr-defined]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---- report ----------------------------------------------------------------------------------------

def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def markdown(result: dict[str, Any]) -> str:
    tp = result["throughput"]
    rows = [
        "| Measure | Value |",
        "|---|---|",
        f"| Direct llama-cpp-python, median tokens/s | {_fmt(tp['direct']['median_tokens_per_s'])} |",
        f"| Through the gateway, median tokens/s | {_fmt(tp['gateway']['median_tokens_per_s'])} |",
        f"| Ratio gateway / direct (goal ≥ 0.95) | {_fmt(tp['ratio'], digits=3)} |",
        f"| Direct, median TTFT, repeated prompt (cached prefix) | "
        f"{_fmt(_ms(tp['direct']['median_ttft_s']), ' ms', 0)} |",
        f"| Gateway, median TTFT, repeated prompt (cached prefix) | "
        f"{_fmt(_ms(tp['gateway']['median_ttft_s']), ' ms', 0)} |",
        f"| Direct, median TTFT, fresh prompt | "
        f"{_fmt(_ms(tp['direct']['median_fresh_prompt_ttft_s']), ' ms', 0)} |",
    ]
    for level in result["ttft"]:
        c = level["concurrency"]
        streams = f"{c} concurrent stream{'s' if c > 1 else ''}"
        rows.append(f"| Gateway TTFT, fresh prompts, {streams}: median / max | "
                    f"{_fmt(_ms(level['median_ttft_s']), ' ms', 0)} / "
                    f"{_fmt(_ms(level['max_ttft_s']), ' ms', 0)} |")
        rows.append(f"| Gateway, {c} concurrent: aggregate tokens/s | "
                    f"{_fmt(level['median_aggregate_tokens_per_s'])} |")
    return "\n".join(rows)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# ---- main ------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="direct/gateway rounds for tokens/s (default 5)")
    parser.add_argument("--max-tokens", type=int, default=128,
                        help="max_tokens of every request (default 128)")
    parser.add_argument("--port", type=int, default=None, help="port for the gateway (default: a free one)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8],
                        help="concurrent streams for the TTFT part (default: 1 8)")
    parser.add_argument("--bursts", type=int, default=3, help="repetitions of each TTFT level (default 3)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    model_path = bundled_smollm2()
    load_before = os.getloadavg()
    if load_before[0] > 1:
        print(f"Warning: 1-minute load average is {load_before[0]:.2f}; other work will skew the figures.",
              file=sys.stderr)
    port = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    proc = None
    with tempfile.TemporaryDirectory(prefix="socle-bench-") as tmp:
        data_dir = Path(tmp)
        log_path = data_dir / "server.log"
        try:
            print(f"Starting the gateway on port {port} …", file=sys.stderr)
            t = time.perf_counter()
            proc, key = start_gateway(data_dir, port, log_path)
            startup_s = time.perf_counter() - t
            client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=600)

            # Same construction as the gateway's backend (n_threads: llama-cpp-python's default on both).
            llm = Llama(model_path=str(model_path), n_ctx=N_CTX, verbose=False)

            # Warm-up, not measured: first-call allocations (a whole prompt, then a cached one), HTTP
            # connection.
            for messages in (fresh_messages(), MESSAGES):
                direct_round(llm, 8, messages)
                gateway_round(client, 8, messages)

            direct_runs, gateway_runs = [], []
            texts: dict[str, str] = {}
            for r in range(args.rounds):
                # Alternate which side goes first, so a drift over time does not favour either.
                order = ("direct", "gateway") if r % 2 == 0 else ("gateway", "direct")
                for side in order:
                    if side == "direct":
                        stats, texts["direct"] = direct_round(llm, args.max_tokens)
                        direct_runs.append(stats)
                    else:
                        stats, texts["gateway"] = gateway_round(client, args.max_tokens)
                        gateway_runs.append(stats)
                    print(f"round {r + 1}/{args.rounds} {side:8s} {stats['completion_tokens']:4d} tokens "
                          f"{stats['tokens_per_s']:6.1f} tok/s", file=sys.stderr)
            client.close()
            # Reference for the gateway's 1-stream TTFT below: the direct TTFT with fresh prompts.
            direct_fresh = [direct_round(llm, args.max_tokens, fresh_messages())[0]
                            for _ in range(args.bursts)]
            n_threads = llm.n_threads
            del llm  # free the direct model before the concurrency part

            ttft_levels = []
            for concurrency in args.concurrency:
                bursts = []
                for _ in range(args.bursts):
                    bursts.append(asyncio.run(ttft_burst(base_url, key, concurrency, args.max_tokens)))
                    worst = max(s["ttft_s"] for s in bursts[-1]["streams"])
                    print(f"TTFT burst, {concurrency} streams: max {worst * 1000:.0f} ms", file=sys.stderr)
                ttfts = [s["ttft_s"] for b in bursts for s in b["streams"]]
                ttft_levels.append({
                    "concurrency": concurrency,
                    "bursts": bursts,
                    "median_ttft_s": _median(ttfts),
                    "max_ttft_s": max(t for t in ttfts if t is not None),
                    "median_aggregate_tokens_per_s": _median([b["aggregate_tokens_per_s"] for b in bursts]),
                })
        finally:
            stop_gateway(proc)
            if log_path.exists():  # kept next to the results, for a look at what the server said
                args.output.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log_path, args.output.with_suffix(".server.log"))

    direct_tps = _median([r["tokens_per_s"] for r in direct_runs])
    gateway_tps = _median([r["tokens_per_s"] for r in gateway_runs])
    result = {
        "benchmark": "embedded_model",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu_count": multiprocessing.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "llama_cpp_python": llama_cpp.__version__,
                    "openai": openai.__version__},
        "model": {"id": MODEL_ID, "path": str(model_path), "n_ctx": N_CTX, "n_threads": n_threads},
        "settings": {"rounds": args.rounds, "max_tokens": args.max_tokens, "temperature": 0,
                     "messages": MESSAGES, "concurrency": args.concurrency, "bursts": args.bursts},
        "gateway_startup_s": startup_s,
        # Other work on the machine skews every figure (llama.cpp uses all cores for prompt processing):
        # a 1-minute load average well above 1 before the run means the figures are not trustworthy.
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "throughput": {
            "method": "completion_tokens / (request sent → last chunk), streaming on both sides; direct "
                      "tokens by re-tokenizing the answer, gateway tokens from its usage chunk",
            "direct": {"runs": direct_runs, "median_tokens_per_s": direct_tps,
                       "median_decode_tokens_per_s": _median([r["decode_tokens_per_s"] for r in direct_runs]),
                       "median_ttft_s": _median([r["ttft_s"] for r in direct_runs]),
                       "fresh_prompt_runs": direct_fresh,
                       "median_fresh_prompt_ttft_s": _median([r["ttft_s"] for r in direct_fresh])},
            "gateway": {"runs": gateway_runs, "median_tokens_per_s": gateway_tps,
                        "median_decode_tokens_per_s":
                            _median([r["decode_tokens_per_s"] for r in gateway_runs]),
                        "median_ttft_s": _median([r["ttft_s"] for r in gateway_runs])},
            "ratio": gateway_tps / direct_tps if direct_tps and gateway_tps else None,
            "same_text": texts.get("direct") == texts.get("gateway"),
        },
        "ttft": ttft_levels,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result))
    if not result["throughput"]["same_text"]:
        print("\nNote: the direct and gateway answers differ at temperature 0.", file=sys.stderr)
    print(f"\nResults written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
