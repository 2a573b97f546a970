#!/bin/sh
# Entrypoint of the platform's Airflow image: reads the generated secrets (the
# compose `setup` service writes them into the airflow-secrets volume) into
# Airflow's settings, then runs the airflow command given:
#   api-server | scheduler | dag-processor | triggerer | init | <any airflow sub-command>
# `init` migrates the database and installs the example DAGs (never overwriting
# a user's edits).
set -eu
d="${MLHUB_AIRFLOW_SECRETS_DIR:-/srv/airflow-secrets}"
secret() {
  [ -r "$d/$1" ] || { echo "mlhub-airflow: cannot read secret $d/$1 (did the setup service run?)" >&2; exit 1; }
  cat "$d/$1"
}
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:$(secret airflow_db_password)@${MLHUB_AIRFLOW_DB_HOST:-airflow-postgres}:5432/airflow"
export AIRFLOW__CORE__FERNET_KEY="$(secret airflow_fernet_key)"
export AIRFLOW__API_AUTH__JWT_SECRET="$(secret airflow_jwt_secret)"
export AIRFLOW__API__SECRET_KEY="$(secret airflow_secret_key)"
# DAG tasks reach hub services (e.g. the models service) with Airflow's own hub token.
export JUPYTERHUB_API_TOKEN="$(secret airflow_api_token)"

if [ "${1:-}" = "init" ]; then
  airflow db migrate
  mkdir -p "${AIRFLOW__CORE__DAGS_FOLDER:-/opt/airflow/dags}"
  for f in /opt/mlhub/example_dags/*.py; do
    [ -e "$f" ] || continue
    cp -n "$f" "${AIRFLOW__CORE__DAGS_FOLDER:-/opt/airflow/dags}/" 2>/dev/null || true
  done
  echo "mlhub-airflow: database migrated, example DAGs in place"
  exit 0
fi
exec /entrypoint "$@"
