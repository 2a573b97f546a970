"""Idle culling wiring: MLHUB_CULL_* -> the jupyterhub-idle-culler service and
its role, checked without a hub."""

from __future__ import annotations

import subprocess
import sys

import pytest
from jupyterhub.scopes import _check_scopes_exist
from traitlets.config import Config

from hub.culling import SERVICE_NAME
from hub.settings import SettingsError, load_settings
from hub.wiring import configure


def wired(env: dict[str, str]) -> Config:
    c = Config()
    configure(c, load_settings(env), read_secrets=False)
    return c


def culler(c: Config) -> dict | None:
    return next((s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME), None)


def test_culling_is_on_by_default_after_an_hour():
    service = culler(wired({}))
    assert service is not None
    assert service["command"][:3] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    assert "--timeout=3600" in service["command"]
    assert "--cull-every=300" in service["command"]
    assert "--max-age=0" in service["command"]
    # users are never deleted, named servers are stopped, not removed
    assert not any(a.startswith(("--cull-users", "--remove-named-servers")) for a in service["command"])
    assert "admin" not in service  # least privilege: a role, not admin


def test_culler_role_has_only_what_it_needs_and_the_scopes_exist():
    c = wired({})
    roles = [r for r in c.JupyterHub.load_roles if SERVICE_NAME in r.get("services", [])]
    assert len(roles) == 1
    scopes = roles[0]["scopes"]
    assert sorted(scopes) == ["delete:servers", "list:users", "read:servers", "read:users:activity"]
    _check_scopes_exist(scopes)  # raises on a scope JupyterHub does not know


def test_settings_reach_the_command():
    service = culler(wired({"MLHUB_CULL_IDLE_TIMEOUT": "7200", "MLHUB_CULL_EVERY": "60",
                            "MLHUB_CULL_MAX_AGE": "604800"}))
    assert {"--timeout=7200", "--cull-every=60", "--max-age=604800"} <= set(service["command"])


def test_zero_turns_culling_off():
    c = wired({"MLHUB_CULL_IDLE_TIMEOUT": "0"})
    assert culler(c) is None
    assert not any(SERVICE_NAME in r.get("services", []) for r in c.JupyterHub.load_roles)


def test_max_age_alone_culls_only_by_age():
    service = culler(wired({"MLHUB_CULL_IDLE_TIMEOUT": "0", "MLHUB_CULL_MAX_AGE": "86400"}))
    timeout = next(int(a.split("=")[1]) for a in service["command"] if a.startswith("--timeout="))
    assert timeout >= 365 * 24 * 3600
    assert "--max-age=86400" in service["command"]


def test_services_and_roles_of_the_other_services_are_kept():
    c = wired({})
    names = {s["name"] for s in c.JupyterHub.services}
    assert {"models", "airflow", SERVICE_NAME} <= names
    assert any(r["name"] == "user" for r in c.JupyterHub.load_roles)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"MLHUB_CULL_IDLE_TIMEOUT": "1h"}, "MLHUB_CULL_IDLE_TIMEOUT='1h': expected a whole number"),
        ({"MLHUB_CULL_IDLE_TIMEOUT": "-5"}, "MLHUB_CULL_IDLE_TIMEOUT='-5': expected a whole number from 0"),
        ({"MLHUB_CULL_EVERY": "0"}, "MLHUB_CULL_EVERY='0': expected a whole number from 1"),
        ({"MLHUB_CULL_MAX_AGE": "forever"}, "MLHUB_CULL_MAX_AGE='forever': expected a whole number"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError) as e:
        load_settings(env)
    assert any(p.startswith(message) for p in e.value.problems), e.value.problems


def test_the_culler_module_runs():
    # the command the hub runs exists where the hub's Python is
    r = subprocess.run([sys.executable, "-m", "jupyterhub_idle_culler", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--timeout" in r.stdout + r.stderr
