#!/bin/sh
# Entrypoint of the platform's Airflow image. `airflow` on PATH is the shim
# (/opt/mlhub/bin/airflow) that loads the generated secrets.
#   api-server | scheduler | dag-processor | triggerer | <any airflow sub-command>
#   init: migrate the database and install the example DAGs (never overwriting a
#         user's copy; writable by the notebooks, which share the DAGs folder)
set -eu
if [ "${1:-}" = "init" ]; then
  airflow db migrate
  dags="${AIRFLOW__CORE__DAGS_FOLDER:-/opt/airflow/dags}"
  mkdir -p "$dags"
  for f in /opt/mlhub/example_dags/*.py; do
    [ -e "$f" ] || continue
    target="$dags/$(basename "$f")"
    [ -e "$target" ] && continue
    cp "$f" "$target" && chmod 0666 "$target"
  done
  echo "mlhub-airflow: database migrated, example DAGs in place"
  exit 0
fi
exec /entrypoint "$@"
