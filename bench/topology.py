#!/usr/bin/env python3
"""The production topology on one machine, and how it behaves when replicas fail or restart under load.

Stands up PostgreSQL (the one bundled with pgserver: the migrations need pgvector), Redis (a key prefix of
this run's own, removed at the end), one `socle db upgrade`, two API replicas (`socle serve --workers 2`,
SOCLE_RUN_JOBS=false, SOCLE_MIGRATE_ON_START=false), one `socle worker`, and Debian's nginx on loopback with
deploy/nginx/socle.conf's directives (plain HTTP: TLS lines dropped, upstream pointed at the replicas). The
models point at the shared mock backend; a global token budget binds every call and is counted in Redis.

Scenarios, each under steady load through nginx (paced non-streaming chat plus back-to-back streams):
  kill     kill -9 one replica's process group, restart it, see traffic return to it
  rolling  SIGTERM one replica, start it again, wait for /ready, then the other
  scale    1 replica (1 worker) vs 2 replicas (1 worker each) behind nginx, interleaved, with the CPU of
           each component (where it stops scaling)
Results: bench/results/topology-<date>/ (results.json, summary.md, logs). Run it with `bash bench/topology.sh`.

`topology.py load ...` is the load generator the scenarios start (one request log line per call).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- the load generator (a process of its own, so that the orchestrator's waits cost it nothing) ---------
async def _head(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower()


async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The whole body (content-length or chunked); the tail is what the checks need."""
    if b"transfer-encoding: chunked" in head:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
    return await reader.readexactly(int(m.group(1))) if m else await reader.read()


async def run_load(args: argparse.Namespace) -> None:
    host, port = args.host, args.port
    out = open(args.out, "w", buffering=1)
    stop_at = time.time() + args.seconds

    def request(stream: bool, rid: str) -> bytes:
        body: dict[str, Any] = {"model": "mock-model", "max_tokens": 16,
                                "messages": [{"role": "user", "content": "Bonjour !"}]}
        if stream:
            body["stream"] = True
        raw = json.dumps(body).encode()
        return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                f"authorization: Bearer {args.key}\r\nx-request-id: {rid}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n").encode() + raw

    async def user(stream: bool, period: float, offset: float) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        due = time.time() + offset
        while time.time() < stop_at:
            if period:
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                due = max(due + period, time.time() - period)  # behind: catch up by one period at most
            rid = uuid.uuid4().hex
            t0 = time.time()
            status, error, close = 0, "", False
            try:
                async with asyncio.timeout(args.timeout):
                    if conn is None:
                        conn = await asyncio.open_connection(host, port)
                    reader, writer = conn
                    writer.write(request(stream, rid))
                    status, head = await _head(reader)
                    body = await _body(reader, head)
                    close = b"connection: close" in head
                if status != 200:
                    error = f"http_{status}"
                elif stream and (b"[DONE]" not in body[-64:]):
                    error = "no_done"
                elif stream and re.search(rb'data: \{"error"', body):
                    error = "error_event"
            except TimeoutError:
                error, close = "timeout", True
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                error, close = ("truncated" if status else type(exc).__name__), True
            out.write(json.dumps({"k": "s" if stream else "c", "t0": round(t0, 4), "t1": round(time.time(), 4),
                                  "st": status, "err": error, "rid": rid}) + "\n")
            if close and conn is not None:
                conn[1].close()
                conn = None
            if error:  # no tight loop against a proxy that refuses at once
                await asyncio.sleep(0.05)
        if conn is not None:
            conn[1].close()

    period = args.chat_users / args.chat_rate if args.chat_rate else 0.0
    users = [user(False, period, i * period / max(args.chat_users, 1)) for i in range(args.chat_users)]
    users += [user(True, 0.0, i * 0.05) for i in range(args.stream_users)]
    await asyncio.gather(*users)
    out.close()


# ---- processes ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 1.0, key: str = "") -> int:
    try:
        req = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"} if key else {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def tree(root: int) -> set[int]:
    """A process and its descendants."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parent[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except OSError:
                pass
    found, frontier = set(), {root} if root in parent else set()
    while frontier:
        found |= frontier
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
    return found


def cpu_seconds(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return total


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # all but idle and iowait


class Stack:
    """Every process of the topology, started from a temporary directory (no .env of the repository)."""

    def __init__(self, out: Path, args: argparse.Namespace) -> None:
        self.out, self.args = out, args
        self.tmp = Path(tempfile.mkdtemp(prefix="socle-topo-", dir="/tmp"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.socle = os.environ.get("SOCLE_BIN") or str(ROOT / ".venv" / "bin" / "socle")
        self.prefix = f"socle-topology-{uuid.uuid4().hex[:8]}"
        self.pg: Any = None
        self.events: list[tuple[float, str]] = []

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, file=sys.stderr, flush=True)
        with open(self.out / "run.log", "a") as f:
            f.write(line + "\n")

    def mark(self, what: str) -> float:
        t = time.time()
        self.events.append((t, what))
        self.log(what)
        return t

    # -- infrastructure
    def start_infra(self) -> None:
        import pgserver  # the PostgreSQL with pgvector the test suite uses

        self.pg = pgserver.get_server(self.tmp / "pg", cleanup_mode="stop")
        self.pg.psql("CREATE DATABASE socle_topology;")
        self.database_url = f"postgresql+asyncpg://postgres@/socle_topology?host={self.tmp / 'pg'}"
        redis_ok = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        if redis_ok != "PONG":
            raise SystemExit("Redis is not answering on 127.0.0.1:6379")
        self.mock_port = free_port()
        self.spawn("mock", [sys.executable, str(self.args.shared / "mock_backend.py"), "--port", str(self.mock_port),
                            "--model", "mock-model", "--chunks", str(self.args.stream_chunks),
                            "--token-delay-ms", str(self.args.stream_delay_ms)])
        self.wait_status(f"http://127.0.0.1:{self.mock_port}/health", "mock", 15)
        config = self.tmp / "models.yaml"
        config.write_text("models:\n  - id: mock-model\n    type: chat\n    backends: [{type: openai, url: "
                          f"http://127.0.0.1:{self.mock_port}/v1, max_connections: 4096}}]\n")
        self.key = subprocess.run([self.socle, "keys", "generate"], capture_output=True, text=True, check=True,
                                  env=self.env("keys"), cwd=self.tmp).stdout.strip()
        self.env_common = {
            "SOCLE_CONFIG": str(config), "SOCLE_DATABASE_URL": self.database_url,
            "SOCLE_REDIS_URL": "redis://127.0.0.1:6379/0", "SOCLE_REDIS_KEY_PREFIX": self.prefix,
            "SOCLE_ADMIN_API_KEY": self.key, "SOCLE_MIGRATE_ON_START": "false", "SOCLE_RUN_JOBS": "false",
            "SOCLE_LOG_LEVEL": "warning", "SOCLE_DB_POOL_SIZE": "5", "SOCLE_UI_TRUSTED_PROXIES": "127.0.0.1",
            "SOCLE_SHUTDOWN_GRACE_S": "30"}
        t0 = time.time()
        self.run_socle("db-upgrade", ["db", "upgrade"])
        self.log(f"socle db upgrade: {time.time() - t0:.1f} s")
        # One rule that binds every call, counted in Redis: a global token budget no call reaches.
        self.run_socle("quota", ["quotas", "create", "global", "--budget-tokens", "1000000000000", "--period", "day"])
        self.spawn("worker", [self.socle, "worker"], env=self.env("worker"))

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_") and k != "VIRTUAL_ENV"}
        data = self.tmp / f"data-{name}"
        data.mkdir(exist_ok=True)
        env.update(getattr(self, "env_common", {}), SOCLE_DATA_DIR=str(data))
        return env

    def run_socle(self, name: str, argv: list[str]) -> None:
        done = subprocess.run([self.socle, *argv], env=self.env(name), cwd=self.tmp, capture_output=True, text=True,
                              timeout=300)
        (self.out / f"{name}.log").write_text(done.stdout + done.stderr)
        if done.returncode:
            raise SystemExit(f"socle {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.out / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # a process group of its own: kill -9 takes all of it
        self.procs[name] = proc
        return proc

    def wait_status(self, url: str, name: str, seconds: float, want: int = 200) -> float:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if http_status(url) == want:
                return time.time()
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}) before {url} answered; see {name}.log")
            time.sleep(0.1)
        raise SystemExit(f"{name}: {url} not {want} after {seconds} s")

    # -- replicas
    def start_replica(self, name: str, port: int, workers: int) -> None:
        self.spawn(name, [self.socle, "serve", "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)],
                   env=self.env(name))

    def ready(self, name: str, port: int) -> float:
        return self.wait_status(f"http://127.0.0.1:{port}/ready", name, 120)

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def terminate(self, name: str, timeout: float = 60, port: int = 0) -> int:
        """SIGTERM and wait; with ``port``, the most connections seen queued on its listening socket
        (accepted by the kernel, taken by no worker) while it drained."""
        proc = self.procs[name]
        if proc.poll() is not None:
            return 0
        proc.send_signal(signal.SIGTERM)  # to the supervisor only, as a container runtime does
        queued = 0
        while port and proc.poll() is None:
            ss = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
            queued = max(queued, int(ss[1]) if len(ss) > 1 and ss[1].isdigit() else 0)
            time.sleep(0.05)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing left behind in its group
        except ProcessLookupError:
            pass
        return queued

    # -- nginx
    def start_nginx(self, name: str, upstreams: list[str]) -> int:
        port = free_port()
        directory = self.tmp / name
        (directory / "temp").mkdir(parents=True)
        site = render_site((ROOT / "deploy" / "nginx" / "socle.conf").read_text(), upstreams=upstreams, port=port,
                           logs=self.out, log_name=f"{name}.access.log", next_upstream=self.args.next_upstream,
                           upstream_keepalive_timeout=self.args.upstream_keepalive_timeout)
        (directory / "socle.conf").write_text(site)
        temp = directory / "temp"
        conf = directory / "nginx.conf"
        conf.write_text(
            f"worker_processes {self.args.nginx_workers};\n"
            f"worker_rlimit_nofile {resource.getrlimit(resource.RLIMIT_NOFILE)[1]};\npid {directory}/nginx.pid;\n"
            f"error_log {self.out}/{name}.error.log warn;\ndaemon off;\nevents {{ worker_connections 16384; }}\n"
            "http {\n  include /etc/nginx/mime.types;\n  access_log off;\n"
            "  log_format bench '$msec $status $upstream_addr \"$upstream_status\" $request_time "
            "$http_x_request_id $request_uri';\n"
            f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
            f"  include {directory}/socle.conf;\n}}\n")
        checked = subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
        if checked.returncode:
            raise SystemExit(f"nginx -t: {checked.stderr}")
        self.spawn(name, ["nginx", "-c", str(conf)])
        self.wait_status(f"http://127.0.0.1:{port}/health", name, 30)
        return port

    def pids(self, name: str) -> set[int]:
        proc = self.procs.get(name)
        return tree(proc.pid) if proc is not None and proc.poll() is None else set()

    def close(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 40
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        keys = subprocess.run(["redis-cli", "-h", "127.0.0.1", "--scan", "--pattern", f"{self.prefix}*"],
                              capture_output=True, text=True, timeout=60).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-h", "127.0.0.1", "del", *keys[i:i + 500]], capture_output=True, timeout=60)
        if self.pg is not None:
            self.pg.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def render_site(site: str, *, upstreams: list[str], port: int, logs: Path, log_name: str,
                next_upstream: str = "", upstream_keepalive_timeout: str = "") -> str:
    """deploy/nginx/socle.conf on plain HTTP over loopback: the redirecting server and the TLS lines go, the
    upstream lists these replicas, the access log is the bench's; every proxy directive stays as it is
    (unless NEXT_UPSTREAM or UPSTREAM_KEEPALIVE_TIMEOUT ask to try another value)."""
    site = re.sub(r"server \{[^{}]*return 301[^{}]*\}\n", "", site)
    lines: list[str] = []
    for line in site.splitlines():
        s = line.strip()
        if s.startswith(("listen [::]", "ssl_", "add_header Strict-Transport-Security")):
            continue
        if s.startswith("server ") and "max_fails" in s:
            if upstreams:
                options = s.split(None, 2)[2].split("#")[0].strip()
                lines.extend(f"    server {address} {options}" for address in upstreams)
                upstreams = []
            continue
        if s.startswith("keepalive ") and upstream_keepalive_timeout:
            lines.append(f"    keepalive_timeout {upstream_keepalive_timeout};")
        if s.startswith("proxy_next_upstream ") and next_upstream:
            line = f"    proxy_next_upstream {next_upstream};"
        line = re.sub(r"^(\s*)listen 443 .*;", rf"\1listen 127.0.0.1:{port} reuseport backlog=8192;", line)
        line = re.sub(r"^(\s*)access_log \S+ socle;", rf"\1access_log {logs}/{log_name} bench;", line)
        lines.append(line.replace("/var/log/nginx/", f"{logs}/"))
    return "\n".join(lines) + "\n"


# ---- reading the results --------------------------------------------------------------------------------
def read_requests(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_access(path: Path) -> dict[str, dict[str, Any]]:
    """nginx's line per request, by request id: time, status, the upstream(s) tried and their statuses."""
    rows = {}
    for line in path.read_text().splitlines():
        m = re.match(r'(\S+) (\d+) (.*?) "(.*?)" (\S+) (\S+) (\S+)$', line)
        if m and m.group(7).startswith("/v1/chat"):
            rows[m.group(6)] = {"t": float(m.group(1)), "status": int(m.group(2)),
                                "upstreams": [u.strip() for u in m.group(3).split(",")],
                                "upstream_status": m.group(4), "request_time": float(m.group(5))}
    return rows


def analyse(requests: list[dict[str, Any]], access: dict[str, dict[str, Any]], ports: dict[str, int],
            events: list[tuple[float, str]], t_start: float) -> dict[str, Any]:
    names = {f"127.0.0.1:{p}": n for n, p in ports.items()}
    result: dict[str, Any] = {}
    for kind, label in (("c", "chat"), ("s", "stream")):
        mine = [r for r in requests if r["k"] == kind]
        failed = [r for r in mine if r["err"]]
        detail = []
        for r in failed:
            a = access.get(r["rid"], {})
            # In flight at an event: sent before it, finished after it.
            around = [what for t, what in events if r["t0"] <= t <= r["t1"] + 0.05]
            detail.append({"t0": round(r["t0"] - t_start, 3), "t1": round(r["t1"] - t_start, 3), "err": r["err"],
                           "upstreams": [names.get(u, u) for u in a.get("upstreams", [])],
                           "upstream_status": a.get("upstream_status"), "in_flight_at": around})
        retried = sum(1 for r in mine if len(access.get(r["rid"], {}).get("upstreams", [])) > 1)
        result[label] = {"total": len(mine), "failed": len(failed),
                         "kinds": dict(collections.Counter(r["err"] for r in failed)),
                         "failed_in_flight_at_an_event": sum(1 for d in detail if d["in_flight_at"]),
                         "passed_to_next_upstream": retried, "failures": detail[:200]}
    # Requests per second per replica, as nginx routed them (the replica that answered: the last one tried).
    buckets: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for a in (access[r["rid"]] for r in requests if r["rid"] in access):
        buckets[int(a["t"] - t_start)][names.get(a["upstreams"][-1], a["upstreams"][-1])] += 1
    result["per_second"] = {str(s): dict(buckets[s]) for s in sorted(buckets)}
    result["events"] = [{"t": round(t - t_start, 2), "what": what} for t, what in events]
    return result


# ---- scenarios ------------------------------------------------------------------------------------------
def start_load(stack: Stack, port: int, name: str, seconds: float) -> tuple[subprocess.Popen[bytes], Path]:
    path = stack.out / f"{name}.requests.jsonl"
    a = stack.args
    proc = subprocess.Popen([sys.executable, __file__, "load", "--port", str(port), "--key", stack.key,
                             "--seconds", str(seconds), "--chat-rate", str(a.chat_rate), "--chat-users",
                             str(a.chat_users), "--stream-users", str(a.stream_users), "--out", str(path)],
                            stdout=open(stack.out / f"{name}.load.log", "wb"), stderr=subprocess.STDOUT)
    return proc, path


def scenario(stack: Stack, name: str, nginx_port: int, ports: dict[str, int], seconds: float, actions) -> dict:
    stack.events = []
    access_log = stack.out / "nginx.access.log"
    t_start = time.time()
    load, path = start_load(stack, nginx_port, name, seconds)
    actions(t_start)
    load.wait(seconds + 60)
    time.sleep(1)
    requests = read_requests(path)
    access = read_access(access_log)
    result = analyse(requests, access, ports, stack.events, t_start)
    result["seconds"] = seconds
    result["nginx_errors"] = nginx_errors(stack.out / "socle.error.log", ports, t_start, time.time())
    return result


def nginx_errors(path: Path, ports: dict[str, int], t0: float, t1: float) -> dict[str, int]:
    """nginx's error log lines in [t0, t1], by message (the replica named, ids left out)."""
    counts: collections.Counter[str] = collections.Counter()
    if not path.exists():
        return {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[\w+\] \S+ (?:\*\d+ )?(.*?)(?:, client: .*?)?(?:, upstream: \"http://127\.0\.0\.1:(\d+).*)?$", line)
        if not m:
            continue
        t = time.mktime(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S"))
        if not t0 - 1 <= t <= t1:
            continue
        replica = next((n for n, p in ports.items() if str(p) == m.group(3)), m.group(3) or "")
        counts[f"{m.group(2)} [{replica}]" if replica else m.group(2)] += 1
    return dict(counts.most_common())


def scenario_kill(stack: Stack, nginx_port: int, ports: dict[str, int]) -> dict:
    a = stack.args

    def actions(t0: float) -> None:
        time.sleep(max(0.0, t0 + a.kill_at - time.time()))
        t = time.time()
        stack.kill9("api-a")
        stack.events.append((t, "kill -9 api-a"))
        stack.log("kill -9 api-a")
        time.sleep(a.restart_after)
        stack.mark("start api-a")
        stack.start_replica("api-a", ports["api-a"], a.workers)
        stack.ready("api-a", ports["api-a"])
        stack.mark("api-a ready")

    result = scenario(stack, "kill", nginx_port, ports, a.kill_seconds, actions)
    ready_at = next(e["t"] for e in result["events"] if e["what"] == "api-a ready")
    kill_at = next(e["t"] for e in result["events"] if e["what"] == "kill -9 api-a")
    back = [int(s) for s, c in result["per_second"].items() if int(s) >= ready_at and c.get("api-a")]
    result["traffic_back_to_api_a_after_ready_s"] = round(back[0] + 1 - ready_at, 1) if back else None
    last = [c for s, c in result["per_second"].items() if int(s) >= a.kill_seconds - 6 and int(s) < a.kill_seconds - 1]
    tot = collections.Counter()
    for c in last:
        tot.update(c)
    result["share_api_a_last_5s"] = round(tot["api-a"] / max(1, sum(tot.values())), 3)
    before = [c for s, c in result["per_second"].items() if kill_at - 5 <= int(s) < kill_at - 1]
    tot = collections.Counter()
    for c in before:
        tot.update(c)
    result["share_api_a_before_kill"] = round(tot["api-a"] / max(1, sum(tot.values())), 3)
    return result


def scenario_rolling(stack: Stack, nginx_port: int, ports: dict[str, int]) -> dict:
    a = stack.args

    def actions(t0: float) -> None:
        time.sleep(max(0.0, t0 + 4 - time.time()))
        for name in ("api-a", "api-b"):
            stack.mark(f"SIGTERM {name}")
            queued = stack.terminate(name, port=ports[name])
            stack.mark(f"{name} exited (at most {queued} connections queued on its socket while it drained)")
            stack.start_replica(name, ports[name], a.workers)
            stack.ready(name, ports[name])
            stack.mark(f"{name} ready")
            time.sleep(a.rolling_pause)
        stack.mark("rolling restart done")

    result = scenario(stack, "rolling", nginx_port, ports, a.rolling_seconds, actions)
    done = next(e["t"] for e in result["events"] if e["what"] == "rolling restart done")
    if done > a.rolling_seconds - 3:
        stack.log(f"warning: the rolling restart ended at {done:.0f} s, near the end of the load ({a.rolling_seconds} s)")
    return result


def scenario_scale(stack: Stack) -> dict:
    """1 replica vs 2 replicas of 1 worker each behind nginx, interleaved rounds, CPU of every component."""
    a = stack.args
    ports = {"one-a": free_port(), "one-b": free_port()}
    for name, port in ports.items():
        stack.start_replica(name, port, 1)
    for name, port in ports.items():
        stack.ready(name, port)
    n1 = stack.start_nginx("nginx-one", [f"127.0.0.1:{ports['one-a']}"])
    n2 = stack.start_nginx("nginx-two", [f"127.0.0.1:{ports[n]}" for n in ports])
    targets = {"1 replica": n1, "2 replicas": n2}
    redis_pid = int(re.search(r"process_id:(\d+)", subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "info", "server"], capture_output=True, text=True).stdout).group(1))
    pg_pid = int((stack.tmp / "pg" / "postmaster.pid").read_text().split()[0])
    runs = []
    for rnd in range(a.rounds):
        for level in a.levels:
            order = list(targets) if rnd % 2 == 0 else list(reversed(targets))
            for target in order:
                port = targets[target]
                out = stack.out / f"scale-{target.replace(' ', '')}-c{level}-r{rnd}.json"
                groups = {"replicas": lambda: stack.pids("one-a") | stack.pids("one-b"),
                          "nginx": lambda: stack.pids("nginx-one") | stack.pids("nginx-two"),
                          "redis": lambda: tree(redis_pid), "postgres": lambda: tree(pg_pid),
                          "mock": lambda: stack.pids("mock"), "worker": lambda: stack.pids("worker")}
                before = {g: cpu_seconds(f()) for g, f in groups.items()}
                busy0, t0 = machine_busy_seconds(), time.time()
                client = subprocess.Popen(
                    [sys.executable, str(a.shared / "load.py"), "chat", "--target",
                     f"{target.replace(' ', '')}=http://127.0.0.1:{port},key={stack.key},model=mock-model",
                     "--concurrency", str(level), "--rounds", "1", "--seconds", str(a.scale_seconds),
                     "--warmup-seconds", "1", "--requests", "10000000", "--pause-seconds", "0", "--out", str(out)],
                    stdout=subprocess.DEVNULL, stderr=open(stack.out / "scale-load.log", "ab"))
                children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                client.wait()
                children1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client, reaped just now
                client_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
                wall = time.time() - t0
                cpu = {g: round(100 * (cpu_seconds(f()) - before[g]) / wall, 1) for g, f in groups.items()}
                cpu["client"] = round(100 * client_cpu / wall, 1)
                cpu["machine"] = round(100 * (machine_busy_seconds() - busy0) / wall, 1)
                run = json.loads(out.read_text())["runs"][0]
                runs.append({"target": target, "level": level, "round": rnd, "rps": run["rps"], "p50_ms": run["p50_ms"],
                             "p99_ms": run["p99_ms"], "errors": run["errors"], "cpu_pct": cpu})
                stack.log(f"scale {target} c={level} round {rnd}: {run['rps']} req/s, errors {run['errors']}, "
                          f"cpu {cpu}")
                time.sleep(1)
    summary = []
    for level in a.levels:
        row: dict[str, Any] = {"level": level}
        for target in targets:
            mine = [r for r in runs if r["level"] == level and r["target"] == target]
            row[target] = {"rps": statistics.median(r["rps"] for r in mine),
                           "p50_ms": statistics.median(r["p50_ms"] for r in mine if r["p50_ms"] is not None),
                           "p99_ms": statistics.median(r["p99_ms"] for r in mine if r["p99_ms"] is not None),
                           "errors": sum(r["errors"] for r in mine),
                           "cpu_pct": {g: statistics.median(r["cpu_pct"][g] for r in mine) for g in mine[0]["cpu_pct"]}}
        row["ratio_2_to_1"] = round(row["2 replicas"]["rps"] / row["1 replica"]["rps"], 3)
        row["ratios_by_round"] = [
            round(next(r["rps"] for r in runs if r["level"] == level and r["round"] == k and r["target"] == "2 replicas")
                  / next(r["rps"] for r in runs if r["level"] == level and r["round"] == k and r["target"] == "1 replica"), 3)
            for k in range(a.rounds)]
        summary.append(row)
    for name in ("nginx-one", "nginx-two", "one-a", "one-b"):
        stack.terminate(name)
    return {"summary": summary, "runs": runs}


def summarize(results: dict[str, Any]) -> str:
    lines = [f"# Topology run {results['meta']['date']} (commit {results['meta']['commit']}, "
             f"{results['meta']['cores']} cores)", ""]
    for name in ("kill", "rolling"):
        r = results.get(name)
        if not r:
            continue
        lines.append(f"## {name}")
        for label in ("chat", "stream"):
            x = r[label]
            lines.append(f"- {label}: {x['total']} requests, {x['failed']} failed {x['kinds']}; "
                         f"failed while in flight at an event: {x['failed_in_flight_at_an_event']}; "
                         f"passed to the next replica by nginx: {x['passed_to_next_upstream']}")
        for key in ("share_api_a_before_kill", "traffic_back_to_api_a_after_ready_s", "share_api_a_last_5s"):
            if key in r:
                lines.append(f"- {key}: {r[key]}")
        lines.append("- nginx error log: " + "; ".join(f"{k}: {v}" for k, v in r.get("nginx_errors", {}).items()))
        lines.append("- events: " + "; ".join(f"{e['t']} s {e['what']}" for e in r["events"]))
        lines.append("- per second (replica: requests): " + " ".join(
            f"{s}:{'/'.join(f'{k[-1]}{v}' for k, v in sorted(c.items()))}" for s, c in r["per_second"].items()))
        for f in r["chat"]["failures"][:10] + r["stream"]["failures"][:10]:
            lines.append(f"  - failed: {f}")
        lines.append("")
    s = results.get("scale")
    if s:
        lines += ["## scale (through nginx, non-streaming chat)", "",
                  "| concurrency | 1 replica req/s | 2 replicas req/s | ratio (rounds) | p50 ms 1 / 2 | "
                  "CPU % 1 replica | CPU % 2 replicas |", "|---|---|---|---|---|---|---|"]
        for row in s["summary"]:
            one, two = row["1 replica"], row["2 replicas"]
            fmt = lambda c: ", ".join(f"{k} {v:g}" for k, v in c.items())  # noqa: E731
            lines.append(f"| {row['level']} | {one['rps']:,.0f} | {two['rps']:,.0f} | {row['ratio_2_to_1']} "
                         f"({', '.join(map(str, row['ratios_by_round']))}) | {one['p50_ms']} / {two['p50_ms']} | "
                         f"{fmt(one['cpu_pct'])} | {fmt(two['cpu_pct'])} |")
    return "\n".join(lines) + "\n"


def main_run(args: argparse.Namespace) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or HERE / "results" / f"topology-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    stack = Stack(out, args)
    results: dict[str, Any] = {"meta": {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cores": os.cpu_count(), "loadavg": os.getloadavg(),
        "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "args": {k: str(v) for k, v in vars(args).items()}}}
    try:
        stack.start_infra()
        ports = {"api-a": free_port(), "api-b": free_port()}
        if {"kill", "rolling"} & set(args.scenarios):
            for name, port in ports.items():
                stack.start_replica(name, port, args.workers)
            for name, port in ports.items():
                stack.ready(name, port)
            nginx_port = stack.start_nginx("nginx", [f"127.0.0.1:{p}" for p in ports.values()])
            results["nginx_site"] = (stack.tmp / "nginx" / "socle.conf").read_text()
            # Warm every worker (connections, caches) before the first scenario.
            warm, _ = start_load(stack, nginx_port, "warmup", 3)
            warm.wait(60)
            for name in ("kill", "rolling"):
                if name in args.scenarios:
                    stack.log(f"scenario {name}")
                    fn = scenario_kill if name == "kill" else scenario_rolling
                    results[name] = fn(stack, nginx_port, ports)
                    (out / "results.json").write_text(json.dumps(results, indent=1))
                    time.sleep(2)
            for name in ("nginx", "api-a", "api-b"):
                stack.terminate(name)
        if "scale" in args.scenarios:
            stack.log("scenario scale")
            results["scale"] = scenario_scale(stack)
    finally:
        (out / "results.json").write_text(json.dumps(results, indent=1))
        stack.close()
    (out / "summary.md").write_text(summarize(results))
    latest = HERE / "results" / "topology-latest"
    if not args.out:  # a run with its own OUT leaves the latest default run linked
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out.name)
    print(summarize(results))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="the whole topology and the scenarios (default)")
    e = os.environ.get
    run.add_argument("--scenarios", nargs="+", default=e("SCENARIOS", "kill rolling scale").split(),
                     choices=["kill", "rolling", "scale"])
    run.add_argument("--out", default=e("OUT"))
    run.add_argument("--shared", type=Path, default=Path(e("SHARED_BENCH", str(ROOT.parent / "shared" / "bench"))))
    run.add_argument("--workers", type=int, default=int(e("WORKERS", "2")), help="per API replica (kill, rolling)")
    run.add_argument("--chat-rate", type=float, default=float(e("CHAT_RATE", "300")), help="non-streaming calls/s")
    run.add_argument("--chat-users", type=int, default=int(e("CHAT_USERS", "32")))
    run.add_argument("--stream-users", type=int, default=int(e("STREAM_USERS", "16")), help="back-to-back streams")
    run.add_argument("--stream-chunks", type=int, default=int(e("STREAM_CHUNKS", "20")))
    run.add_argument("--stream-delay-ms", type=float, default=float(e("STREAM_DELAY_MS", "50")))
    run.add_argument("--kill-seconds", type=float, default=float(e("KILL_SECONDS", "40")))
    run.add_argument("--kill-at", type=float, default=float(e("KILL_AT", "8")))
    run.add_argument("--restart-after", type=float, default=float(e("RESTART_AFTER", "5")))
    run.add_argument("--rolling-seconds", type=float, default=float(e("ROLLING_SECONDS", "50")))
    run.add_argument("--rolling-pause", type=float, default=float(e("ROLLING_PAUSE", "12")),
                     help="after a replica is ready, before the next: longer than the upstream's fail_timeout")
    run.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=e("LEVELS", "32,128"))
    run.add_argument("--rounds", type=int, default=int(e("ROUNDS", "3")))
    run.add_argument("--scale-seconds", type=float, default=float(e("SCALE_SECONDS", "5")))
    run.add_argument("--nginx-workers", default=e("NGINX_WORKERS", "auto"))
    run.add_argument("--next-upstream", default=e("NEXT_UPSTREAM", ""), help="try another proxy_next_upstream")
    run.add_argument("--upstream-keepalive-timeout", default=e("UPSTREAM_KEEPALIVE_TIMEOUT", ""))
    load = sub.add_parser("load", help="the load generator (started by the scenarios)")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--key", required=True)
    load.add_argument("--seconds", type=float, required=True)
    load.add_argument("--chat-rate", type=float, default=300)
    load.add_argument("--chat-users", type=int, default=32)
    load.add_argument("--stream-users", type=int, default=16)
    load.add_argument("--timeout", type=float, default=60)
    load.add_argument("--out", required=True)
    args = p.parse_args(sys.argv[1:] if len(sys.argv) > 1 else ["run"])
    if args.command == "load":
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        asyncio.run(run_load(args))
    else:
        if isinstance(args.levels, str):
            args.levels = [int(x) for x in args.levels.split(",")]
        main_run(args)


if __name__ == "__main__":
    main()
