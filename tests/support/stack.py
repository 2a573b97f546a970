"""The real docker-compose.yml, brought up on the real engine for the tests.

Only the base images are swapped (images/local-base/compose.yml) because no
registry is reachable here; everything else is the file users run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def engine_problem() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        r = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker CLI unusable: {e}"
    if r.returncode != 0:
        return f"no Docker engine answers: {r.stderr.strip()[:300]}"
    r = docker("compose", "version", check=False, timeout=30)
    if r.returncode != 0:
        return "Docker Compose v2 is missing (docker compose version failed)"
    return None


CORE_SERVICES = ("proxy", "hub", "models", "tf-serving")


class Stack:
    """One compose project of the platform, isolated by name, network, prefix and port."""

    def __init__(
        self,
        name: str = "",
        extra_env: dict[str, str] | None = None,
        files: list[str] | None = None,
    ):
        # files: extra compose files (paths relative to the repository root), applied last.
        extra_files = list(files or [])
        # Airflow is part of the platform, but heavy: only the stack that tests it runs it.
        self.airflow = (extra_env or {}).get("MLHUB_AIRFLOW", "false") == "true"
        self.services = [] if self.airflow else list(CORE_SERVICES)
        # MLHUB_TEST_PROJECT lets two test runs share one engine without colliding;
        # each stack of a run is that prefix plus its name (core: the prefix alone).
        project = os.environ.get("MLHUB_TEST_PROJECT", "mlhubtest") + name
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ARTIFACTS.mkdir(exist_ok=True)
        self.env_file = ARTIFACTS / f"{project}.env"
        self.settings = {
            "MLHUB_HTTP_PORT": str(self.port),
            "MLHUB_BIND_ADDRESS": "127.0.0.1",
            "MLHUB_PUBLIC_URL": self.url,
            "MLHUB_PREFIX": project,
            "MLHUB_NETWORK": project,
            "MLHUB_HUB_IMAGE": f"{project}/hub:latest",
            "MLHUB_NOTEBOOK_IMAGE": f"{project}/notebook:latest",
            "MLHUB_NOTEBOOK_MEM_LIMIT": "2G",
            "MLHUB_NOTEBOOK_CPU_LIMIT": "1.5",
            "MLHUB_ADMIN_USERS": "admin",
            "MLHUB_MODELS_MAX_UPLOAD": "64M",
            "MLHUB_AIRFLOW": "false",
            **(extra_env or {}),
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))
        files = ["docker-compose.yml"]
        if os.environ.get("MLHUB_TEST_BASES", "local") == "local":
            files.append("images/local-base/compose.yml")
        self.files = files + extra_files

    # ------------------------------------------------------------------ compose
    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        cmd = ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file)]
        for f in self.files:
            cmd += ["-f", f]
        env = dict(os.environ, MLHUB_ENV_FILE=str(self.env_file))
        r = subprocess.run(
            cmd + list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd + list(args))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
        return r

    def up(self, build: bool = True) -> float:
        t0 = time.monotonic()
        args = ["up", "-d", "--wait", "--wait-timeout", "600"]
        if build:
            args.append("--build")
        # Stacks without Airflow start only what they need (compose adds the
        # services these depend on); Airflow's stack starts everything.
        self.compose(*args, *self.services)
        self.wait_healthy()
        return time.monotonic() - t0

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                r = requests.get(self.url + "/hub/health", timeout=5)
                if r.status_code == 200:
                    return
                last = r.status_code
            except requests.RequestException as e:
                last = e
            time.sleep(0.5)
        raise AssertionError(f"hub not healthy through the proxy after {timeout}s: {last}")

    def hub_secret(self, name: str) -> str:
        return self.compose("exec", "-T", "hub", "cat", f"/srv/jupyterhub/secrets/{name}").stdout.strip()

    # ------------------------------------------------------------------ user objects
    def notebook_containers(self) -> list[dict]:
        r = docker("ps", "-a", "--filter", f"name=^{self.project}-nb-", "--format", "{{json .}}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def container(self, name: str) -> dict | None:
        r = docker("inspect", name, check=False)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)[0]

    def home_volumes(self) -> list[str]:
        r = docker("volume", "ls", "-q", "--filter", f"name=^{self.project}-home-")
        return r.stdout.split()

    # ------------------------------------------------------------------ cleanup
    def dump(self, reason: str) -> Path:
        """Write logs and inspect output of everything in the project, for a failure."""
        out = ARTIFACTS / f"{self.project}-dump.txt"
        parts = [f"=== {reason}"]
        parts.append(self.compose("ps", "-a", check=False).stdout)
        parts.append(self.compose("logs", "--no-color", "--tail", "400", check=False).stdout)
        for c in self.notebook_containers():
            parts.append(f"=== container {c['Names']} ({c['Status']})")
            parts.append(docker("logs", "--tail", "200", c["Names"], check=False).stdout)
            parts.append(docker("logs", "--tail", "200", c["Names"], check=False).stderr)
            parts.append(docker("inspect", c["Names"], check=False).stdout)
        out.write_text("\n".join(parts))
        return out

    def destroy(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False, timeout=300)
        for c in self.notebook_containers():
            docker("rm", "-f", "-v", c["Names"], check=False)
        for v in self.home_volumes():
            docker("volume", "rm", "-f", v, check=False)
        docker("network", "rm", self.project, check=False)
        self.compose("down", "-v", "--timeout", "5", check=False, timeout=300)
