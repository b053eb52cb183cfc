#!/usr/bin/env bash
# docker-engine.sh: make sure a Docker engine answers, installing and starting one if needed.
#
# For offline CI / sandboxes that have no running engine (no systemd to start one). A machine
# with a normal Docker engine does not need this. It is idempotent:
#   1. If `docker info` already answers (default socket, DOCKER_HOST, or the current context),
#      it prints which engine answered and exits.
#   2. Otherwise, if `dockerd` is missing, it runs `apt-get update` once and
#      `apt-get install -y docker.io` (Debian's engine, plus containerd, runc, iptables and
#      docker-proxy). /usr/local/bin/docker may already be a client-only binary, so we look for
#      `dockerd` specifically.
#   3. It starts `dockerd` in its own session (setsid), logging to $DEVTUI_DOCKERD_LOG
#      (default /var/log/devtui-dockerd.log), and polls `docker info` until it answers
#      (deadline $DEVTUI_DOCKERD_TIMEOUT seconds, default 60).
#
# dockerd flags: by default none. dockerd picks the storage driver itself (overlay2 when the
# backing filesystem supports it; its overlay2 probe does a real overlay mount) and sets up the
# docker0 bridge with iptables NAT, so `-p 127.0.0.1:PORT:CPORT` works. If that daemon does not
# come up, these fallbacks are tried in order:
#   --storage-driver=vfs                   (no overlayfs in the sandbox; slower, copies layers)
#   --storage-driver=vfs --iptables=false  (no netfilter; published ports on 127.0.0.1 still
#                                           work through the userland docker-proxy)
# `--bridge=none` is never used: with it, containers have no network and ports cannot be
# published. To force flags, set DEVTUI_DOCKERD_FLAGS (e.g. "--storage-driver=vfs").
set -euo pipefail

LOG=${DEVTUI_DOCKERD_LOG:-/var/log/devtui-dockerd.log}
DEADLINE=${DEVTUI_DOCKERD_TIMEOUT:-60}
POLL=0.5
DEFAULT_SOCK=unix:///var/run/docker.sock
PIDFILE=/var/run/docker.pid
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { printf 'docker-engine: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

endpoint() {
  if [[ -n ${DOCKER_HOST:-} ]]; then echo "$DOCKER_HOST"; return; fi
  local ctx
  ctx=$(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || true)
  echo "${ctx:-$DEFAULT_SOCK}"
}

report() { # $1: how we got here
  local ver driver
  ver=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
  driver=$(docker info --format '{{.Driver}}' 2>/dev/null || echo '?')
  echo "docker engine: Docker Engine $ver (storage driver $driver) answering at $(endpoint); $1"
}

if engine_answers; then
  report "already running"
  exit 0
fi

# From here on we must install and/or start a local daemon.
extra_host=()
if [[ -n ${DOCKER_HOST:-} && $DOCKER_HOST != "$DEFAULT_SOCK" ]]; then
  case $DOCKER_HOST in
    unix://*) extra_host=(-H "$DOCKER_HOST") ;;
    *) die "DOCKER_HOST=$DOCKER_HOST does not answer, and it is not a local socket this script can start a daemon on" ;;
  esac
fi
[[ $EUID -eq 0 ]] || die "no Docker engine answers and starting one needs root (re-run with sudo)"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  say "dockerd not found: installing Debian's docker.io (apt-get update + install)"
  t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q docker.io >/dev/null || die "apt-get install docker.io failed"
  command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd still not on PATH"
  say "installed docker.io in $((SECONDS - t0)) s"
fi

mkdir -p "$(dirname "$LOG")"

log_tail() { # last lines of the log, minus dockerd's grpc connection chatter
  say "last lines of $LOG:"
  tail -n 300 "$LOG" | grep -v 'module=grpc' | tail -n 25 >&2 || true
}

# Poll until the engine answers. $1: pid of the daemon we wait for. Returns 1 if it dies or the
# deadline passes.
wait_for_engine() {
  local pid=$1 end=$((SECONDS + DEADLINE))
  while ((SECONDS < end)); do
    engine_answers && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep "$POLL"
  done
  return 1
}

# A dockerd may already be starting (e.g. a parallel run of this script): wait for it instead
# of starting a second one, which would fail on the pid file anyway.
if [[ -s $PIDFILE ]] && pid=$(<"$PIDFILE") && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
  say "dockerd (pid $pid) is running but not answering yet; waiting up to ${DEADLINE}s"
  wait_for_engine "$pid" || { log_tail; die "existing dockerd (pid $pid) did not answer"; }
  report "already running (waited for pid $pid)"
  exit 0
fi

if [[ -n ${DEVTUI_DOCKERD_FLAGS:-} ]]; then
  attempts=("$DEVTUI_DOCKERD_FLAGS")
else
  attempts=("" "--storage-driver=vfs" "--storage-driver=vfs --iptables=false")
fi

t0=$SECONDS
for flags in "${attempts[@]}"; do
  # shellcheck disable=SC2206  # flags are deliberately word-split
  args=(${flags} "${extra_host[@]}")
  printf '\n=== %s devtui docker-engine.sh: starting dockerd %s\n' "$(date -Is)" "${args[*]}" >>"$LOG"
  say "starting dockerd ${args[*]:-(default flags)} (log: $LOG)"
  # setsid: own session, so the daemon outlives this script and its caller's process group.
  setsid dockerd "${args[@]}" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  if wait_for_engine "$pid"; then
    report "started by docker-engine.sh in $((SECONDS - t0)) s (pid $pid, flags: ${args[*]:-none})"
    exit 0
  fi
  say "dockerd ${args[*]:-(default flags)} did not come up"
  log_tail
  if kill -0 "$pid" 2>/dev/null; then # ours and hung: stop it before the next attempt
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
die "no dockerd configuration came up; see $LOG"
