"""Benchmark of the feedback app: messages analysed per minute and tokens per message, in one run:

1. ``embedding`` engine on the embedded e5 model (in process, 2 CPU cores here): the offline default
   (its anchors are embedded and its classifiers fitted once per taxonomy and model, before the clock
   starts; that time is reported apart as ``prepare_s``);
2. ``embedding`` engine on a mock embeddings backend: what the app itself costs around the model
   (personal-data detection, classification, database writes, topics);
3. ``llm`` engine on a mock chat backend answering schema-valid JSON: the app's own cost per message
   with a served model (prompt building, validation, retries, writes), the model's time taken out;
4. e5 alone on the same (pseudonymised) texts, called directly: the floor of case 1.

Each case imports the repository's dataset (datasets/feedback/messages.jsonl) into a fresh database and runs
one analysis to its end through the platform's services and job workers, as ``socle feedback analyze`` does.
Results go to ``bench/results/feedback.json``; a markdown table is printed.

    python bench/feedback.py [--messages 302] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from socle.apps.feedback import pii  # noqa: E402
from socle.apps.feedback.app import FeedbackServices  # noqa: E402
from socle.db import migrate  # noqa: E402
from socle.identity.permissions import SYSTEM  # noqa: E402
from socle.jobs.worker import JobWorkers  # noqa: E402
from socle.platform import Mode, Platform  # noqa: E402
from socle.settings import Settings  # noqa: E402
from tests.support.servers import start_mock_backend, stop  # noqa: E402

DATASET = ROOT / "datasets" / "feedback" / "messages.jsonl"
RESULTS = ROOT / "bench" / "results"
CATALOGUE = """
models:
  - {{id: multilingual-e5-small, type: embeddings, backends: [{{type: e5}}]}}
  - {{id: mock-embed, type: embeddings, backends: [{{type: openai, url: "{mock}/v1", model: mock-embed}}]}}
  - {{id: mock-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-chat}}]}}
"""


async def analyse(workdir: Path, catalogue: Path, data: bytes, engine: str, model: str,
                  embedding_model: str) -> dict[str, float]:
    settings = Settings(data_dir=workdir, config=catalogue, rag_embedding_model=embedding_model,
                        ingestion_workers=0)
    migrate.upgrade(settings.resolved_database_url)
    platform = Platform.build(settings, Mode.BATCH)
    try:
        await platform.start()  # the models; the analyses' workers only once everything is ready
        feedback = platform.app(FeedbackServices)
        imported = await feedback.datasets.import_file(SYSTEM, "bench", "messages.jsonl", data)
        started = time.perf_counter()
        await feedback.engines.get(engine, model, SYSTEM).prepare()  # once per taxonomy and model
        prepared = time.perf_counter() - started
        analysis = await feedback.datasets.start(SYSTEM, imported.dataset.id, engine=engine, model=model)
        started = time.perf_counter()
        workers = JobWorkers(platform.jobs, feedback.job.kinds, concurrency=1)
        workers.start()
        while (analysis := await feedback.datasets.get(SYSTEM, analysis.id)).status in ("queued", "running"):
            await asyncio.sleep(0.05)
        await workers.stop()
        seconds = time.perf_counter() - started
        assert analysis.status == "done" and analysis.failed == 0, (analysis.status, analysis.error)
        return {"prepare_s": prepared, "seconds": seconds, "messages": analysis.total,
                "per_minute": analysis.total / seconds * 60,
                "tokens_per_message": analysis.tokens / analysis.total}
    finally:
        await platform.close()


async def e5_alone(texts: list[str]) -> dict[str, float]:
    from socle.endpoints import Endpoint
    from socle.inference.backends.e5 import E5Backend, E5BackendConfig

    backend = E5Backend(E5BackendConfig(type="e5"), "multilingual-e5-small")
    await backend.start()
    try:
        started = time.perf_counter()
        for i in range(0, len(texts), 32):
            await backend.call(Endpoint.EMBEDDINGS, {"input": texts[i:i + 32], "input_type": "query"})
        seconds = time.perf_counter() - started
    finally:
        await backend.close()
    return {"seconds": seconds, "messages": len(texts), "per_minute": len(texts) / seconds * 60}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=0, help="First N messages of the dataset (0: all)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    lines = [line for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = lines[: args.messages or None]
    data = "\n".join(lines).encode()
    texts = [pii.pseudonymise(json.loads(line)["text"]) for line in lines]
    cases = {"embedding / e5 (embedded)": ("embedding", "multilingual-e5-small", "multilingual-e5-small"),
             "embedding / mock embeddings": ("embedding", "mock-embed", "mock-embed"),
             "llm / mock chat": ("llm", "mock-chat", "mock-embed")}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*cases, "e5 alone (direct)"]}
    with tempfile.TemporaryDirectory(prefix="socle-bench-feedback-") as tmp:
        root = Path(tmp)
        mock, process = start_mock_backend(root)
        try:
            catalogue = root / "models.yaml"
            catalogue.write_text(CATALOGUE.format(mock=mock))
            for round_ in range(args.rounds):  # cases interleaved, so that machine noise hits them all
                for name, (engine, model, embeddings) in cases.items():
                    workdir = root / f"{round_}-{engine}-{model}"
                    runs[name].append(await analyse(workdir, catalogue, data, engine, model, embeddings))
                runs["e5 alone (direct)"].append(await e5_alone(texts))
        finally:
            stop(process)
    summary = {name: {key: statistics.median(r[key] for r in results) for key in results[0]}
               for name, results in runs.items()}
    floor = summary["e5 alone (direct)"]["per_minute"]
    report = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "messages": len(lines), "rounds": args.rounds, "summary": summary, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "feedback.json").write_text(json.dumps(report, indent=2))
    print(f"\n{len(lines)} messages, median of {args.rounds} rounds, {os.cpu_count()} CPUs\n")
    print("| case | messages/min | tokens/message | ratio to e5 alone | preparation (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in summary.items():
        tokens = f"{row['tokens_per_message']:.0f}" if "tokens_per_message" in row else "—"
        prepare = f"{row['prepare_s']:.1f}" if "prepare_s" in row else "—"
        print(f"| {name} | {row['per_minute']:.0f} | {tokens} | {row['per_minute'] / floor:.2f} | {prepare} |")


if __name__ == "__main__":
    asyncio.run(main())
