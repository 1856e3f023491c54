"""Small helpers for bench/gateway.sh (standard library only, any Python >= 3.11).

    python3 gateway_tools.py free-port                       # a free loopback TCP port
    python3 gateway_tools.py rss PID                         # RSS of PID's process tree, bytes
    python3 gateway_tools.py report DIR                      # DIR/*.json -> markdown tables (stdout)
    python3 gateway_tools.py profile COLLAPSED [--top N]     # py-spy --format raw -> where the CPU goes
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
    return "\n\n".join(parts) + "\n"


# ---- profile ---------------------------------------------------------------------------------------

# (category, pattern on "function (file)" frames). The first category found from the leaf up wins, so
# leaf-side categories (JSON, pydantic, HTTP parsing) are listed before the framework layers.
CATEGORIES = [
    ("orjson (de)serialisation", r"orjson|\bdumps\b.*socle|\bloads\b.*socle"),
    ("logging", r"/logging/"),
    ("pydantic validation / model_dump", r"pydantic|model_dump|validate_python|validate_json"),
    ("auth (key parse, sha256, TTL cache)", r"socle/identity|cachetools|hashlib|hmac"),
    ("httpx/httpcore client (upstream call)", r"/httpx/|/httpcore/|/h11/.*_(readers|writers)|anyio/_backends"),
    ("uvicorn HTTP protocol (httptools/h11)", r"uvicorn/protocols|httptools"),
    ("FastAPI request parsing + dependency injection", r"fastapi/dependencies|fastapi/routing.*(solve|_get_request_body|request_body|serialize)|fastapi/encoders"),
    ("Starlette routing / responses / middleware", r"starlette/|fastapi/routing|fastapi/applications|socle/api/limits"),
    ("socle inference service + routers", r"socle/"),
    ("asyncio / uvloop event loop", r"asyncio/|uvloop"),
]


def _parse_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def _short(frame: str) -> str:
    # "func (path/to/site-packages/pkg/mod.py:123)" -> "func (pkg/mod.py:123)"
    m = re.match(r"(.*) \((.*)\)$", frame)
    if not m:
        return frame
    func, loc = m.groups()
    loc = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", loc)
    loc = re.sub(r".*/(socle/)", r"\1", loc)
    return f"{func} ({loc})"


def profile(path: Path, top: int = 15) -> str:
    stacks = _parse_collapsed(path)
    total = sum(c for _, c in stacks) or 1
    by_cat: collections.Counter = collections.Counter()
    self_time: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    for frames, count in stacks:
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        leaf = _short(frames[-1]) if frames else "?"
        self_time[re.sub(r":\d+\)$", ")", leaf)] += count
        for f in set(re.sub(r":\d+\)$", ")", _short(x)) for x in frames):
            inclusive[f] += count
        cat = "other"
        for frame in reversed(frames):
            hit = next((name for name, pat in CATEGORIES if re.search(pat, frame)), None)
            if hit:
                cat = hit
                break
        by_cat[cat] += count
    pct = lambda c: f"{100 * c / total:5.1f}%"
    lines = [f"{total} samples (on-CPU, idle excluded)", "", "By layer (innermost match):"]
    lines += [f"  {pct(c)}  {name}" for name, c in by_cat.most_common()]
    lines += ["", f"Top {top} self time (leaf function):"]
    lines += [f"  {pct(c)}  {name}" for name, c in self_time.most_common(top)]
    lines += ["", f"Top {top} inclusive (function and what it calls), below the event loop:"]
    skip = re.compile(r"^(run|run_forever|_run_once|_run|serve|main|<module>|run_until_complete|"
                      r"__call__ \(uvicorn/middleware|asyncio_run|_serve|startup|subprocess_started|"
                      r"target|invoke|callback|run_module|_run_code|_run_module_as_main|wrapper|"
                      r"run_path|_main|start)\b")
    n = 0
    for name, c in inclusive.most_common():
        if skip.match(name) or "asyncio/" in name or "uvloop" in name or "click/" in name or "typer/" in name:
            continue
        lines.append(f"  {pct(c)}  {name}")
        n += 1
        if n >= top:
            break
    return "\n".join(lines) + "\n"


def main() -> None:
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-port":
        print(free_port())
    elif cmd == "rss":
        print(tree_rss(int(args[0])))
    elif cmd == "report":
        print(report(Path(args[0])), end="")
    elif cmd == "profile":
        top = int(args[args.index("--top") + 1]) if "--top" in args else 15
        print(profile(Path(args[0]), top), end="")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
