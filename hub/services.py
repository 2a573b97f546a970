"""Hub services (models; later Airflow): registration, roles and the scopes
that users' browsers and notebook tokens get for them.

Each service runs in its own container and is reached through the hub's proxy
at /services/<name>/, behind the hub's login (hub OAuth for browsers, hub
tokens for API clients). Its API token is generated into the service-secrets
volume by the compose ``setup`` service.
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


def configure_services(c, settings: Settings, read_secrets: bool = True) -> None:
    hub = c.JupyterHub
    services = list(hub.services) if "services" in hub else []
    roles = list(hub.load_roles) if "load_roles" in hub else []
    access = service_scopes(settings)
    if settings.models:
        services.append(
            {
                "name": MODELS,
                "url": settings.models_url,
                "display": True,
                # a service of this hub: no "authorize access?" page on first visit
                "oauth_no_confirm": True,
                "oauth_redirect_uri": f"/services/{MODELS}/oauth_callback",
                "info": {"description": "Publish TensorFlow models and get predictions (TF Serving)"},
                **(
                    {"api_token": ensure(settings.service_secrets_dir, "models_api_token")}
                    if read_secrets
                    else {}
                ),
            }
        )
        # the service reads users' admin flag and groups to decide who may change a model
        roles.append({"name": "models-service", "scopes": ["read:users"], "services": [MODELS]})
    if settings.airflow:
        services.append(
            {
                "name": AIRFLOW,
                "url": settings.airflow_url,
                "display": True,
                "oauth_no_confirm": True,
                # FAB builds the callback from the public URL the browser used
                "oauth_redirect_uri": settings.public_url + AIRFLOW_CALLBACK,
                "info": {"description": "Pipelines (Apache Airflow), signed in as yourself"},
                **(
                    {"api_token": ensure(settings.airflow_secrets_dir, "airflow_api_token")}
                    if read_secrets
                    else {}
                ),
            }
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
        # the team's DAGs folder, parsed by Airflow, in every notebook
        c.MlhubSpawner.shared_volumes = {f"{settings.prefix}-airflow-dags": settings.airflow_dags_path}
    if settings.models:
        c.Spawner.environment = {
            **(c.Spawner.environment if "environment" in c.Spawner else {}),
            "MLHUB_MODELS_URL": f"{settings.models_url}/services/{MODELS}",
        }
