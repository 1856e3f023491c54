#!/usr/bin/env bash
# Starts a Docker daemon for the deployment tests when none answers: no bridge and no iptables rules (every
# build and container uses the host's network, loopback only here), its log in $DOCKERD_LOG.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
log=${DOCKERD_LOG:-/tmp/dockerd.log}
nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$log" 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not start; see $log" >&2
tail -20 "$log" >&2
exit 1
