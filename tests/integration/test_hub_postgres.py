"""The hub keeping its state in Postgres (MLHUB_DB_URL) instead of SQLite, on a real
engine: a Postgres server in the stack (tests/compose.hub-postgres.yml; with local
base images the Postgres STAND-IN of images/local-base/postgres/, same contract as
the official image). Users, native accounts, tokens and running servers live in
Postgres and survive a hub restart and `docker compose down` + `up`; a wrong
MLHUB_DB_URL stops the hub with the setting named, not a traceback."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Platform, _bring_up, record
from tests.support.hubapi import sign_up_and_approve
from tests.support.stack import Stack

pytestmark = pytest.mark.docker

DB_PASSWORD = "hub-db-pw-for-tests-7c41"
USER = "pia"


@pytest.fixture(scope="module")
def pg_platform(request):
    files = ["tests/compose.hub-postgres.yml"]
    if os.environ.get("MLHUB_TEST_BASES", "local") == "local":
        files.insert(0, "tests/compose.hub-postgres.local.yml")
    env = {
        "MLHUB_DB_URL": f"postgresql://hub:{DB_PASSWORD}@hub-db:5432/hub",
        "TEST_HUB_DB_PASSWORD": DB_PASSWORD,
    }
    yield from _bring_up(request, Stack("pg", extra_env=env, files=files), "hub-on-postgres")


def psql(platform: Platform, sql: str) -> list[str]:
    r = platform.stack.compose("exec", "-T", "hub-db", "psql", "-U", "hub", "-d", "hub", "-tAc", sql)
    return [line for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pia(pg_platform):
    """A native account (sign-up + approval, stored by NativeAuthenticator in the hub
    database) with a running server and an API token."""
    sign_up_and_approve(pg_platform.hub, pg_platform.admin_password, USER, "Pia-Pw-Harbour-44")
    token = pg_platform.user(USER)
    seconds = pg_platform.hub.start_server(token, USER)
    record(f"hub-on-postgres: spawn-to-ready via REST: {seconds:.2f} s")
    return token


def test_hub_state_is_in_postgres_not_sqlite(pg_platform, pia):
    assert {"admin", USER} <= set(psql(pg_platform, "select name from users"))
    assert USER in psql(pg_platform, "select username from users_info where is_authorized")
    assert psql(pg_platform, "select count(*) from spawners where server_id is not null") == ["1"]
    r = pg_platform.stack.compose("exec", "-T", "hub", "ls", "/srv/jupyterhub/data")
    assert "jupyterhub.sqlite" not in r.stdout.split()


def test_hub_restart_keeps_users_tokens_and_servers(pg_platform, pia):
    stack, hub = pg_platform.stack, pg_platform.hub
    name = f"{stack.project}-nb-{USER}"
    before = stack.container(name)["State"]["StartedAt"]
    stack.compose("restart", "hub")
    stack.wait_healthy()
    assert stack.container(name)["State"]["StartedAt"] == before  # never restarted
    assert hub.server_model(pia, USER)["ready"]
    r = hub.server_api(pia, USER, "GET", "api/status")
    assert r.status_code == 200, r.text[:300]
    # the native password, stored in Postgres, still signs pia in
    hub.login_session(USER, "Pia-Pw-Harbour-44")


def test_down_and_up_keeps_the_database(pg_platform, pia):
    stack, hub = pg_platform.stack, pg_platform.hub
    hub.stop_server(pia, USER)
    stack.compose("down", "--timeout", "10")
    stack.up(build=False)
    assert USER in [u["name"] for u in hub.api(pg_platform.admin_token, "GET", "/users").json()]
    seconds = hub.start_server(pia, USER)  # the old token is still valid
    record(f"hub-on-postgres: restart of a server after down + up: {seconds:.2f} s")
    hub.login_session(USER, "Pia-Pw-Harbour-44")


def test_wrong_database_password_stops_the_hub_naming_the_setting(pg_platform):
    r = pg_platform.stack.compose(
        "run", "--rm", "--no-deps", "-T",
        "-e", "MLHUB_DB_URL=postgresql://hub:not-the-password@hub-db:5432/hub",
        "hub", check=False, timeout=180,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 2, out[-2000:]
    assert "MLHUB_DB_URL=postgresql+psycopg://hub:***@hub-db:5432/hub: cannot connect" in out, out[-2000:]
    assert "password authentication failed" in out
    assert "not-the-password" not in out and "Traceback" not in out
