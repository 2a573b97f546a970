"""The notebook spawner: one Docker container per user and per named server.

Builds on DockerSpawner and changes only what the platform needs:

- names from :func:`hub.naming.safe_name` (injective, short, Docker-safe);
- a labelled, persistent named volume per user as their home, created before
  the container so its owner is the image's non-root user (Docker copies the
  image's ``/home/jovyan`` ownership into a new, empty volume);
- the notebook runs as a non-root UID, with no capabilities and
  ``no-new-privileges``, without the Docker socket;
- Docker calls run on a shared pool of threads, not DockerSpawner's single
  thread, so one slow spawn does not queue everybody else (dockerspawner#279);
- progress events for the spawn-pending page (kubespawner's ``progress`` shape);
- a container that was created but could not start is removed, and the user
  is told why.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import DeviceRequest
from dockerspawner import DockerSpawner
from traitlets import Any, Dict, Integer, List, Unicode, default

from .errors import SpawnRefused
from .gpus.allocator import GPU_LABEL, GpuAllocator, QuotaExceeded
from .gpus.ledger import NotEnoughGPUs
from .naming import safe_name
from .options import (
    Environment,
    OptionsError,
    Quota,
    options_from_form,
    parse_user_options,
    quota_for,
    render_form,
    slug,
)

LABEL_PREFIX = "org.mlhub."


def _literal(value: str) -> str:
    """Protect a value from DockerSpawner's str.format template rendering."""
    return value.replace("{", "{{").replace("}", "}}")


class MlhubSpawner(DockerSpawner):
    docker_concurrency = Integer(
        16,
        config=True,
        help="""Docker API calls the hub runs at once, shared by all spawners.

        DockerSpawner runs every call on one thread, so one slow pull or start
        delays everybody. Example: 32 for a hub starting many servers at once.
        Default: 16.
        """,
    )

    home_volume_template = Unicode(
        "mlhub-home-{username}",
        config=True,
        help="""Name of each user's persistent home volume; ``{username}`` is the
        escaped username. All servers of a user share it. Example and default:
        ``mlhub-home-{username}``.
        """,
    )

    home_path = Unicode(
        "/home/jovyan",
        config=True,
        help="""Where the home volume is mounted in the container; should be the
        image user's home so that a new volume takes its ownership.
        Default: /home/jovyan.
        """,
    )

    notebook_user = Unicode(
        "1000:100",
        config=True,
        help="""UID:GID the notebook server runs as. Never root: a UID of 0 is
        refused at startup. Default: 1000:100 (jovyan in Jupyter docker-stacks).
        """,
    )

    environments = List(
        config=True,
        help="""Environments users pick from, as [label, image] pairs; the first is
        the default. Example: [["TensorFlow (CUDA)", "mlhub/notebook:latest"]].
        Default: one environment, the spawner's ``image``.
        """,
    )

    gpus = Any(
        "auto",
        config=True,
        help="""GPUs this hub hands out: 'auto' (probe the engine with nvidia-smi),
        'none', or a tuple of device ids such as ("0", "1"). Default: 'auto'.
        """,
    )

    reserved_gpus = List(
        Unicode(),
        config=True,
        help="""GPU ids or UUIDs other containers of the stack hold (TF Serving's, when
        docker-compose.gpu.yml is applied): left out of the inventory, never handed to
        a user. Example: ["0"]. Default: none.
        """,
    )

    gpu_sharing = Integer(
        1,
        config=True,
        help="Servers that may share one GPU; 1 (the default) makes GPUs exclusive.",
    )

    default_gpu_quota = Integer(
        1,
        config=True,
        help="""GPUs a user may hold at once when none of their groups sets the
        ``gpu_quota`` property. Default: 1.""",
    )

    memory_default = Integer(
        8 * 1024**3,
        config=True,
        help="Memory limit in bytes of a server when the user picks none. Default: 8 GiB.",
    )

    default_mem_quota = Integer(
        None,
        allow_none=True,
        config=True,
        help="""Most memory in bytes a user may pick when none of their groups sets
        the ``mem_quota`` property. Default: None (= memory_default).""",
    )

    gpu_ids = List(help="GPU ids held by the running server (empty: CPU only).")

    shared_volumes = Dict(
        config=True,
        help="""Named volumes every notebook container mounts besides the user's home,
        as {volume: path}. Example: {"mlhub-airflow-dags": "/home/jovyan/airflow-dags"}
        (the team's Airflow DAGs). Default: none.
        """,
    )

    shared_volume_groups = Dict(
        config=True,
        help="""Shared volumes only some users may mount, as {volume: hub group}:
        members of the group and hub admins get the volume, others do not. The team's
        Airflow DAGs are code Airflow runs with its own secrets, so with
        MLHUB_AIRFLOW_GROUP only that group may write them. Membership is read at each
        start. Example: {"mlhub-airflow-dags": "airflow-users"}. Default: none.
        """,
    )

    extra_labels = Dict(
        config=True,
        help="""Extra Docker labels on every notebook container and home volume.
        Example: {"com.example.team": "research"}. Default: none.
        """,
    )

    # --------------------------------------------------------------- naming

    @default("escape")
    def _escape_default(self):
        return safe_name

    @default("name_template")
    def _default_name_template(self):
        if self.name:
            return "{prefix}-{username}--{servername}"
        return "{prefix}-{username}"

    @default("volumes")
    def _default_volumes(self):
        return {self.home_volume_template: self.home_path, **self.shared_volumes}

    def volumes_for_user(self) -> dict:
        """``volumes`` less the shared volumes whose group this user is not in."""
        if not hasattr(self, "_all_volumes"):
            self._all_volumes = dict(self.volumes)
        groups = {g.name for g in getattr(self.user, "groups", [])}
        admin = bool(getattr(self.user, "admin", False))
        return {
            vol: path
            for vol, path in self._all_volumes.items()
            if vol not in self.shared_volume_groups or admin or self.shared_volume_groups[vol] in groups
        }

    def template_namespace(self):
        # DockerSpawner lowercases server names before escaping, so servers 'GPU'
        # and 'gpu' of one user would share a container; safe_name is one-to-one.
        ns = super().template_namespace()
        ns["servername"] = self.escape(self.name or "")
        return ns

    @property
    def home_volume_name(self) -> str:
        return self.format_volume_name(self.home_volume_template, self)

    def docker_labels(self) -> dict[str, str]:
        labels = {
            LABEL_PREFIX + "user": self.user.name,
            LABEL_PREFIX + "server": self.name or "",
            LABEL_PREFIX + "component": "notebook",
            GPU_LABEL: ",".join(self.gpu_ids),
        }
        labels.update(self.extra_labels)
        return labels

    async def container_labels(self) -> dict[str, str]:
        """Labels of a new container.

        Images built by docker compose carry ``com.docker.compose.*`` labels that
        containers inherit; a notebook container would then count as part of the
        compose project, and ``docker compose up``/``down`` would remove it. Those
        labels are blanked so that compose leaves users' servers alone.
        """
        image = await self.docker("inspect_image", self.image)
        inherited = (image.get("Config") or {}).get("Labels") or {}
        labels = {k: "" for k in inherited if k.startswith("com.docker.compose.")}
        labels.update(self.docker_labels())
        return labels

    @default("extra_create_kwargs")
    def _default_create_kwargs(self):
        async def create_kwargs(spawner):
            labels = await spawner.container_labels()
            return {
                "user": spawner.notebook_user,
                "labels": {k: _literal(v) for k, v in labels.items()},
            }

        return create_kwargs

    @default("extra_host_config")
    def _default_host_config(self):
        def host_config(spawner):
            config = {"security_opt": ["no-new-privileges"], "cap_drop": ["ALL"]}
            if spawner.gpu_ids:
                # exactly these GPUs; the engine sets NVIDIA_VISIBLE_DEVICES to them
                config["device_requests"] = [
                    DeviceRequest(
                        driver="nvidia",
                        device_ids=list(spawner.gpu_ids),
                        capabilities=[["gpu", "compute", "utility"]],
                    )
                ]
            return config

        return host_config

    # --------------------------------------------------------------- options, GPUs

    def environment_list(self) -> list[Environment]:
        pairs = self.environments or [["TensorFlow (CUDA)", self.image]]
        return [Environment(slug(label), label, image) for label, image in pairs]

    def quota(self) -> Quota:
        groups = [(g.name, getattr(g, "properties", None) or {}) for g in self.user.groups]
        default_mem = self.default_mem_quota or self.memory_default
        return quota_for(groups, Quota(self.default_gpu_quota, default_mem))

    _allocator: GpuAllocator | None = None

    @property
    def allocator(self) -> GpuAllocator:
        """One allocator per hub process, shared by all spawners."""
        cls = MlhubSpawner
        if cls._allocator is None:
            gpus = tuple(self.gpus) if isinstance(self.gpus, (list, tuple)) else self.gpus
            cls._allocator = GpuAllocator(
                self.client,
                self.executor,
                gpus,
                probe_image=self.image,
                slots=self.gpu_sharing,
                reserved=tuple(self.reserved_gpus),
            )
        return cls._allocator

    @default("options_form")
    def _options_form_default(self):
        return MlhubSpawner.render_options_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return options_from_form

    async def render_options_form(self) -> str:
        """The spawn form; empty (spawn at once) when there is nothing to choose."""
        inventory = await self.allocator.inventory()
        environments = self.environment_list()
        if not inventory and len(environments) == 1:
            return ""
        ledger = await self.allocator.ledger()
        return render_form(environments, inventory, ledger, self.quota(), self.memory_default)

    # --------------------------------------------------------------- docker calls

    _pool: ThreadPoolExecutor | None = None

    @property
    def executor(self):
        """A pool shared by all spawners (DockerSpawner's has one thread)."""
        cls = MlhubSpawner
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(
                self.docker_concurrency, thread_name_prefix="mlhub-docker"
            )
        return cls._pool

    # --------------------------------------------------------------- progress

    _events: list
    _spawn_done: bool = True

    def _emit(self, progress: int, message: str) -> None:
        if not hasattr(self, "_events"):
            self._events = []
        self._events.append({"progress": progress, "message": message})
        self.log.info("Spawn %s: %s", self._log_name, message)

    async def progress(self):
        """Yield this spawn's events as they happen (see Spawner.progress)."""
        seen = 0
        while True:
            events = getattr(self, "_events", [])
            while seen < len(events):
                yield events[seen]
                seen += 1
            if self._spawn_done:
                return
            await asyncio.sleep(0.25)

    # --------------------------------------------------------------- lifecycle

    def get_env(self):
        env = super().get_env()
        env.setdefault("HOME", self.home_path)
        # TensorFlow takes GPU memory as it needs it, not all of it at start
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        if not self.gpu_ids:
            # CUDA images default to "all": under the NVIDIA runtime a CPU-only
            # server would see every GPU. "void" hides them.
            env["NVIDIA_VISIBLE_DEVICES"] = "void"
        return env

    async def pull_image(self, image):
        self._emit(10, f"Checking the image {image}")
        try:
            await super().pull_image(image)
        except (ImageNotFound, NotFound):
            raise SpawnRefused(
                f"The notebook image {image} is not on this host and may not be "
                "pulled. An admin should build it (docker compose build) or fix "
                "MLHUB_NOTEBOOK_IMAGE.",
                reason="image",
                status_code=500,
            ) from None

    async def ensure_home_volume(self) -> str:
        name = self.home_volume_name
        try:
            await self.docker("inspect_volume", name)
            self._emit(30, "Found your home volume")
        except NotFound:
            labels = dict(self.docker_labels(), **{LABEL_PREFIX + "component": "home"})
            labels.pop(LABEL_PREFIX + "server", None)
            await self.docker("create_volume", name=name, labels=labels)
            self._emit(30, "Created your home volume")
        return name

    async def create_object(self):
        await self.ensure_home_volume()
        self._emit(45, "Creating your container")
        return await super().create_object()

    async def start_object(self):
        self._emit(60, "Starting your container")
        await super().start_object()

    async def apply_options(self) -> None:
        """Validate user_options and reserve GPUs, before any container exists."""
        inventory = await self.allocator.inventory()
        quota = self.quota()
        try:
            opts = parse_user_options(
                self.user_options, self.environment_list(), quota, self.memory_default, len(inventory)
            )
        except OptionsError as e:
            raise SpawnRefused(str(e), reason="options") from None
        self.image = opts.environment.image
        self.mem_limit = opts.mem
        self.volumes = self.volumes_for_user()
        try:
            holding = await self.allocator.reserve(self.user.name, self.name or "", opts.gpus, quota.gpus)
        except (NotEnoughGPUs, QuotaExceeded) as e:
            raise SpawnRefused(str(e), reason="gpus", status_code=409) from None
        self.gpu_ids = list(holding.gpu_ids)
        what = f"{len(self.gpu_ids)} GPU(s) ({', '.join(self.gpu_ids)})" if self.gpu_ids else "no GPU"
        self._emit(5, f"{opts.environment.label}, {what}, {opts.mem // 1024**2} MiB of memory")

    async def start(self):
        self._events = []
        self._spawn_done = False
        self._emit(0, "Server requested")
        try:
            await self.apply_options()
            ip_port = await super().start()
        except BaseException as e:
            # refused, failed, or cancelled (start_timeout, the user's cancel): no
            # container, and so no GPU, stays behind
            await self._remove_failed()
            if isinstance(e, APIError):
                detail = e.explanation or str(e)
                raise SpawnRefused(
                    f"Docker could not start your server: {detail}. "
                    "Ask an admin to check the hub's log.",
                    reason="docker",
                    status_code=500,
                ) from None
            raise
        else:
            self._emit(80, "Container running; waiting for Jupyter to answer")
            return ip_port
        finally:
            self.allocator.settle(self.user.name, self.name or "")
            self._spawn_done = True

    def get_state(self):
        state = super().get_state()
        if self.gpu_ids:
            state["gpu_ids"] = list(self.gpu_ids)
        return state

    def load_state(self, state):
        super().load_state(state)
        self.gpu_ids = list(state.get("gpu_ids", []))

    def clear_state(self):
        super().clear_state()
        self.gpu_ids = []

    async def poll(self):
        """DockerSpawner's poll; a container that is not running is removed (with
        ``remove``, as set by the wiring), so that one created but never started
        (a spawn cancelled while the engine created it) releases its GPUs."""
        status = await super().poll()
        if status is not None and self.remove and self.object_id:
            await self.remove_object()
            self.object_id = ""
        return status

    async def _remove_failed(self) -> None:
        """Never leave a half-created container behind."""
        if not self.object_id:
            # the create call may have finished after we stopped waiting for it
            try:
                obj = await self.get_object()
            except Exception:  # pragma: no cover - best effort; poll() removes it later
                self.log.warning("Could not look for a failed container %s", self.object_name)
                return
            if obj is None or obj["State"].get("Running"):
                self.object_id = ""
                return
        try:
            await self.remove_object()
        except Exception:  # pragma: no cover - best effort, logged
            self.log.exception("Could not remove failed container %s", self.object_name)
        self.object_id = ""
        self.clear_state()
