"""Host check for the ML hub: run it before (and after) ``docker compose up``.

    python3 -m hub.doctor              # from the repository root
    python3 -m hub.doctor --json       # machine-readable: [{check, status, message, fix}]
    python3 -m hub.doctor --expect-gpu # a GPU server: a missing driver/toolkit is a FAIL

Standard library only: it must run with the bare ``python3`` of a fresh host, before
anything is installed. It shells out (with timeouts) to ``docker`` and ``nvidia-smi``
and reads a few files; it changes nothing.

Each check prints one line: OK, INFO (nothing wrong, worth knowing), WARN (works,
but should be fixed) or FAIL (the platform will not work as configured), what was
found, and for every problem the fix. The exit status is 1 when any check FAILs.

Design: every check is a pure function from the text a command printed (or a file
held) to a :class:`Finding`, so the unit tests feed them recorded outputs; the
runner at the bottom only gathers those outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

OK, INFO, WARN, FAIL = "OK", "INFO", "WARN", "FAIL"

Version = Tuple[int, ...]

MIN_ENGINE = (20, 10)
# docker-compose.yml uses `env_file: [{path, required: false}]`, which Compose
# understands from 2.24.0 on (older v2 releases reject the file).
MIN_COMPOSE = (2, 24, 0)

DEFAULT_NOTEBOOK_IMAGE = "mlhub/notebook:latest"

# The CUDA the notebook image needs when the image does not say (Jupyter
# docker-stacks' tensorflow-notebook:cuda images carry no CUDA_VERSION: TensorFlow
# brings CUDA as pip wheels). Source: PyPI metadata of tensorflow 2.21.0, extra
# "and-cuda": nvidia-cuda-runtime-cu12>=12.5.82,<13.0 and nvidia-cudnn-cu12>=9.3
# (https://pypi.org/pypi/tensorflow/2.21.0/json, requires_dist). TensorFlow's
# "tested build configurations" list CUDA 12.5 / cuDNN 9.3 for 2.18 and later.
REQUIRED_CUDA = "12.5"
REQUIRED_CUDA_SOURCE = "TensorFlow 2.21 tensorflow[and-cuda]: CUDA 12 runtime >= 12.5"

# Minimum Linux x86_64 driver for each CUDA toolkit release (GA), from NVIDIA's CUDA
# Toolkit release notes, table "CUDA Toolkit and Corresponding Driver Versions".
# Used to tell which CUDA a driver supports when nvidia-smi's header is unavailable.
CUDA_DRIVER_TABLE: List[Tuple[Tuple[int, int], Version]] = [
    ((13, 0), (580, 65, 6)),
    ((12, 9), (575, 51, 3)),
    ((12, 8), (570, 26)),
    ((12, 6), (560, 28, 3)),
    ((12, 5), (555, 42, 2)),
    ((12, 4), (550, 54, 14)),
    ((12, 3), (545, 23, 6)),
    ((12, 2), (535, 54, 3)),
    ((12, 1), (530, 30, 2)),
    ((12, 0), (525, 60, 13)),
    ((11, 8), (520, 61, 5)),
    ((11, 7), (515, 43, 4)),
    ((11, 6), (510, 39, 1)),
    ((11, 5), (495, 29, 5)),
    ((11, 4), (470, 42, 1)),
    ((11, 3), (465, 19, 1)),
    ((11, 2), (460, 27, 3)),
    ((11, 1), (455, 23)),
    ((11, 0), (450, 36, 6)),
    ((10, 2), (440, 33)),
]

# CUDA minor-version compatibility (NVIDIA "CUDA Compatibility" guide): an
# application built with any CUDA X.y runs on a driver at least this new.
MINOR_COMPAT_DRIVER: Dict[int, Version] = {
    11: (450, 80, 2),
    12: (525, 60, 13),
    13: (580,),
}

DISK_WARN_BYTES = 20 * 1024**3
DISK_FAIL_BYTES = 5 * 1024**3

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,driver_version,memory.total",
    "--format=csv,noheader",
]

# Looked for on PATH and in the usual system directories: dockerd (started by
# systemd) finds them there even when the doctor's PATH is narrower.
NVIDIA_TOOLS = (
    "nvidia-container-runtime-hook",  # what dockerd needs for --gpus / device requests
    "nvidia-ctk",
    "nvidia-container-runtime",
    "nvidia-cdi-hook",
)
SYSTEM_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
DEFAULT_CDI_DIRS = ("/etc/cdi", "/var/run/cdi")

TOOLKIT_FIX = (
    "install the NVIDIA Container Toolkit (https://docs.nvidia.com/datacenter/cloud-native/"
    "container-toolkit/latest/install-guide.html: apt-get install -y nvidia-container-toolkit), "
    "then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
)


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Run:
    """What a command did. ``rc`` is None when it could not run at all."""

    rc: Optional[int]
    out: str = ""
    err: str = ""
    missing: bool = False  # the program is not installed
    timed_out: bool = False

    @classmethod
    def not_found(cls, program: str) -> "Run":
        return cls(None, "", f"{program}: command not found", missing=True)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        """A one-line reason for a failure, from stderr (or stdout)."""
        if self.missing:
            return self.err
        if self.timed_out:
            return "timed out"
        text = (self.err.strip() or self.out.strip() or f"exit status {self.rc}").splitlines()
        return text[0][:300] if text else f"exit status {self.rc}"


# ------------------------------------------------------------------ helpers


def parse_version(text: Optional[str]) -> Optional[Version]:
    """'20.10.24+dfsg1' -> (20, 10, 24); 'v2.40.3' -> (2, 40, 3); junk -> None."""
    if not text:
        return None
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def vstr(v: Sequence[int]) -> str:
    """(525, 60, 13) -> '525.60.13' (leading zeros as NVIDIA writes them: 450.80.02)."""
    if len(v) >= 3 and v[0] >= 100:  # a driver version
        return f"{v[0]}.{v[1]:02d}.{v[2]:02d}" if v[1] < 100 else ".".join(map(str, v))
    return ".".join(str(p) for p in v)


def _at_least(v: Sequence[int], minimum: Sequence[int]) -> bool:
    n = max(len(v), len(minimum))
    return tuple(v) + (0,) * (n - len(v)) >= tuple(minimum) + (0,) * (n - len(minimum))


def _load_json(text: str):
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


# ------------------------------------------------------------------ 1. engine, compose


def _engine_unreachable_fix(err: str) -> str:
    low = err.lower()
    if "permission denied" in low:
        return (
            "this user may not use the Docker socket: run the doctor (and docker compose) "
            "with sudo, or `sudo usermod -aG docker $USER` and log in again"
        )
    return (
        "start the engine: `sudo systemctl start docker` (no systemd: `sudo dockerd &`); "
        "if DOCKER_HOST or a docker context is set, check that it points at a running engine"
    )


def check_engine(version: Run) -> Finding:
    """From ``docker version --format '{{json .}}'``."""
    name = "docker"
    if version.missing:
        return Finding(
            name, FAIL, "the docker CLI is not installed",
            "install Docker Engine >= 20.10: https://docs.docker.com/engine/install/ "
            "(or your distribution's docker.io package)",
        )
    if version.timed_out:
        return Finding(name, FAIL, "`docker version` timed out: the engine does not answer",
                       _engine_unreachable_fix(""))
    data = _load_json(version.out) or {}
    server = data.get("Server") if isinstance(data, dict) else None
    client = (data.get("Client") or {}) if isinstance(data, dict) else {}
    if not server:
        err = version.err.strip() or "no engine answered"
        return Finding(name, FAIL, f"no Docker engine answers: {err.splitlines()[0][:300]}",
                       _engine_unreachable_fix(err))
    engine = server.get("Version") or ""
    for comp in server.get("Components") or []:
        if comp.get("Name") == "Engine" and comp.get("Version"):
            engine = comp["Version"]
    api = server.get("ApiVersion") or "?"
    cv = client.get("Version")
    detail = f"Docker Engine {engine} (API {api})" + (f", client {cv}" if cv else "")
    v = parse_version(engine)
    if v is None:
        return Finding(name, WARN, f"{detail}: version not understood, cannot check >= 20.10",
                       "make sure the engine is Docker Engine >= 20.10 (`docker version`)")
    if not _at_least(v, MIN_ENGINE):
        return Finding(
            name, FAIL,
            f"{detail} is older than {vstr(MIN_ENGINE)}, the oldest this platform supports "
            "(GPU device requests, compose v2 features)",
            "upgrade Docker Engine to >= 20.10: https://docs.docker.com/engine/install/",
        )
    return Finding(name, OK, detail)


def check_compose(compose: Run, legacy_path: Optional[str] = None) -> Finding:
    """From ``docker compose version --short``; ``legacy_path``: a docker-compose v1 binary."""
    name = "compose"
    install = (
        "install the Compose v2 plugin: `apt-get install docker-compose-plugin` from Docker's "
        "apt repository, or put the binary from https://github.com/docker/compose/releases at "
        "~/.docker/cli-plugins/docker-compose (https://docs.docker.com/compose/install/linux/)"
    )
    if compose.missing:
        return Finding(name, FAIL, "cannot check Docker Compose: the docker CLI is not installed",
                       install)
    if not compose.ok:
        found = ""
        if legacy_path:
            found = (f"; only the old docker-compose v1 at {legacy_path}, which cannot run "
                     "this docker-compose.yml")
        return Finding(name, FAIL,
                       f"Docker Compose v2 not found (`docker compose version`: {compose.why()}){found}",
                       install)
    v = parse_version(compose.out)
    text = compose.out.strip().lstrip("v") or "?"
    if v is None:
        return Finding(name, WARN, f"Docker Compose {text}: version not understood",
                       f"make sure `docker compose version` reports >= {vstr(MIN_COMPOSE)}")
    if v[0] < 2:
        return Finding(name, FAIL, f"Docker Compose {text} is not Compose v2", install)
    if not _at_least(v, MIN_COMPOSE):
        return Finding(
            name, FAIL,
            f"Docker Compose {text} is older than {vstr(MIN_COMPOSE)} (docker-compose.yml uses "
            "env_file with 'required: false')",
            "upgrade the Compose plugin: " + install.split(": ", 1)[1],
        )
    return Finding(name, OK, f"Docker Compose {text}")


# ------------------------------------------------------------------ 2. driver


@dataclass(frozen=True)
class HostGPU:
    index: str
    name: str
    driver: str
    memory: str


def parse_gpu_csv(text: str) -> List[HostGPU]:
    """Rows of ``nvidia-smi --query-gpu=index,name,driver_version,memory.total
    --format=csv,noheader``: '0, NVIDIA A100-SXM4-80GB, 535.129.03, 81920 MiB'."""
    gpus = []
    for line in text.splitlines():
        # GPU names contain no commas; split from the right to be safe anyway.
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        gpus.append(HostGPU(parts[0], ", ".join(parts[1:-2]), parts[-2], parts[-1]))
    return gpus


def parse_smi_cuda(header: str) -> Optional[str]:
    """'CUDA Version: 12.2' from plain ``nvidia-smi`` output (the driver's highest CUDA)."""
    m = re.search(r"CUDA Version:\s*(\d+\.\d+)", header or "")
    return m.group(1) if m else None


def check_driver(query: Run, expect_gpu: bool = False) -> Finding:
    name = "nvidia-driver"
    install = (
        "install the NVIDIA driver (>= 525.60.13 for the CUDA 12 TensorFlow image), e.g. "
        "`sudo ubuntu-drivers install` or https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/"
    )
    if query.missing:
        if expect_gpu:
            return Finding(name, FAIL, "no NVIDIA driver (nvidia-smi not found), but --expect-gpu was given",
                           install)
        return Finding(name, INFO, "no NVIDIA driver (nvidia-smi not found): the platform runs CPU-only")
    if query.timed_out:
        return Finding(name, FAIL, "nvidia-smi timed out: the driver is hung",
                       "check `dmesg` for NVIDIA Xid errors; reboot the host or reload the driver")
    gpus = parse_gpu_csv(query.out) if query.ok else []
    if not gpus:
        why = query.why() if not query.ok else "no GPU listed"
        status = FAIL if expect_gpu else WARN
        return Finding(
            name, status,
            f"nvidia-smi is installed but reports no usable GPU ({why}): the platform runs CPU-only",
            "if this host has NVIDIA GPUs: load the driver (`sudo modprobe nvidia`, or reboot after "
            "installing it / after a kernel update) and check `nvidia-smi` and `dmesg`",
        )
    drivers = sorted({g.driver for g in gpus})
    listing = "; ".join(f"{g.index}: {g.name} ({g.memory})" for g in gpus)
    return Finding(name, OK, f"{len(gpus)} GPU(s), driver {', '.join(drivers)} - {listing}")


# ------------------------------------------------------------------ 3. container support


def cdi_kinds(text: str) -> List[str]:
    """The device kinds a CDI spec (YAML or JSON) declares: ['nvidia.com/gpu']."""
    return re.findall(r'(?:^|[\s{,])"?kind"?\s*:\s*"?([\w.-]+/[\w.-]+)', text or "")


def check_container_support(
    runtimes_json: Optional[str],
    tools: Mapping[str, Optional[str]],
    cdi_specs: Mapping[str, Sequence[str]],
    gpu_count: int,
    cdi_enabled: bool = False,
    expect_gpu: bool = False,
) -> Finding:
    """Can the engine give GPUs to containers?

    ``runtimes_json``: ``docker info --format '{{json .Runtimes}}'``; ``tools``: name ->
    path (None if absent) of :data:`NVIDIA_TOOLS`; ``cdi_specs``: spec file -> kinds;
    ``cdi_enabled``: the engine reports CDI spec dirs (``docker info`` .CDISpecDirs).

    The hub asks for GPUs with Docker device requests (what ``--gpus`` does). dockerd
    serves them through ``nvidia-container-runtime-hook``, found on its PATH when it
    starts; newer engines can also serve them through CDI (moby PR 50228).
    """
    name = "nvidia-container"
    runtimes = _load_json(runtimes_json or "") or {}
    nvidia_runtimes = sorted(r for r in runtimes if "nvidia" in r.lower()) if isinstance(runtimes, dict) else []
    hook = tools.get("nvidia-container-runtime-hook")
    nvidia_cdi = sorted(p for p, kinds in cdi_specs.items() if any(k.startswith("nvidia.com/") for k in kinds))
    seen = []
    if hook:
        seen.append(f"nvidia-container-runtime-hook at {hook}")
    if nvidia_runtimes:
        seen.append("engine runtime(s) " + ", ".join(nvidia_runtimes))
    if nvidia_cdi:
        seen.append("CDI spec " + ", ".join(nvidia_cdi))
    for tool in ("nvidia-ctk", "nvidia-cdi-hook"):
        if tools.get(tool):
            seen.append(f"{tool} at {tools[tool]}")
    found = "; ".join(seen)
    restart = " (restart docker after installing it: dockerd looks for the hook when it starts)"

    if gpu_count == 0:
        if hook:
            return Finding(
                name, INFO,
                f"{found}, but no NVIDIA driver or GPU: there is no GPU to give to containers, "
                "the platform runs CPU-only (a stand-in hook, e.g. on CI, only tests GPU allocation)",
            )
        if seen:
            return Finding(name, INFO, f"{found}; no NVIDIA driver/GPU: not used, the platform runs CPU-only")
        if expect_gpu:
            return Finding(name, FAIL, "no NVIDIA container support (and no GPU), but --expect-gpu was given",
                           TOOLKIT_FIX)
        return Finding(name, INFO, "no NVIDIA container support: not needed without GPUs")

    if hook:
        return Finding(
            name, OK,
            f"the engine can give GPUs to containers: {found}. Notebooks get theirs from the "
            "hub; for TF Serving on a GPU put COMPOSE_FILE=docker-compose.yml:docker-compose.gpu.yml "
            "in .env",
        )
    if nvidia_cdi and cdi_enabled and tools.get("nvidia-cdi-hook"):
        return Finding(
            name, WARN,
            f"{found}; no nvidia-container-runtime-hook: GPU requests work only on engines that "
            "serve --gpus through CDI (recent Docker releases)",
            "check with `docker run --rm --gpus all ubuntu nvidia-smi`; if that fails, "
            + TOOLKIT_FIX + restart,
        )
    what = f"({found}) " if found else ""
    return Finding(
        name, FAIL,
        f"{gpu_count} GPU(s) on the host, but the engine cannot give them to containers "
        f"{what}- no nvidia-container-runtime-hook: the hub's GPU servers would fail to start",
        TOOLKIT_FIX + restart,
    )


# ------------------------------------------------------------------ 4. driver vs CUDA


def cuda_for_driver(driver: Sequence[int]) -> Optional[Tuple[int, int]]:
    """The newest CUDA a driver supports, from :data:`CUDA_DRIVER_TABLE`."""
    for cuda, minimum in CUDA_DRIVER_TABLE:
        if _at_least(driver, minimum):
            return cuda
    return None


def min_driver_for_cuda(cuda: Sequence[int]) -> Optional[Version]:
    for c, minimum in reversed(CUDA_DRIVER_TABLE):
        if tuple(c) >= tuple(cuda[:2]):
            return minimum
    return None


def required_cuda_from_image(config_json: Optional[str]) -> Optional[str]:
    """The CUDA an image declares, from ``docker image inspect --format '{{json .Config}}'``:
    NVIDIA_REQUIRE_CUDA ('cuda>=12.5 ...'), CUDA_VERSION (NVIDIA's CUDA base images) or
    the label com.nvidia.cuda.version. None when the image says nothing (docker-stacks)."""
    config = _load_json(config_json or "")
    if not isinstance(config, dict):
        return None
    env = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    m = re.search(r"cuda>=(\d+\.\d+)", env.get("NVIDIA_REQUIRE_CUDA", ""))
    if m:
        return m.group(1)
    for raw in (env.get("CUDA_VERSION"), (config.get("Labels") or {}).get("com.nvidia.cuda.version")):
        v = parse_version(raw)
        if v:
            return vstr(v[:2])
    return None


def check_cuda(
    driver: Optional[str],
    smi_cuda: Optional[str],
    required: str = REQUIRED_CUDA,
    source: str = REQUIRED_CUDA_SOURCE,
    image: str = DEFAULT_NOTEBOOK_IMAGE,
) -> Finding:
    """Does the host driver run the CUDA the notebook image needs?

    ``driver``: e.g. '535.129.03' (None: no driver); ``smi_cuda``: the 'CUDA Version'
    nvidia-smi prints (None: derive it from the driver table).
    """
    name = "cuda"
    if not driver:
        return Finding(name, INFO, f"no NVIDIA driver: nothing to check against the image's CUDA {required}")
    dv = parse_version(driver)
    req = parse_version(required)
    if dv is None or req is None:
        return Finding(name, WARN, f"cannot compare driver {driver!r} with CUDA {required!r}",
                       "check `nvidia-smi` by hand: its 'CUDA Version' must be >= " + required)
    req = req[:2]
    dmax_v = parse_version(smi_cuda)
    dmax = dmax_v[:2] if dmax_v else cuda_for_driver(dv)
    dmax_text = vstr(dmax) if dmax else "no CUDA 10.2+"
    need = f"the notebook image {image} needs CUDA {vstr(req)} ({source})"
    compat_min = MINOR_COMPAT_DRIVER.get(req[0])
    full_min = min_driver_for_cuda(req)
    if dmax and tuple(dmax) >= tuple(req):
        return Finding(name, OK, f"driver {driver} supports CUDA {dmax_text}; {need}")
    if compat_min and dmax and dmax[0] == req[0] and _at_least(dv, compat_min):
        return Finding(
            name, OK,
            f"driver {driver} supports CUDA {dmax_text}; {need}: it runs through CUDA "
            f"minor-version compatibility (CUDA {req[0]}.x needs driver >= {vstr(compat_min)})",
        )
    upgrade_to = vstr(compat_min) if compat_min else (vstr(full_min) if full_min else "a newer release")
    fix = f"upgrade the NVIDIA driver to >= {upgrade_to}"
    if full_min and compat_min:
        fix += f" ({vstr(full_min)} or newer for CUDA {vstr(req)} without minor-version compatibility)"
    fix += ", or set MLHUB_NOTEBOOK_IMAGE to a CPU image"
    return Finding(
        name, FAIL,
        f"driver {driver} supports CUDA {dmax_text}; the notebook image needs CUDA {req[0]}.x "
        f"({vstr(req)}, {source}; image {image})",
        fix,
    )


# ------------------------------------------------------------------ 5. disk


def check_disk(path: str, free: Optional[int], total: Optional[int] = None,
               warn_below: int = DISK_WARN_BYTES, fail_below: int = DISK_FAIL_BYTES) -> Finding:
    """Free space where Docker keeps images, containers and volumes (users' homes)."""
    name = "disk"
    if free is None:
        return Finding(name, WARN, f"cannot read the free space of {path}",
                       "check with `df -h` where Docker keeps its data (`docker info -f '{{.DockerRootDir}}'`)")
    of = f" of {gib(total)}" if total else ""
    msg = f"{gib(free)} free{of} at {path} (Docker's data: images, containers, users' home volumes)"
    prune = (
        "see `docker system df`; free space with `docker image prune -a` (unused images), "
        "`docker builder prune` (build cache) and `docker container prune`; never `docker volume "
        "prune` or `docker system prune --volumes`: users' homes are volumes. Or move Docker's "
        "data-root (/etc/docker/daemon.json) to a bigger disk"
    )
    if free < fail_below:
        return Finding(name, FAIL, f"only {msg}; below {gib(fail_below)} builds and spawns fail", prune)
    if free < warn_below:
        return Finding(name, WARN,
                       f"only {msg}; below {gib(warn_below)} (the TensorFlow notebook image alone is ~10 GB)",
                       prune)
    return Finding(name, OK, msg)


# ------------------------------------------------------------------ 6. settings


def parse_dotenv(text: str) -> Dict[str, str]:
    """KEY=VALUE lines as docker compose reads a .env file: comments, blank lines,
    'export ', single or double quotes, ' #' comments after unquoted values."""
    values: Dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] in "\"'" and value.find(value[0], 1) > 0:
            end = value.find(value[0], 1)
            inner = value[1:end]
            if value[0] == '"':
                inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
            value = inner
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key] = value
    return values


def hub_environment(dotenv: Mapping[str, str], environ: Mapping[str, str]) -> Dict[str, str]:
    """The MLHUB_* variables the hub container gets: the env file, plus the two that
    docker-compose.yml passes by interpolation (the shell's value wins there)."""
    env = {k: v for k, v in dotenv.items() if k.startswith("MLHUB_")}
    for key in ("MLHUB_NETWORK", "MLHUB_NOTEBOOK_IMAGE"):
        if environ.get(key):
            env[key] = environ[key]
    return env


def _import_load_settings() -> Callable[[Mapping[str, str]], object]:
    from hub.settings import load_settings  # stdlib-only today; skipped if that changes

    return load_settings


def check_settings(
    env_file: Path,
    text: Optional[str],
    environ: Mapping[str, str],
    gpu_count: int = 0,
    loader: Optional[Callable[[], Callable[[Mapping[str, str]], object]]] = None,
) -> List[Finding]:
    """Validate the env file with hub.settings.load_settings: one FAIL per problem."""
    name = "settings"
    env = hub_environment(parse_dotenv(text or ""), environ)
    if text is None and not env:
        return [Finding(name, INFO, f"no {env_file}: every setting has its default "
                                    "(copy .env.example to .env to change them)")]
    try:
        load = (loader or _import_load_settings)()
    except ImportError as e:
        return [Finding(name, INFO, f"settings in {env_file} not checked: cannot import hub.settings ({e}); "
                                    "the hub checks them when it starts")]
    where = str(env_file) if text is not None else "the shell's environment"
    try:
        settings = load(env)
    except ValueError as e:  # SettingsError is a ValueError with .problems
        problems = getattr(e, "problems", None) or [str(e)]
        return [
            Finding(name, FAIL, f"{where}: {p}",
                    f"edit {where} (every variable is documented in .env.example)")
            for p in problems
        ]
    out = [Finding(name, OK, f"{where}: {len(env)} MLHUB_* setting(s), all valid")]
    out += check_sign_in(settings, where)
    gpus = getattr(settings, "gpus", None)
    if isinstance(gpus, tuple) and gpu_count == 0:
        out.append(Finding(
            name, WARN,
            f"MLHUB_GPUS lists GPUs ({','.join(gpus)}) but the host has no NVIDIA GPU: users who pick "
            "a GPU get none",
            f"set MLHUB_GPUS=auto (or none) in {env_file}, unless this is a test of GPU allocation",
        ))
    return out


def check_sign_in(settings: object, where: str) -> List[Finding]:
    """The hub's sign-in preflight (client id and secret, callback, allow rule,
    provider reachable), run from this host: what would stop the hub's start."""
    try:
        from hub import preflight
    except ImportError as e:  # pragma: no cover - hub.preflight is stdlib-only
        return [Finding("sign-in", INFO, f"not checked here ({e}); the hub checks it when it starts")]
    if not isinstance(settings, preflight.Settings):
        return []
    report = preflight.check(settings)
    out = [Finding("sign-in", FAIL, e, f"edit {where} (see .env.example)") for e in report.errors]
    out += [Finding("sign-in", WARN, w.replace("from the hub", "from this host"), "") for w in report.warnings]
    if not out:
        out.append(Finding("sign-in", OK, f"{settings.authenticator}: configured"))
    return out


# ------------------------------------------------------------------ the runner


def run_command(argv: Sequence[str], timeout: float = 20) -> Run:
    """Run a command without a shell; never raises."""
    exe = shutil.which(argv[0])
    if exe is None:
        return Run.not_found(argv[0])
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                           env=env, stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        return Run(None, "", "", timed_out=True)
    except OSError as e:
        return Run(None, "", f"{argv[0]}: {e}", missing=True)
    return Run(p.returncode, p.stdout, p.stderr)


def find_tool(name: str, path: Optional[str] = None) -> Optional[str]:
    search = os.pathsep.join([path if path is not None else os.environ.get("PATH", ""), *SYSTEM_BIN_DIRS])
    return shutil.which(name, path=search)


def read_cdi_specs(dirs: Iterable[str]) -> Dict[str, List[str]]:
    specs: Dict[str, List[str]] = {}
    for d in dirs:
        try:
            entries = sorted(Path(d).iterdir())
        except OSError:
            continue
        for f in entries:
            if f.suffix in (".yaml", ".yml", ".json") and f.is_file():
                try:
                    specs[str(f)] = cdi_kinds(f.read_text(errors="replace"))
                except OSError:
                    continue
    return specs


def disk_usage(path: str) -> Tuple[str, Optional[int], Optional[int]]:
    """Free/total bytes at ``path`` or its nearest existing parent."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        u = shutil.disk_usage(str(p))
    except OSError:
        return str(p), None, None
    return str(p), u.free, u.total


def repo_root() -> Path:
    cwd = Path.cwd()
    if (cwd / "docker-compose.yml").exists():
        return cwd
    return Path(__file__).resolve().parents[1]


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


def collect(expect_gpu: bool = False, env_file: Optional[str] = None,
            runner: Callable[..., Run] = run_command,
            environ: Optional[Mapping[str, str]] = None) -> List[Finding]:
    """Run every check on this host."""
    environ = os.environ if environ is None else environ
    root = repo_root()
    findings: List[Finding] = []

    version = runner(["docker", "version", "--format", "{{json .}}"], timeout=20)
    engine = check_engine(version)
    findings.append(engine)
    compose = (Run.not_found("docker") if version.missing
               else runner(["docker", "compose", "version", "--short"], timeout=20))
    findings.append(check_compose(compose, find_tool("docker-compose") if not compose.ok else None))
    vdata = _load_json(version.out)
    engine_up = isinstance(vdata, dict) and bool(vdata.get("Server"))

    info: dict = {}
    if engine_up:
        r = runner(["docker", "info", "--format", "{{json .}}"], timeout=20)
        info = (_load_json(r.out) if r.ok else None) or {}

    query = runner(NVIDIA_SMI_QUERY, timeout=20)
    findings.append(check_driver(query, expect_gpu))
    gpus = parse_gpu_csv(query.out) if query.ok else []
    smi_cuda = None
    if gpus:
        header = runner(["nvidia-smi"], timeout=20)
        smi_cuda = parse_smi_cuda(header.out) if header.ok else None

    tools = {t: find_tool(t) for t in NVIDIA_TOOLS}
    cdi_dirs = info.get("CDISpecDirs") or list(DEFAULT_CDI_DIRS)
    findings.append(check_container_support(
        json.dumps(info.get("Runtimes")) if info.get("Runtimes") is not None else None,
        tools, read_cdi_specs(cdi_dirs), len(gpus),
        cdi_enabled=bool(info.get("CDISpecDirs")), expect_gpu=expect_gpu,
    ))

    # Settings: the env file compose gives the hub (MLHUB_ENV_FILE, default .env).
    dot_env_text = _read(root / ".env")
    dot_env = parse_dotenv(dot_env_text or "")
    env_name = env_file or environ.get("MLHUB_ENV_FILE") or dot_env.get("MLHUB_ENV_FILE") or ".env"
    env_path = Path(env_name) if Path(env_name).is_absolute() else root / env_name
    env_text = dot_env_text if env_path == root / ".env" else _read(env_path)
    settings_env = parse_dotenv(env_text or "")

    image = (environ.get("MLHUB_NOTEBOOK_IMAGE") or dot_env.get("MLHUB_NOTEBOOK_IMAGE")
             or settings_env.get("MLHUB_NOTEBOOK_IMAGE") or DEFAULT_NOTEBOOK_IMAGE)
    required, source = REQUIRED_CUDA, REQUIRED_CUDA_SOURCE
    if gpus and engine_up:
        r = runner(["docker", "image", "inspect", "--format", "{{json .Config}}", image], timeout=20)
        declared = required_cuda_from_image(r.out) if r.ok else None
        if declared:
            required, source = declared, f"declared by the image {image}"
        elif not r.ok:
            source += f"; {image} is not built yet"
    findings.append(check_cuda(gpus[0].driver if gpus else None, smi_cuda, required, source, image))

    if environ.get("DOCKER_HOST", "").startswith(("tcp://", "ssh://")):
        findings.append(Finding("disk", INFO, f"the engine is remote ({environ['DOCKER_HOST']}): "
                                              "check its free disk there"))
    else:
        root_dir = info.get("DockerRootDir") or ("/var/lib/docker" if Path("/var/lib/docker").exists() else "/")
        where, free, total = disk_usage(root_dir)
        findings.append(check_disk(where, free, total))

    findings.extend(check_settings(env_path, env_text, environ, len(gpus)))
    return findings


def render_text(findings: Sequence[Finding]) -> str:
    width = max((len(f.check) for f in findings), default=8)
    lines = []
    for f in findings:
        line = f"{f.status:<4}  {f.check:<{width}}  {f.message}"
        if f.fix:
            line += f"  -> fix: {f.fix}"
        lines.append(line)
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    if fails:
        lines.append(f"{fails} FAIL, {warns} WARN: fix the FAIL lines before `docker compose up`.")
    elif warns:
        lines.append(f"no FAIL, {warns} WARN: the platform can start; the WARN lines are worth fixing.")
    else:
        lines.append("all checks passed: `docker compose up -d --build`.")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m hub.doctor",
        description="Check this host for the ML hub (Docker, Compose, NVIDIA driver and "
                    "container toolkit, CUDA, disk, settings). Exit 1 if any check FAILs.",
    )
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {check, status, message, fix}")
    parser.add_argument("--expect-gpu", action="store_true",
                        help="this host must have NVIDIA GPUs: no driver or toolkit is a FAIL")
    parser.add_argument("--env-file", metavar="PATH",
                        help="settings file to validate (default: MLHUB_ENV_FILE or .env in the repository)")
    args = parser.parse_args(argv)
    findings = collect(expect_gpu=args.expect_gpu, env_file=args.env_file)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        print(render_text(findings))
    return 1 if any(f.status == FAIL for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
