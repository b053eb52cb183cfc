#!/usr/bin/env bash
# podman.sh: make sure Podman is installed and holds the base image, for tests/test_podman.py.
#
# Idempotent and offline after the install:
#   1. If `podman` is missing, installs Debian's package (apt-get update + install podman).
#   2. If Podman has no python:3.11-slim, copies it from the Docker engine (docker save | podman
#      load): nothing is pulled, so it works where only the package registries are reachable.
# The test starts its own `podman system service` on a socket of its own and stops it afterwards.
# Where the sandbox refuses to raise rlimits (podman run: "error setting rlimit type 7: operation
# not permitted"), the test runs that service with a containers.conf of its own that sets
# `default_ulimits = []`, so containers keep the service's limits.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
say() { printf 'podman: %s\n' "$*" >&2; }

if ! command -v podman >/dev/null 2>&1; then
  [[ $EUID -eq 0 ]] || { say "ERROR: podman is missing and installing it needs root"; exit 1; }
  say "installing Debian's podman"
  t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q podman >/dev/null  # with its recommends: netavark, the network stack tested here
  say "installed in $((SECONDS - t0)) s"
fi
say "$(podman --version)"

if ! podman image exists python:3.11-slim; then
  say "loading python:3.11-slim from the Docker engine"
  docker save python:3.11-slim | podman load >/dev/null
fi
say "python:3.11-slim is in Podman's storage"
