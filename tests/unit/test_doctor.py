"""hub.doctor: each check is a pure function of what a command printed, tested here
with recorded outputs (Docker 20.10 / 19.03, Compose present / missing, nvidia-smi of
drivers 470, 535, 580, docker info runtimes, CDI specs, disk sizes, .env files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub import doctor
from hub.doctor import FAIL, INFO, OK, WARN, Finding, Run

GiB = 1024**3

# ------------------------------------------------------------------ recorded outputs

# `docker version --format '{{json .}}'`, Debian's engine with a newer CLI (this CI host).
DOCKER_VERSION_20_10 = json.dumps({
    "Client": {"Version": "28.2.2", "ApiVersion": "1.41", "DefaultAPIVersion": "1.50",
               "Os": "linux", "Arch": "amd64", "Context": "default"},
    "Server": {
        "Platform": {"Name": ""},
        "Components": [
            {"Name": "Engine", "Version": "20.10.24+dfsg1",
             "Details": {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux"}},
            {"Name": "containerd", "Version": "1.6.20~ds1", "Details": {}},
            {"Name": "runc", "Version": "1.1.5+ds1", "Details": {}},
        ],
        "Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
    },
})
DOCKER_VERSION_19_03 = json.dumps({
    "Client": {"Version": "19.03.13", "ApiVersion": "1.40", "Os": "linux"},
    "Server": {
        "Platform": {"Name": "Docker Engine - Community"},
        "Components": [{"Name": "Engine", "Version": "19.03.13", "Details": {"ApiVersion": "1.40"}}],
        "Version": "19.03.13", "ApiVersion": "1.40",
    },
})
DOCKER_VERSION_27 = json.dumps({
    "Client": {"Version": "27.3.1", "ApiVersion": "1.47"},
    "Server": {"Components": [{"Name": "Engine", "Version": "27.3.1"}],
               "Version": "27.3.1", "ApiVersion": "1.47"},
})
CLIENT_ONLY = json.dumps({"Client": {"Version": "28.2.2", "ApiVersion": "1.50"}, "Server": None})
NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"
NO_PERMISSION = (
    "permission denied while trying to connect to the Docker daemon socket at "
    'unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version": '
    "dial unix /var/run/docker.sock: connect: permission denied\n"
)

# `docker compose version --short` when the plugin is missing, for two CLI generations.
COMPOSE_MISSING_28 = "docker: unknown command: docker compose\n\nRun 'docker --help' for more information\n"
COMPOSE_MISSING_20 = "docker: 'compose' is not a docker command.\nSee 'docker --help'\n"

# `nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader`
SMI_535 = "0, NVIDIA A100-SXM4-80GB, 535.129.03, 81920 MiB\n1, NVIDIA A100-SXM4-80GB, 535.129.03, 81920 MiB\n"
SMI_470 = "0, Tesla V100-PCIE-16GB, 470.182.03, 16384 MiB\n"
SMI_580 = "0, NVIDIA H100 80GB HBM3, 580.65.06, 81559 MiB\n"
SMI_NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
    "that the latest NVIDIA driver is installed and running.\n\n"
)
SMI_NO_DEVICES = "No devices were found\n"

# The header of plain `nvidia-smi`.
SMI_HEADER_535 = """Tue Nov 14 10:12:03 2023
+---------------------------------------------------------------------------------------+
| NVIDIA-SMI 535.129.03             Driver Version: 535.129.03   CUDA Version: 12.2     |
|-----------------------------------------+----------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |
"""
SMI_HEADER_470 = """Mon Mar  4 09:01:44 2024
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 470.182.03   Driver Version: 470.182.03   CUDA Version: 11.4     |
|-------------------------------+----------------------+----------------------+
"""
SMI_HEADER_580 = """Wed Aug 20 12:00:00 2025
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
"""

# `docker info --format '{{json .Runtimes}}'`
RUNTIMES_PLAIN = '{"io.containerd.runc.v2":{"path":"runc"},"io.containerd.runtime.v1.linux":{"path":"runc"},"runc":{"path":"runc"}}'
RUNTIMES_NVIDIA = '{"io.containerd.runc.v2":{"path":"runc"},"nvidia":{"path":"nvidia-container-runtime","runtimeArgs":[]},"runc":{"path":"runc"}}'

# /etc/cdi/nvidia.yaml as `nvidia-ctk cdi generate` writes it (shortened).
CDI_NVIDIA_YAML = """---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  hooks:
  - args:
    - nvidia-cdi-hook
    - create-symlinks
    hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
kind: nvidia.com/gpu
"""
CDI_OTHER_JSON = '{"cdiVersion": "0.6.0", "kind": "vendor.example/fpga", "devices": []}'

# `docker image inspect --format '{{json .Config}}'`
CONFIG_NVIDIA_CUDA = json.dumps({
    "Env": ["PATH=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/bin", "CUDA_VERSION=12.5.1",
            "NVIDIA_REQUIRE_CUDA=cuda>=12.5 brand=tesla,driver>=470,driver<471",
            "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
    "Labels": {"maintainer": "NVIDIA CORPORATION <cudatools@nvidia.com>"},
})
CONFIG_CUDA_VERSION_ONLY = json.dumps({"Env": ["CUDA_VERSION=11.8.0"], "Labels": None})
CONFIG_DOCKER_STACKS = json.dumps({
    "Env": ["PATH=/opt/conda/bin:/usr/bin", "CONDA_DIR=/opt/conda", "NB_USER=jovyan",
            "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
    "Labels": {"maintainer": "Jupyter Project <jupyter@googlegroups.com>"},
})

NO_TOOLS = {t: None for t in doctor.NVIDIA_TOOLS}
HOOK = dict(NO_TOOLS, **{"nvidia-container-runtime-hook": "/usr/bin/nvidia-container-runtime-hook"})


# ------------------------------------------------------------------ helpers


def test_parse_version():
    assert doctor.parse_version("20.10.24+dfsg1") == (20, 10, 24)
    assert doctor.parse_version("v2.40.3") == (2, 40, 3)
    assert doctor.parse_version("19.03.13") == (19, 3, 13)
    assert doctor.parse_version("12.2") == (12, 2)
    assert doctor.parse_version("") is None and doctor.parse_version("none") is None


def test_driver_versions_are_written_as_nvidia_does():
    assert doctor.vstr((525, 60, 13)) == "525.60.13"
    assert doctor.vstr((450, 80, 2)) == "450.80.02"
    assert doctor.vstr((12, 5)) == "12.5"


# ------------------------------------------------------------------ 1. engine and compose

ENGINE_CASES = [
    ("20.10 on this host", Run(0, DOCKER_VERSION_20_10), OK,
     ["Docker Engine 20.10.24+dfsg1", "API 1.41", "client 28.2.2"], ""),
    ("27.x", Run(0, DOCKER_VERSION_27), OK, ["Docker Engine 27.3.1", "API 1.47"], ""),
    ("19.03 is too old", Run(0, DOCKER_VERSION_19_03), FAIL,
     ["Docker Engine 19.03.13", "older than 20.10"], "upgrade Docker Engine to >= 20.10"),
    ("no daemon", Run(1, CLIENT_ONLY, NO_DAEMON), FAIL,
     ["no Docker engine answers", "Cannot connect to the Docker daemon"], "systemctl start docker"),
    ("no permission", Run(1, CLIENT_ONLY, NO_PERMISSION), FAIL,
     ["permission denied"], "usermod -aG docker"),
    ("no CLI", Run.not_found("docker"), FAIL, ["docker CLI is not installed"],
     "https://docs.docker.com/engine/install/"),
    ("hung", Run(None, timed_out=True), FAIL, ["timed out"], "start the engine"),
]


@pytest.mark.parametrize("run,status,in_message,in_fix",
                         [c[1:] for c in ENGINE_CASES], ids=[c[0] for c in ENGINE_CASES])
def test_engine(run, status, in_message, in_fix):
    f = doctor.check_engine(run)
    assert f.check == "docker" and f.status == status, f
    for text in in_message:
        assert text in f.message
    assert in_fix in f.fix
    assert bool(f.fix) == (status != OK)


COMPOSE_CASES = [
    ("v2.40", Run(0, "2.40.3\n"), None, OK, "Docker Compose 2.40.3", ""),
    ("v-prefixed", Run(0, "v2.29.7\n"), None, OK, "Docker Compose 2.29.7", ""),
    ("missing, new CLI", Run(1, "", COMPOSE_MISSING_28), None, FAIL,
     "Docker Compose v2 not found", "docker-compose-plugin"),
    ("missing, old CLI", Run(1, "", COMPOSE_MISSING_20), None, FAIL,
     "'compose' is not a docker command", "~/.docker/cli-plugins/docker-compose"),
    ("only v1", Run(1, "", COMPOSE_MISSING_20), "/usr/bin/docker-compose", FAIL,
     "docker-compose v1 at /usr/bin/docker-compose", "docker-compose-plugin"),
    ("too old for env_file required:false", Run(0, "2.20.2\n"), None, FAIL,
     "older than 2.24.0", "upgrade the Compose plugin"),
    ("no docker CLI", Run.not_found("docker"), None, FAIL, "docker CLI is not installed", "Compose v2"),
]


@pytest.mark.parametrize("run,legacy,status,in_message,in_fix",
                         [c[1:] for c in COMPOSE_CASES], ids=[c[0] for c in COMPOSE_CASES])
def test_compose(run, legacy, status, in_message, in_fix):
    f = doctor.check_compose(run, legacy)
    assert f.check == "compose" and f.status == status, f
    assert in_message in f.message
    assert in_fix in f.fix


# ------------------------------------------------------------------ 2. driver


def test_gpu_csv_parsing():
    gpus = doctor.parse_gpu_csv(SMI_535)
    assert [(g.index, g.name, g.driver, g.memory) for g in gpus] == [
        ("0", "NVIDIA A100-SXM4-80GB", "535.129.03", "81920 MiB"),
        ("1", "NVIDIA A100-SXM4-80GB", "535.129.03", "81920 MiB"),
    ]
    assert doctor.parse_gpu_csv(SMI_NO_DEVICES) == []
    assert doctor.parse_gpu_csv("") == []


@pytest.mark.parametrize("header,cuda", [
    (SMI_HEADER_535, "12.2"), (SMI_HEADER_470, "11.4"), (SMI_HEADER_580, "13.0"), ("", None),
])
def test_smi_header_cuda(header, cuda):
    assert doctor.parse_smi_cuda(header) == cuda


DRIVER_CASES = [
    ("no nvidia-smi: CPU-only host", Run.not_found("nvidia-smi"), False, INFO,
     "no NVIDIA driver (nvidia-smi not found): the platform runs CPU-only", ""),
    ("no nvidia-smi but --expect-gpu", Run.not_found("nvidia-smi"), True, FAIL,
     "--expect-gpu", "install the NVIDIA driver"),
    ("two A100 on 535", Run(0, SMI_535), False, OK,
     "2 GPU(s), driver 535.129.03 - 0: NVIDIA A100-SXM4-80GB (81920 MiB)", ""),
    ("driver not loaded", Run(9, SMI_NO_DRIVER, ""), False, WARN,
     "couldn't communicate with the NVIDIA driver", "modprobe nvidia"),
    ("driver not loaded, --expect-gpu", Run(9, SMI_NO_DRIVER, ""), True, FAIL,
     "reports no usable GPU", "modprobe nvidia"),
    ("no devices", Run(6, SMI_NO_DEVICES, ""), False, WARN, "No devices were found", "dmesg"),
    ("hung driver", Run(None, timed_out=True), False, FAIL, "timed out", "reboot"),
]


@pytest.mark.parametrize("run,expect_gpu,status,in_message,in_fix",
                         [c[1:] for c in DRIVER_CASES], ids=[c[0] for c in DRIVER_CASES])
def test_driver(run, expect_gpu, status, in_message, in_fix):
    f = doctor.check_driver(run, expect_gpu)
    assert f.check == "nvidia-driver" and f.status == status, f
    assert in_message in f.message
    assert in_fix in f.fix


# ------------------------------------------------------------------ 3. container support


def test_cdi_kinds_from_yaml_and_json():
    assert doctor.cdi_kinds(CDI_NVIDIA_YAML) == ["nvidia.com/gpu"]
    assert doctor.cdi_kinds(CDI_OTHER_JSON) == ["vendor.example/fpga"]
    assert doctor.cdi_kinds("") == []


CONTAINER_CASES = [
    ("GPUs and the hook", RUNTIMES_NVIDIA, HOOK, {}, 2, False, False, OK,
     ["nvidia-container-runtime-hook at /usr/bin/nvidia-container-runtime-hook", "runtime(s) nvidia"], ""),
    ("GPUs, nothing installed", RUNTIMES_PLAIN, NO_TOOLS, {}, 2, False, False, FAIL,
     ["2 GPU(s)", "cannot give them to containers"], "nvidia-ctk runtime configure --runtime=docker"),
    ("GPUs, runtime registered but no hook", RUNTIMES_NVIDIA, NO_TOOLS, {}, 1, False, False, FAIL,
     ["engine runtime(s) nvidia", "no nvidia-container-runtime-hook"], "restart docker"),
    ("GPUs, CDI only, engine has CDI", RUNTIMES_PLAIN,
     dict(NO_TOOLS, **{"nvidia-cdi-hook": "/usr/bin/nvidia-cdi-hook", "nvidia-ctk": "/usr/bin/nvidia-ctk"}),
     {"/var/run/cdi/nvidia.yaml": ["nvidia.com/gpu"]}, 1, True, False, WARN,
     ["CDI spec /var/run/cdi/nvidia.yaml", "through CDI"], "docker run --rm --gpus all"),
    ("GPUs, CDI spec but engine without CDI", RUNTIMES_PLAIN,
     dict(NO_TOOLS, **{"nvidia-ctk": "/usr/bin/nvidia-ctk"}),
     {"/etc/cdi/nvidia.yaml": ["nvidia.com/gpu"]}, 1, False, False, FAIL,
     ["CDI spec /etc/cdi/nvidia.yaml"], "install the NVIDIA Container Toolkit"),
    ("stand-in hook, no driver (CI)", RUNTIMES_PLAIN,
     dict(NO_TOOLS, **{"nvidia-container-runtime-hook": "/usr/local/bin/nvidia-container-runtime-hook"}),
     {}, 0, False, False, INFO,
     ["nvidia-container-runtime-hook at /usr/local/bin/", "but no NVIDIA driver", "CPU-only"], ""),
    ("CPU-only host", RUNTIMES_PLAIN, NO_TOOLS, {}, 0, False, False, INFO,
     ["not needed without GPUs"], ""),
    ("CPU-only host, --expect-gpu", RUNTIMES_PLAIN, NO_TOOLS, {}, 0, False, True, FAIL,
     ["--expect-gpu"], "nvidia-container-toolkit"),
    ("unreachable engine: no runtimes", None, NO_TOOLS, {}, 1, False, False, FAIL,
     ["cannot give them to containers"], "nvidia-ctk"),
]


@pytest.mark.parametrize("runtimes,tools,cdi,gpus,cdi_enabled,expect_gpu,status,in_message,in_fix",
                         [c[1:] for c in CONTAINER_CASES], ids=[c[0] for c in CONTAINER_CASES])
def test_container_support(runtimes, tools, cdi, gpus, cdi_enabled, expect_gpu, status, in_message, in_fix):
    f = doctor.check_container_support(runtimes, tools, cdi, gpus, cdi_enabled=cdi_enabled,
                                       expect_gpu=expect_gpu)
    assert f.check == "nvidia-container" and f.status == status, f
    for text in in_message:
        assert text in f.message
    assert in_fix in f.fix


# ------------------------------------------------------------------ 4. driver vs CUDA


@pytest.mark.parametrize("driver,cuda", [
    ((535, 129, 3), (12, 2)), ((470, 182, 3), (11, 4)), ((525, 60, 13), (12, 0)),
    ((525, 60, 12), (11, 8)), ((580, 65, 6), (13, 0)), ((555, 42, 6), (12, 5)), ((390, 1), None),
])
def test_cuda_for_driver_follows_nvidias_table(driver, cuda):
    assert doctor.cuda_for_driver(driver) == cuda


def test_min_driver_for_cuda():
    assert doctor.min_driver_for_cuda((12, 5)) == (555, 42, 2)
    assert doctor.min_driver_for_cuda((12, 0)) == (525, 60, 13)
    assert doctor.min_driver_for_cuda((12, 7)) == (570, 26)  # no 12.7 release: the next one
    assert doctor.min_driver_for_cuda((14, 0)) is None


CUDA_CASES = [
    ("535 / CUDA 12.2 runs the 12.5 image", "535.129.03", "12.2", "12.5", OK,
     ["driver 535.129.03 supports CUDA 12.2", "minor-version compatibility"], ""),
    ("535 without the header", "535.54.03", None, "12.5", OK, ["supports CUDA 12.2"], ""),
    ("560 / 12.6", "560.35.03", "12.6", "12.5", OK, ["supports CUDA 12.6"], ""),
    ("580 / 13.0 runs CUDA 12", "580.65.06", "13.0", "12.5", OK, ["supports CUDA 13.0"], ""),
    ("470 / 11.4 is too old", "470.182.03", "11.4", "12.5", FAIL,
     ["driver 470.182.03 supports CUDA 11.4; the notebook image needs CUDA 12.x"],
     "upgrade the NVIDIA driver to >= 525.60.13"),
    ("470 without the header", "470.182.03", None, "12.5", FAIL, ["supports CUDA 11.4"],
     "or set MLHUB_NOTEBOOK_IMAGE to a CPU image"),
    ("520 / 11.8", "520.61.05", "11.8", "12.5", FAIL, ["needs CUDA 12.x"], "525.60.13"),
    ("a CUDA 13 image on 570", "570.124.06", "12.8", "13.0", FAIL, ["needs CUDA 13.x"], ">= 580"),
    ("an 11.8 image on 470 (minor-version compatibility)", "470.182.03", "11.4", "11.8", OK,
     ["minor-version compatibility"], ""),
    ("no driver", None, None, "12.5", INFO, ["no NVIDIA driver"], ""),
]


@pytest.mark.parametrize("driver,smi_cuda,required,status,in_message,in_fix",
                         [c[1:] for c in CUDA_CASES], ids=[c[0] for c in CUDA_CASES])
def test_cuda(driver, smi_cuda, required, status, in_message, in_fix):
    f = doctor.check_cuda(driver, smi_cuda, required, "test", "mlhub/notebook:latest")
    assert f.check == "cuda" and f.status == status, f
    for text in in_message:
        assert text in f.message
    assert in_fix in f.fix


def test_the_fail_fix_names_both_ways_out():
    f = doctor.check_cuda("470.182.03", "11.4")
    assert f.status == FAIL
    assert f.fix.startswith("upgrade the NVIDIA driver to >= 525.60.13")
    assert "555.42.02 or newer for CUDA 12.5" in f.fix
    assert f.fix.endswith("or set MLHUB_NOTEBOOK_IMAGE to a CPU image")


@pytest.mark.parametrize("config,cuda", [
    (CONFIG_NVIDIA_CUDA, "12.5"),
    (CONFIG_CUDA_VERSION_ONLY, "11.8"),
    (json.dumps({"Env": [], "Labels": {"com.nvidia.cuda.version": "12.4.1"}}), "12.4"),
    (CONFIG_DOCKER_STACKS, None),  # CUDA comes as pip wheels: the doctor's constant applies
    ("", None),
    ("not json", None),
])
def test_required_cuda_from_image(config, cuda):
    assert doctor.required_cuda_from_image(config) == cuda


def test_required_cuda_constant_is_cuda_12():
    # TensorFlow 2.21's tensorflow[and-cuda] wheels: CUDA 12 runtime >= 12.5.
    assert doctor.parse_version(doctor.REQUIRED_CUDA)[0] == 12


# ------------------------------------------------------------------ 5. disk

DISK_CASES = [
    ("plenty", 76 * GiB, OK, ""),
    ("exactly 20 GiB", 20 * GiB, OK, ""),
    ("just under 20 GiB", 20 * GiB - 1, WARN, "docker image prune -a"),
    ("10 GiB", 10 * GiB, WARN, "docker builder prune"),
    ("exactly 5 GiB", 5 * GiB, WARN, "docker system df"),
    ("3 GiB", 3 * GiB, FAIL, "docker image prune -a"),
    ("unknown", None, WARN, "df -h"),
]


@pytest.mark.parametrize("free,status,in_fix", [c[1:] for c in DISK_CASES], ids=[c[0] for c in DISK_CASES])
def test_disk(free, status, in_fix):
    f = doctor.check_disk("/var/lib/docker", free, 252 * GiB)
    assert f.check == "disk" and f.status == status, f
    assert in_fix in f.fix
    if free is not None:
        assert "/var/lib/docker" in f.message and f"{free / GiB:.1f} GiB free" in f.message


def test_disk_fix_never_suggests_pruning_volumes():
    f = doctor.check_disk("/var/lib/docker", 1 * GiB)
    assert "never `docker volume prune`" in f.fix


# ------------------------------------------------------------------ 6. settings


def test_dotenv_parsing_follows_compose():
    text = """
# comment
MLHUB_PUBLIC_URL=https://ml.example.org   # trailing comment
export MLHUB_ADMIN_USERS=alice,bob
MLHUB_NOTEBOOK_IMAGE="mlhub/notebook:2026-08"
MLHUB_LOG_LEVEL='debug'
MLHUB_ENVIRONMENTS=TensorFlow=mlhub/notebook:latest;CPU=mlhub/cpu:latest
EMPTY=
NOT_A_LINE
"""
    assert doctor.parse_dotenv(text) == {
        "MLHUB_PUBLIC_URL": "https://ml.example.org",
        "MLHUB_ADMIN_USERS": "alice,bob",
        "MLHUB_NOTEBOOK_IMAGE": "mlhub/notebook:2026-08",
        "MLHUB_LOG_LEVEL": "debug",
        "MLHUB_ENVIRONMENTS": "TensorFlow=mlhub/notebook:latest;CPU=mlhub/cpu:latest",
        "EMPTY": "",
    }


def test_hub_environment_takes_the_shells_image_and_network():
    env = doctor.hub_environment(
        {"MLHUB_NOTEBOOK_IMAGE": "a/b:1", "MLHUB_PREFIX": "x", "OTHER": "y"},
        {"MLHUB_NOTEBOOK_IMAGE": "c/d:2", "MLHUB_PREFIX": "ignored: not passed by compose"},
    )
    assert env == {"MLHUB_NOTEBOOK_IMAGE": "c/d:2", "MLHUB_PREFIX": "x"}


ENV = Path("/srv/mlhub/.env")


def test_bad_env_fails_naming_each_variable():
    text = "MLHUB_NOTEBOOK_MEM_LIMIT=lots\nMLHUB_NOTEBOK_IMAGE=x\nMLHUB_SIGNUP=open\n"
    findings = doctor.check_settings(ENV, text, {})
    assert [f.status for f in findings] == [FAIL, FAIL]
    assert all(f.check == "settings" for f in findings)
    assert "MLHUB_NOTEBOOK_MEM_LIMIT='lots': expected a size such as 512M" in findings[0].message
    assert "MLHUB_NOTEBOK_IMAGE: unknown setting; did you mean MLHUB_NOTEBOOK_IMAGE?" in findings[1].message
    assert all(str(ENV) in f.message and f"edit {ENV}" in f.fix for f in findings)


def test_good_env_is_ok():
    findings = doctor.check_settings(ENV, "MLHUB_SIGNUP=open\nMLHUB_NOTEBOOK_MEM_LIMIT=16G\n", {})
    assert [f.status for f in findings] == [OK, OK]
    assert "2 MLHUB_* setting(s), all valid" in findings[0].message
    assert findings[1].check == "sign-in" and "native: configured" in findings[1].message


def test_sign_in_preflight_runs_in_doctor_too():
    """What stops the hub's start (here: OIDC without client, secret or allow rule)
    is a FAIL in doctor, not 'all checks passed'."""
    text = ("MLHUB_AUTHENTICATOR=oidc\n"  # endpoints on a closed loopback port: no network
            + "".join(f"MLHUB_OIDC_{k}_URL=http://127.0.0.1:9/{k.lower()}\n" for k in ("AUTHORIZE", "TOKEN", "USERINFO")))
    findings = doctor.check_settings(ENV, text, {})
    failed = [f.message for f in findings if f.status == FAIL and f.check == "sign-in"]
    assert any("MLHUB_OAUTH_CLIENT_ID" in m for m in failed), findings
    assert any("MLHUB_OAUTH_CLIENT_SECRET" in m for m in failed), findings
    assert all(f"edit {ENV}" in f.fix for f in findings if f.status == FAIL)


def test_bad_value_from_the_shell_is_reported_too():
    # docker-compose.yml passes the shell's MLHUB_NOTEBOOK_IMAGE to the hub.
    findings = doctor.check_settings(ENV, "", {"MLHUB_NOTEBOOK_IMAGE": "Not An Image"})
    assert [f.status for f in findings] == [FAIL]
    assert "MLHUB_NOTEBOOK_IMAGE='Not An Image'" in findings[0].message
    findings = doctor.check_settings(ENV, None, {"MLHUB_NOTEBOOK_IMAGE": "Not An Image"})
    assert [f.status for f in findings] == [FAIL]
    assert findings[0].message.startswith("the shell's environment: MLHUB_NOTEBOOK_IMAGE=")


def test_no_env_file_is_info():
    findings = doctor.check_settings(ENV, None, {})
    assert [f.status for f in findings] == [INFO] and "every setting has its default" in findings[0].message


def test_settings_module_unavailable_skips_with_info():
    def missing():
        raise ImportError("No module named 'hub.settings'")

    findings = doctor.check_settings(ENV, "MLHUB_SIGNUP=bogus\n", {}, loader=missing)
    assert [f.status for f in findings] == [INFO]
    assert "not checked" in findings[0].message


def test_listed_gpus_without_gpus_warns():
    findings = doctor.check_settings(ENV, "MLHUB_GPUS=0,1\n", {}, gpu_count=0)
    assert [f.status for f in findings] == [OK, OK, WARN]
    assert "MLHUB_GPUS lists GPUs (0,1)" in findings[2].message
    assert doctor.check_settings(ENV, "MLHUB_GPUS=0,1\n", {}, gpu_count=2)[-1].status == OK


# ------------------------------------------------------------------ the runner


class FakeHost:
    """Answers the doctor's commands from recorded outputs; anything else is 'not found'."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv, timeout=20):
        self.calls.append(list(argv))
        for prefix, run in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                return run
        return Run.not_found(argv[0])


def info_json(**over):
    info = {"ServerVersion": "20.10.24+dfsg1", "DockerRootDir": "/var/lib/docker",
            "Runtimes": json.loads(RUNTIMES_PLAIN), "CDISpecDirs": None}
    info.update(over)
    return json.dumps(info)


@pytest.fixture
def host(monkeypatch, tmp_path):
    """A repo root without .env, no NVIDIA tools, no CDI specs, plenty of disk."""
    (tmp_path / "docker-compose.yml").write_text("name: mlhub\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(doctor, "find_tool", lambda name, path=None: None)
    monkeypatch.setattr(doctor, "read_cdi_specs", lambda dirs: {})
    monkeypatch.setattr(doctor, "disk_usage", lambda path: (path, 80 * GiB, 250 * GiB))
    return tmp_path


def statuses(findings):
    return {f.check: f.status for f in findings if f.check != "settings"}


def test_collect_on_a_gpu_server(host, monkeypatch):
    monkeypatch.setattr(doctor, "find_tool", lambda name, path=None: f"/usr/bin/{name}"
                        if name.startswith("nvidia-") else None)
    fake = FakeHost({
        ("docker", "version"): Run(0, DOCKER_VERSION_20_10),
        ("docker", "compose"): Run(0, "2.40.3\n"),
        ("docker", "info"): Run(0, info_json(Runtimes=json.loads(RUNTIMES_NVIDIA))),
        ("docker", "image", "inspect"): Run(1, "", "Error: No such image: mlhub/notebook:latest"),
        ("nvidia-smi", "--query-gpu=index,name,driver_version,memory.total"): Run(0, SMI_535),
        ("nvidia-smi",): Run(0, SMI_HEADER_535),
    })
    findings = doctor.collect(runner=fake, environ={})
    assert statuses(findings) == {"docker": OK, "compose": OK, "nvidia-driver": OK,
                                  "nvidia-container": OK, "cuda": OK, "disk": OK}
    cuda = next(f for f in findings if f.check == "cuda")
    assert "mlhub/notebook:latest is not built yet" in cuda.message
    assert ["docker", "image", "inspect", "--format", "{{json .Config}}", "mlhub/notebook:latest"] in fake.calls


def test_collect_reads_the_images_cuda_and_the_configured_image(host):
    (host / ".env").write_text("MLHUB_NOTEBOOK_IMAGE=team/tf:cuda13\n")
    fake = FakeHost({
        ("docker", "version"): Run(0, DOCKER_VERSION_20_10),
        ("docker", "compose"): Run(0, "2.40.3\n"),
        ("docker", "info"): Run(0, info_json()),
        ("docker", "image", "inspect"): Run(0, json.dumps({"Env": ["CUDA_VERSION=13.0.0"]})),
        ("nvidia-smi", "--query-gpu=index,name,driver_version,memory.total"): Run(0, SMI_535),
        ("nvidia-smi",): Run(0, SMI_HEADER_535),
    })
    findings = doctor.collect(runner=fake, environ={})
    cuda = next(f for f in findings if f.check == "cuda")
    assert cuda.status == FAIL and "needs CUDA 13.x" in cuda.message and "team/tf:cuda13" in cuda.message
    assert ["docker", "image", "inspect", "--format", "{{json .Config}}", "team/tf:cuda13"] in fake.calls
    # GPUs present and no hook anywhere: the engine cannot hand them out.
    assert statuses(findings)["nvidia-container"] == FAIL


def test_collect_on_a_cpu_host_without_engine(host):
    fake = FakeHost({
        ("docker", "version"): Run(1, CLIENT_ONLY, NO_DAEMON),
        ("docker", "compose"): Run(0, "2.40.3\n"),
    })
    findings = doctor.collect(runner=fake, environ={})
    assert statuses(findings) == {"docker": FAIL, "compose": OK, "nvidia-driver": INFO,
                                  "nvidia-container": INFO, "cuda": INFO, "disk": OK}
    assert not any(c[:2] == ["docker", "info"] for c in fake.calls)  # nothing to ask


def test_env_file_option_and_bad_settings(host):
    (host / "prod.env").write_text("MLHUB_NOTEBOOK_CPU_LIMIT=many\n")
    fake = FakeHost({("docker", "version"): Run(0, DOCKER_VERSION_20_10),
                     ("docker", "compose"): Run(0, "2.40.3\n"),
                     ("docker", "info"): Run(0, info_json())})
    findings = doctor.collect(runner=fake, environ={}, env_file="prod.env")
    bad = [f for f in findings if f.check == "settings"]
    assert [f.status for f in bad] == [FAIL]
    assert "MLHUB_NOTEBOOK_CPU_LIMIT='many'" in bad[0].message
    # MLHUB_ENV_FILE (as docker compose reads it) picks the same file.
    findings = doctor.collect(runner=fake, environ={"MLHUB_ENV_FILE": "prod.env"})
    assert [f.status for f in findings if f.check == "settings"] == [FAIL]


@pytest.mark.parametrize("findings,code", [
    ([Finding("docker", OK, "fine"), Finding("disk", WARN, "low", "prune")], 0),
    ([Finding("docker", OK, "fine"), Finding("compose", FAIL, "missing", "install")], 1),
])
def test_main_exit_code_and_json(monkeypatch, capsys, findings, code):
    monkeypatch.setattr(doctor, "collect", lambda **kw: findings)
    assert doctor.main(["--json"]) == code
    out = json.loads(capsys.readouterr().out)
    assert out == [{"check": f.check, "status": f.status, "message": f.message, "fix": f.fix}
                   for f in findings]
    assert doctor.main([]) == code
    text = capsys.readouterr().out.splitlines()
    assert len(text) == len(findings) + 1  # one line per check, then the summary
    for line, f in zip(text, findings):
        assert line.startswith(f.status) and f.message in line
        assert (f"-> fix: {f.fix}" in line) == bool(f.fix)
