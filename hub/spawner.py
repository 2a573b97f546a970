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
from dockerspawner import DockerSpawner
from traitlets import Dict, Integer, Unicode, default

from .errors import SpawnRefused
from .naming import safe_name

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
        return {self.home_volume_template: self.home_path}

    @property
    def home_volume_name(self) -> str:
        return self.format_volume_name(self.home_volume_template, self)

    def docker_labels(self) -> dict[str, str]:
        labels = {
            LABEL_PREFIX + "user": self.user.name,
            LABEL_PREFIX + "server": self.name or "",
            LABEL_PREFIX + "component": "notebook",
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
        return {
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
        }

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

    async def start(self):
        self._events = []
        self._spawn_done = False
        self._emit(0, "Server requested")
        try:
            ip_port = await super().start()
        except SpawnRefused:
            await self._remove_failed()
            raise
        except APIError as e:
            await self._remove_failed()
            detail = e.explanation or str(e)
            raise SpawnRefused(
                f"Docker could not start your server: {detail}. "
                "Ask an admin to check the hub's log.",
                reason="docker",
                status_code=500,
            ) from None
        else:
            self._emit(80, "Container running; waiting for Jupyter to answer")
            return ip_port
        finally:
            self._spawn_done = True

    async def _remove_failed(self) -> None:
        """Never leave a half-created container behind."""
        if not self.object_id:
            return
        try:
            await self.remove_object()
        except Exception:  # pragma: no cover - best effort, logged
            self.log.exception("Could not remove failed container %s", self.object_name)
        self.object_id = ""
        self.clear_state()
