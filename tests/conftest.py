"""Shared fixtures: the platform brought up with the real docker-compose.yml on a
real Docker engine. Tests that need the engine FAIL, never skip, without one."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest

from tests.support.hubapi import Hub
from tests.support.oidc import PATHS as OIDC_PATHS
from tests.support.oidc import OidcProvider
from tests.support.oidc import free_port as oidc_free_port
from tests.support.stack import ARTIFACTS, Stack, engine_problem

FIGURES: list[str] = []


def record(figure: str) -> None:
    """A measured figure printed at the end of the run (spawn times, build times)."""
    FIGURES.append(figure)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item.session.mlhub_failed = True


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured figures")
        for f in FIGURES:
            terminalreporter.write_line(f)


class Platform:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.hub = Hub(stack.url)
        self.admin_password = stack.hub_secret("admin_password")
        session = self.hub.login_session("admin", self.admin_password)
        self.admin_token = self.hub.token_from_session(session, "admin")
        self._tokens: dict[str, str] = {}

    def user(self, name: str) -> str:
        """Create ``name`` (if needed) and return an API token of theirs."""
        if name not in self._tokens:
            self.hub.create_user(self.admin_token, name)
            self._tokens[name] = self.hub.user_token(self.admin_token, name)
        return self._tokens[name]


def _bring_up(request, stack: Stack, label: str, make: Callable[[Stack], Platform] = Platform):
    problem = engine_problem()
    if problem:
        pytest.fail(f"these tests need a Docker engine and Compose v2: {problem}", pytrace=False)
    stack.destroy()  # leftovers of an interrupted run
    try:
        seconds = stack.up(build=True)
        record(f"{label}: stack build + up (images cached after first run): {seconds:.1f} s")
        yield make(stack)
    except BaseException:
        request.session.mlhub_failed = True
        raise
    finally:
        if getattr(request.session, "mlhub_failed", False):
            path = stack.dump("a test failed")
            print(f"\nlogs and inspect output of the stack: {path}", file=sys.stderr)
        if os.environ.get("MLHUB_TEST_KEEP") != "1":
            stack.destroy()


@pytest.fixture(scope="session")
def platform(request):
    """The platform with default settings (GPU inventory: auto; here none answers)."""
    yield from _bring_up(request, Stack(), "core")


# A stand-in inventory of 4 GPUs. The engine on CI has no GPU; .ci/provision.sh
# puts a stand-in nvidia-container-runtime-hook on dockerd's PATH, so containers
# that request GPUs start and the engine sets NVIDIA_VISIBLE_DEVICES to the ids
# requested. Tests on this stack check GPU ALLOCATION AND WIRING, not GPU compute.
GPU_STACK_ENV = {
    "MLHUB_GPUS": "0,1,2,3",
    "MLHUB_DEFAULT_GPU_QUOTA": "1",
    "MLHUB_NOTEBOOK_MEM_LIMIT": "1G",
    "MLHUB_DEFAULT_MEM_QUOTA": "2G",
    "MLHUB_NOTEBOOK_CPU_LIMIT": "0.5",
}


@pytest.fixture(scope="session")
def gpu_platform(request):
    yield from _bring_up(request, Stack("gpu", extra_env=GPU_STACK_ENV), "gpu")


# ----------------------------------------------------------------------------- OIDC
# The hub signs people in through a real OpenID Connect provider (tests/support/oidc.py,
# a Node process on this machine). The browser reaches it at 127.0.0.1; the hub, in its
# container, at host.docker.internal (tests/compose.oidc.yml maps that to the host).

OIDC_CLIENT_ID = "mlhub-tests"
OIDC_CLIENT_SECRET = "oidc-client-secret-for-tests-3f9a"
OIDC_ACCOUNTS = {
    "olivia": {"password": "Olivia-Pw-Heron-58", "email": "olivia@example.org",
               "groups": ["ml-team"], "name": "Olivia Example"},
    "adam": {"password": "Adam-Pw-Granite-21", "email": "adam@example.org",
             "groups": ["ml-team", "hub-admins"], "name": "Adam Example"},
    "mallory": {"password": "Mallory-Pw-Quartz-93", "email": "mallory@example.org",
                "groups": ["marketing"], "name": "Mallory Example"},
}


class OidcPlatform(Platform):
    """Platform for a hub signing in through OIDC: there is no native admin with a
    password, so the admin token is the one of the hub's admin service ``mlhub-admin``,
    read from the secrets volume. ``idp`` is the running OidcProvider."""

    def __init__(self, stack: Stack, idp: OidcProvider):
        self.stack = stack
        self.hub = Hub(stack.url)
        self.admin_password = None
        self.admin_token = stack.hub_secret("admin_api_token")
        self.idp = idp
        self._tokens: dict[str, str] = {}


def _oidc_env(idp_port: int) -> dict[str, str]:
    browser = f"http://127.0.0.1:{idp_port}"  # the provider's issuer, as the browser sees it
    hub_side = f"http://host.docker.internal:{idp_port}"  # as the hub container sees it
    return {
        "MLHUB_AUTHENTICATOR": "oidc",
        "MLHUB_OAUTH_CLIENT_ID": OIDC_CLIENT_ID,
        "MLHUB_OAUTH_CLIENT_SECRET": OIDC_CLIENT_SECRET,
        "MLHUB_OIDC_AUTHORIZE_URL": browser + OIDC_PATHS["authorize"],
        "MLHUB_OIDC_TOKEN_URL": hub_side + OIDC_PATHS["token"],
        "MLHUB_OIDC_USERINFO_URL": hub_side + OIDC_PATHS["userinfo"],
        "MLHUB_OIDC_SCOPES": "openid profile email groups",
        "MLHUB_ALLOWED_GROUPS": "ml-team",
        "MLHUB_ADMIN_GROUPS": "hub-admins",
        "MLHUB_ADMIN_USERS": "",  # admins only from the provider's groups
        "MLHUB_GPUS": "none",
    }


@pytest.fixture(scope="session")
def oidc_platform(request):
    """The platform with MLHUB_AUTHENTICATOR=oidc against a real OIDC provider.

    Provider accounts: olivia (ml-team), adam (ml-team, hub-admins), mallory (marketing);
    passwords in OIDC_ACCOUNTS. Allowed group ml-team, admin group hub-admins."""
    # The stack's settings name the provider's URLs and the provider's client names the
    # stack's callback, so the provider's port is chosen first, then the Stack (which
    # chooses its own port), then the provider is created and started, then the stack.
    while True:
        idp_port = oidc_free_port()
        stack = Stack("oidc", extra_env=_oidc_env(idp_port), files=["tests/compose.oidc.yml"])
        if stack.port != idp_port:
            break
    idp = OidcProvider(
        port=idp_port,
        clients=[{
            "client_id": OIDC_CLIENT_ID,
            "client_secret": OIDC_CLIENT_SECRET,
            "redirect_uris": [stack.url + "/hub/oauth_callback"],
        }],
        accounts=OIDC_ACCOUNTS,
    )
    env = _oidc_env(idp_port)
    assert env["MLHUB_OIDC_AUTHORIZE_URL"] == idp.authorize_url
    assert env["MLHUB_OIDC_TOKEN_URL"] == idp.internal_url("token")
    assert env["MLHUB_OIDC_USERINFO_URL"] == idp.internal_url("userinfo")
    try:
        # Started before the hub: its preflight probes the token URL (and warns if silent).
        with idp:
            try:
                record(f"oidc: provider npm ci {idp.install_seconds:.1f} s, start {idp.start_seconds:.2f} s")
                yield from _bring_up(request, stack, "oidc", make=lambda s: OidcPlatform(s, idp))
            finally:
                if getattr(request.session, "mlhub_failed", False):
                    idp.failed = True  # keeps its files when it stops
                    ARTIFACTS.mkdir(exist_ok=True)
                    log = ARTIFACTS / f"{stack.project}-oidc-provider.log"
                    log.write_text(idp.log_text())
                    print(f"\nOIDC provider log: {log}", file=sys.stderr)
    except BaseException:
        request.session.mlhub_failed = True
        raise


# Airflow's stack: the whole docker-compose.yml (Airflow is skipped by the other
# stacks to keep them light). Members of airflow-users may open Airflow; members
# of airflow-ops are Airflow Op; hub admins are Airflow Admin.
AIRFLOW_STACK_ENV = {
    "MLHUB_AIRFLOW": "true",
    "MLHUB_AIRFLOW_GROUP": "airflow-users",
    "MLHUB_AIRFLOW_OP_GROUP": "airflow-ops",
    "MLHUB_AIRFLOW_DEFAULT_ROLE": "User",
    "MLHUB_GPUS": "none",
}


@pytest.fixture(scope="session")
def airflow_platform(request):
    yield from _bring_up(request, Stack("af", extra_env=AIRFLOW_STACK_ENV), "airflow")


# Idle culling with short times, so a test can watch it happen; 2 stand-in GPUs
# (allocation and wiring only, as on the GPU stack) to see a culled server's GPU
# go back to the pool.
CULL_STACK_ENV = {
    "MLHUB_CULL_IDLE_TIMEOUT": "30",
    "MLHUB_CULL_EVERY": "5",
    "MLHUB_GPUS": "0,1",
    "MLHUB_NOTEBOOK_MEM_LIMIT": "1G",
    "MLHUB_NOTEBOOK_CPU_LIMIT": "0.5",
}


@pytest.fixture(scope="session")
def cull_platform(request):
    yield from _bring_up(request, Stack("cull", extra_env=CULL_STACK_ENV), "cull")
