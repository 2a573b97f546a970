"""jupyterhub_config.py with the real `jupyterhub` executable: bad settings stop the
hub at once with a readable list of problems, exit code 2, no traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

from hub.spawner import MlhubSpawner

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "jupyterhub_config.py"
JUPYTERHUB = Path(sys.executable).parent / "jupyterhub"


def run_hub(env_settings: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    # Only the bad settings and what a process needs: no MLHUB_* from the
    # environment running the tests leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    env.update(env_settings)
    env["HOME"] = str(cwd)
    start = time.monotonic()
    proc = subprocess.run(
        [str(JUPYTERHUB), "-f", str(CONFIG)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, time.monotonic() - start


def test_bad_settings_exit_2_naming_each_variable_without_traceback(tmp_path):
    proc, seconds = run_hub(
        {
            "MLHUB_NOTEBOOK_MEM_LIMIT": "lots",
            "MLHUB_NOTEBOK_IMAGE": "x",
            "MLHUB_NOTEBOOK_USER": "0:0",
        },
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert seconds < 30
    err = proc.stderr
    assert "Invalid configuration" in err
    assert "MLHUB_NOTEBOOK_MEM_LIMIT='lots': expected a size such as 512M" in err
    assert "MLHUB_NOTEBOK_IMAGE: unknown setting; did you mean MLHUB_NOTEBOOK_IMAGE?" in err
    assert "MLHUB_NOTEBOOK_USER='0:0': expected a non-root UID" in err
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    # It stopped before doing anything: no database, no secrets, no pid file.
    assert list(tmp_path.iterdir()) == []


def test_config_file_with_good_settings_wires_the_hub(tmp_path, monkeypatch):
    # The same file JupyterHub loads, evaluated in-process with a valid environment.
    for name in [k for k in os.environ if k.startswith("MLHUB_")]:
        monkeypatch.delenv(name)
    secrets = tmp_path / "secrets"
    monkeypatch.setenv("MLHUB_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("MLHUB_NOTEBOOK_MEM_LIMIT", "2G")
    config = PyFileConfigLoader(CONFIG.name, path=str(ROOT)).load_config()
    assert config.JupyterHub.spawner_class is MlhubSpawner
    assert config.MlhubSpawner.mem_limit == 2 * 1024**3
    # The proxy token is generated on first start, private, and handed to the hub.
    token = secrets / "proxy_token"
    assert config.ConfigurableHTTPProxy.auth_token == token.read_text().strip()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
