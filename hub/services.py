"""Hub services (models, Airflow): registration, roles, the scopes users'
browsers and notebook tokens get for them, and what the hub's logout ends.

Each service runs in its own container and is reached through the hub's proxy
at /services/<name>/, behind the hub's login (hub OAuth for browsers, hub
tokens for API clients). Its API token is generated into that service's
secrets volume by the compose ``setup`` service.
"""

from __future__ import annotations

from .secrets import ensure
from .settings import Settings

MODELS = "models"
AIRFLOW = "airflow"
#: FAB's OAuth callback under Airflow's base URL (/services/airflow)
AIRFLOW_CALLBACK = "/services/airflow/auth/oauth-authorized/jupyterhub"


def service_scopes(settings: Settings) -> list[str]:
    """Access scopes every user (and every notebook token) gets: the services
    open to all members."""
    scopes = []
    if settings.models:
        scopes.append(f"access:services!service={MODELS}")
    if settings.airflow and not settings.airflow_group:
        scopes.append(f"access:services!service={AIRFLOW}")
    return scopes


def _service(name: str, url: str, redirect_uri: str, description: str, token: str | None) -> dict:
    """A service in the hub's Services menu, signing browsers in through the hub."""
    spec = {
        "name": name,
        "url": url,
        "display": True,
        # a service of this hub: no "authorize access?" page on first visit
        "oauth_no_confirm": True,
        "oauth_redirect_uri": redirect_uri,
        "info": {"description": description},
    }
    if token:
        spec["api_token"] = token
    return spec


def configure_services(c, settings: Settings, read_secrets: bool = True) -> None:
    hub = c.JupyterHub
    services = list(hub.services) if "services" in hub else []
    roles = list(hub.load_roles) if "load_roles" in hub else []
    access = service_scopes(settings)
    if settings.models:
        services.append(
            _service(
                MODELS, settings.models_url, f"/services/{MODELS}/oauth_callback",
                "Publish TensorFlow models and get predictions (TF Serving)",
                ensure(settings.service_secrets_dir, "models_api_token") if read_secrets else None,
            )
        )
        # the service reads users' admin flag and groups to decide who may change a model
        roles.append({"name": "models-service", "scopes": ["read:users"], "services": [MODELS]})
    if settings.airflow:
        services.append(
            _service(
                # FAB builds the callback from the public URL the browser used
                AIRFLOW, settings.airflow_url, settings.public_url + AIRFLOW_CALLBACK,
                "Pipelines (Apache Airflow), signed in as yourself",
                ensure(settings.airflow_secrets_dir, "airflow_api_token") if read_secrets else None,
            )
        )
        # Airflow reads users' admin flag and groups to set their Airflow role, and
        # its DAG tasks may publish to the models service with its token.
        roles.append(
            {
                "name": "airflow-service",
                "scopes": ["read:users", *([f"access:services!service={MODELS}"] if settings.models else [])],
                "services": [AIRFLOW],
            }
        )
        if settings.airflow_group:
            roles.append(
                {
                    "name": "airflow-users",
                    "scopes": [f"access:services!service={AIRFLOW}"],
                    "groups": [settings.airflow_group],
                }
            )
    # every signed-in member may reach the services (finer rules live in each service)
    roles.append({"name": "user", "scopes": ["self", *access]})
    hub.services = services
    hub.load_roles = roles
    # the hub's logout also ends the services' own sessions
    logout_urls = []
    if settings.airflow:
        # the API's logout revokes Airflow's JWT; FAB's ends its session (Airflow
        # sends the browser there by an absolute path that loses /services/airflow,
        # so it is called directly)
        logout_urls.append(f"/services/{AIRFLOW}/api/v2/auth/logout")
        logout_urls.append(f"/services/{AIRFLOW}/auth/logout/")
    if settings.models:
        logout_urls.append(f"/services/{MODELS}/logout")
    c.Authenticator.service_logout_urls = logout_urls
    # a notebook's own token reaches its server, the hub's activity API and the
    # services; nothing more (e.g. mlhub_models.publish uses it)
    c.Spawner.server_token_scopes = ["access:servers!server", "users:activity!user", *access]
    if settings.airflow:
        # the team's DAGs folder, parsed by Airflow, in the notebooks of those let into Airflow
        dags = f"{settings.prefix}-airflow-dags"
        c.MlhubSpawner.shared_volumes = {dags: settings.airflow_dags_path}
        if settings.airflow_group:
            # a DAG file is code Airflow runs with its own secrets: only users let
            # into Airflow (that group, and hub admins) may write them
            c.MlhubSpawner.shared_volume_groups = {dags: settings.airflow_group}
    if settings.models:
        c.Spawner.environment = {
            **(c.Spawner.environment if "environment" in c.Spawner else {}),
            "MLHUB_MODELS_URL": f"{settings.models_url}/services/{MODELS}",
        }
