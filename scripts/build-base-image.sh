#!/usr/bin/env bash
# build-base-image.sh: make sure the base image python:3.11-slim exists, building an equivalent
# offline if no registry can be reached.
#
# For offline CI / sandboxes. A machine that can pull from Docker Hub does not need this. It is
# idempotent and cached: if the image already exists, it prints one line and does nothing.
# Otherwise:
#   1. If the registry answers within a few seconds (TCP probe), it pulls the real image.
#   2. Otherwise it builds one from Debian packages:
#        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm
#      using the Debian mirror apt is configured with (DEVTUI_DEBIAN_MIRROR overrides), then
#        tar -C rootfs -c . | docker import --change ... - python:3.11-slim
#      Bookworm's python3 is 3.11, so the result matches the official tag's Python minor version
#      (it lives in /usr/bin, not /usr/local/bin like the official image, and /usr/local/bin/python
#      and python3 symlinks are added so `python` and `python3` both work). It is labelled
#      devtui.base=offline-debootstrap. Takes about a minute on 2 cores; the rootfs is deleted
#      afterwards.
#   3. After a fresh build it checks the image (also run on demand with --verify):
#      pip installs a wheel from a local wheelhouse with --no-index in a test image built
#      FROM it, and a container publishing `python3 -m http.server` on 127.0.0.1 answers curl
#      from the host. Test images and containers are removed afterwards.
#
# PEP 668: Debian's python3 ships /usr/lib/python3.11/EXTERNALLY-MANAGED, so a plain
# `pip install ...` in the image fails with "error: externally-managed-environment" unless you
# pass --break-system-packages. The official python:3.11-slim has no such marker, and Dockerfiles
# written for it just run `pip install`. So this script deletes the marker from the rootfs: plain
# `pip install --no-index --find-links /wheels pkg` then works as root and installs into
# /usr/local/lib/python3.11/dist-packages (Debian's pip keeps /usr/lib/python3/dist-packages for
# apt). Passing --break-system-packages stays harmless on both images (pip >= 23.0.1).
# A venv (`python -m venv /opt/venv`; python3-venv is included) also works.
set -euo pipefail

IMAGE=${DEVTUI_BASE_IMAGE:-python:3.11-slim}
SUITE=${DEVTUI_BASE_SUITE:-bookworm}
PACKAGES=python3,python3-venv,python3-pip
LABEL_KEY=devtui.base
LABEL_VALUE=offline-debootstrap
WORK_PARENT=${DEVTUI_BASE_WORKDIR:-/var/tmp} # not /tmp: may be tmpfs/nodev/noexec
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

VERIFY=0
case ${1:-} in
  --verify) VERIFY=1 ;;
  "") ;;
  *) echo "usage: $0 [--verify]" >&2; exit 2 ;;
esac

say() { printf 'build-base-image: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

T0=$SECONDS
CLEANUP=()
cleanup() {
  local i
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" || true; done
}
trap cleanup EXIT

timeout 10 docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/docker-engine.sh first"

# ---------------------------------------------------------------------------------------------
# Verification: pip from a local wheelhouse, and a published port reachable from the host.

# Put one pure-python wheel in $1 and print the module name to import. Prefers `six` from the
# index pip is configured with; with no index at all it writes a tiny wheel by hand (stdlib only).
fetch_wheel() {
  local dir=$1 pip
  for pip in "python3 -m pip" pip; do
    command -v "${pip%% *}" >/dev/null 2>&1 || continue
    # shellcheck disable=SC2086  # "python3 -m pip" is meant to split
    if timeout 60 $pip download -q --no-deps six -d "$dir" >/dev/null 2>&1 &&
      compgen -G "$dir/six-*.whl" >/dev/null; then
      echo six; return 0
    fi
  done
  command -v python3 >/dev/null 2>&1 || return 1
  python3 - "$dir" <<'EOF'
import base64, hashlib, sys, zipfile
name, ver = "devtui_probe", "0.0.0"
di = f"{name}-{ver}.dist-info"
files = {
    f"{name}.py": "VALUE = 42\n",
    f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n",
    f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: devtui\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def rec(data):
    d = base64.urlsafe_b64encode(hashlib.sha256(data.encode()).digest()).rstrip(b"=").decode()
    return f"sha256={d},{len(data.encode())}"
record = "".join(f"{p},{rec(c)}\n" for p, c in files.items()) + f"{di}/RECORD,,\n"
with zipfile.ZipFile(f"{sys.argv[1]}/{name}-{ver}-py3-none-any.whl", "w") as z:
    for p, c in {**files, f"{di}/RECORD": record}.items():
        z.writestr(p, c)
EOF
  echo devtui_probe
}

verify() {
  local t=$SECONDS work tag="devtui-base-verify:$$" mod cid hostport ok=0 body
  work=$(mktemp -d "$WORK_PARENT/devtui-base-verify.XXXXXX")
  CLEANUP+=("rm -rf '$work'")
  mkdir "$work/wheels"

  # 1. pip install --no-index from a local wheelhouse, in an image built FROM the base.
  if mod=$(fetch_wheel "$work/wheels"); then
    cat >"$work/Dockerfile" <<EOF
FROM $IMAGE
COPY wheels /wheels
RUN pip install --no-index --find-links /wheels $mod \\
 && python -c 'import $mod; print("imported", $mod.__name__, "from", $mod.__file__)'
EOF
    CLEANUP+=("docker rmi -f '$tag' >/dev/null 2>&1")
    DOCKER_BUILDKIT=0 docker build -q --label devtui.verify=1 -t "$tag" "$work" >"$work/build.log" 2>&1 \
      || { cat "$work/build.log" >&2; die "verify: pip install from a local wheelhouse failed in $IMAGE"; }
    docker run --rm "$tag" python -c "import $mod" || die "verify: 'import $mod' failed in the test image"
    say "verify: pip install --no-index --find-links <wheelhouse> $mod works in $IMAGE"
  else
    say "verify: WARNING: no python3/pip on the host to get a wheel; skipped the pip check"
  fi

  # 2. A published port on 127.0.0.1 answers from the host (Docker picks a free host port).
  cid=$(docker run -d --label devtui.verify=1 -p 127.0.0.1::8000 "$IMAGE" python3 -m http.server 8000)
  CLEANUP+=("docker rm -f '$cid' >/dev/null 2>&1")
  hostport=$(docker port "$cid" 8000/tcp | grep -m1 '^127\.0\.0\.1:') || die "verify: no 127.0.0.1 port published"
  for _ in $(seq 1 80); do # up to ~20 s
    if body=$(curl -fsS -m 2 "http://$hostport/" 2>/dev/null) && [[ $body == *"Directory listing"* ]]; then
      ok=1; break
    fi
    sleep 0.25
  done
  ((ok)) || { docker logs "$cid" >&2 || true; die "verify: http.server in $IMAGE did not answer on $hostport"; }
  say "verify: container port 8000 published on $hostport answers curl from the host"
  say "verify: done in $((SECONDS - t)) s"
}

# ---------------------------------------------------------------------------------------------

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  origin=$(docker image inspect -f "{{index .Config.Labels \"$LABEL_KEY\"}}" "$IMAGE" 2>/dev/null || true)
  echo "base image: $IMAGE present (${origin:-registry image}); nothing to build"
  ((VERIFY)) && verify
  exit 0
fi

# Pull only if the registry is reachable at all: a blocked registry fails DNS or hangs on
# connect, and we do not want to wait for that.
if timeout 4 bash -c '</dev/tcp/registry-1.docker.io/443' 2>/dev/null; then
  say "registry reachable: pulling $IMAGE"
  if timeout 600 docker pull -q "$IMAGE" >/dev/null; then
    echo "base image: pulled $IMAGE from the registry in $((SECONDS - T0)) s"
    ((VERIFY)) && verify
    exit 0
  fi
  say "pull failed; building offline instead"
fi

# Debian mirror: the one apt uses for $SUITE (one-line .list or deb822 .sources files).
debian_mirror() {
  local f
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -r $f ]] || continue
      awk -v s="$SUITE" '$1 == "deb" {
          i = 2
          if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == s) print $i
        }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -r $f ]] || continue
      awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
        {
          uris = ""; suites = ""; types = ""
          for (j = 1; j <= NF; j++) {
            if ($j ~ /^Types:/) types = $j " "
            if ($j ~ /^URIs:/) { uris = $j; sub(/^URIs:[ \t]*/, "", uris) }
            if ($j ~ /^Suites:/) { suites = $j; sub(/^Suites:[ \t]*/, "", suites); suites = " " suites " " }
          }
          if (types ~ /[ \t]deb[ \t]/ && index(suites, " " s " ")) { split(uris, u, /[ \t]+/); print u[1] }
        }' "$f"
    done
  } | grep -m1 -E '^(https?|ftp|file)://' || true
}

MIRROR=${DEVTUI_DEBIAN_MIRROR:-$(debian_mirror)}
# No mirror named anywhere: debootstrap picks its own default.
# debootstrap downloads with wget; honour an apt proxy if one is configured.
if [[ -z ${http_proxy:-} ]]; then
  proxy=$(apt-config shell P Acquire::http::Proxy 2>/dev/null | sed -n "s/^P='\(.*\)'$/\1/p" || true)
  [[ -n $proxy && $proxy != DIRECT ]] && export http_proxy=$proxy
fi

[[ $EUID -eq 0 ]] || die "building the base image needs root (debootstrap); re-run with sudo"
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q debootstrap; } >/dev/null || die "cannot install debootstrap"
fi

say "building $IMAGE offline: debootstrap $SUITE from ${MIRROR:-the default mirror of debootstrap} (about a minute)"
ROOT=$(mktemp -d "$WORK_PARENT/devtui-base-rootfs.XXXXXX")
# Unmount anything debootstrap left mounted (it mounts proc/sys while configuring packages)
# before deleting, and never cross into another filesystem while deleting.
CLEANUP+=("grep -o ' $ROOT/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l; rm -rf --one-file-system '$ROOT'")
LOGF=$ROOT.log
CLEANUP+=("rm -f '$LOGF'")

t=$SECONDS
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" ${MIRROR:+"$MIRROR"} >"$LOGF" 2>&1; then
  tail -n 30 "$LOGF" >&2
  [[ -f $ROOT/debootstrap/debootstrap.log ]] && tail -n 30 "$ROOT/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi
T_DEBOOTSTRAP=$((SECONDS - t))

# Make it behave like the official image: `python`, plain `pip install` (see PEP 668 above),
# no apt caches, docs or translations (smaller layers; matters a lot with the vfs driver).
ln -sf /usr/bin/python3 "$ROOT/usr/local/bin/python"
ln -sf /usr/bin/python3 "$ROOT/usr/local/bin/python3"
[[ -e $ROOT/usr/bin/pip ]] || ln -sf pip3 "$ROOT/usr/bin/pip"
rm -f "$ROOT"/usr/lib/python3.*/EXTERNALLY-MANAGED
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
  "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log
find "$ROOT/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
: >"$ROOT/etc/resolv.conf" # Docker provides its own; do not bake in the host's
PYVER=$(chroot "$ROOT" /usr/bin/python3 -c 'import platform; print(platform.python_version())')
[[ $PYVER == 3.11.* ]] || say "WARNING: $SUITE has Python $PYVER, not 3.11, but tagging $IMAGE anyway"

t=$SECONDS
tar --numeric-owner -C "$ROOT" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$PYVER" \
    --change 'CMD ["python3"]' \
    --change "LABEL $LABEL_KEY=$LABEL_VALUE" \
    --change "LABEL devtui.base.suite=$SUITE" \
    --message "devtui offline base: debootstrap $SUITE + $PACKAGES" \
    - "$IMAGE" >/dev/null
T_IMPORT=$((SECONDS - t))
SIZE=$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1e6 }')
say "imported $IMAGE (Python $PYVER, $SIZE)"

verify

echo "base image: built $IMAGE offline (Python $PYVER, $SIZE) in $((SECONDS - T0)) s" \
  "(debootstrap ${T_DEBOOTSTRAP} s, import ${T_IMPORT} s, verify included)"
