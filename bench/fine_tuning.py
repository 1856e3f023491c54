"""Benchmark of fine-tuning: what a LoRA on the embedded SmolLM2 buys on a real task, and what it costs.

The task is the citizens' feedback of ``datasets/feedback/messages.jsonl`` as an instruction: a message in,
a JSON object out, ``{"sentiment": ..., "theme": ...}`` (the message's first theme, or "Aucun"). The messages
are split once, with a fixed seed, into a training set and a held-out test set that the training never sees.

In one run:
1. Training: the platform's engine (:mod:`socle.finetuning.engine`, LoRA on the CPU, in its child process) on
   the training set: time, trained tokens and tokens/s.
2. Quality on the held-out set, base model vs the base with its adapter (both served by the embedded
   llama.cpp backend, sharing one loaded model, temperature 0): valid-JSON rate, sentiment and theme accuracy.
3. Serving speed of the adapter vs the base: generated tokens/s on the same prompts, alternated (goal: the
   adapter at 0.9× the base or better).

Results go to ``bench/results/fine_tuning.json``; a markdown table is printed. The default is the full run
(every training message, 3 epochs: about half an hour on 2 idle cores); a short run for a quick look:

    python bench/fine_tuning.py --train 24 --test 20 --epochs 2 --lr-multiplier 10
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from socle.endpoints import Endpoint
from socle.finetuning.engine import Hyperparameters, Progress, TrainingSpec, train
from socle.inference.backends.llamacpp import LlamaCppBackend, LlamaCppBackendConfig, bundled_smollm2

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "datasets" / "feedback" / "messages.jsonl"
RESULTS = ROOT / "bench" / "results" / "fine_tuning.json"
THEMES = ["Accessibilité", "Information/Explication", "Réactivité", "Relation", "Simplicité/Complexité", "Aucun"]
SENTIMENTS = ["positive", "neutral", "negative"]
SYSTEM = ("Classify the citizen's message. Answer only JSON: {\"sentiment\": one of " + ", ".join(SENTIMENTS)
          + "; \"theme\": one of " + ", ".join(THEMES) + "}.")
SPLIT_SEED = 15


def examples() -> list[tuple[list[dict[str, str]], dict[str, str]]]:
    """Each message as a conversation (system, user) and its expected answer."""
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(SPLIT_SEED).shuffle(rows)
    return [([{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["text"]}],
             {"sentiment": row["sentiment"], "theme": (row["themes"] or ["Aucun"])[0]}) for row in rows]


def parse(answer: str) -> dict[str, Any] | None:
    match = re.search(r"\{.*?\}", answer, re.DOTALL)
    try:
        value = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def evaluate(backend: LlamaCppBackend, test: list[tuple[list[dict[str, str]], dict[str, str]]],
                   max_tokens: int) -> dict[str, float]:
    valid = sentiment = theme = tokens = 0
    seconds = 0.0
    for messages, expected in test:
        started = time.perf_counter()
        answer = await backend.call(Endpoint.CHAT, {"messages": messages, "max_tokens": max_tokens,
                                                    "temperature": 0})
        seconds += time.perf_counter() - started
        tokens += answer["usage"]["completion_tokens"]
        parsed = parse(answer["choices"][0]["message"]["content"])
        valid += parsed is not None
        sentiment += bool(parsed) and parsed.get("sentiment") == expected["sentiment"]
        theme += bool(parsed) and parsed.get("theme") == expected["theme"]
    n = len(test)
    return {"valid_json": valid / n, "sentiment_accuracy": sentiment / n, "theme_accuracy": theme / n,
            "tokens_per_s": tokens / seconds}


async def serving_speed(base: LlamaCppBackend, tuned: LlamaCppBackend, prompts: list[list[dict[str, str]]],
                        rounds: int) -> dict[str, float]:
    """Generated tokens/s of each, on the same prompts, alternating so that machine noise hits both."""
    totals = {"base": [0, 0.0], "adapter": [0, 0.0]}
    body = {"max_tokens": 64, "temperature": 0, "logit_bias": {"2": -100}}  # no <|im_end|>: equal lengths
    for _ in range(rounds):
        for messages in prompts:
            for name, backend in (("base", base), ("adapter", tuned)):
                started = time.perf_counter()
                answer = await backend.call(Endpoint.CHAT, {**body, "messages": messages})
                totals[name][1] += time.perf_counter() - started
                totals[name][0] += answer["usage"]["completion_tokens"]
    speed = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
    return {"base_tokens_per_s": speed["base"], "adapter_tokens_per_s": speed["adapter"],
            "ratio": speed["adapter"] / speed["base"]}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    data = examples()
    test, pool = data[:args.test], data[args.test:]
    training = pool[:args.train] if args.train else pool
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="socle-ft-bench-"))
    spec = TrainingSpec(base=bundled_smollm2(), workdir=workdir, validation=None, checkpoint_every=50,
                        train=[[*messages, {"role": "assistant", "content": json.dumps(expected, ensure_ascii=False)}]
                               for messages, expected in training],
                        hyperparameters=Hyperparameters(n_epochs=args.epochs, batch_size=args.batch_size,
                                                        learning_rate_multiplier=args.lr_multiplier),
                        threads=args.threads, max_tokens=384)

    async def show(progress: Progress) -> None:
        print(f"  step {progress.step}/{progress.total_steps} loss {progress.train_loss:.3f}", flush=True)

    async def ignore(_: object) -> None:
        return None

    print(f"training on {len(training)} messages, {args.epochs} epoch(s), in {workdir}", flush=True)
    started = time.perf_counter()
    result = await train(spec, on_progress=show, on_checkpoint=ignore, cancelled=asyncio.Event())
    wall = time.perf_counter() - started
    assert result.adapter_gguf is not None
    config = LlamaCppBackendConfig(type="llamacpp", n_ctx=2048)
    base = LlamaCppBackend(config, "smollm2-135m")
    tuned = LlamaCppBackend(config.model_copy(update={"lora": result.adapter_gguf}), "ft:smollm2-135m")
    await asyncio.gather(base.start(), tuned.start())
    try:
        quality = {"base": await evaluate(base, test, args.max_tokens),
                   "adapter": await evaluate(tuned, test, args.max_tokens)}
        speed = await serving_speed(base, tuned, [messages for messages, _ in test[:args.speed_prompts]],
                                    args.rounds)
    finally:
        await asyncio.gather(base.close(), tuned.close())
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "train_examples": len(training), "test_examples": len(test), "epochs": args.epochs,
        "training": {"steps": result.steps, "seconds": result.seconds, "wall_seconds": wall,
                     "trained_tokens": result.trained_tokens, "tokens_per_s": result.trained_tokens / result.seconds,
                     "train_loss": result.train_loss},
        "quality": quality, "serving": speed,
    }


def table(report: dict[str, Any]) -> str:
    q, t, s = report["quality"], report["training"], report["serving"]
    lines = [f"Fine-tuning SmolLM2-135M (LoRA r=8, q/v) on {report['train_examples']} feedback messages, "
             f"{report['epochs']} epoch(s); held-out test: {report['test_examples']} messages",
             "", "| | base | with the adapter |", "| --- | --- | --- |"]
    for key, label in (("valid_json", "valid JSON"), ("sentiment_accuracy", "sentiment accuracy"),
                       ("theme_accuracy", "theme accuracy")):
        lines.append(f"| {label} | {q['base'][key]:.0%} | {q['adapter'][key]:.0%} |")
    lines.append(f"| generation, tokens/s | {s['base_tokens_per_s']:.1f} | {s['adapter_tokens_per_s']:.1f} "
                 f"({s['ratio']:.2f}×, goal ≥ 0.9×) |")
    lines += ["", f"Training: {t['steps']} steps, {t['trained_tokens']} tokens in {t['seconds']:.0f} s "
              f"({t['tokens_per_s']:.0f} tokens/s; {t['wall_seconds']:.0f} s with the model's loading)"]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=0, help="training messages (0: all but the test set)")
    parser.add_argument("--test", type=int, default=60, help="held-out messages")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr-multiplier", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--speed-prompts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="training folder (reused: a rerun resumes)")
    report = asyncio.run(main(parser.parse_args()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(table(report))
