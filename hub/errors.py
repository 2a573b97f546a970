"""Refusals users see: a message saying what happened and what to do, never a traceback."""

from __future__ import annotations

from tornado import web

try:  # JupyterHub 6 names this; on 5.x we provide the same shape.
    from jupyterhub.spawner import SpawnException as _Base
except ImportError:  # pragma: no cover - depends on the installed JupyterHub
    _Base = web.HTTPError


class SpawnRefused(_Base):
    """A spawn refused by policy or by the engine, with a message for the user.

    JupyterHub shows ``jupyterhub_message`` on the spawn page and in the REST
    API's error, instead of a generic failure.
    """

    def __init__(self, message: str, *, reason: str, status_code: int = 400):
        if _Base is web.HTTPError:
            super().__init__(status_code, log_message=message, reason=None)
        else:
            super().__init__(message, reason=reason, status_code=status_code)
        self.jupyterhub_message = message
        self.refusal_reason = reason

    def __str__(self) -> str:
        return self.jupyterhub_message
