#!/usr/bin/env bash
# Gateway overhead, side by side in one run: direct-to-mock vs Socle IA vs LiteLLM proxy.
#
#   bash bench/gateway.sh                  # full run, ~12 min
#   QUICK=1 bash bench/gateway.sh          # ~3 min: 1 round of 3 s, 1,000 and 2,000 short streams
#   PHASES="chat" WORKERS=1 bash bench/gateway.sh
#   BEFORE=/tmp/before SKIP_LITELLM=1 bash bench/gateway.sh   # also socle from another checkout (a git
#                                          # worktree of an earlier commit, same .venv), target "before"
#
# Starts (on free loopback ports, stopped by a trap): the shared mock backend (models mock-model and
# mock-embed), `socle serve` with a temporary data directory and a YAML catalogue routing both models
# to the mock, and LiteLLM proxy the way $SHARED_BENCH/peers/litellm.sh does, both with WORKERS
# processes. Then, with the shared load generator:
#   chat     non-streaming chat at LEVELS (1,32,256): direct, socle, litellm (pid= for CPU and RSS)
#   streams  STREAMS (1000,5000) SSE streams of STREAM_CHUNKS events STREAM_DELAY_MS apart: same targets
#   profile  one-worker socle, chat at concurrency 32, py-spy: profile.raw.txt, profile.svg, profile.txt,
#            and profile-native.txt (--native: C frames, the cyclic GC)
#   streams1 one-worker socle against a second mock whose streams stay open longer (STREAMS_1W, 10000)
# Results: $OUT (default bench/results/gateway-<date>), also linked as bench/results/gateway-latest;
# summary.md holds every table.
#
# Knobs (env): SHARED_BENCH (default ../shared/bench from the repo root), PY (python with uvloop for the
# client and mock; default /tmp/bench-venv/bin/python), PYSPY, LITELLM_VENV, SOCLE_BIN, WORKERS
# (default $SOCLE_WORKERS or 2), LEVELS, ROUNDS, SECONDS_PER_RUN, STREAMS, STREAM_CHUNKS,
# STREAM_DELAY_MS, RAMP, STREAM_SECONDS, STREAMS_1W, STREAM1_CHUNKS, STREAM1_DELAY_MS, RAMP_1W,
# STARTUP_SECONDS (how long socle may take to answer /health; default 180: a busy machine is slow),
# STREAM1_SECONDS, PROFILE_SECONDS, PYSPY_RATE, PYSPY_ARGS, BACKEND_MAX_CONNECTIONS (catalogue max_connections; the default
# of the openai backend, 256, caps open streams per backend and worker), PHASES, SKIP_LITELLM=1,
# PROFILE_STREAMS=1 (streams1 with socle only, py-spy from mid-ramp on: profile-streams.txt), BEFORE (a
# checkout whose socle/ is served as the target "before" in chat, streams and streams1, from the same
# virtualenv through PYTHONPATH; the profile phase profiles this checkout only), AFTER (the same for the target
# "socle": a checkout of the changes alone, when other work in progress in this one must not count).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
SHARED_BENCH="$(cd "${SHARED_BENCH:-$root/../shared/bench}" && pwd)"
PY="${PY:-/tmp/bench-venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
PYSPY="${PYSPY:-$(dirname "$PY")/py-spy}"
LITELLM_VENV="${LITELLM_VENV:-/tmp/litellm-venv}"
SOCLE_BIN="${SOCLE_BIN:-$root/.venv/bin/socle}"
WORKERS="${WORKERS:-${SOCLE_WORKERS:-2}}"
PHASES="${PHASES:-chat streams profile streams1}"
BACKEND_MAX_CONNECTIONS="${BACKEND_MAX_CONNECTIONS:-16384}"
if [[ -n "${QUICK:-}" ]]; then
  ROUNDS="${ROUNDS:-1}"; SECONDS_PER_RUN="${SECONDS_PER_RUN:-3}"; WARMUP="${WARMUP:-0.5}"
  STREAMS="${STREAMS:-1000}"; STREAM_CHUNKS="${STREAM_CHUNKS:-10}"; RAMP="${RAMP:-5}"; STREAM_SECONDS="${STREAM_SECONDS:-30}"
  STREAMS_1W="${STREAMS_1W:-2000}"; STREAM1_CHUNKS="${STREAM1_CHUNKS:-5}"; STREAM1_DELAY_MS="${STREAM1_DELAY_MS:-2000}"
  RAMP_1W="${RAMP_1W:-5}"; STREAM1_SECONDS="${STREAM1_SECONDS:-30}"; PROFILE_SECONDS="${PROFILE_SECONDS:-8}"
fi
LEVELS="${LEVELS:-1,32,256}"
ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-6}"
WARMUP="${WARMUP:-1}"
STREAMS="${STREAMS:-1000,5000}"
STREAM_CHUNKS="${STREAM_CHUNKS:-20}"        # 20 events 1 s apart: each stream stays open ~20 s
STREAM_DELAY_MS="${STREAM_DELAY_MS:-1000}"
RAMP="${RAMP:-10}"
STREAM_SECONDS="${STREAM_SECONDS:-60}"
STREAMS_1W="${STREAMS_1W:-10000}"
STREAM1_CHUNKS="${STREAM1_CHUNKS:-10}"      # 10 events 5 s apart: ~50 s, longer than the 30 s ramp
STREAM1_DELAY_MS="${STREAM1_DELAY_MS:-5000}"
RAMP_1W="${RAMP_1W:-30}"
STREAM1_SECONDS="${STREAM1_SECONDS:-100}"
PROFILE_SECONDS="${PROFILE_SECONDS:-20}"
PYSPY_RATE="${PYSPY_RATE:-200}"
PYSPY_ARGS="${PYSPY_ARGS---nonblocking}"  # no pauses (some stacks read partially); "" pauses the process
# at each sample: whole stacks, but skewed leaves here (asyncio.current_task at 17%); --native needs ""

stamp="$(date +%Y%m%d-%H%M%S)"
if [[ -z "${OUT:-}" ]]; then
  OUT="$here/results/gateway-$stamp"
  mkdir -p "$OUT" && ln -sfn "gateway-$stamp" "$here/results/gateway-latest"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
tmp="$(mktemp -d /tmp/socle-gateway-bench.XXXXXX)"
ulimit -n "$(ulimit -Hn)"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

# ---- processes ---------------------------------------------------------------------------------------
started=()
descendants() {  # PID -> PID and every process below it
  local c; echo "$1"
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$c"; done
}
stop() {  # PID: TERM, a second TERM after 10 s (uvicorn then skips its graceful wait), KILL after 15 s
  local pid="$1" all i
  kill -0 "$pid" 2>/dev/null || return 0
  all="$(descendants "$pid" | tr '\n' ' ')"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; [[ $i == 20 ]] && kill -TERM "$pid" 2>/dev/null; done
  for i in $(seq 10); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  for p in $all; do kill -KILL "$p" 2>/dev/null || true; done
}
cleanup() {
  local pid
  for pid in "${started[@]}"; do stop "$pid"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() {  # URL SECONDS PID: until URL answers 200, while PID lives
  local i
  for i in $(seq $(( $2 * 2 ))); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 "$1")" == 200 ]] && return 0
    kill -0 "$3" 2>/dev/null || { log "process $3 exited before $1 answered"; return 1; }
    sleep 0.5
  done
  log "not up after $2 s: $1"; return 1
}
free_port() { "$PY" "$here/gateway_tools.py" free-port; }
rss_mb() { "$PY" -c "import sys; print(round(int(sys.argv[1]) / 2**20, 1))" "$("$PY" "$here/gateway_tools.py" rss "$1")"; }

start_mock() {  # PORT CHUNKS DELAY_MS LOG -> sets MOCK_PID
  "$PY" "$SHARED_BENCH/mock_backend.py" --port "$1" --model mock-model,mock-embed --chunks "$2" \
    --token-delay-ms "$3" > "$4" 2>&1 &
  MOCK_PID=$!; started+=("$MOCK_PID")
  wait_http "http://127.0.0.1:$1/health" 15 "$MOCK_PID"
}

start_socle() {  # NAME PORT MOCK_PORT WORKERS [CHECKOUT] -> sets SOCLE_PID, SOCLE_KEY
  local name="$1" dir="$tmp/$1" v path=()
  mkdir -p "$dir/data"
  cat > "$dir/models.yaml" <<EOF
models:
  - id: mock-model
    type: chat
    backends: [{type: openai, url: http://127.0.0.1:$3/v1, max_connections: $BACKEND_MAX_CONNECTIONS}]
  - id: mock-embed
    type: embeddings
    backends: [{type: openai, url: http://127.0.0.1:$3/v1, max_connections: $BACKEND_MAX_CONNECTIONS}]
EOF
  local unset_args=()
  for v in $(compgen -e | grep '^SOCLE_' || true); do unset_args+=(-u "$v"); done
  [[ -n "${5:-}" ]] && path=(PYTHONPATH="$5")  # found before the editable install of this checkout
  # From the temporary directory: no .env file of the repository is read.
  (cd "$dir" && exec env "${unset_args[@]}" -u VIRTUAL_ENV SOCLE_CONFIG="$dir/models.yaml" \
     SOCLE_DATA_DIR="$dir/data" SOCLE_WORKERS="$4" SOCLE_LOG_LEVEL=warning SOCLE_HOST=127.0.0.1 \
     SOCLE_PORT="$2" "${path[@]}" "$SOCLE_BIN" serve > "$OUT/$name.log" 2>&1) &
  SOCLE_PID=$!; started+=("$SOCLE_PID")
  if ! wait_http "http://127.0.0.1:$2/health" "${STARTUP_SECONDS:-180}" "$SOCLE_PID"; then tail -30 "$OUT/$name.log" >&2; exit 1; fi
  SOCLE_KEY="$(tr -d '[:space:]' < "$dir/data/admin.key")"
  # Same work on every worker before measuring: one authenticated call (also checks the route).
  local code
  code=$(curl -s -o "$dir/check.json" -w '%{http_code}' -m 10 -H "authorization: Bearer $SOCLE_KEY" \
         -H 'content-type: application/json' "http://127.0.0.1:$2/v1/chat/completions" \
         -d '{"model": "mock-model", "messages": [{"role": "user", "content": "Bonjour !"}], "max_tokens": 16}')
  [[ "$code" == 200 ]] || { log "socle check call: HTTP $code $(cat "$dir/check.json")"; exit 1; }
}

stream_run() {  # OUTFILE STREAMS RAMP SECONDS TARGET...: idle RSS of each target, then load.py stream
  local out="$1" streams="$2" ramp="$3" secs="$4" t name pid idle="{"
  shift 4
  for t in "$@"; do
    name="${t%%=*}"; pid="$(sed -n 's/.*pid=\([0-9]*\).*/\1/p' <<< "$t")"
    idle+="\"$name\": $(rss_mb "$pid"),"
  done
  echo "${idle%,}}" > "${out%.json}.idle.json"
  local args=()
  for t in "$@"; do args+=(--target "$t"); done
  "$PY" "$SHARED_BENCH/load.py" stream "${args[@]}" --streams "$streams" --ramp-seconds "$ramp" \
    --seconds "$secs" --pause-seconds 3 --out "$out" > "${out%.json}.out" 2>&1 || log "load.py stream failed"
  grep '^|' "${out%.json}.out" >&2 || tail -5 "${out%.json}.out" >&2
}

# ---- run ---------------------------------------------------------------------------------------------
has() { [[ " $PHASES " == *" $1 "* ]]; }
log "out=$OUT workers=$WORKERS phases=[$PHASES] quick=${QUICK:-0} shared=$SHARED_BENCH"
MOCK_PORT=$(free_port)
start_mock "$MOCK_PORT" "$STREAM_CHUNKS" "$STREAM_DELAY_MS" "$OUT/mock.log"
MOCK_A=$MOCK_PID
direct="direct=http://127.0.0.1:$MOCK_PORT,pid=$MOCK_A"
targets=("$direct")

if has chat || has streams; then
  LITELLM_PID=""
  if [[ -z "${SKIP_LITELLM:-}" && -x "$LITELLM_VENV/bin/litellm" ]]; then
    LITELLM_PORT=$(free_port); LITELLM_KEY="sk-bench-0123456789"
    LITELLM_PID=$(VENV="$LITELLM_VENV" LITELLM_MASTER_KEY="$LITELLM_KEY" PORT="$LITELLM_PORT" MOCK_PORT="$MOCK_PORT" \
                  WORKERS="$WORKERS" LOG="$OUT/litellm.log" bash "$SHARED_BENCH/peers/litellm.sh")
    started+=("$LITELLM_PID")
  else
    log "LiteLLM skipped (SKIP_LITELLM or no $LITELLM_VENV/bin/litellm)"
  fi
  SOCLE_PORT=$(free_port)
  start_socle socle "$SOCLE_PORT" "$MOCK_PORT" "$WORKERS" "${AFTER:-}"
  targets+=("socle=http://127.0.0.1:$SOCLE_PORT,key=$SOCLE_KEY,model=mock-model,pid=$SOCLE_PID")
  SOCLE_MAIN=$SOCLE_PID
  if [[ -n "${BEFORE:-}" ]]; then
    BEFORE_PORT=$(free_port)
    start_socle before "$BEFORE_PORT" "$MOCK_PORT" "$WORKERS" "$BEFORE"
    targets+=("before=http://127.0.0.1:$BEFORE_PORT,key=$SOCLE_KEY,model=mock-model,pid=$SOCLE_PID")
    BEFORE_MAIN=$SOCLE_PID
  fi
  if [[ -n "$LITELLM_PID" ]]; then
    wait_http "http://127.0.0.1:$LITELLM_PORT/health/liveliness" 120 "$LITELLM_PID"
    targets+=("litellm=http://127.0.0.1:$LITELLM_PORT,key=$LITELLM_KEY,model=mock-model,pid=$LITELLM_PID")
  fi
fi

"$PY" - "$OUT/meta.json" <<EOF
import json, os, subprocess, sys, platform
def out(*cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception: return ""
def pkg(venv, name):
    for line in out(venv + "/bin/python", "-m", "pip", "list", "--disable-pip-version-check").splitlines():
        if line.split()[:1] == [name]: return line.split()[1]
m = {"date": out("date", "-Is"), "cores": os.cpu_count(), "loadavg": os.getloadavg()[0],
     "workers": $WORKERS, "quick": bool("${QUICK:-}"), "client_python": platform.python_version(),
     "commit": out("git", "-C", "$root", "rev-parse", "--short", "HEAD"),
     "dirty": bool(out("git", "-C", "$root", "status", "--porcelain", "--", "socle")),
     "max_connections": $BACKEND_MAX_CONNECTIONS}
for n in ("uvicorn", "fastapi", "starlette", "pydantic", "httpx", "uvloop", "httptools"):
    m[n] = pkg("$root/.venv", n)
m["litellm"] = pkg("$LITELLM_VENV", "litellm") if os.path.exists("$LITELLM_VENV") else None
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF

if has chat; then
  log "chat: levels=$LEVELS rounds=$ROUNDS seconds=$SECONDS_PER_RUN targets=${#targets[@]}"
  args=(); for t in "${targets[@]}"; do args+=(--target "$t"); done
  "$PY" "$SHARED_BENCH/load.py" chat "${args[@]}" --concurrency "$LEVELS" --rounds "$ROUNDS" \
    --seconds "$SECONDS_PER_RUN" --warmup-seconds "$WARMUP" --requests 200000 --out "$OUT/chat.json" \
    > "$OUT/chat.out" 2>&1 || log "load.py chat failed"
  grep '^|' "$OUT/chat.out" >&2 || tail -5 "$OUT/chat.out" >&2
fi

if has streams; then
  log "streams: $STREAMS x ($STREAM_CHUNKS events, ${STREAM_DELAY_MS} ms apart), ramp ${RAMP}s"
  stream_run "$OUT/stream.json" "$STREAMS" "$RAMP" "$STREAM_SECONDS" "${targets[@]}"
fi

# The multi-worker gateways go: the one-worker phases get the machine to themselves.
[[ -n "${SOCLE_MAIN:-}" ]] && stop "$SOCLE_MAIN"
[[ -n "${BEFORE_MAIN:-}" ]] && stop "$BEFORE_MAIN"
[[ -n "${LITELLM_PID:-}" ]] && stop "$LITELLM_PID"

if has profile || has streams1; then
  MOCK_PORT_B=$(free_port)
  start_mock "$MOCK_PORT_B" "$STREAM1_CHUNKS" "$STREAM1_DELAY_MS" "$OUT/mock-1worker.log"
  MOCK_B=$MOCK_PID
  SOCLE1_PORT=$(free_port)
  start_socle socle-1worker "$SOCLE1_PORT" "$MOCK_PORT_B" 1 "${AFTER:-}"
  socle1="socle=http://127.0.0.1:$SOCLE1_PORT,key=$SOCLE_KEY,model=mock-model,pid=$SOCLE_PID"
  SOCLE1_PID=$SOCLE_PID
  if [[ -n "${BEFORE:-}" ]] && has streams1; then
    BEFORE1_PORT=$(free_port)
    start_socle before-1worker "$BEFORE1_PORT" "$MOCK_PORT_B" 1 "$BEFORE"
    before1="before=http://127.0.0.1:$BEFORE1_PORT,key=$SOCLE_KEY,model=mock-model,pid=$SOCLE_PID"
  fi
  SOCLE_PID=$SOCLE1_PID
fi

if has profile; then
  if [[ -x "$PYSPY" ]]; then
    log "profile: one worker (pid $SOCLE_PID), chat c=32, py-spy ${PROFILE_SECONDS}s"
    "$PY" "$SHARED_BENCH/load.py" chat --target "$socle1" --concurrency 32 --rounds 1 --warmup-seconds 1 \
      --seconds $(( PROFILE_SECONDS * 2 + 15 )) --requests 10000000 --out "$OUT/profile-load.json" \
      > "$OUT/profile-load.out" 2>&1 &
    load_pid=$!
    sleep 3
    before="$("$PY" "$here/gateway_tools.py" threads "$SOCLE_PID")"
    "$PYSPY" record --pid "$SOCLE_PID" --duration "$PROFILE_SECONDS" --rate "$PYSPY_RATE" $PYSPY_ARGS --format raw \
      -o "$OUT/profile.raw.txt" > "$OUT/py-spy.log" 2>&1 || log "py-spy (raw) failed, see py-spy.log"
    echo "{\"before\": $before, \"after\": $("$PY" "$here/gateway_tools.py" threads "$SOCLE_PID")}" > "$OUT/profile-threads.json"
    "$PYSPY" record --pid "$SOCLE_PID" --duration $(( PROFILE_SECONDS / 2 )) --rate "$PYSPY_RATE" $PYSPY_ARGS \
      -o "$OUT/profile.svg" >> "$OUT/py-spy.log" 2>&1 || log "py-spy (svg) failed, see py-spy.log"
    # --native (pauses the process at each sample): C frames, so the cyclic GC shows as gc_collect_main.
    "$PYSPY" record --pid "$SOCLE_PID" --duration $(( PROFILE_SECONDS / 2 )) --rate 100 --native --format raw \
      -o "$OUT/profile-native.raw.txt" >> "$OUT/py-spy.log" 2>&1 || log "py-spy (native) failed, see py-spy.log"
    wait "$load_pid" || true
    grep '^|' "$OUT/profile-load.out" >&2 || true
    [[ -s "$OUT/profile.raw.txt" ]] && "$PY" "$here/gateway_tools.py" profile "$OUT/profile.raw.txt" --top 20 --load "$OUT/profile-load.json" \
      --threads "$OUT/profile-threads.json" \
      > "$OUT/profile.txt" && cat "$OUT/profile.txt" >&2
    [[ -s "$OUT/profile-native.raw.txt" ]] && "$PY" "$here/gateway_tools.py" profile "$OUT/profile-native.raw.txt" \
      --top 20 > "$OUT/profile-native.txt"
  else
    log "profile skipped: no py-spy at $PYSPY"
  fi
fi

if has streams1; then
  log "streams1: $STREAMS_1W x ($STREAM1_CHUNKS events, ${STREAM1_DELAY_MS} ms apart), ramp ${RAMP_1W}s, one socle worker"
  s1_targets=("direct=http://127.0.0.1:$MOCK_PORT_B,pid=$MOCK_B" "$socle1" ${before1:+"$before1"})
  if [[ -n "${PROFILE_STREAMS:-}" && -x "$PYSPY" ]]; then  # socle only, profiled from mid-ramp on
    s1_targets=("$socle1")
    ( sleep $(( RAMP_1W / 2 ))
      before="$("$PY" "$here/gateway_tools.py" threads "$SOCLE_PID")"
      "$PYSPY" record --pid "$SOCLE_PID" --duration "$PROFILE_SECONDS" --rate "$PYSPY_RATE" $PYSPY_ARGS --format raw \
        -o "$OUT/profile-streams.raw.txt" > "$OUT/py-spy-streams.log" 2>&1
      echo "{\"before\": $before, \"after\": $("$PY" "$here/gateway_tools.py" threads "$SOCLE_PID")}" \
        > "$OUT/profile-streams-threads.json" ) &
    prof_pid=$!
  fi
  stream_run "$OUT/stream-1worker.json" "$STREAMS_1W" "$RAMP_1W" "$STREAM1_SECONDS" "${s1_targets[@]}"
  if [[ -n "${prof_pid:-}" ]]; then
    wait "$prof_pid" || true
    "$PY" "$here/gateway_tools.py" profile "$OUT/profile-streams.raw.txt" --top 20 \
      --threads "$OUT/profile-streams-threads.json" > "$OUT/profile-streams.txt"
  fi
fi

"$PY" "$here/gateway_tools.py" report "$OUT" > "$OUT/summary.md"
log "done: $OUT/summary.md"
cat "$OUT/summary.md"
