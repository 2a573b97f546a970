"""Fixes for upstream bugs that hit this platform, applied when the hub loads
its configuration. Each says which versions it is for; each is a no-op where
the bug is absent.

1. JupyterHub 5.5.3 and 5.5.4: ``PATCH /hub/api/users/NAME`` with a body that
   repeats the user's current name (the admin page's "Edit User" sends
   ``{"name": "frank", "admin": true}``) sets the name to None: the user
   vanishes from the API and ``GET /hub/api/users`` fails with a 500 (the
   admin page goes blank). 5.5.2 and earlier are not affected. Dropping a
   ``name`` equal to the current one from the body before the handler reads it
   changes nothing else.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers.users import UserAPIHandler

_MARK = "_mlhub_patch_same_name_fixed"


def fix_patch_same_name() -> None:
    if getattr(UserAPIHandler, _MARK, False):
        return
    original = UserAPIHandler.patch

    async def patch(self, user_name):
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            data = None  # the handler reports the bad body itself
        if isinstance(data, dict) and data.get("name") == user_name:
            del data["name"]
            self.request.body = json.dumps(data).encode()
        return await original(self, user_name)

    patch.__doc__ = original.__doc__
    UserAPIHandler.patch = patch
    setattr(UserAPIHandler, _MARK, True)


def apply_all() -> None:
    fix_patch_same_name()
