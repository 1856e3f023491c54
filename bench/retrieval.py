"""Retrieval quality and ingestion throughput on the French dev set, through the real API.

Starts ``socle serve`` (embedded defaults, a temporary data directory; SQLite, or PostgreSQL with
``--database-url``), uploads every passage of ``../shared/data/fr-retrieval-dev`` as a text document
(``title + "\\n" + text``, one chunk each; the 43 passages that repeat another's exact text are the
same document, as the platform deduplicates uploads) into one collection, waits for ingestion, sends the
300 questions to ``POST /v1/search`` with each method. Reports recall@1/5/10 and MRR@10 overall and
per source, search latency, and ingestion throughput (lexical-ready and embedded chunks per second).

    python bench/retrieval.py [--data ../shared/data/fr-retrieval-dev] [--database-url URL] [--methods ...]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fr-retrieval-dev"
RESULTS = ROOT / "bench" / "results"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, database_url: str | None,
          settings: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")} | (settings or {})
    env.update({"SOCLE_DATA_DIR": str(data_dir), "SOCLE_PORT": str(port), "SOCLE_LOG_LEVEL": "warning"})
    if database_url:
        env["SOCLE_DATABASE_URL"] = database_url
    socle = Path(sys.executable).parent / "socle"
    process = subprocess.Popen([str(socle), "serve"], env=env, stdout=(data_dir / "server.log").open("wb"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health").status_code == 200:
                return process, url, (data_dir / "admin.key").read_text().strip()
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError((data_dir / "server.log").read_text())
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def ingest(http: httpx.Client, corpus: list[dict[str, Any]], *,
           embedded: bool = True) -> tuple[int, dict[str, set[str]], dict[str, float]]:
    """``embedded``: wait until every chunk is embedded, not only searchable by its words."""
    collection = http.post("/v1/collections", json={"name": "fr-retrieval-dev"}).json()["id"]
    started = time.perf_counter()

    def send(passage: dict[str, Any]) -> tuple[int, str]:
        body = f"{passage['title']}\n{passage['text']}".encode()
        response = http.post("/v1/documents", files={"file": (f"{passage['id']}.txt", body)},
                             data={"collection": str(collection), "chunk_size": "4000", "chunk_overlap": "0"})
        response.raise_for_status()
        return response.json()["id"], passage["id"]

    names: dict[str, set[str]] = defaultdict(set)  # document → the passages it holds
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for document_id, passage_id in pool.map(send, corpus):
            names[str(document_id)].add(passage_id)
    uploaded = time.perf_counter()
    lexical_at = None
    while True:
        state = http.get(f"/v1/collections/{collection}").json()
        documents = []
        offset = 0
        while page := http.get("/v1/documents", params={"collection": collection, "limit": 1000,
                                                        "offset": offset}).json()["data"]:
            documents += page
            offset += len(page)
        ready = sum(d["status"] == "ready" for d in documents)
        failed = [d for d in documents if d["status"] == "failed"]
        if failed:
            raise RuntimeError(f"failed documents: {failed[:3]}")
        if ready == len(names) and lexical_at is None:
            lexical_at = time.perf_counter()
        if lexical_at is not None and (not embedded or sum(d["embedded"] for d in documents) == state["chunks"]):
            break
        time.sleep(1)
    done = time.perf_counter()
    chunks = state["chunks"]
    timing = {"documents": len(names), "chunks": chunks, "upload_s": uploaded - started,
              "lexical_ready_s": lexical_at - started, "embedded_s": done - started,
              "documents_per_s_lexical": len(names) / (lexical_at - started),
              "chunks_per_s_embedded": chunks / (done - started)}
    if not embedded:  # not waited for
        timing.update(embedded_s=float("nan"), chunks_per_s_embedded=float("nan"))
    return collection, names, timing


def evaluate(http: httpx.Client, collection: int, names: dict[str, set[str]], queries: list[dict[str, Any]],
             method: str) -> dict[str, Any]:
    ranks: dict[str, list[int | None]] = defaultdict(list)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        response = http.post("/v1/search", json={"prompt": query["text"], "collections": [collection],
                                                 "method": method, "k": 10})
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        found = [names[str(r["chunk"]["metadata"]["document_id"])] for r in response.json()["data"]]
        relevant = set(query["relevant_ids"])
        rank = next((i for i, passages in enumerate(found, start=1) if passages & relevant), None)
        ranks[query["source"]].append(rank)
        ranks["all"].append(rank)
    scores = {source: {"queries": len(r),
                       "R@1": sum(1 for x in r if x and x <= 1) / len(r),
                       "R@5": sum(1 for x in r if x and x <= 5) / len(r),
                       "R@10": sum(1 for x in r if x and x <= 10) / len(r),
                       "MRR@10": sum(1 / x for x in r if x) / len(r)} for source, r in ranks.items()}
    latencies.sort()
    return {"scores": scores, "latency_ms": {"p50": statistics.median(latencies),
                                             "p99": latencies[int(len(latencies) * 0.99) - 1]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--database-url", default=None, help="PostgreSQL with pgvector (default: SQLite)")
    parser.add_argument("--methods", nargs="+", default=["lexical", "semantic", "hybrid"])
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--setting", action="append", default=[], metavar="SOCLE_NAME=VALUE",
                        help="A setting for the server (repeatable), e.g. SOCLE_RAG_PG_LEXICAL_CANDIDATES=500")
    args = parser.parse_args()
    corpus = [json.loads(line) for line in (args.data / "corpus.jsonl").read_text().splitlines() if line]
    queries = [json.loads(line) for line in (args.data / "queries.jsonl").read_text().splitlines() if line]
    store = "postgresql" if args.database_url else "sqlite"
    with tempfile.TemporaryDirectory(prefix="socle-bench-") as tmp:
        process, url, key = start(Path(tmp), args.database_url, dict(s.split("=", 1) for s in args.setting))
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
                collection, names, timing = ingest(http, corpus, embedded=args.methods != ["lexical"])
                results = {method: evaluate(http, collection, names, queries, method) for method in args.methods}
        finally:
            process.terminate()
            process.wait(30)
    report = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "store": store,
              "cpus": os.cpu_count(), "ingestion": timing, "methods": results}
    output = args.output or RESULTS / f"retrieval-{store}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    print(f"\nStore: {store}; {timing['documents']} documents, {timing['chunks']} chunks; lexical-ready in "
          f"{timing['lexical_ready_s']:.1f} s ({timing['documents_per_s_lexical']:.1f} docs/s), embedded in "
          f"{timing['embedded_s']:.1f} s ({timing['chunks_per_s_embedded']:.1f} chunks/s)\n")
    print("| method | source | R@1 | R@5 | R@10 | MRR@10 | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|")
    for method, result in results.items():
        for source in ("all", "piaf", "service-public", "cnil"):
            s = result["scores"].get(source)
            if s:
                latency = result["latency_ms"] if source == "all" else {"p50": float("nan"), "p99": float("nan")}
                print(f"| {method} | {source} | {s['R@1']:.3f} | {s['R@5']:.3f} | {s['R@10']:.3f} | "
                      f"{s['MRR@10']:.3f} | {latency['p50']:.1f} | {latency['p99']:.1f} |")


if __name__ == "__main__":
    main()
