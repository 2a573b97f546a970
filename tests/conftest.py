"""Shared fixtures: the platform brought up with the real docker-compose.yml on a
real Docker engine. Tests that need the engine FAIL, never skip, without one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.hubapi import Hub
from tests.support.stack import Stack, engine_problem

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


def _bring_up(request, stack: Stack, label: str):
    problem = engine_problem()
    if problem:
        pytest.fail(f"these tests need a Docker engine and Compose v2: {problem}", pytrace=False)
    stack.destroy()  # leftovers of an interrupted run
    try:
        seconds = stack.up(build=True)
        record(f"{label}: stack build + up (images cached after first run): {seconds:.1f} s")
        yield Platform(stack)
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
    base = os.environ.get("MLHUB_TEST_PROJECT", "mlhubtest")
    yield from _bring_up(request, Stack(project=f"{base}gpu", extra_env=GPU_STACK_ENV), "gpu")
