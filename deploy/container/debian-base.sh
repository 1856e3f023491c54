#!/usr/bin/env bash
# Makes the image `socle-base:bookworm` from Debian's own packages (debootstrap), for machines that reach a
# Debian mirror but no container registry. Debian bookworm's python3 is 3.11, like python:3.11-slim-bookworm.
# The root filesystem's tarball is kept in $SOCLE_DEPLOY_CACHE (default ~/.cache/socle-deploy): made once.
set -euo pipefail
tag=${1:-socle-base:bookworm}
cache=${SOCLE_DEPLOY_CACHE:-$HOME/.cache/socle-deploy}
tarball=$cache/debian-bookworm-python3.tar
docker image inspect "$tag" >/dev/null 2>&1 && exit 0
if [ ! -s "$tarball" ]; then
  # The mirror this machine's apt uses (deb822 sources first, then the one-line format).
  mirror=${DEBIAN_MIRROR:-$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
    | grep -v security | head -1)}
  mirror=${mirror:-$(grep -hs '^deb ' /etc/apt/sources.list | awk '$3=="bookworm"{print $2}' | head -1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,libgomp1 bookworm "$root" "$mirror"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  mkdir -p "$cache"
  tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
fi
docker import --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
