#!/usr/bin/env bash
# STAND-IN for the official Airflow image's /entrypoint (written for this project, not
# copied): the same behaviour that our compose file relies on.
#   IMAGE api-server | scheduler | dag-processor | triggerer | db migrate | ...
#                          -> waits for the metadata DB (`airflow db check`), then
#                             exec airflow "$@"
#   IMAGE airflow <cmd>    -> the same (a leading "airflow" is dropped)
#   IMAGE bash ... / IMAGE python ...  -> exec'd after the DB check
#   no arguments           -> `airflow` (its help), as the official image
# Honoured like the official one: CONNECTION_CHECK_MAX_COUNT (default 20, 0 = no DB
# check), CONNECTION_CHECK_SLEEP_TIME (default 3 s), _AIRFLOW_DB_MIGRATE=true,
# _AIRFLOW_WWW_USER_CREATE=true with _AIRFLOW_WWW_USER_USERNAME/_PASSWORD(_CMD) (FAB).
# Runs with any uid as long as the gid is 0 (files are group-0 writable).
set -euo pipefail

cmd="${1:-}"

if [ "$(id -g)" != 0 ]; then
  echo "WARNING: run this image with gid 0 (uid $(id -u), gid $(id -g))." >&2
fi
# New files and folders (logs on volumes) group-writable, as the official image.
umask 0002

# An arbitrary uid (OpenShift style) gets a passwd entry and the airflow home.
if ! whoami >/dev/null 2>&1; then
  if [ -w /etc/passwd ]; then
    echo "${USER_NAME:-default}:x:$(id -u):0:${USER_NAME:-default} user:${AIRFLOW_USER_HOME_DIR}:/sbin/nologin" >> /etc/passwd
  fi
  export HOME="${AIRFLOW_USER_HOME_DIR}"
fi

CONNECTION_CHECK_MAX_COUNT="${CONNECTION_CHECK_MAX_COUNT:-20}"
CONNECTION_CHECK_SLEEP_TIME="${CONNECTION_CHECK_SLEEP_TIME:-3}"

wait_for_db() {
  local left="$CONNECTION_CHECK_MAX_COUNT" out
  while :; do
    if out="$(airflow db check 2>&1)"; then
      return 0
    fi
    left=$((left - 1))
    if [ "$left" -le 0 ]; then
      echo "ERROR: the metadata database did not answer after ${CONNECTION_CHECK_MAX_COUNT} tries:" >&2
      echo "$out" >&2
      exit 1
    fi
    sleep "$CONNECTION_CHECK_SLEEP_TIME"
  done
}

# "airflow version", "airflow --help" and the like need no database.
case "$cmd" in
  ""|version|--help|-h|info|config|cheat-sheet) CONNECTION_CHECK_MAX_COUNT=0 ;;
esac
if [ "$cmd" = airflow ]; then
  case "${2:-}" in ""|version|--help|-h|info|config|cheat-sheet) CONNECTION_CHECK_MAX_COUNT=0 ;; esac
fi

if [ "$CONNECTION_CHECK_MAX_COUNT" -gt 0 ]; then
  wait_for_db
fi

if [ -n "${_AIRFLOW_DB_MIGRATE:-}" ] || [ -n "${_AIRFLOW_DB_UPGRADE:-}" ]; then
  airflow db migrate || true
fi

if [ -n "${_AIRFLOW_WWW_USER_CREATE:-}" ]; then
  password=""
  if [ -n "${_AIRFLOW_WWW_USER_PASSWORD_CMD:-}" ]; then
    password="$(eval "$_AIRFLOW_WWW_USER_PASSWORD_CMD")"
  elif [ -n "${_AIRFLOW_WWW_USER_PASSWORD:-}" ]; then
    password="$_AIRFLOW_WWW_USER_PASSWORD"
  fi
  unset _AIRFLOW_WWW_USER_PASSWORD _AIRFLOW_WWW_USER_PASSWORD_CMD
  if [ -z "$password" ]; then
    echo "ERROR: set _AIRFLOW_WWW_USER_PASSWORD or _AIRFLOW_WWW_USER_PASSWORD_CMD" >&2
    exit 1
  fi
  airflow users create \
    --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
    --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" \
    --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
    --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" \
    --role "${_AIRFLOW_WWW_USER_ROLE:-Admin}" \
    --password "$password" || true
fi

case "$cmd" in
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) shift ;;
esac

exec airflow "$@"
