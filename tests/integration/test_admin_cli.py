"""`mlhub-admin` against a running hub (the core stack), as an admin runs it:
`docker compose exec hub mlhub-admin ...`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def cli(platform, *args: str, ok: bool = True):
    r = platform.stack.compose("exec", "-T", "hub", "mlhub-admin", *args, check=False)
    if ok:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def user_row(platform, name: str) -> list[str]:
    out = cli(platform, "users").stdout
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:3] == ["USER", "ADMIN", "GROUPS"], out
    return next(r for r in rows if r[0] == name)


def test_add_promote_demote_and_list(platform):
    out = cli(platform, "add", "dora", "ed").stdout
    assert "added dora" in out and "added ed" in out
    assert user_row(platform, "dora")[1] == "no"
    assert "dora is now an admin" in cli(platform, "promote", "dora").stdout
    assert user_row(platform, "dora")[1] == "yes"
    assert "dora is no longer an admin" in cli(platform, "demote", "dora").stdout
    assert user_row(platform, "dora")[1] == "no"
    r = platform.hub.api(platform.admin_token, "GET", "/users/dora")
    assert r.json()["admin"] is False


def test_groups_and_quotas(platform):
    assert "added dora, ed to group ml-team" in cli(platform, "group-add", "ml-team", "dora", "ed").stdout
    out = cli(platform, "quota", "ml-team", "--gpus", "2", "--memory", "16G").stdout
    assert "gpu_quota=2" in out and "mem_quota=16G" in out
    groups = cli(platform, "groups").stdout
    assert "ml-team: dora, ed [gpu_quota=2, mem_quota=16G]" in groups, groups
    assert user_row(platform, "ed")[2] == "ml-team"
    props = platform.hub.api(platform.admin_token, "GET", "/groups/ml-team").json()["properties"]
    assert props == {"gpu_quota": 2, "mem_quota": "16G"}
    assert "removed ed from group ml-team" in cli(platform, "group-remove", "ml-team", "ed").stdout
    assert user_row(platform, "ed")[2] == "-"


def test_stop_a_users_server(platform):
    token = platform.user("ed")
    platform.hub.start_server(token, "ed")
    assert "(default): ready" in " ".join(user_row(platform, "ed"))
    assert "stopped ed" in cli(platform, "stop", "ed").stdout
    assert platform.hub.server_model(token, "ed") is None
    assert platform.stack.container(f"{platform.stack.project}-nb-ed") is None


def test_remove_keeps_the_home_unless_purged(platform):
    stack = platform.stack
    for name in ("ed", "dora"):
        token = platform.user(name)
        platform.hub.start_server(token, name)  # leave them running: remove stops them
    out = cli(platform, "remove", "ed").stdout
    assert f"removed ed; kept their home volume {stack.project}-home-ed" in out, out
    assert f"{stack.project}-home-ed" in stack.home_volumes()
    assert stack.container(f"{stack.project}-nb-ed") is None
    out = cli(platform, "remove", "dora", "--purge").stdout
    assert f"deleted their home volume {stack.project}-home-dora" in out, out
    assert f"{stack.project}-home-dora" not in stack.home_volumes()
    r = platform.hub.api(platform.admin_token, "GET", "/users/dora")
    assert r.status_code == 404


def test_errors_are_reported_not_raised(platform):
    r = cli(platform, "promote", "nobody-here", ok=False)
    assert r.returncode == 1
    assert "HTTP 404" in r.stderr and "Traceback" not in r.stderr
    r = cli(platform, "--token", "wrong", "users", ok=False)
    assert r.returncode == 1 and "HTTP 403" in r.stderr
