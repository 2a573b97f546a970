#!/usr/bin/env bash
# Build the base images locally, for hosts that reach no container registry
# (air-gapped sites, and this project's CI). Idempotent: existing images are kept
# unless MLHUB_REBUILD_BASES=1.
#
#   mlhub-local/debian:bookworm             debootstrap'd Debian 12 (stands in for debian:bookworm-slim)
#   mlhub-local/tensorflow-notebook:cpu     stands in for quay.io/jupyter/tensorflow-notebook:
#                                           same layout (user jovyan 1000:100, Python env on PATH,
#                                           JupyterLab, TensorFlow) but CPU-only TensorFlow.
#
# Use them with:  docker compose -f docker-compose.yml -f images/local-base/compose.yml ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf '[local-base %(%H:%M:%S)T] %s\n' -1 "$*"; }
have() { [ "${MLHUB_REBUILD_BASES:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

if ! have mlhub-local/debian:bookworm; then
  command -v debootstrap >/dev/null || { echo "debootstrap is required: apt-get install debootstrap" >&2; exit 1; }
  dir=$(mktemp -d /tmp/mlhub-debootstrap.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap bookworm (about 30 s)"
  debootstrap --variant=minbase bookworm "$dir" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  tar -C "$dir" -c . | docker import - mlhub-local/debian:bookworm >/dev/null
  rm -rf "$dir"; trap - EXIT
fi
log "mlhub-local/debian:bookworm ready"

if ! have mlhub-local/tensorflow-notebook:cpu; then
  log "building mlhub-local/tensorflow-notebook:cpu (TensorFlow CPU, a few minutes)"
  docker build -q -t mlhub-local/tensorflow-notebook:cpu \
    -f "$here/tensorflow-notebook/Dockerfile" "$root" >/dev/null
fi
log "mlhub-local/tensorflow-notebook:cpu ready"

# Airflow (images/local-base/airflow/, on the TensorFlow stand-in): only for the
# stacks that run Airflow; skipped when MLHUB_LOCAL_BASES_AIRFLOW=0.
if [ "${MLHUB_LOCAL_BASES_AIRFLOW:-1}" = 1 ] && ! have mlhub-local/airflow:3.3.2; then
  log "building mlhub-local/airflow:3.3.2 (Apache Airflow stand-in)"
  docker build -q -t mlhub-local/airflow:3.3.2 \
    -f "$here/airflow/Dockerfile" "$root" >/dev/null
fi
[ "${MLHUB_LOCAL_BASES_AIRFLOW:-1}" = 1 ] && log "mlhub-local/airflow:3.3.2 ready"
true
