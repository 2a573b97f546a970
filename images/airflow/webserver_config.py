"""Airflow's FAB auth manager, signing people in through JupyterHub (single sign-on).

JupyterHub is Airflow's OAuth2 provider: the hub service ``airflow`` is an
OAuth client of the hub. Opening Airflow sends the browser straight to the hub
(no Airflow login form, no second password); the hub asks nothing more of a
signed-in user (``oauth_no_confirm``) and sends them back. Airflow then reads
who they are and, with its own service token, their admin flag and groups, and
sets their Airflow role at every sign-in:

    hub admin                          -> Admin
    member of MLHUB_AIRFLOW_OP_GROUP   -> Op
    everyone else allowed in           -> MLHUB_AIRFLOW_DEFAULT_ROLE (Viewer or User)

Configuration comes from the environment set in docker-compose.yml.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import quote

import requests
from airflow.providers.fab.auth_manager.security_manager.override import (
    FabAirflowSecurityManagerOverride,
)
from flask_appbuilder import expose
from flask_appbuilder.security.manager import AUTH_OAUTH

log = logging.getLogger("mlhub.airflow.sso")

PROVIDER = "jupyterhub"
PUBLIC_URL = os.environ.get("MLHUB_PUBLIC_URL", "http://localhost:8000").rstrip("/")
HUB_API = os.environ.get("JUPYTERHUB_API_URL", "http://hub:8081/hub/api").rstrip("/")
OP_GROUP = os.environ.get("MLHUB_AIRFLOW_OP_GROUP", "airflow-ops")
DEFAULT_ROLE = os.environ.get("MLHUB_AIRFLOW_DEFAULT_ROLE", "User")
TOKEN_FILE = os.path.join(os.environ.get("MLHUB_AIRFLOW_SECRETS_DIR", "/srv/airflow-secrets"), "airflow_api_token")


def _service_token() -> str:
    with open(TOKEN_FILE) as f:
        return f.read().strip()


WTF_CSRF_ENABLED = True
AUTH_TYPE = AUTH_OAUTH
AUTH_USER_REGISTRATION = True
# FAB adds the registration role to everyone at every sign-in: a role without
# permissions, so that each user's roles are exactly the mapped one.
AUTH_USER_REGISTRATION_ROLE = "Public"
AUTH_ROLES_SYNC_AT_LOGIN = True
AUTH_ROLES_MAPPING = {
    "hub-admin": ["Admin"],
    "hub-op": ["Op"],
    "hub-member": [DEFAULT_ROLE],
}
OAUTH_PROVIDERS = [
    {
        "name": PROVIDER,
        "icon": "fa-circle",
        "token_key": "access_token",
        "remote_app": {
            "client_id": "service-airflow",
            "client_secret": _service_token(),
            # the browser goes to the hub's public URL; Airflow calls the hub directly
            "authorize_url": f"{PUBLIC_URL}/hub/api/oauth2/authorize",
            "access_token_url": f"{HUB_API}/oauth2/token",
            "api_base_url": f"{HUB_API}/",
            "client_kwargs": {"token_endpoint_auth_method": "client_secret_post"},
        },
    }
]


def hub_user(name: str) -> dict:
    """Admin flag and groups of a hub user, read with Airflow's service token."""
    r = requests.get(
        f"{HUB_API}/users/{quote(name, safe='@~')}",
        headers={"Authorization": f"token {_service_token()}"},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()


def role_keys(user: dict) -> list[str]:
    if user.get("admin"):
        return ["hub-admin"]
    if OP_GROUP in (user.get("groups") or []):
        return ["hub-op"]
    return ["hub-member"]


class HubSecurityManager(FabAirflowSecurityManagerOverride):
    def get_oauth_user_info(self, provider, resp):
        if provider != PROVIDER:
            return super().get_oauth_user_info(provider, resp)
        me = self.appbuilder.sm.oauth_remotes[provider].get("user").json()
        name = me["name"]
        keys = role_keys(hub_user(name))
        log.info("hub user %s signs in to Airflow as %s", name, keys)
        return {
            "username": name,
            "first_name": name,
            "last_name": "",
            "email": f"{name}@users.mlhub",
            "role_keys": keys,
        }


def _single_provider_login_view(base):
    """Skip FAB's "choose a provider" page: there is one, the hub."""

    class HubAuthOAuthView(base):
        @expose("/login/")
        @expose("/login/<provider>")
        def login(self, provider=None):
            return super().login(provider or PROVIDER)

    return HubAuthOAuthView


HubSecurityManager.authoauthview = _single_provider_login_view(
    FabAirflowSecurityManagerOverride.authoauthview
)
SECURITY_MANAGER_CLASS = HubSecurityManager
