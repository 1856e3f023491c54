"""Small helpers for bench/gateway.sh (standard library only, any Python >= 3.11).

    python3 gateway_tools.py free-port                       # a free loopback TCP port
    python3 gateway_tools.py rss PID                         # RSS of PID's process tree, bytes
    python3 gateway_tools.py threads PID                     # CPU s of the main thread / other threads
    python3 gateway_tools.py report DIR                      # DIR/*.json -> markdown tables (stdout)
    python3 gateway_tools.py profile COLLAPSED [--top N] [--load L.json] [--threads T.json]  # py-spy raw -> where the CPU goes
"""
from __future__ import annotations

import collections
import json
import os
import re
import socket
import sys
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(root: int) -> int:
    parent, rss = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(d)], rss[int(d)] = int(fields[1]), int(fields[21]) * PAGE
    tree, frontier = set(), {root} if root in rss else set()
    while frontier:
        tree |= frontier
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in tree}
    return sum(rss[p] for p in tree)


def thread_cpu(pid: int) -> dict:
    """CPU seconds of PID's main thread and of its other threads, exited ones included (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(stat_path: str) -> float:
        stat = Path(stat_path).read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / tick

    total, main = cpu(f"/proc/{pid}/stat"), cpu(f"/proc/{pid}/task/{pid}/stat")
    return {"main_cpu_s": main, "others_cpu_s": total - main, "threads": len(os.listdir(f"/proc/{pid}/task"))}


# ---- report ----------------------------------------------------------------------------------------

def _fmt(v, nd=1) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 10000 else str(v)


def _table(cols: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def report(directory: Path) -> str:
    parts = []
    meta = directory / "meta.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        parts.append(", ".join(f"{k}: {v}" for k, v in m.items()))
    chat = directory / "chat.json"
    if chat.exists():
        summary = json.loads(chat.read_text())["summary"]
        rows = [[s["target"], str(s["level"]), _fmt(s["rps"], 0), _fmt(s["p50_ms"], 2), _fmt(s["p99_ms"], 2),
                 _fmt(s.get("rps_ratio"), 3), _fmt(s.get("added_p50_ms"), 2), _fmt(s.get("added_p99_ms"), 2),
                 _fmt(s.get("server_cpu_ms_per_req"), 3), _fmt(s.get("server_peak_rss_mb"), 0), str(s["errors"])]
                for s in summary]
        parts.append("Non-streaming chat (medians over rounds)\n\n" + _table(
            ["target", "c", "req/s", "p50 ms", "p99 ms", "rps ÷ direct", "added p50", "added p99",
             "server CPU ms/req", "peak RSS MB", "errors"], rows))
        by = {(s["target"], s["level"]): s for s in summary}
        ratios = []
        for level in dict.fromkeys(s["level"] for s in summary):
            a, b = by.get(("socle", level)), by.get(("litellm", level))
            if a and b and b["rps"]:
                ratios.append(f"c={level}: {a['rps'] / b['rps']:.2f}")
        if ratios:
            parts.append("req/s socle ÷ litellm: " + ", ".join(ratios))
    for name, title in (("stream.json", "Streams"), ("stream-1worker.json", "Streams, one gateway worker")):
        f = directory / name
        if not f.exists():
            continue
        data = json.loads(f.read_text())
        idle_file = directory / name.replace(".json", ".idle.json")
        idle = json.loads(idle_file.read_text()) if idle_file.exists() else {}
        rows = []
        for s in data["summary"]:
            per = None
            base = idle.get(s["target"])
            if base is not None and s.get("server_peak_rss_mb") and s.get("peak_open"):
                per = (s["server_peak_rss_mb"] - base) * 1024 / s["peak_open"]
            rows.append([s["target"], _fmt(s["level"]), _fmt(s["completed"]), _fmt(s["failed"]),
                         _fmt(s["peak_open"]), _fmt(s["ttft_p50_ms"], 1), _fmt(s["ttft_p99_ms"], 1),
                         _fmt(s.get("added_ttft_p99_ms"), 1), _fmt(s.get("server_cpu_ms_per_req"), 2),
                         _fmt(s.get("server_peak_rss_mb"), 0), _fmt(per, 1)])
        kinds = {f"{r['target']}@{r['level']}": r["failure_kinds"] for r in data["runs"] if r["failure_kinds"]}
        parts.append(f"{title}\n\n" + _table(
            ["target", "streams", "completed", "failed", "peak open", "TTFT p50 ms", "TTFT p99 ms",
             "added TTFT p99", "server CPU ms/stream", "peak RSS MB", "KiB per open stream"], rows)
            + (f"\n\nfailures: {json.dumps(kinds)}" if kinds else ""))
    prof = directory / "profile.txt"
    if prof.exists():
        parts.append("Profile (one worker, chat c=32)\n\n" + prof.read_text())
    prof = directory / "profile-native.txt"
    if prof.exists():
        parts.append("Profile with --native (same load; C frames: cyclic GC)\n\n" + prof.read_text())
    return "\n\n".join(parts) + "\n"


# ---- profile ---------------------------------------------------------------------------------------

# Layers, matched on frames from the leaf up: the first frame that matches a rule names the layer.
# Without --native, C code (orjson, pydantic-core, httptools, uvloop) counts for the Python line that
# called it; time in the event loop's own C code shows as a bare Runner.run leaf.
RULES = [
    ("cyclic garbage collector (seen with --native only)", r"^(gc_collect_main|gc_collect_with_callback|gc_collect_generations|collect_generations|_PyObject_GC_Link) "),
    ("logging", r"/logging/"),
    ("FastAPI native telemetry check (OpenTelemetry providers, env lookups)", r"fastapi/telemetry|opentelemetry|^get_(tracer|meter|logger)_provider|trace/__init__|metrics/_internal|_logs/"),
    ("thread hand-off: sync dependencies run in the threadpool", r"anyio/to_thread|starlette/concurrency|run_sync_in_worker_thread|queue\.py|threading\.py"),
    ("Prometheus metrics", r"prometheus|socle/.*metrics"),
    ("pydantic validation / serialisation", r"pydantic|fastapi/_compat|model_dump|validate_(python|json)"),
    ("stdlib json (FastAPI reads the body with json.loads)", r"^\S+ \(json/"),
    ("httpx/httpcore upstream client (incl. anyio sockets, h11)", r"httpx/|httpcore/|h11/|anyio/|sniffio/"),
    ("aiohttp upstream client (incl. yarl, multidict)", r"aiohttp/|yarl/|multidict/|aiohappyeyeballs/|propcache/"),
    ("uvicorn HTTP protocol (httptools)", r"uvicorn/"),
    ("FastAPI dependency injection", r"fastapi/dependencies"),
    ("auth (key parse, sha256, cache)", r"socle/identity|cachetools|hashlib|hmac"),
    ("SQLAlchemy on the event loop (usage batch INSERT, key lookups)", r"sqlalchemy/|aiosqlite/"),
    ("quotas", r"socle/quotas"),
    ("usage accounting", r"socle/usage"),
    ("socle inference service, routing, backend", r"socle/inference"),
    ("socle API layer (routers, middleware, orjson calls)", r"socle/"),
    ("Starlette/FastAPI routing, middleware, responses", r"starlette/|fastapi/"),
]
# Generic frames (asyncio helpers, contextlib) name a layer only when nothing above them does.
FALLBACK = ("event loop (uvloop C code, asyncio glue)", r"asyncio/|uvloop|contextlib|^Runner\.run|^asyncio_run")
HTTPX_PARTS = [
    ("connection-pool bookkeeping (has_expired, is_socket_readable: a poll() per pooled connection)",
     r"connection_pool|has_expired|is_socket_readable|is_idle|is_available|is_closed|can_handle|Origin"),
    ("anyio socket wrapper (send/receive, extra attributes, locks, cancel scopes, sniffio)", r"anyio/|sniffio"),
    ("h11 (writing the request, parsing the answer)", r"h11/"),
    ("httpx Request/Response objects, URL parsing, headers", r"httpx/"),
    ("httpcore HTTP/1.1 connection", r"httpcore/"),
]
# Native frames of a thread that waits: with --native, py-spy counts them as on-CPU.
_WAITING = re.compile(r"^(epoll_wait|epoll_pwait|PyThread_acquire_lock_timed|pthread_cond_wait|pthread_cond_timedwait|"
                      r"sem_wait|sem_timedwait|do_futex_wait|__futex_abstimed_wait|poll|select) ")
_FRAME = re.compile(r"(.*) \((.*?)(?::\d+)?\)$")


def _parse_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = [_short(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            stacks.append((frames, int(count)))
    return stacks


def _short(frame: str) -> str:
    """'func (/venv/lib/python3.11/site-packages/pkg/mod.py:123)' -> 'func (pkg/mod.py)'."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, loc = m.groups()
    loc = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", loc)
    loc = re.sub(r".*/(socle/)", r"\1", loc)
    return f"{func} ({loc})"


def _layer(frames: list[str]) -> str:
    if any(f.startswith("Thread._bootstrap") for f in frames):
        joined = ";".join(frames)
        if "aiosqlite" in joined:
            return "other thread: aiosqlite (SQLite statements)"
        if "WorkerThread" in joined:
            return "other thread: anyio worker (sync dependencies)"
        return "other thread"
    roots = [i for i, f in enumerate(frames) if f.startswith("Runner.run (")]
    frames = frames[roots[-1] + 1:] if roots else frames  # the server's start-up chain names nothing
    if not frames:
        return FALLBACK[0]
    for frame in reversed(frames):
        for name, pattern in RULES:
            if re.search(pattern, frame):
                return name
    if any(re.search(FALLBACK[1], frame) for frame in frames):
        return FALLBACK[0]
    return "other"


def profile(path: Path, top: int = 15, ms_per_req: float | None = None, threads: dict | None = None) -> str:
    """Where the main thread's CPU goes. Samples of other threads are only counted: py-spy's idle
    detection misses some blocked threads (SQLite and threadpool workers waiting on a lock), so their
    real CPU comes from /proc (``threads``: main/other CPU seconds over the recording)."""
    stacks = _parse_collapsed(path)
    def is_main(frames: list[str]) -> bool:
        return not any(f.startswith("Thread._bootstrap") for f in frames)

    waiting = sum(c for f, c in stacks if is_main(f) and any(_WAITING.match(x) for x in f))
    main = [(f, c) for f, c in stacks if is_main(f) and not any(_WAITING.match(x) for x in f)]
    total = sum(c for _, c in main) or 1
    layers: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()  # socle functions, inclusive, over whole stacks
    whole = 0
    parts: collections.Counter = collections.Counter()
    for frames, count in main:
        layer = _layer(frames)
        layers[layer] += count
        if layer.startswith("httpx"):
            parts[next((n for f in reversed(frames) for n, p in HTTPX_PARTS if re.search(p, f)), "other")] += count
        leaves[frames[-1] if frames else "?"] += count
        if any(f.startswith("<module>") for f in frames):  # --nonblocking can read a partial stack
            whole += count
            for f in set(frames):
                if "(socle/" in f and not f.startswith("serve ("):
                    own[f] += count
    main_ms = None
    head = [f"{total} main-thread samples (on-CPU; {sum(c for f, c in stacks if not is_main(f))} samples in other "
            f"threads" + (f"; {waiting} main-thread samples waiting in native code left out" if waiting else "") + ")"]
    if ms_per_req and threads and (threads["main_cpu_s"] + threads["others_cpu_s"]) > 0:
        share = threads["main_cpu_s"] / (threads["main_cpu_s"] + threads["others_cpu_s"])
        main_ms = ms_per_req * share
        head.append(f"server CPU {ms_per_req:.3f} ms per request: main thread {main_ms:.3f} ms ({100 * share:.0f}%), "
                    f"other threads {ms_per_req - main_ms:.3f} ms (SQLite, "
                    f"threadpool workers for sync dependencies; {threads['threads'] - 1} alive at the end)")

    def line(c: int, name: str) -> str:
        us = f"  ~{1000 * main_ms * c / total:4.0f} µs/req" if main_ms else ""
        return f"  {100 * c / total:5.1f}%{us}  {name}"

    lines = head + ["", "Main thread, by layer (the innermost frame that names one):"]
    for n, c in layers.most_common():
        lines.append(line(c, n))
        if n.startswith("httpx"):
            lines += ["    " + line(c2, n2) for n2, c2 in parts.most_common()]
    lines += ["", f"Main thread, top {top} leaf functions (self time):"]
    lines += [line(c, n) for n, c in leaves.most_common(top)]
    lines += ["", f"Main thread, socle functions inclusive (top {top}; share of the {whole} samples "
                  "whose stack was read whole):"]
    lines += [f"  {100 * c / (whole or 1):5.1f}%  {n}" for n, c in own.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-port":
        print(free_port())
    elif cmd == "rss":
        print(tree_rss(int(args[0])))
    elif cmd == "threads":
        print(json.dumps(thread_cpu(int(args[0]))))
    elif cmd == "report":
        print(report(Path(args[0])), end="")
    elif cmd == "profile":
        top = int(args[args.index("--top") + 1]) if "--top" in args else 15
        ms = None
        if "--load" in args:  # load.py's JSON for the same run: server CPU per request
            load = Path(args[args.index("--load") + 1])
            if load.exists():
                ms = json.loads(load.read_text())["runs"][0].get("server_cpu_ms_per_req")
        threads = None
        if "--threads" in args:  # {"before": thread_cpu, "after": thread_cpu} around the recording
            t = json.loads(Path(args[args.index("--threads") + 1]).read_text())
            threads = {k: t["after"][k] - t["before"][k] for k in ("main_cpu_s", "others_cpu_s")}
            threads["threads"] = t["after"]["threads"]
        print(profile(Path(args[0]), top, ms, threads), end="")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
