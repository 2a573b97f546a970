#!/usr/bin/env bash
# STAND-IN entrypoint for the official postgres image's contract (see the Dockerfile
# beside this file). Not the official script: written for this project.
#   docker run -e POSTGRES_PASSWORD=... IMAGE               -> initdb once, then postgres
#   docker run IMAGE postgres -c shared_buffers=256MB       -> extra server flags
#   docker run IMAGE -c shared_buffers=256MB                -> same
#   docker run IMAGE bash                                    -> anything else is exec'd
set -Eeuo pipefail

# VAR or VAR_FILE (for secrets), never both.
file_env() {
  local var="$1" def="${2:-}" fvar="${1}_FILE" val
  if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
    echo "error: both $var and $fvar are set (but are exclusive)" >&2
    exit 1
  fi
  val="$def"
  if [ -n "${!var:-}" ]; then
    val="${!var}"
  elif [ -n "${!fvar:-}" ]; then
    val="$(< "${!fvar}")"
  fi
  export "$var"="$val"
  unset "$fvar"
}

log() { printf '%s [stand-in entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*"; }

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
  exec "$@"
fi

# Secrets from *_FILE are read here, before dropping privileges (as the official image
# does), so a secret file that only root can read works.
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS

# As root: make the data and socket directories the postgres user's, then drop to it.
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
    cat >&2 <<'MSG'
error: the database is uninitialized and no superuser password is set.
       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value,
       or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one.
MSG
    exit 1
  fi
  chmod 0700 "$PGDATA" 2>/dev/null || true
  log "initializing a new database cluster in $PGDATA (PostgreSQL $(postgres --version | awk '{print $3}'))"
  pwargs=()
  if [ -n "$POSTGRES_PASSWORD" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    pwargs=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of flags, as upstream
  initdb --username="$POSTGRES_USER" "${pwargs[@]}" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS >/dev/null
  [ -n "${pwfile:-}" ] && rm -f "$pwfile"
  {
    echo
    echo "# stand-in: password auth from anywhere on the network"
    echo "host all all all $auth"
  } >> "$PGDATA/pg_hba.conf"
  {
    echo
    echo "# stand-in: listen on every interface, as the official image does"
    echo "listen_addresses = '*'"
  } >> "$PGDATA/postgresql.conf"

  # A temporary server on the unix socket only, for the database and init scripts.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql_run=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)
  if [ "$POSTGRES_DB" != postgres ]; then
    exists="$("${psql_run[@]}" --dbname postgres -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [ -z "$exists" ]; then
      "${psql_run[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
      log "created database $POSTGRES_DB"
    fi
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
      *.sql) log "running $f"; "${psql_run[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_run[@]}" --dbname "$POSTGRES_DB" ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "init process complete; ready for start up"
else
  log "PostgreSQL data directory $PGDATA already initialized; skipping initdb"
fi

unset POSTGRES_PASSWORD
exec "$@"
