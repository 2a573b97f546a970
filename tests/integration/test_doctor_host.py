"""`python3 -m hub.doctor` for real on this host: a Docker engine, Compose v2, no GPU.

The doctor runs under the host's bare python3 with ``-S`` (no site-packages at all),
which proves it needs nothing but the standard library. Each expectation is checked
against what the host itself says (``docker version``, ``docker compose version``,
whether nvidia-smi / the NVIDIA hook exist), so the test reports the doctor's
honesty, not this machine's configuration. Without a Docker engine it FAILS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_DIRS = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def bare_python() -> str:
    python = shutil.which("python3")
    if python is None:
        pytest.fail("no python3 on PATH: the doctor is meant for the host's python3", pytrace=False)
    return python


def doctor(*args: str) -> subprocess.CompletedProcess:
    # Nothing from the test run's own MLHUB_* settings leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    return subprocess.run(
        [bare_python(), "-S", "-m", "hub.doctor", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )


def host(*argv: str) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r.stdout.strip()


@pytest.fixture(scope="module")
def good_env(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("doctor") / "mlhub.env"
    path.write_text("MLHUB_SIGNUP=open\nMLHUB_NOTEBOOK_MEM_LIMIT=4G\nMLHUB_GPUS=auto\n")
    return path


@pytest.fixture(scope="module")
def report(good_env):
    proc = doctor("--json", "--env-file", str(good_env))
    try:
        findings = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"--json printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    by_check: dict[str, list[dict]] = {}
    for f in findings:
        assert set(f) == {"check", "status", "message", "fix"}
        assert f["status"] in ("OK", "INFO", "WARN", "FAIL")
        by_check.setdefault(f["check"], []).append(f)
    print("\n" + "\n".join(f"{f['status']:<4} {f['check']}: {f['message']}" for f in findings))
    return proc, by_check


def one(by_check, check) -> dict:
    assert len(by_check.get(check, [])) == 1, by_check.get(check)
    return by_check[check][0]


def test_engine_is_found_with_its_version(report):
    proc, by_check = report
    engine = one(by_check, "docker")
    if engine["status"] == "FAIL":
        pytest.fail(f"these tests need a running Docker engine; the doctor says: {engine['message']} "
                    f"(fix: {engine['fix']})", pytrace=False)
    server = host("docker", "version", "--format", "{{.Server.Version}}")
    api = host("docker", "version", "--format", "{{.Server.APIVersion}}")
    assert engine["status"] == "OK"
    assert f"Docker Engine {server} (API {api})" in engine["message"]


def test_compose_v2_is_found(report):
    _, by_check = report
    compose = one(by_check, "compose")
    assert compose["status"] == "OK", compose
    assert compose["message"] == f"Docker Compose {host('docker', 'compose', 'version', '--short').lstrip('v')}"


def test_no_gpu_is_reported_as_cpu_only(report):
    _, by_check = report
    driver, container, cuda = (one(by_check, c) for c in ("nvidia-driver", "nvidia-container", "cuda"))
    assert shutil.which("nvidia-smi") is None, "this test describes a host without an NVIDIA driver"
    assert driver["status"] == "INFO"
    assert driver["message"] == "no NVIDIA driver (nvidia-smi not found): the platform runs CPU-only"
    assert cuda["status"] == "INFO" and "no NVIDIA driver" in cuda["message"]
    hook = shutil.which("nvidia-container-runtime-hook",
                        path=os.environ.get("PATH", "") + os.pathsep + SYSTEM_DIRS)
    assert container["status"] == "INFO"
    if hook:  # CI's stand-in hook: seen, and said to be useless without a driver
        assert f"nvidia-container-runtime-hook at {hook}" in container["message"]
        assert "but no NVIDIA driver or GPU" in container["message"]
        assert "the platform runs CPU-only" in container["message"]
    else:
        assert "not needed without GPUs" in container["message"]


def test_disk_and_settings(report, good_env):
    _, by_check = report
    disk = one(by_check, "disk")
    root_dir = host("docker", "info", "--format", "{{.DockerRootDir}}")
    assert disk["status"] in ("OK", "WARN"), disk  # a FAIL here would be a real problem on CI
    assert "GiB free" in disk["message"] and root_dir in disk["message"]
    settings = one(by_check, "settings")
    assert settings == {"check": "settings", "status": "OK", "fix": "",
                        "message": f"{good_env}: 3 MLHUB_* setting(s), all valid"}


def test_exit_0_without_fail(report):
    proc, by_check = report
    fails = [f for fs in by_check.values() for f in fs if f["status"] == "FAIL"]
    assert fails == [] and proc.returncode == 0, (fails, proc.stderr)
    assert proc.stderr == ""


def test_text_output_one_line_per_check(good_env):
    proc = doctor("--env-file", str(good_env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [
        "docker", "compose", "nvidia-driver", "nvidia-container", "cuda", "disk", "settings", "sign-in"]
    assert all(line.split()[0] in ("OK", "INFO", "WARN") for line in lines[:-1])
    assert lines[-1].startswith(("all checks passed", "no FAIL"))


def test_bad_settings_fail_with_exit_1(tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("MLHUB_NOTEBOOK_MEM_LIMIT=lots\n")
    proc = doctor("--json", "--env-file", str(bad))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fails = [f for f in json.loads(proc.stdout) if f["status"] == "FAIL"]
    assert [f["check"] for f in fails] == ["settings"]
    assert "MLHUB_NOTEBOOK_MEM_LIMIT='lots': expected a size" in fails[0]["message"]
    assert fails[0]["fix"].startswith(f"edit {bad}")
