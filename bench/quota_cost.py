"""What a quota that binds every call costs the gateway, with its counters in Redis, against no quota at all.

One `socle serve` (1 worker, SQLite in a temporary data directory, Redis at ``--redis-url`` with a key
prefix of its own) fronts the shared mock backend (``../shared/bench/mock_backend.py``). Three users get
one key each through the admin API: key A is bound by a ``key``-scoped quota (requests per minute, tokens
per minute and a monthly token budget, all far too large to refuse anything, so that every call does the
whole admission and settlement in Redis), key B by nothing, key C by the same rule without its requests
per minute (plain counters, no moving window), to tell the two kinds of counter apart. The shared load
generator (``load.py``, imported) then sends non-streaming chat completions at a fixed concurrency,
alternating A, B, C (then C, B, A) for ``--rounds`` rounds of ``--seconds`` each, in one run.

The figure to read is the server's CPU time per request (user + system of the server process, from
``/proc``, before and after each round, divided by the requests served): on a shared 2-core machine it
moves far less than req/s. The mock backend's own CPU per request is measured the same way in the same
rounds (``backend_cpu_ms_per_req``): what the backend alone costs, side by side. Also reported, per condition: req/s, p50/p99, Redis commands per request
(``INFO commandstats`` deltas, commands run inside Lua scripts included: global to the Redis server, so
other clients of it inflate them), Redis's own CPU per request (``INFO cpu``, same caveat), and the Redis
round trips per call seen with ``MONITOR`` over a few sequential calls (the commands the gateway's
connections sent with this run's key prefix, apart from those its scripts ran; with more calls than the
default 3, lines were lost here: the per-command ``commandstats`` deltas of the rounds are the reference).
With ``--profile`` (py-spy in ``--pyspy``), one more A round and one B round are recorded and the share of
samples in the quota path (``socle/quotas``, its Redis client, ``limits``) given, by layer. The entries the
request windows hold at the end are reported too (``window_sizes``: a moving window keeps one per call
admitted over its span, never more than its limit).

"Before and after" a change of the limiter: run this script twice, the second time with the server importing
another checkout (``PYTHONPATH=/path/to/checkout``, the same ``.venv``), and compare the A ÷ B ratios.

    .venv/bin/python bench/quota_cost.py                    # 5 rounds x 8 s per key, concurrency 32
    .venv/bin/python bench/quota_cost.py --rounds 6 --seconds 10 --profile 15

Results: ``bench/results/quota_cost-<date>.json`` (and the server log, the py-spy collapsed stacks).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
HUGE_COUNT = 2**31 - 1          # the largest requests/tokens per minute a rule holds
HUGE_BUDGET = 2**62             # monthly tokens: never reached
QUOTA_PATH = ("socle/quotas/", "(limits/", "(coredis/", "(redis/", "(hiredis/")  # py-spy: package-relative paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (the single worker serves in its own process)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def http(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def wait_http(url: str, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited before {url} answered")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise SystemExit(f"not up after {seconds} s: {url}")


def redis_info(url: str, section: str) -> dict[str, str]:
    out = subprocess.run(["redis-cli", "-u", url, "info", section], capture_output=True, text=True, check=True)
    return dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line and not line.startswith("#"))


def redis_snapshot(url: str) -> tuple[dict[str, int], float]:
    """Calls per command, and the Redis server's CPU seconds."""
    calls = {name.removeprefix("cmdstat_"): int(re.search(r"calls=(\d+)", value).group(1))  # type: ignore[union-attr]
             for name, value in redis_info(url, "commandstats").items()}
    cpu = redis_info(url, "cpu")
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def window_sizes(url: str, keys: list[str]) -> dict[str, dict[str, int]]:
    """Entries held by each request window, and its bytes in Redis (``MEMORY USAGE``): `limits`' moving-window
    lists, or the quota store's."""
    def ask(*command: str) -> int:
        out = subprocess.run(["redis-cli", "-u", url, *command], capture_output=True, text=True).stdout
        return int(out.strip() or 0)

    sizes = {}
    for key in keys:
        if "LIMITER" in key or re.search(r":quota:rp[md]:", key):
            sizes[key] = {"entries": ask("llen", key), "bytes": ask("memory", "usage", key, "samples", "0")}
    return sizes


def load_module(shared: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_load", shared / "load.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def monitor_calls(redis_url: str, base: str, key: str, prefix: str, calls: int) -> dict[str, Any]:
    """Redis commands of ``calls`` sequential chat calls with ``key``, from MONITOR: those naming this run's
    prefix, and every command of the connections that sent them."""
    monitor = subprocess.Popen(["stdbuf", "-oL", "redis-cli", "-u", redis_url, "monitor"],  # line-buffered: nothing lost
                               stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for _ in range(calls):
        http("POST", f"{base}/v1/chat/completions", key,
             {"model": "mock-model", "max_tokens": 16, "messages": [{"role": "user", "content": "Bonjour !"}]})
    time.sleep(0.5)
    monitor.send_signal(signal.SIGINT)
    try:
        text, _ = monitor.communicate(timeout=3)
    except subprocess.TimeoutExpired:  # some redis-cli builds ignore SIGINT in monitor mode; lines are flushed
        monitor.kill()
        text, _ = monitor.communicate()
    client = re.compile(r"\[\d+ ([^\]]+)\]")
    lines = [(m.group(1), line) for line in text.splitlines() if (m := client.search(line))]
    in_scripts = [line for who, line in lines if who == "lua" and prefix in line]
    clients = {who for who, line in lines if who != "lua" and prefix in line}
    sent = [line for who, line in lines if who in clients]  # round trips: what the gateway itself sent
    kinds = collections.Counter(line.split('"')[1].upper() for line in sent)
    inner = collections.Counter(line.split('"')[1].upper() for line in in_scripts)
    return {"calls": calls, "round_trips": len(sent), "round_trips_per_call": round(len(sent) / calls, 2),
            "round_trips_by_command_per_call": {k: round(v / calls, 2) for k, v in kinds.most_common()},
            "commands_inside_scripts_per_call": {k: round(v / calls, 2) for k, v in inner.most_common()},
            "connections": len(clients),
            "last_call": [re.sub(r"^\S+ \[[^\]]+\] ", "", line)[:200] for line in sent[-(len(sent) // calls):]]
            if calls and sent else []}


def pyspy_share(collapsed: Path, cpu_ms_per_req: float) -> dict[str, Any]:
    """Share of samples whose stack passes through the quota path, by layer (the Redis client, the limits
    library, the limiter itself; µs per request = share x the round's CPU per request, an upper bound as idle
    samples of other threads count too), and the quota path's top frames (leaf-most quota frame)."""
    total = quota = 0
    frames: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        parts = stack.split(";")
        hits = [p for p in parts if any(q in p for q in QUOTA_PATH)]
        packages = {m.group(1) for p in parts if (m := re.search(r"\(([\w.]+)/", p))}
        layer = next((name for name in ("coredis", "redis", "hiredis", "limits") if name in packages), None)
        layers[layer or ("socle/quotas" if hits else "aiosqlite" if "aiosqlite" in packages else "other")] += n
        if hits:
            quota += n
            frames[re.sub(r" \(/.*?site-packages/| \(/work/main/", " (", hits[-1])] += n
    return {"samples": total, "quota_samples": quota, "quota_share": round(quota / total, 4) if total else None,
            "layers": {k: {"share": round(v / total, 3), "us_per_req": round(1000 * cpu_ms_per_req * v / total)}
                       for k, v in layers.most_common()} if total else {},
            "top_quota_frames": [(f, n) for f, n in frames.most_common(12)]}


async def one_round(load: ModuleType, target: Any, concurrency: int, seconds: float, pid: int,
                    redis_url: str, backend_pid: int) -> dict[str, Any]:
    args = SimpleNamespace(requests=10**9, seconds=seconds, warmup_seconds=0, batch=1)
    calls0, rcpu0 = redis_snapshot(redis_url)
    cpu0, backend0 = cpu_seconds(pid), cpu_seconds(backend_pid)
    result: dict[str, Any] = await load.run_requests(target, "chat", concurrency, args)
    cpu1, backend1 = cpu_seconds(pid), cpu_seconds(backend_pid)
    calls1, rcpu1 = redis_snapshot(redis_url)
    served = result["ok"] + result["errors"]
    delta = {k: calls1.get(k, 0) - calls0.get(k, 0) for k in calls1 if calls1.get(k, 0) != calls0.get(k, 0)}
    result.update(server_cpu_s=round(cpu1 - cpu0, 3),
                  server_cpu_ms_per_req=round(1000 * (cpu1 - cpu0) / served, 4) if served else None,
                  backend_cpu_ms_per_req=round(1000 * (backend1 - backend0) / served, 4) if served else None,
                  redis_commands_per_req=round(sum(delta.values()) / served, 2) if served else None,
                  redis_commands=delta,
                  redis_cpu_us_per_req=round(1e6 * (rcpu1 - rcpu0) / served, 1) if served else None)
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("A", "B", "C"):
        mine = [r for r in runs if r["target"] == name]
        out[name] = {k: round(statistics.median(r[k] for r in mine), 4)
                     for k in ("server_cpu_ms_per_req", "backend_cpu_ms_per_req", "rps", "p50_ms", "p99_ms",
                               "redis_commands_per_req", "redis_cpu_us_per_req")}
        out[name]["cpu_ms_per_req_rounds"] = [r["server_cpu_ms_per_req"] for r in mine]
        out[name]["errors"] = sum(r["errors"] for r in mine)
        last = mine[-1]
        out[name]["redis_commands_by_name_per_req"] = {  # the last round's, scripts' inner commands included
            k: round(v / max(last["ok"] + last["errors"], 1), 2) for k, v in last["redis_commands"].items() if k != "info"}
    a, b = out["A"], out["B"]
    out["ratio_cpu_A_over_B"] = round(a["server_cpu_ms_per_req"] / b["server_cpu_ms_per_req"], 3)
    out["added_cpu_ms_per_req"] = round(a["server_cpu_ms_per_req"] - b["server_cpu_ms_per_req"], 4)
    out["ratio_rps_A_over_B"] = round(a["rps"] / b["rps"], 3)
    out["ratio_cpu_C_over_B"] = round(out["C"]["server_cpu_ms_per_req"] / b["server_cpu_ms_per_req"], 3)
    out["backend_cpu_ms_per_req"] = round(statistics.median(r["backend_cpu_ms_per_req"] for r in runs), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--shared-bench", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--socle", default=str(ROOT / ".venv" / "bin" / "socle"))
    parser.add_argument("--monitor-calls", type=int, default=3)
    parser.add_argument("--profile", type=float, default=0.0, help="seconds of py-spy on one A and one B round")
    parser.add_argument("--pyspy", default="/tmp/bench-venv/bin/py-spy")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = args.out or results / f"quota_cost-{stamp}.json"
    load = load_module(args.shared_bench.resolve())
    prefix = f"socle-bench-quota-{os.getpid()}-{stamp}"
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="socle-quota-bench-") as tmp:
        try:
            mock_port, port = free_port(), free_port()
            procs.append(subprocess.Popen([sys.executable, str(args.shared_bench / "mock_backend.py"), "--port",
                                           str(mock_port), "--model", "mock-model"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            mock = procs[-1]
            wait_http(f"http://127.0.0.1:{mock_port}/health", 15, mock)
            data = Path(tmp) / "data"
            data.mkdir()
            (Path(tmp) / "models.yaml").write_text(
                f"models:\n  - id: mock-model\n    type: chat\n    backends: [{{type: openai, "
                f"url: http://127.0.0.1:{mock_port}/v1, max_connections: 1024}}]\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_") and k != "VIRTUAL_ENV"}
            env.update(SOCLE_CONFIG=f"{tmp}/models.yaml", SOCLE_DATA_DIR=str(data), SOCLE_WORKERS="1",
                       SOCLE_LOG_LEVEL="warning", SOCLE_HOST="127.0.0.1", SOCLE_PORT=str(port),
                       SOCLE_REDIS_URL=args.redis_url, SOCLE_REDIS_KEY_PREFIX=prefix)
            log = open(out.with_suffix(".server.log"), "wb")
            server = subprocess.Popen([args.socle, "serve"], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append(server)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/health", 60, server)
            admin = (data / "admin.key").read_text().strip()
            keys: dict[str, dict[str, Any]] = {}
            for name in ("A", "B", "C"):
                user = http("POST", f"{base}/v1/users", admin, {"email": f"bench-{name.lower()}@example.org"})
                keys[name] = http("POST", f"{base}/v1/keys", admin, {"user_id": user["id"], "name": f"bench {name}"})
            quota = http("POST", f"{base}/v1/quotas", admin, {
                "scope": "key", "subject": str(keys["A"]["id"]), "requests_per_minute": HUGE_COUNT,
                "tokens_per_minute": HUGE_COUNT, "budget_tokens": HUGE_BUDGET, "budget_period": "month"})
            counters_only = http("POST", f"{base}/v1/quotas", admin, {
                "scope": "key", "subject": str(keys["C"]["id"]), "tokens_per_minute": HUGE_COUNT,
                "budget_tokens": HUGE_BUDGET, "budget_period": "month"})
            time.sleep(6)  # the worker reads rules again at most 5 s after its last read
            targets = {name: load.Target(name, base, keys[name]["key"], "mock-model", 0) for name in ("A", "B", "C")}
            monitor = {name: monitor_calls(args.redis_url, base, keys[name]["key"], prefix, args.monitor_calls)
                       for name in ("A", "B", "C")}
            if not monitor["A"]["round_trips"]:
                raise SystemExit("key A's calls sent nothing to Redis: the rule does not bind")
            print(json.dumps({"monitor": monitor}, indent=1), flush=True)

            async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
                for name in ("A", "B", "C"):  # warm-up, not recorded
                    await one_round(load, targets[name], args.concurrency, 2.0, server.pid, args.redis_url, mock.pid)
                runs = []
                for rnd in range(1, args.rounds + 1):
                    for name in ("A", "B", "C") if rnd % 2 else ("C", "B", "A"):
                        r = await one_round(load, targets[name], args.concurrency, args.seconds, server.pid,
                                            args.redis_url, mock.pid)
                        r["round"] = rnd
                        runs.append(r)
                        print(json.dumps({k: r[k] for k in ("target", "round", "rps", "p50_ms", "p99_ms", "errors",
                                                            "server_cpu_ms_per_req", "backend_cpu_ms_per_req",
                                                            "redis_commands_per_req")}),
                              flush=True)
                        await asyncio.sleep(0.5)
                profile: dict[str, Any] = {}
                if args.profile and Path(args.pyspy).exists():
                    for name in ("A", "B"):
                        raw = out.with_suffix(f".profile-{name}.txt")
                        spy = subprocess.Popen([args.pyspy, "record", "--nonblocking", "-r", "200", "-d",
                                                str(int(args.profile)), "-f", "raw", "-o", str(raw), "-p",
                                                str(server.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                        r = await one_round(load, targets[name], args.concurrency, args.profile + 1, server.pid,
                                            args.redis_url, mock.pid)
                        await asyncio.to_thread(spy.wait, 30)
                        profile[name] = {"rps": r["rps"], "server_cpu_ms_per_req": r["server_cpu_ms_per_req"],
                                         **(pyspy_share(raw, r["server_cpu_ms_per_req"]) if raw.exists() else {"error": "no profile"})}
                return runs, profile

            try:
                import uvloop
                uvloop.install()
            except ImportError:
                pass
            runs, profile = asyncio.run(run())
            keys_in_redis = subprocess.run(["redis-cli", "-u", args.redis_url, "--scan", "--pattern", f"{prefix}*"],
                                           capture_output=True, text=True).stdout.split()
            report = {"window_sizes": window_sizes(args.redis_url, keys_in_redis),
                      "server_pythonpath": os.environ.get("PYTHONPATH"), "started": stamp, "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                                                                  "HEAD"], capture_output=True, text=True).stdout.strip(),
                      "loadavg": os.getloadavg(), "concurrency": args.concurrency, "seconds": args.seconds,
                      "rounds": args.rounds, "quotas": {"A": quota, "C": counters_only}, "redis_keys": keys_in_redis,
                      "summary": summarize(runs), "monitor": monitor, "profile": profile, "runs": runs}
            out.write_text(json.dumps(report, indent=1))
            print(json.dumps({"summary": report["summary"], "profile": profile}, indent=1))
            print(f"written: {out}")
            if keys_in_redis:
                subprocess.run(["redis-cli", "-u", args.redis_url, "del", *keys_in_redis], capture_output=True)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
