"""Turn validated :class:`hub.settings.Settings` into JupyterHub configuration.

``jupyterhub_config.py`` calls :func:`configure` and nothing else, so the whole
mapping from settings to config is here and unit-tested.
"""

from __future__ import annotations

import os

from .admin_cli import SERVICE_NAME as ADMIN_SERVICE
from .admin_gpus import HANDLERS as GPU_HANDLERS
from .auth import configure_authenticator
from .culling import configure_culling
from .secrets import ensure
from .services import configure_services
from .upstream_fixes import apply_all as apply_upstream_fixes
from .settings import Settings
from .spawner import MlhubSpawner

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


def configure(
    c, settings: Settings, *, read_secrets: bool = True, oidc_urls: dict | None = None
) -> None:
    """Apply ``settings`` to the traitlets config object ``c``.

    ``oidc_urls``: the OIDC endpoints resolved by :mod:`hub.preflight`."""
    apply_upstream_fixes()
    hub = c.JupyterHub
    hub.log_level = settings.log_level
    hub.db_url = settings.db_url
    hub.bind_url = "http://:8000"  # the proxy's public side, inside the compose network
    hub.hub_bind_url = "http://0.0.0.0:8081"
    hub.hub_connect_url = settings.hub_connect_url
    # Running servers outlive a hub restart or upgrade; the hub reattaches to them.
    hub.cleanup_servers = False
    hub.allow_named_servers = settings.named_servers > 0
    hub.named_server_limit_per_user = settings.named_servers
    hub.cookie_secret_file = os.path.join(settings.secrets_dir, "cookie_secret")

    # configurable-http-proxy runs as its own compose service, so a hub restart
    # does not drop users' open connections.
    proxy = c.ConfigurableHTTPProxy
    proxy.should_start = False
    proxy.api_url = settings.proxy_api_url
    # The proxy keeps its routes in memory: after it restarts (crash, upgrade) the
    # hub puts them back at its next route check, run with the activity update.
    # JupyterHub's default (300 s) would leave every server unreachable for minutes.
    hub.last_activity_interval = 15
    if read_secrets:
        proxy.auth_token = ensure(settings.secrets_dir, "proxy_token")
        ensure(settings.secrets_dir, "cookie_secret")
        ensure(settings.secrets_dir, "admin_password")
        # `mlhub-admin` (docker compose exec hub mlhub-admin ...). JupyterHub lets
        # only admins grant admin rights, so this service is an admin; its token
        # lives only in the secrets volume (mode 0600), readable in the hub container.
        hub.services = [
            {
                "name": ADMIN_SERVICE,
                "api_token": ensure(settings.secrets_dir, "admin_api_token"),
                "admin": True,
            }
        ]

    # /hub/gpus and /hub/api/gpus: who holds which GPU (admins)
    hub.extra_handlers = list(GPU_HANDLERS)
    hub.template_paths = [TEMPLATES]

    hub.spawner_class = MlhubSpawner
    sp = c.MlhubSpawner
    sp.image = settings.notebook_image
    sp.prefix = f"{settings.prefix}-nb"
    sp.home_volume_template = settings.prefix + "-home-{username}"
    sp.home_path = settings.notebook_home
    sp.notebook_dir = settings.notebook_home
    sp.notebook_user = settings.notebook_user
    sp.network_name = settings.network
    sp.use_internal_ip = True
    sp.remove = True  # containers are disposable; the home volume is what persists
    sp.pull_policy = "ifnotpresent"
    sp.mem_limit = settings.mem_limit
    sp.memory_default = settings.mem_limit
    sp.default_mem_quota = settings.default_mem_quota
    sp.environments = [list(e) for e in settings.environments]
    sp.gpus = settings.gpus
    sp.reserved_gpus = list(settings.reserved_gpus)
    sp.gpu_sharing = settings.gpu_sharing
    sp.default_gpu_quota = settings.default_gpu_quota
    sp.cpu_limit = settings.cpu_limit
    sp.docker_concurrency = settings.docker_concurrency
    sp.start_timeout = settings.spawn_timeout
    sp.http_timeout = settings.http_timeout
    sp.default_url = "/lab"
    sp.debug = settings.log_level == "DEBUG"

    configure_services(c, settings, read_secrets=read_secrets)
    configure_culling(c, settings)
    configure_authenticator(c, settings, oidc_urls or {})
