#!/bin/sh
# `airflow` as the platform runs it: the generated secrets (written by the compose
# `setup` service into the airflow-secrets volume) become Airflow's settings, then
# the real airflow runs. First on PATH, so the entrypoint and a plain
# `docker compose exec airflow-api-server airflow ...` both use the real database.
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
PATH="${PATH#/opt/mlhub/bin:}"
exec airflow "$@"
