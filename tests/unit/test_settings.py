"""hub.settings: every MLHUB_* variable is validated, all problems are reported at
once with the variable's name and what it expects, and the docs stay in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from hub.settings import (
    COMPOSE_ONLY,
    SETTINGS_FIELDS,
    Settings,
    SettingsError,
    env_example,
    load_settings,
    parse_size,
)

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3
MiB = 1024**2


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(environ)
    return info.value.problems


# ---------------------------------------------------------------- defaults


def test_defaults_load_with_an_empty_environment():
    s = load_settings({})
    assert isinstance(s, Settings)
    assert s.public_url == "http://localhost:8000"
    assert s.http_port == 8000
    assert s.admin_users == ("admin",)
    assert s.authenticator == "native"
    assert s.signup == "approval"
    assert s.prefix == "mlhub"
    assert s.network == "mlhub"
    assert s.notebook_image == "mlhub/notebook:latest"
    assert s.mem_limit == 8 * GiB
    assert s.cpu_limit == 4.0
    assert s.notebook_user == "1000:100"
    assert s.notebook_home == "/home/jovyan"
    assert s.named_servers == 3
    assert s.db_url == "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite"
    assert s.secrets_dir == "/srv/jupyterhub/secrets"
    assert s.proxy_api_url == "http://proxy:8001"
    assert s.hub_connect_url == "http://hub:8081"
    assert s.spawn_timeout == 600
    assert s.http_timeout == 120
    assert s.docker_concurrency == 16
    assert s.log_level == "INFO"


def test_variables_other_than_mlhub_are_ignored():
    env = {"PATH": "/usr/bin", "HOME": "/root", "MLHUBX": "1", "mlhub_prefix": "Bad Name"}
    assert load_settings(env) == load_settings({})


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_empty_value_means_default(blank):
    # compose writes `MLHUB_X=` for an unset variable; that must not be an error.
    env = {name: blank for name in SETTINGS_FIELDS}
    assert load_settings(env) == load_settings({})


def test_compose_only_variables_are_known():
    env = {name: default for name, (default, *_) in COMPOSE_ONLY.items()}
    assert load_settings(env) == load_settings({})


# ---------------------------------------------------------------- bad values

BAD = [
    # variable, bad value, words the problem line must contain
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "lots", "a size such as 512M"),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "10M", "at least 64M"),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "63M", "at least 64M"),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "-1G", "a size such as 512M"),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "4 gigs", "a size such as 512M"),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "0", "greater than 0"),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "-1", "greater than 0"),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "2000", "greater than 0"),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "abc", "a number of CPUs"),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "nan", "a number of CPUs"),
    ("MLHUB_HTTP_PORT", "0", "a whole number from 1 to 65535"),
    ("MLHUB_HTTP_PORT", "70000", "a whole number from 1 to 65535"),
    ("MLHUB_HTTP_PORT", "x", "a whole number from 1 to 65535"),
    ("MLHUB_HTTP_PORT", "80.5", "a whole number from 1 to 65535"),
    ("MLHUB_ADMIN_USERS", "a b", "without spaces or '/'"),
    ("MLHUB_ADMIN_USERS", "alice,team/bob", "without spaces or '/'"),
    ("MLHUB_AUTHENTICATOR", "ldap", "one of: native"),
    ("MLHUB_SIGNUP", "maybe", "one of: approval, open, closed"),
    ("MLHUB_PREFIX", "Bad_Name", "lowercase letters, digits"),
    ("MLHUB_PREFIX", "-x", "starting with a letter or digit"),
    ("MLHUB_PREFIX", "a" * 32, "at most 31"),
    ("MLHUB_PREFIX", "ml hub", "lowercase letters, digits"),
    ("MLHUB_NETWORK", "My-Net", "lowercase letters, digits"),
    ("MLHUB_NOTEBOOK_IMAGE", "Foo/Bar", "an image reference"),
    ("MLHUB_NOTEBOOK_IMAGE", "a b", "an image reference"),
    ("MLHUB_NOTEBOOK_IMAGE", "mlhub/notebook:", "an image reference"),
    ("MLHUB_DB_URL", "mysql://x", "postgresql://USER:PASSWORD@HOST/DB"),
    ("MLHUB_DB_URL", "postgresql+psycopg2://u:p@db/hub", "driver 'psycopg2' is not installed"),
    ("MLHUB_DB_URL", "/srv/jupyterhub.sqlite", "sqlite:////path/to/jupyterhub.sqlite"),
    ("MLHUB_NOTEBOOK_USER", "0", "non-root UID"),
    ("MLHUB_NOTEBOOK_USER", "0:0", "non-root UID"),
    ("MLHUB_NOTEBOOK_USER", "000:100", "non-root UID"),
    ("MLHUB_NOTEBOOK_USER", "root", "UID or UID:GID as numbers"),
    ("MLHUB_NOTEBOOK_USER", "jovyan:users", "UID or UID:GID as numbers"),
    ("MLHUB_NOTEBOOK_USER", "-1", "UID or UID:GID as numbers"),
    ("MLHUB_NOTEBOOK_HOME", "relative", "an absolute path"),
    ("MLHUB_NOTEBOOK_HOME", "home/jovyan", "an absolute path"),
    ("MLHUB_SECRETS_DIR", "secrets", "an absolute path"),
    ("MLHUB_PUBLIC_URL", "https://example.org/ml", "without a path"),
    ("MLHUB_PUBLIC_URL", "ftp://x", "an http(s) URL"),
    ("MLHUB_PUBLIC_URL", "not-a-url", "an http(s) URL"),
    ("MLHUB_PUBLIC_URL", "https://", "an http(s) URL"),
    ("MLHUB_PUBLIC_URL", "https://ml.example.org/?x=1", "without ?query or #fragment"),
    ("MLHUB_PUBLIC_URL", "https://ml.example.org/#top", "without ?query or #fragment"),
    ("MLHUB_PROXY_API_URL", "proxy:8001", "an http(s) URL"),
    ("MLHUB_HUB_CONNECT_URL", "hub", "an http(s) URL"),
    ("MLHUB_LOG_LEVEL", "loud", "one of: debug, info, warning, error"),
    ("MLHUB_NAMED_SERVERS", "-1", "a whole number from 0 to 100"),
    ("MLHUB_NAMED_SERVERS", "101", "a whole number from 0 to 100"),
    ("MLHUB_NAMED_SERVERS", "many", "a whole number from 0 to 100"),
    ("MLHUB_SPAWN_TIMEOUT", "1", "a whole number from 10 to 3600"),
    ("MLHUB_SPAWN_TIMEOUT", "3601", "a whole number from 10 to 3600"),
    ("MLHUB_HTTP_TIMEOUT", "4", "a whole number from 5 to 3600"),
    ("MLHUB_DOCKER_CONCURRENCY", "0", "a whole number from 1 to 256"),
    ("MLHUB_DOCKER_CONCURRENCY", "1000", "a whole number from 1 to 256"),
]


@pytest.mark.parametrize(("var", "value", "hint"), BAD, ids=[f"{v}={x!r}" for v, x, _ in BAD])
def test_bad_value_is_reported_with_its_name_and_what_it_expects(var, value, hint):
    problems = problems_of({var: value})
    assert len(problems) == 1, problems  # only the bad variable, nothing else
    line = problems[0]
    assert line.startswith(f"{var}="), line
    assert repr(value) in line  # the user sees the value they wrote
    assert "expected" in line
    assert hint in line


# Free text by nature: a button label may say anything.
FREE_TEXT = {"MLHUB_OAUTH_LOGIN_SERVICE"}


@pytest.mark.parametrize("var", sorted(set(SETTINGS_FIELDS) - FREE_TEXT))
def test_every_setting_is_validated(var):
    # Runs for settings added later too: none may accept arbitrary text.
    (line,) = problems_of({var: "?? not valid at all ??"})
    assert line.startswith(f"{var}='?? not valid at all ??': expected ")


def test_all_bad_values_are_reported_at_once():
    env = {
        "MLHUB_NOTEBOOK_MEM_LIMIT": "lots",
        "MLHUB_NOTEBOOK_CPU_LIMIT": "0",
        "MLHUB_HTTP_PORT": "70000",
        "MLHUB_SIGNUP": "maybe",
        "MLHUB_NOTEBOOK_USER": "root",
        "MLHUB_PUBLIC_URL": "ftp://x",
        "MLHUB_NOTEBOK_IMAGE": "mlhub/notebook:latest",
        "MLHUB_PREFIX": "mlhub",  # a good one among them is not reported
    }
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    problems = info.value.problems
    named = sorted(p.split("=")[0].split(":")[0] for p in problems)
    assert named == sorted(set(env) - {"MLHUB_PREFIX"})
    # The message users see lists every problem, one per line.
    message = str(info.value)
    assert message.startswith("Invalid configuration")
    for p in problems:
        assert f"  - {p}" in message.splitlines()


def test_misspelled_variable_gets_a_did_you_mean_hint():
    problems = problems_of({"MLHUB_NOTEBOK_IMAGE": "mlhub/notebook:latest"})
    assert problems == [
        "MLHUB_NOTEBOK_IMAGE: unknown setting; did you mean MLHUB_NOTEBOOK_IMAGE? "
        "(see .env.example)"
    ]


def test_misspelled_compose_variable_gets_a_hint_too():
    (line,) = problems_of({"MLHUB_BIND_ADRESS": "127.0.0.1"})
    assert line.startswith("MLHUB_BIND_ADRESS: unknown setting")
    assert "did you mean MLHUB_BIND_ADDRESS?" in line


def test_unknown_variable_without_a_close_match_has_no_hint():
    (line,) = problems_of({"MLHUB_ZZZZZZZZZZZZ": "1"})
    assert line.startswith("MLHUB_ZZZZZZZZZZZZ: unknown setting")
    assert "did you mean" not in line


# ---------------------------------------------------------------- good values

GOOD = [
    # variable, value, Settings attribute, parsed value
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "512M", "mem_limit", 512 * MiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "4G", "mem_limit", 4 * GiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "1.5g", "mem_limit", int(1.5 * GiB)),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "64M", "mem_limit", 64 * MiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", " 16g ", "mem_limit", 16 * GiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "2GB", "mem_limit", 2 * GiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "2GiB", "mem_limit", 2 * GiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "1073741824", "mem_limit", GiB),
    ("MLHUB_NOTEBOOK_MEM_LIMIT", "1T", "mem_limit", 1024 * GiB),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "0.5", "cpu_limit", 0.5),
    ("MLHUB_NOTEBOOK_CPU_LIMIT", "1024", "cpu_limit", 1024.0),
    ("MLHUB_HTTP_PORT", "1", "http_port", 1),
    ("MLHUB_HTTP_PORT", "65535", "http_port", 65535),
    ("MLHUB_ADMIN_USERS", "Alice, bob,alice", "admin_users", ("alice", "bob")),
    # native accounts always have an admin: 'admin' when none is named
    ("MLHUB_ADMIN_USERS", " , ", "admin_users", ("admin",)),
    ("MLHUB_ADMIN_USERS", "jane.doe@example.org", "admin_users", ("jane.doe@example.org",)),
    ("MLHUB_AUTHENTICATOR", "NATIVE", "authenticator", "native"),
    ("MLHUB_SIGNUP", " Open ", "signup", "open"),
    ("MLHUB_SIGNUP", "closed", "signup", "closed"),
    ("MLHUB_PREFIX", "ml-hub.2_x", "prefix", "ml-hub.2_x"),
    ("MLHUB_PREFIX", "a" * 31, "prefix", "a" * 31),
    ("MLHUB_NETWORK", "mlhub_net", "network", "mlhub_net"),
    ("MLHUB_NOTEBOOK_IMAGE", "jupyter/base-notebook", "notebook_image", "jupyter/base-notebook"),
    (
        "MLHUB_NOTEBOOK_IMAGE",
        "registry.example.org:5000/team/nb:2024.1-gpu",
        "notebook_image",
        "registry.example.org:5000/team/nb:2024.1-gpu",
    ),
    (
        "MLHUB_NOTEBOOK_IMAGE",
        "mlhub/notebook@sha256:" + "a" * 64,
        "notebook_image",
        "mlhub/notebook@sha256:" + "a" * 64,
    ),
    ("MLHUB_DB_URL", "postgres://u:p@db/hub", "db_url", "postgresql+psycopg://u:p@db/hub"),
    ("MLHUB_DB_URL", "postgresql://u:p@db:5432/hub", "db_url", "postgresql+psycopg://u:p@db:5432/hub"),
    ("MLHUB_DB_URL", "postgresql+psycopg://u:p@db/hub", "db_url", "postgresql+psycopg://u:p@db/hub"),
    ("MLHUB_DB_URL", "sqlite:////data/hub.sqlite", "db_url", "sqlite:////data/hub.sqlite"),
    ("MLHUB_NOTEBOOK_USER", "1000", "notebook_user", "1000"),
    ("MLHUB_NOTEBOOK_USER", " 1000:100 ", "notebook_user", "1000:100"),
    ("MLHUB_NOTEBOOK_HOME", "/home/jovyan/", "notebook_home", "/home/jovyan"),
    ("MLHUB_NOTEBOOK_HOME", "/", "notebook_home", "/"),
    ("MLHUB_PUBLIC_URL", "https://ml.example.org/", "public_url", "https://ml.example.org"),
    ("MLHUB_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("MLHUB_LOG_LEVEL", "WARNING", "log_level", "WARNING"),
    ("MLHUB_NAMED_SERVERS", "0", "named_servers", 0),
    ("MLHUB_NAMED_SERVERS", "100", "named_servers", 100),
    ("MLHUB_SPAWN_TIMEOUT", "10", "spawn_timeout", 10),
    ("MLHUB_DOCKER_CONCURRENCY", "256", "docker_concurrency", 256),
]


@pytest.mark.parametrize(
    ("var", "value", "attr", "expected"), GOOD, ids=[f"{v}={x!r}" for v, x, _, _ in GOOD]
)
def test_good_value_parses(var, value, attr, expected):
    s = load_settings({var: value})
    assert getattr(s, attr) == expected
    # ...and nothing else changes (but what is derived from it: the DAGs folder
    # in the notebook home follows MLHUB_NOTEBOOK_HOME)
    derived = {"airflow_dags_path": s.airflow_dags_path} if attr == "notebook_home" else {}
    assert s.__class__(**{**load_settings({}).__dict__, attr: expected, **derived}) == s


def test_size_with_binary_suffix_without_b_is_accepted():
    assert parse_size("2Gi") == 2 * GiB


# Every form of database URL the validator accepts must be one SQLAlchemy (which
# JupyterHub hands it to) can resolve to a dialect, or the hub fails at startup
# with a traceback instead of a settings problem.
DB_URLS = [
    "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite",
    "postgres://u:p@db/hub",
    "postgresql://u:p@db/hub",
    "postgresql+psycopg://u:p@db/hub",
    "postgres+psycopg://u:p@db/hub",
]


@pytest.mark.parametrize("url", DB_URLS)
def test_every_accepted_db_url_has_a_sqlalchemy_dialect(url):
    value = load_settings({"MLHUB_DB_URL": url}).db_url
    dialect = make_url(value).get_dialect()
    assert dialect.name in ("sqlite", "postgresql")


def test_documented_postgres_url_uses_a_driver_the_project_installs():
    driver = make_url(load_settings({"MLHUB_DB_URL": "postgres://u:p@db/hub"}).db_url)
    driver_module = driver.get_dialect().driver  # e.g. psycopg2, psycopg
    pyproject = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^postgres\s*=\s*\[(.*?)\]", pyproject, re.M | re.S).group(1)
    dists = {re.split(r"[\[<>=!~ ]", d.strip().strip("\"'"))[0] for d in extra.split(",")}
    installed = {d.removesuffix("-binary") for d in dists if d}
    assert driver_module in installed, (driver_module, dists)
    dockerfile = (ROOT / "images/hub/Dockerfile").read_text()
    assert re.search(rf"\"{re.escape(driver_module)}(-binary)?[\[<>=\"]", dockerfile)


def test_every_default_parses_to_a_valid_value():
    # The defaults are strings run through the same parsers as users' values.
    s = load_settings({})
    for name, f in SETTINGS_FIELDS.items():
        assert load_settings({name: f.metadata["default"]}) == s


# ---------------------------------------------------------------- docs in sync


def test_committed_env_example_is_generated_from_the_settings():
    committed = (ROOT / ".env.example").read_text()
    assert committed == env_example() + "\n", (
        "regenerate .env.example: python -c 'from hub.settings import env_example; "
        "print(env_example())' > .env.example"
    )


def test_env_example_documents_every_variable_with_help_and_default():
    text = (ROOT / ".env.example").read_text()
    lines = text.splitlines()
    documented = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"(MLHUB_[A-Z_]+)=(.*)", line)
        if m:
            documented[m.group(1)] = m.group(2)
            assert lines[i - 1].startswith("# "), f"{m.group(1)} has no help line"
    expected = {name: f.metadata["default"] for name, f in SETTINGS_FIELDS.items()}
    expected.update({name: d for name, (d, *_) in COMPOSE_ONLY.items()})
    assert documented == expected


def test_env_example_used_as_env_gives_the_defaults():
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    assert load_settings(env) == load_settings({})


def test_compose_file_uses_only_documented_variables_with_the_same_defaults():
    compose = (ROOT / "docker-compose.yml").read_text()
    refs = re.findall(r"\$\{(MLHUB_[A-Z_]+)(?::-([^}]*))?\}", compose)
    assert refs, "docker-compose.yml no longer reads MLHUB_* variables?"
    defaults = {name: f.metadata["default"] for name, f in SETTINGS_FIELDS.items()}
    defaults.update({name: d for name, (d, *_) in COMPOSE_ONLY.items()})
    for name, default in refs:
        assert name in defaults, f"docker-compose.yml reads undocumented {name}"
        if default:
            assert default == defaults[name], f"{name}: compose default {default!r}"


@pytest.mark.parametrize(("env", "raw", "expected"), [
    ("MLHUB_MODELS_PREDICT", "anyone", "one of: members, owners"),
    ("MLHUB_MODELS_MAX_UPLOAD", "lots", "a size such as 512M"),
])
def test_models_service_settings_are_checked_by_the_hub_too(env, raw, expected):
    """Read by the models service; the hub (and doctor) name a bad value instead of
    the models container restarting in a loop."""
    with pytest.raises(SettingsError) as e:
        load_settings({env: raw})
    assert f"{env}={raw!r}: expected {expected}" in str(e.value)
    load_settings({env: ""})  # empty: the default
