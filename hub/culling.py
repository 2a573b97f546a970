"""Idle culling: jupyterhub-idle-culler as a hub-managed service.

Servers nobody uses are stopped after ``MLHUB_CULL_IDLE_TIMEOUT`` seconds, so
idle GPUs and memory go back to the team; the container is removed (as on any
stop) and the user's home volume is kept. Users are never deleted. The culler
runs inside the hub container, started and restarted by the hub, with a role
that can list users, read their activity and stop servers, nothing more.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from .settings import Settings

SERVICE_NAME = "idle-culler"
ROLE = {
    "name": SERVICE_NAME,
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": [SERVICE_NAME],
}


def culler_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={settings.cull_idle_timeout}",
        f"--cull-every={settings.cull_every}",
        f"--max-age={settings.cull_max_age}",
    ]


def configure_culling(c, settings: Settings) -> None:
    """Add the culler service and its role, unless culling is off (timeout 0
    and no maximum age)."""
    if not settings.cull_idle_timeout and not settings.cull_max_age:
        return
    hub = c.JupyterHub
    if not settings.cull_idle_timeout:
        # only the age limit: an idle timeout no server reaches
        settings = replace(settings, cull_idle_timeout=10 * 365 * 24 * 3600)
    services = list(hub.services) if "services" in hub else []
    roles = list(hub.load_roles) if "load_roles" in hub else []
    services.append({"name": SERVICE_NAME, "command": culler_command(settings)})
    roles.append(dict(ROLE))
    hub.services = services
    hub.load_roles = roles

