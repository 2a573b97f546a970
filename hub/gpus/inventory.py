"""The host's GPUs: index, UUID, model, memory.

Three sources, chosen by MLHUB_GPUS:

- ``auto`` (default): ask the engine. A short-lived probe container is given
  every GPU with only the ``utility`` capability (no compute), and runs
  ``nvidia-smi`` (injected by the NVIDIA container toolkit). A host without
  NVIDIA support answers "no GPUs": the platform runs CPU-only, no error.
- a list of ids (``0,1,2,3``): taken as is, for hosts where probing is not
  wanted, or to hand only some GPUs to the hub.
- ``none``: CPU-only.

``read_nvml`` reads NVML in-process (nvidia-ml-py) where the hub itself has
GPU access.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,uuid,name,memory.total,utilization.gpu,driver_version",
    "--format=csv,noheader,nounits",
]


@dataclass(frozen=True)
class GPU:
    id: str  # the id handed to the engine (device index as a string)
    uuid: str = ""
    model: str = ""
    memory_mib: int | None = None
    utilization: int | None = None  # percent, when the host reports it
    driver: str = ""

    def label(self) -> str:
        mem = f", {self.memory_mib // 1024} GiB" if self.memory_mib else ""
        return f"GPU {self.id}" + (f" ({self.model}{mem})" if self.model else "")


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text.strip()))
    except ValueError:
        return None


def parse_nvidia_smi_csv(text: str) -> list[GPU]:
    """Parse the output of :data:`NVIDIA_SMI_QUERY`."""
    gpus = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 4:
            continue
        cells = [c.strip() for c in row] + [""] * 6
        gpus.append(
            GPU(
                id=cells[0],
                uuid=cells[1],
                model=cells[2],
                memory_mib=_int_or_none(cells[3]),
                utilization=_int_or_none(cells[4]),
                driver=cells[5],
            )
        )
    return gpus


def from_ids(ids: tuple[str, ...]) -> list[GPU]:
    """An inventory listed in settings."""
    return [GPU(id=i, model="listed in MLHUB_GPUS") for i in ids]


def read_nvml() -> list[GPU]:
    """Read GPUs through NVML in this process (needs nvidia-ml-py and a driver)."""
    import pynvml  # nvidia-ml-py; optional

    pynvml.nvmlInit()
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total // (1024 * 1024)
            try:
                util = pynvml.nvmlDeviceGetUtilizationRates(h).gpu
            except pynvml.NVMLError:
                util = None
            gpus.append(
                GPU(
                    id=str(i),
                    uuid=uuid.decode() if isinstance(uuid, bytes) else uuid,
                    model=name.decode() if isinstance(name, bytes) else name,
                    memory_mib=int(mem),
                    utilization=util,
                    driver=driver,
                )
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def probe_with_engine(client, image: str, timeout: int = 60) -> tuple[list[GPU], str]:
    """Run nvidia-smi in a throw-away container given all GPUs (utility only).

    Returns (gpus, note); never raises for a host without NVIDIA support.
    ``client`` is a docker.APIClient.
    """
    from docker.errors import APIError, ImageNotFound
    from docker.types import DeviceRequest

    host_config = client.create_host_config(
        device_requests=[DeviceRequest(count=-1, capabilities=[["gpu", "utility"]])],
        network_mode="none",
    )
    try:
        container = client.create_container(
            image,
            command=NVIDIA_SMI_QUERY,
            entrypoint=[],
            host_config=host_config,
            labels={"org.mlhub.component": "gpu-probe"},
            user="0",
        )
    except ImageNotFound:
        return [], f"probe image {image} not found"
    except APIError as e:  # some engines refuse the GPU request at create already
        return [], f"the engine has no NVIDIA GPU support ({e.explanation or e})"
    cid = container["Id"]
    try:
        try:
            client.start(cid)
        except APIError as e:
            # e.g. 'could not select device driver "" with capabilities: [[gpu]]'
            return [], f"the engine has no NVIDIA GPU support ({e.explanation or e})"
        result = client.wait(cid, timeout=timeout)
        out = client.logs(cid, stdout=True, stderr=False).decode(errors="replace")
        if result.get("StatusCode") != 0:
            err = client.logs(cid, stdout=False, stderr=True).decode(errors="replace")
            return [], f"nvidia-smi failed in the probe container: {err.strip()[:200] or result}"
        gpus = parse_nvidia_smi_csv(out)
        return gpus, f"{len(gpus)} GPU(s) found by nvidia-smi"
    finally:
        try:
            client.remove_container(cid, force=True)
        except APIError:
            pass
