"""Every platform setting, read from the environment in one place and validated.

The environment is the single source of values (``.env`` for docker compose;
``.env.example`` documents each variable with its default). ``load_settings``
checks all of them at once and raises :class:`SettingsError` listing every bad
value with the variable's name and what it expects, so a misconfigured hub stops
before it starts instead of failing later with a traceback.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

PREFIX = "MLHUB_"


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` holds one line per variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "Invalid configuration (fix these in .env, then start again):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


# ---------------------------------------------------------------- parsers
# Each parser takes the raw string and returns the value, or raises ValueError
# with what it expects; the variable's name is added by the loader.

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_MAX_SIZE = 1024**5


def parse_size(raw: str) -> int:
    """'512M', '4G', '1.5g', '1073741824' -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:i?[bB]?)\s*", raw)
    if not m:
        raise ValueError("a size such as 512M, 4G or 16G")
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if not value <= _MAX_SIZE:  # also catches inf from a very long digit string
        raise ValueError("a size of at most 1024T")
    value = int(value)
    if value < 64 * 1024**2:
        raise ValueError("at least 64M (a notebook server needs more than that)")
    return value


def parse_cpus(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("a number of CPUs such as 0.5, 2 or 8") from None
    if not 0 < value <= 1024:
        raise ValueError("a number of CPUs greater than 0, such as 0.5, 2 or 8")
    return value


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def int_between(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"a whole number from {lo} to {hi}")
        return value

    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("one of: " + ", ".join(choices))
        return value

    return parse


def parse_public_url(raw: str) -> str:
    value = parse_http_url(raw)
    if urlparse(value).path not in ("", "/"):
        raise ValueError(
            "the URL of the hub at the root of its host name, without a path, e.g. "
            "https://ml.example.org (serving under a path is not supported)"
        )
    return value


def parse_http_url(raw: str) -> str:
    url = urlparse(raw.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError("an http(s) URL such as https://hub.example.org")
    if url.query or url.fragment:
        raise ValueError("a URL without ?query or #fragment")
    return raw.strip().rstrip("/")


_USERNAME_BAD = re.compile(r"[\s,/]")


def parse_user_list(raw: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if _USERNAME_BAD.search(n)]
    if bad:
        raise ValueError(
            f"comma-separated usernames without spaces or '/', got {', '.join(bad)!s}"
        )
    return tuple(dict.fromkeys(names))


def parse_name_list(raw: str) -> tuple[str, ...]:
    """Comma-separated group/org names (case kept: providers differ)."""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if any(re.search(r"\s", n) for n in names):
        raise ValueError("comma-separated names without spaces, e.g. ml-team,acme:research")
    return tuple(dict.fromkeys(names))


def parse_token(raw: str) -> str:
    value = raw.strip()
    if re.search(r"\s", value):
        raise ValueError("a value without spaces (as the provider shows it)")
    return value


def parse_claim(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
        raise ValueError("a claim name such as preferred_username or groups")
    return value


def parse_optional_abs_path(raw: str) -> str:
    return parse_abs_path(raw) if raw.strip() else ""


def parse_scopes(raw: str) -> tuple[str, ...]:
    scopes = tuple(raw.split())
    if "openid" not in scopes or not all(re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", x) for x in scopes):
        raise ValueError("scopes separated by spaces, including openid, e.g. 'openid profile email groups'")
    return scopes


def parse_group(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}", value):
        raise ValueError("a hub group name (letters, digits, '.', '_', ':', '@', '-'), e.g. airflow-ops")
    return value


def parse_optional_group(raw: str) -> str:
    return parse_group(raw) if raw.strip() else ""


def parse_optional_url(raw: str) -> str:
    return parse_http_url(raw) if raw.strip() else ""


_DOCKER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,30}")


def parse_docker_name(raw: str) -> str:
    value = raw.strip()
    if not _DOCKER_NAME.fullmatch(value):
        raise ValueError(
            "lowercase letters, digits, '_', '.', '-' (at most 31, starting with a "
            "letter or digit), e.g. mlhub"
        )
    return value


_IMAGE = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)


def parse_image(raw: str) -> str:
    value = raw.strip()
    if not _IMAGE.fullmatch(value):
        raise ValueError("an image reference such as mlhub/notebook:latest (lowercase name)")
    return value


def parse_db_url(raw: str) -> str:
    value = raw.strip()
    if value.startswith("sqlite:///"):
        return value
    m = re.fullmatch(r"postgres(?:ql)?(?:\+(\w+))?(://.+)", value)
    if m:
        # SQLAlchemy knows only 'postgresql'; 'postgres://' is a common spelling.
        # The hub image ships psycopg 3, so that driver is named explicitly (an
        # older SQLAlchemy would otherwise look for psycopg2).
        if m.group(1) not in (None, "psycopg"):
            raise ValueError(
                f"postgresql://USER:PASSWORD@HOST/DB (driver '{m.group(1)}' is not installed; "
                "the hub uses psycopg 3: leave the driver out)"
            )
        return "postgresql+psycopg" + m.group(2)
    raise ValueError(
        "sqlite:////path/to/jupyterhub.sqlite or postgresql://USER:PASSWORD@HOST/DB"
    )


def parse_uid_gid(raw: str) -> str:
    m = re.fullmatch(r"(\d+)(?::(\d+))?", raw.strip())
    if not m:
        raise ValueError("UID or UID:GID as numbers, e.g. 1000:100")
    if int(m.group(1)) == 0:
        raise ValueError("a non-root UID (not 0): notebooks never run as root")
    return raw.strip()


def parse_abs_path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/"):
        raise ValueError("an absolute path, e.g. /home/jovyan")
    return value.rstrip("/") or "/"


def parse_gpus(raw: str) -> str | tuple[str, ...]:
    value = raw.strip().lower()
    if value in ("auto", "none"):
        return value
    ids = tuple(i.strip() for i in raw.split(",") if i.strip())
    if not ids or not all(re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+", i) for i in ids):
        raise ValueError("auto, none, or GPU indices / UUIDs separated by commas, e.g. 0,1,2,3")
    if len(set(ids)) != len(ids):
        raise ValueError("each GPU listed once")
    return ids


def parse_gpu_id(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+", value):
        raise ValueError("one GPU index or UUID, e.g. 0 or GPU-5f1c...")
    return value


def parse_optional_size(raw: str) -> int | None:
    return parse_size(raw) if raw.strip() else None


def env_key(label: str) -> str:
    """The key of an environment (its form value and user_options value): the label in
    lowercase, runs of anything but letters and digits (any script) as one '-'."""
    return re.sub(r"[\W_]+", "-", label.lower()).strip("-") or "default"


def parse_environments(raw: str) -> tuple[tuple[str, str], ...]:
    """'Label=image;Label 2=image2' -> ((label, image), ...); '' -> ()."""
    out = []
    keys: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(";")):
        if not part:
            continue
        label, sep, image = part.partition("=")
        if not sep or not label.strip() or not _IMAGE.fullmatch(image.strip()):
            raise ValueError(
                "entries 'Label=image' separated by ';', e.g. "
                "TensorFlow (CUDA)=mlhub/notebook:latest;Minimal=quay.io/jupyter/base-notebook:latest"
            )
        label = label.strip()
        other = keys.setdefault(env_key(label), label)
        if other != label:
            raise ValueError(
                f"environment labels that differ in more than punctuation and case: "
                f"{other!r} and {label!r} would be the same choice; rename one"
            )
        out.append((label, image.strip()))
    return tuple(out)


def parse_log_level(raw: str) -> str:
    return one_of("debug", "info", "warning", "error")(raw).upper()


# ---------------------------------------------------------------- the settings


def setting(env: str, default: str, parse: Callable[[str], Any], help: str) -> Any:
    """Declare one setting: its variable, default (as the string a user would write),
    parser and help. The help text is copied into .env.example."""
    from dataclasses import field

    return field(metadata={"env": env, "default": default, "parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    public_url: str = setting(
        "MLHUB_PUBLIC_URL", "http://localhost:8000", parse_public_url,
        "URL users open in their browser; used for links and OAuth callbacks. "
        "Example: https://ml.example.org",
    )
    http_port: int = setting(
        "MLHUB_HTTP_PORT", "8000", int_between(1, 65535),
        "Host port the proxy publishes (compose). Example: 443 behind TLS, 8000 to try it.",
    )
    admin_users: tuple = setting(
        "MLHUB_ADMIN_USERS", "", parse_user_list,
        "Comma-separated usernames that are hub admins. Empty = 'admin' with native "
        "accounts (each native admin gets a generated first password, see README "
        "'First login'); with OAuth/OIDC, empty = admins only from MLHUB_ADMIN_GROUPS. "
        "Example: alice,bob",
    )
    authenticator: str = setting(
        "MLHUB_AUTHENTICATOR", "native", one_of("native", "oidc", "github", "gitlab"),
        "How people sign in. native = hub accounts: people sign up in the browser "
        "and an admin approves them (no outside identity provider needed); oidc = "
        "any OpenID Connect provider (Keycloak, Authentik, Entra ID, Okta, Google); "
        "github; gitlab. Switching keeps users' servers and files when usernames match.",
    )
    signup: str = setting(
        "MLHUB_SIGNUP", "approval", one_of("approval", "open", "closed"),
        "native sign-up: approval = anyone may ask, an admin approves; open = "
        "accounts work at once; closed = only admins create accounts.",
    )
    oauth_client_id: str = setting(
        "MLHUB_OAUTH_CLIENT_ID", "", parse_token,
        "OAuth client id of the hub, registered at the identity provider (oidc, github, gitlab).",
    )
    oauth_client_secret: str = setting(
        "MLHUB_OAUTH_CLIENT_SECRET", "", parse_token,
        "OAuth client secret. Prefer MLHUB_OAUTH_CLIENT_SECRET_FILE (a file, e.g. a "
        "Docker secret) so the secret is not in the environment.",
    )
    oauth_client_secret_file: str = setting(
        "MLHUB_OAUTH_CLIENT_SECRET_FILE", "", parse_optional_abs_path,
        "File holding the OAuth client secret (read at startup). Example: /run/secrets/oauth",
    )
    oauth_callback_url: str = setting(
        "MLHUB_OAUTH_CALLBACK_URL", "", parse_optional_url,
        "Callback URL registered at the provider. Empty = MLHUB_PUBLIC_URL + "
        "/hub/oauth_callback, which is what it must be.",
    )
    oauth_login_service: str = setting(
        "MLHUB_OAUTH_LOGIN_SERVICE", "", str.strip,
        "Name on the 'Sign in with ...' button. Empty = the provider's name. Example: Acme SSO",
    )
    allowed_users: tuple = setting(
        "MLHUB_ALLOWED_USERS", "", parse_user_list,
        "OAuth/OIDC: comma-separated usernames allowed to sign in (besides allowed groups).",
    )
    allowed_groups: tuple = setting(
        "MLHUB_ALLOWED_GROUPS", "", parse_name_list,
        "OAuth/OIDC: who may sign in, by group. oidc: values of the groups claim; github: "
        "organizations or org:team; gitlab: group paths. Example: ml-team,research",
    )
    admin_groups: tuple = setting(
        "MLHUB_ADMIN_GROUPS", "", parse_name_list,
        "oidc/github: members of these provider groups (org:team on GitHub) are hub admins, "
        "re-checked at every sign-in.",
    )
    allow_all: bool = setting(
        "MLHUB_ALLOW_ALL", "false", parse_bool,
        "OAuth/OIDC: let in everyone the provider authenticates. Off by default: set "
        "allowed users or groups instead.",
    )
    oidc_issuer: str = setting(
        "MLHUB_OIDC_ISSUER", "", parse_optional_url,
        "OIDC issuer URL; its /.well-known/openid-configuration fills the three URLs "
        "below at startup. Example: https://sso.example.org/realms/acme",
    )
    oidc_authorize_url: str = setting(
        "MLHUB_OIDC_AUTHORIZE_URL", "", parse_optional_url,
        "OIDC authorization endpoint (the browser is sent there). Overrides discovery.",
    )
    oidc_token_url: str = setting(
        "MLHUB_OIDC_TOKEN_URL", "", parse_optional_url,
        "OIDC token endpoint (the hub calls it). Overrides discovery.",
    )
    oidc_userinfo_url: str = setting(
        "MLHUB_OIDC_USERINFO_URL", "", parse_optional_url,
        "OIDC userinfo endpoint (the hub calls it). Overrides discovery.",
    )
    oidc_logout_url: str = setting(
        "MLHUB_OIDC_LOGOUT_URL", "", parse_optional_url,
        "Where the browser goes after signing out of the hub, e.g. the provider's "
        "end-session endpoint, to sign out there too. Empty = the hub's login page.",
    )
    oidc_scopes: tuple = setting(
        "MLHUB_OIDC_SCOPES", "openid profile email", parse_scopes,
        "Scopes requested, separated by spaces. Add the scope that releases the groups "
        "claim if your provider needs one (e.g. 'groups').",
    )
    oidc_username_claim: str = setting(
        "MLHUB_OIDC_USERNAME_CLAIM", "preferred_username", parse_claim,
        "Userinfo claim that becomes the hub username.",
    )
    oidc_groups_claim: str = setting(
        "MLHUB_OIDC_GROUPS_CLAIM", "groups", parse_claim,
        "Userinfo claim listing the user's groups; they become hub groups (GPU quotas "
        "and service roles hang on them).",
    )
    github_url: str = setting(
        "MLHUB_GITHUB_URL", "https://github.com", parse_http_url,
        "GitHub or GitHub Enterprise Server URL.",
    )
    gitlab_url: str = setting(
        "MLHUB_GITLAB_URL", "https://gitlab.com", parse_http_url,
        "GitLab URL, for self-hosted GitLab. Example: https://gitlab.example.org",
    )
    prefix: str = setting(
        "MLHUB_PREFIX", "mlhub", parse_docker_name,
        "Prefix of the Docker containers and volumes the hub creates for users "
        "(<prefix>-nb-<user>, <prefix>-home-<user>). Change it only on a fresh install.",
    )
    network: str = setting(
        "MLHUB_NETWORK", "mlhub", parse_docker_name,
        "Docker network shared by the proxy, the hub and every notebook container.",
    )
    notebook_image: str = setting(
        "MLHUB_NOTEBOOK_IMAGE", "mlhub/notebook:latest", parse_image,
        "Image of the users' notebook containers (built from images/notebook/).",
    )
    mem_limit: int = setting(
        "MLHUB_NOTEBOOK_MEM_LIMIT", "8G", parse_size,
        "Memory limit of each notebook container, enforced by the engine (the kernel "
        "is killed past it). Units K, M, G. Example: 16G",
    )
    cpu_limit: float = setting(
        "MLHUB_NOTEBOOK_CPU_LIMIT", "4", parse_cpus,
        "CPU limit of each notebook container, in CPUs (fractions allowed). Example: 2",
    )
    notebook_user: str = setting(
        "MLHUB_NOTEBOOK_USER", "1000:100", parse_uid_gid,
        "UID:GID the notebook server runs as; never root. Matches the image's user "
        "(jovyan, 1000:100 in Jupyter docker-stacks images).",
    )
    notebook_home: str = setting(
        "MLHUB_NOTEBOOK_HOME", "/home/jovyan", parse_abs_path,
        "Where each user's persistent volume is mounted in their container (their home).",
    )
    named_servers: int = setting(
        "MLHUB_NAMED_SERVERS", "3", int_between(0, 100),
        "How many named servers each user may run besides their default one; 0 disables them.",
    )
    cull_idle_timeout: int = setting(
        "MLHUB_CULL_IDLE_TIMEOUT", "3600", int_between(0, 30 * 24 * 3600),
        "Seconds without activity (no open notebook, terminal or running kernel) after "
        "which a server is stopped, freeing its GPUs and memory; its home is kept. "
        "0 = never. Keep it above 600: servers report activity every 5 minutes.",
    )
    cull_every: int = setting(
        "MLHUB_CULL_EVERY", "300", int_between(1, 24 * 3600),
        "How often, in seconds, the idle culler looks for idle servers.",
    )
    cull_max_age: int = setting(
        "MLHUB_CULL_MAX_AGE", "0", int_between(0, 365 * 24 * 3600),
        "Seconds after which a server is stopped even if it is busy (e.g. 604800 = one "
        "week, so nobody holds a GPU forever). 0 = no limit.",
    )
    db_url: str = setting(
        "MLHUB_DB_URL", "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite", parse_db_url,
        "Hub database. SQLite on the hub-data volume by default; for Postgres: "
        "postgresql://USER:PASSWORD@HOST:5432/DB",
    )
    secrets_dir: str = setting(
        "MLHUB_SECRETS_DIR", "/srv/jupyterhub/secrets", parse_abs_path,
        "Directory (a volume) where generated secrets live: cookie secret, proxy "
        "token, first admin password. Generated on first start, mode 0600.",
    )
    proxy_api_url: str = setting(
        "MLHUB_PROXY_API_URL", "http://proxy:8001", parse_http_url,
        "REST API of the configurable-http-proxy service (compose service 'proxy').",
    )
    hub_connect_url: str = setting(
        "MLHUB_HUB_CONNECT_URL", "http://hub:8081", parse_http_url,
        "URL at which the proxy and notebook containers reach the hub (compose service 'hub').",
    )
    spawn_timeout: int = setting(
        "MLHUB_SPAWN_TIMEOUT", "600", int_between(10, 3600),
        "Seconds a spawn may take before it is reported as failed (includes pulling "
        "an image the first time).",
    )
    http_timeout: int = setting(
        "MLHUB_HTTP_TIMEOUT", "120", int_between(5, 3600),
        "Seconds a started container has to answer HTTP before the spawn fails.",
    )
    docker_concurrency: int = setting(
        "MLHUB_DOCKER_CONCURRENCY", "16", int_between(1, 256),
        "Docker API calls the hub makes at once (so one slow spawn does not queue the others).",
    )
    gpus: Any = setting(
        "MLHUB_GPUS", "auto", parse_gpus,
        "GPUs the hub hands out. auto = ask the engine (a short nvidia-smi probe "
        "container; no NVIDIA support means CPU-only, no error); none = CPU-only; "
        "or a list of indices/UUIDs. Example: 0,1,2,3",
    )
    tf_serving_gpu: str = setting(
        "MLHUB_TF_SERVING_GPU", "0", parse_gpu_id,
        "GPU that docker-compose.gpu.yml gives TF Serving (index or UUID). When COMPOSE_FILE "
        "applies that file, the hub never hands this GPU to a user.",
    )
    gpu_sharing: int = setting(
        "MLHUB_GPU_SHARING", "1", int_between(1, 64),
        "Servers that may share one GPU. 1 = exclusive: a GPU is one server's alone.",
    )
    default_gpu_quota: int = setting(
        "MLHUB_DEFAULT_GPU_QUOTA", "1", int_between(0, 64),
        "GPUs a user may hold at once (all servers together) when no group of theirs "
        "sets gpu_quota. Admins set group quotas as group properties: "
        '{"gpu_quota": 2, "mem_quota": "32G"}.',
    )
    default_mem_quota: Any = setting(
        "MLHUB_DEFAULT_MEM_QUOTA", "", parse_optional_size,
        "Most memory a user may pick for one server when no group of theirs sets "
        "mem_quota. Empty = MLHUB_NOTEBOOK_MEM_LIMIT. Example: 32G",
    )
    environments: tuple = setting(
        "MLHUB_ENVIRONMENTS", "", parse_environments,
        "Environments offered in the spawn form, 'Label=image' separated by ';'. "
        "Empty = one, 'TensorFlow (CUDA)' from MLHUB_NOTEBOOK_IMAGE.",
    )
    models: bool = setting(
        "MLHUB_MODELS", "true", parse_bool,
        "Run the models hub service (TF Serving behind the hub's login, at /services/models/).",
    )
    models_url: str = setting(
        "MLHUB_MODELS_URL", "http://models:8000", parse_http_url,
        "Where the hub and notebooks reach the models service (compose service 'models').",
    )
    airflow: bool = setting(
        "MLHUB_AIRFLOW", "true", parse_bool,
        "Run Apache Airflow as a hub service at /services/airflow/ with single sign-on.",
    )
    airflow_url: str = setting(
        "MLHUB_AIRFLOW_URL", "http://airflow-api-server:8080", parse_http_url,
        "Where the hub reaches Airflow's api-server (compose service 'airflow-api-server').",
    )
    airflow_group: str = setting(
        "MLHUB_AIRFLOW_GROUP", "", parse_optional_group,
        "Hub group whose members may open Airflow (admins always may). Empty = every "
        "signed-in member. Example: airflow-users",
    )
    airflow_op_group: str = setting(
        "MLHUB_AIRFLOW_OP_GROUP", "airflow-ops", parse_group,
        "Hub group whose members are Airflow 'Op'. Hub admins are Airflow 'Admin'.",
    )
    airflow_default_role: str = setting(
        "MLHUB_AIRFLOW_DEFAULT_ROLE", "User", lambda raw: {"viewer": "Viewer", "user": "User"}[one_of("viewer", "user")(raw)],
        "Airflow role of everyone else who may open Airflow: Viewer or User (re-synced at every sign-in).",
    )
    airflow_dags_path: str = setting(
        "MLHUB_AIRFLOW_DAGS_PATH", "", parse_optional_abs_path,
        "Where the team's shared Airflow DAGs folder appears in every notebook; Airflow "
        "parses every .py file in it. Empty = airflow-dags in the home "
        "(MLHUB_NOTEBOOK_HOME/airflow-dags).",
    )
    airflow_secrets_dir: str = setting(
        "MLHUB_AIRFLOW_SECRETS_DIR", "/srv/airflow-secrets", parse_abs_path,
        "Directory (Airflow's secrets volume) holding Airflow's generated hub API token.",
    )
    service_secrets_dir: str = setting(
        "MLHUB_SERVICE_SECRETS_DIR", "/srv/service-secrets", parse_abs_path,
        "Directory (a volume shared with the services, not with notebooks) holding each "
        "hub service's generated API token.",
    )
    log_level: str = setting(
        "MLHUB_LOG_LEVEL", "info", parse_log_level,
        "Hub log level: debug, info, warning or error.",
    )
    # derived, not a variable: GPUs other containers of the stack hold (TF Serving's
    # when COMPOSE_FILE applies docker-compose.gpu.yml); never handed to users
    reserved_gpus: tuple = field(default=())


SETTINGS_FIELDS = {f.metadata["env"]: f for f in fields(Settings) if "env" in f.metadata}
GPU_OVERRIDE = "docker-compose.gpu.yml"

# Variables that .env carries for docker compose and the other services, not for the
# hub: (default, help[, parser]). Those with a parser are read by another service and
# checked here too, so that the hub (and `doctor`) name a bad value instead of that
# service restarting in a loop.
COMPOSE_ONLY = {
    "MLHUB_MODELS_PREDICT": ("members", "Who may ask models for predictions: members (everyone signed in) or owners (owner, its group, admins).", one_of("members", "owners")),
    "MLHUB_MODELS_MAX_UPLOAD": ("2G", "Largest SavedModel archive the models service accepts.", parse_size),
    "MLHUB_MODELS_IMAGE": ("mlhub/models:latest", "Tag of the models service image compose builds from images/models/."),
    "MLHUB_AIRFLOW_IMAGE": ("mlhub/airflow:latest", "Tag of the Airflow image compose builds from images/airflow/ (on apache/airflow)."),
    "MLHUB_AIRFLOW_POSTGRES_IMAGE": ("postgres:16", "Postgres image of Airflow's metadata database."),
    "MLHUB_TF_SERVING_IMAGE": ("tensorflow/serving:2.21.0", "TensorFlow Serving image (tensorflow/serving:2.21.0-gpu on GPU hosts)."),
    "MLHUB_BIND_ADDRESS": ("0.0.0.0", "Host address the proxy port is published on. Example: 127.0.0.1"),
    "MLHUB_HUB_IMAGE": ("mlhub/hub:latest", "Tag of the hub image compose builds from images/hub/."),
    "MLHUB_ENV_FILE": (".env", "File compose passes to the hub as its environment."),
}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every setting; raise SettingsError listing all problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for env, f in SETTINGS_FIELDS.items():
        raw = environ.get(env)
        if raw is None or raw.strip() == "":
            raw = f.metadata["default"]
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as e:
            problems.append(f"{env}={raw!r}: expected {e}")
    for env, (_default, _help, *parse) in COMPOSE_ONLY.items():
        raw = environ.get(env, "")
        if parse and raw.strip():
            try:
                parse[0](raw)
            except ValueError as e:
                problems.append(f"{env}={raw!r}: expected {e}")
    known = set(SETTINGS_FIELDS) | set(COMPOSE_ONLY)
    for env in sorted(environ):
        if env.startswith(PREFIX) and env not in known:
            close = difflib.get_close_matches(env, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"{env}: unknown setting{hint} (see .env.example)")
    if not problems and GPU_OVERRIDE in environ.get("COMPOSE_FILE", ""):
        values["reserved_gpus"] = (values["tf_serving_gpu"],)
        if isinstance(values["gpus"], tuple) and values["tf_serving_gpu"] in values["gpus"]:
            problems.append(
                f"MLHUB_GPUS={environ.get('MLHUB_GPUS')!r}: lists GPU {values['tf_serving_gpu']}, which "
                f"{GPU_OVERRIDE} gives TF Serving (MLHUB_TF_SERVING_GPU); leave it out of "
                "MLHUB_GPUS or give TF Serving another GPU"
            )
    if problems:
        raise SettingsError(problems)
    if not values["admin_users"] and values["authenticator"] == "native":
        values["admin_users"] = ("admin",)
    if not values["airflow_dags_path"]:
        values["airflow_dags_path"] = values["notebook_home"].rstrip("/") + "/airflow-dags"
    return Settings(**values)


def callback_url(settings: Settings) -> str:
    """The OAuth callback the provider must have registered."""
    return settings.oauth_callback_url or settings.public_url + "/hub/oauth_callback"


def env_example() -> str:
    """The text of .env.example: every variable with its help and default."""
    lines = [
        "# Settings of the ML hub. Copy to .env and change what you need;",
        "# every line shows the default. The hub checks all of them at startup.",
        "",
    ]
    for env, f in SETTINGS_FIELDS.items():
        lines += [f"# {f.metadata['help']}", f"{env}={f.metadata['default']}", ""]
    lines.append("# --- read by docker compose only")
    for env, (default, help_, *_) in COMPOSE_ONLY.items():
        lines += [f"# {help_}", f"{env}={default}", ""]
    return "\n".join(lines)
