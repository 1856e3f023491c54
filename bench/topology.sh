#!/usr/bin/env bash
# The production topology on this machine (PostgreSQL with pgvector, Redis, `socle db upgrade`, two API
# replicas, one `socle worker`, Debian's nginx with deploy/nginx/socle.conf's directives) and its failure
# behaviour under load: kill -9 of a replica, rolling restart, 1 vs 2 replicas. See bench/topology.py.
#
#   bash bench/topology.sh                         # ~5 min; results in bench/results/topology-<date>/
#   SCENARIOS="kill" bash bench/topology.sh        # one scenario (kill, rolling, scale)
#   NEXT_UPSTREAM="error timeout non_idempotent" bash bench/topology.sh   # try another proxy_next_upstream
#
# Knobs (env): SHARED_BENCH (default ../shared/bench: mock_backend.py, load.py), WORKERS (per replica, 2),
# CHAT_RATE (300 non-streaming calls/s), CHAT_USERS (32), STREAM_USERS (16 back-to-back streams),
# STREAM_CHUNKS (20), STREAM_DELAY_MS (50), KILL_SECONDS, KILL_AT, RESTART_AFTER, ROLLING_SECONDS,
# ROLLING_PAUSE, LEVELS (32,128), ROUNDS (3), SCALE_SECONDS (5), NGINX_WORKERS (auto),
# UPSTREAM_KEEPALIVE_TIMEOUT, SOCLE_BIN, OUT. Needs: Debian's nginx, Redis on 127.0.0.1:6379 (redis-cli), the
# virtualenv (`make install-test`: pgserver).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v nginx >/dev/null || { echo "nginx is missing: apt-get install -y nginx" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli is missing: apt-get install -y redis-tools" >&2; exit 2; }
[[ -x "$root/.venv/bin/socle" ]] || { echo "no $root/.venv: make install-test" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
exec "$root/.venv/bin/python" "$root/bench/topology.py" run "$@"
