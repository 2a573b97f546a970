"""hub.wiring.configure: settings -> JupyterHub config, and the MlhubSpawner that
config produces, checked without a hub or a Docker engine.

A spawner is built the way JupyterHub's User._new_spawner builds one, with
minimal stand-ins: ``user`` (name, url, groups), ``orm_spawner`` (Spawner.name is
a read-only property returning ``orm_spawner.name``) and ``hub`` (only
get_env reads it). Docker calls go to a recording fake instead of the engine.
"""

from __future__ import annotations

import asyncio
import os
import stat
from types import SimpleNamespace

import docker
import pytest
from docker.errors import ImageNotFound, NotFound
from traitlets.config import Config

from hub.auth import MlhubNativeAuthenticator
from hub.errors import SpawnRefused
from hub.settings import load_settings
from hub.spawner import MlhubSpawner
from hub.wiring import configure

GiB = 1024**3


def wired(env: dict[str, str] | None = None, **kwargs) -> Config:
    c = Config()
    configure(c, load_settings(env or {}), read_secrets=kwargs.pop("read_secrets", False))
    return c


def make_spawner(c: Config, user: str = "jane.doe@example.org", server: str = "") -> MlhubSpawner:
    fake_user = SimpleNamespace(name=user, url=f"/user/{user}/", groups=[])
    # Spawner.name comes from orm_spawner.name; .server None = not running.
    orm_spawner = SimpleNamespace(name=server, server=None, state=None, user_options=None)
    hub = SimpleNamespace(
        api_url="http://hub:8081/hub/api", base_url="/hub/", public_host="", url="http://hub:8081/hub/"
    )
    return MlhubSpawner(config=c, user=fake_user, orm_spawner=orm_spawner, hub=hub)


def host_config(spawner: MlhubSpawner) -> dict:
    """extra_host_config as DockerSpawner evaluates it (a dict or a callable)."""
    value = spawner.extra_host_config
    return value(spawner) if callable(value) else value


# ---------------------------------------------------------------- hub config


def test_hub_config_from_defaults():
    c = wired()
    hub = c.JupyterHub
    assert hub.db_url == "sqlite:////srv/jupyterhub/data/jupyterhub.sqlite"
    assert hub.cleanup_servers is False  # servers survive a hub restart
    assert hub.allow_named_servers is True
    assert hub.named_server_limit_per_user == 3
    assert hub.hub_connect_url == "http://hub:8081"
    assert hub.hub_bind_url == "http://0.0.0.0:8081"
    assert hub.log_level == "INFO"
    assert hub.cookie_secret_file == "/srv/jupyterhub/secrets/cookie_secret"
    assert hub.spawner_class is MlhubSpawner
    assert c.ConfigurableHTTPProxy.should_start is False  # the proxy is its own service
    assert c.ConfigurableHTTPProxy.api_url == "http://proxy:8001"
    assert hub.last_activity_interval == 15  # routes back soon after a proxy restart


def test_hub_config_follows_settings():
    c = wired(
        {
            "MLHUB_DB_URL": "postgres://hub:pw@db/hub",
            "MLHUB_NAMED_SERVERS": "7",
            "MLHUB_PROXY_API_URL": "http://chp.internal:9001",
            "MLHUB_HUB_CONNECT_URL": "http://jhub:18081",
            "MLHUB_SECRETS_DIR": "/run/mlhub",
            "MLHUB_LOG_LEVEL": "debug",
        }
    )
    assert c.JupyterHub.db_url == "postgresql+psycopg://hub:pw@db/hub"
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.named_server_limit_per_user == 7
    assert c.ConfigurableHTTPProxy.api_url == "http://chp.internal:9001"
    assert c.JupyterHub.hub_connect_url == "http://jhub:18081"
    assert c.JupyterHub.cookie_secret_file == "/run/mlhub/cookie_secret"
    assert c.JupyterHub.log_level == "DEBUG"
    assert c.MlhubSpawner.debug is True


def test_zero_named_servers_disables_them():
    c = wired({"MLHUB_NAMED_SERVERS": "0"})
    assert c.JupyterHub.allow_named_servers is False
    assert c.JupyterHub.named_server_limit_per_user == 0


def test_proxy_token_is_not_read_without_read_secrets(tmp_path):
    c = wired({"MLHUB_SECRETS_DIR": str(tmp_path)})
    assert "auth_token" not in c.ConfigurableHTTPProxy
    assert list(tmp_path.iterdir()) == []  # nothing generated either


def test_proxy_token_is_generated_and_read_with_read_secrets(tmp_path):
    secrets = tmp_path / "secrets"
    c = wired({"MLHUB_SECRETS_DIR": str(secrets)}, read_secrets=True)
    token_file = secrets / "proxy_token"
    assert c.ConfigurableHTTPProxy.auth_token == token_file.read_text().strip()
    assert len(c.ConfigurableHTTPProxy.auth_token) == 64
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # A second configure (hub restart) reuses the token the proxy already has.
    again = wired({"MLHUB_SECRETS_DIR": str(secrets)}, read_secrets=True)
    assert again.ConfigurableHTTPProxy.auth_token == c.ConfigurableHTTPProxy.auth_token


# ---------------------------------------------------------------- authenticator


def test_native_authenticator_wiring():
    c = wired({"MLHUB_ADMIN_USERS": "Alice,bob", "MLHUB_SECRETS_DIR": "/run/s"})
    assert c.JupyterHub.authenticator_class is MlhubNativeAuthenticator
    assert c.Authenticator.admin_users == {"alice", "bob"}
    assert c.Authenticator.allow_all is True  # approval by NativeAuthenticator is the gate
    assert c.MlhubNativeAuthenticator.admin_password_file == "/run/s/admin_password"
    assert c.NativeAuthenticator.minimum_password_length >= 8
    assert c.NativeAuthenticator.check_common_password is True
    assert c.NativeAuthenticator.allowed_failed_logins > 0


@pytest.mark.parametrize(
    ("signup", "open_signup", "enable_signup"),
    [("approval", False, True), ("open", True, True), ("closed", False, False)],
)
def test_signup_modes(signup, open_signup, enable_signup):
    c = wired({"MLHUB_SIGNUP": signup})
    assert c.NativeAuthenticator.open_signup is open_signup
    assert c.NativeAuthenticator.enable_signup is enable_signup


# ---------------------------------------------------------------- the spawner


def test_spawner_settings_from_defaults():
    s = make_spawner(wired())
    assert s.image == "mlhub/notebook:latest"
    assert s.mem_limit == 8 * GiB
    assert s.cpu_limit == 4.0
    assert s.network_name == "mlhub"
    assert s.use_internal_ip is True
    assert s.remove is True
    assert s.pull_policy == "ifnotpresent"
    assert s.notebook_user == "1000:100"
    assert s.notebook_dir == "/home/jovyan"
    assert s.default_url == "/lab"
    assert s.start_timeout == 600
    assert s.http_timeout == 120
    assert s.docker_concurrency == 16


def test_spawner_settings_follow_settings():
    env = {
        "MLHUB_NOTEBOOK_IMAGE": "registry.example.org:5000/nb:v2",
        "MLHUB_NOTEBOOK_MEM_LIMIT": "1.5g",
        "MLHUB_NOTEBOOK_CPU_LIMIT": "0.5",
        "MLHUB_NETWORK": "ml_net",
        "MLHUB_NOTEBOOK_USER": "1234:1234",
        "MLHUB_NOTEBOOK_HOME": "/home/user/",
        "MLHUB_SPAWN_TIMEOUT": "30",
        "MLHUB_HTTP_TIMEOUT": "15",
    }
    s = make_spawner(wired(env))
    assert s.image == "registry.example.org:5000/nb:v2"
    assert s.mem_limit == int(1.5 * GiB)
    assert s.cpu_limit == 0.5
    assert s.network_name == "ml_net"
    assert s.notebook_user == "1234:1234"
    assert s.home_path == s.notebook_dir == "/home/user"
    # the home, and the team's Airflow DAGs folder inside it
    assert s.volumes == {"mlhub-home-{username}": "/home/user", "mlhub-airflow-dags": "/home/user/airflow-dags"}
    assert s.start_timeout == 30
    assert s.http_timeout == 15


def test_default_server_naming():
    s = make_spawner(wired(), user="jane.doe@example.org")
    assert s.object_name == "mlhub-nb-jane-2edoe-40example-2eorg"
    assert s.home_volume_name == "mlhub-home-jane-2edoe-40example-2eorg"


def test_capitalised_username_gets_its_own_container():
    upper = make_spawner(wired(), user="Jane.Doe@example.org")
    lower = make_spawner(wired(), user="jane.doe@example.org")
    assert upper.object_name == "mlhub-nb--4aane-2e-44oe-40example-2eorg"
    assert upper.object_name != lower.object_name
    assert upper.home_volume_name != lower.home_volume_name


def test_named_server_naming_and_shared_home():
    c = wired({"MLHUB_PREFIX": "lab2"})
    default = make_spawner(c, user="jane.doe@example.org")
    named = make_spawner(c, user="jane.doe@example.org", server="gpu.1")
    assert default.object_name == "lab2-nb-jane-2edoe-40example-2eorg"
    assert named.object_name == "lab2-nb-jane-2edoe-40example-2eorg--gpu-2e1"
    # All servers of a user share one home volume.
    assert named.home_volume_name == default.home_volume_name == "lab2-home-jane-2edoe-40example-2eorg"


def test_named_servers_differing_in_case_get_distinct_containers():
    c = wired()
    assert make_spawner(c, "alice", "GPU").object_name != make_spawner(c, "alice", "gpu").object_name


def test_without_airflow_only_the_home_is_mounted():
    s = make_spawner(wired({"MLHUB_AIRFLOW": "false"}), user="zoë")
    assert s.volumes == {"mlhub-home-{username}": "/home/jovyan"}


def test_home_volume_is_mounted_at_home():
    s = make_spawner(wired(), user="zoë")
    assert s.volumes == {"mlhub-home-{username}": "/home/jovyan", "mlhub-airflow-dags": "/home/jovyan/airflow-dags"}
    assert s.volume_binds == {
        "mlhub-home-zo-c3-ab": {"bind": "/home/jovyan", "mode": "rw"},
        "mlhub-airflow-dags": {"bind": "/home/jovyan/airflow-dags", "mode": "rw"},
    }
    assert s.home_volume_name == "mlhub-home-zo-c3-ab"


def test_container_is_locked_down():
    hc = host_config(make_spawner(wired()))
    assert hc["cap_drop"] == ["ALL"]
    assert "no-new-privileges" in hc["security_opt"]
    assert "privileged" not in hc or hc["privileged"] is False
    assert not any("docker.sock" in str(v) for v in make_spawner(wired()).volumes)


def test_docker_labels():
    s = make_spawner(wired(), user="jane.doe@example.org", server="big")
    labels = s.docker_labels()
    assert labels["org.mlhub.user"] == "jane.doe@example.org"  # the raw name
    assert labels["org.mlhub.server"] == "big"
    assert labels["org.mlhub.component"] == "notebook"
    assert make_spawner(wired()).docker_labels()["org.mlhub.server"] == ""


def test_extra_labels_are_added():
    c = wired()
    c.MlhubSpawner.extra_labels = {"com.example.team": "research"}
    assert make_spawner(c).docker_labels()["com.example.team"] == "research"


def test_environment_has_home():
    env = make_spawner(wired({"MLHUB_NOTEBOOK_HOME": "/work"})).get_env()
    assert env["HOME"] == "/work"
    assert env["JUPYTERHUB_USER"] == "jane.doe@example.org"
    assert env["JUPYTERHUB_API_URL"] == "http://hub:8081/hub/api"


# ---------------------------------------------------------------- docker calls (faked)


class FakeDocker:
    """Records the spawner's Docker calls; answers like an engine with the image
    present (built by compose, so with com.docker.compose.* labels)."""

    def __init__(self, volume_exists: bool = False, image_present: bool = True):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.volume_exists = volume_exists
        self.image_present = image_present

    async def __call__(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method == "inspect_image":
            if not self.image_present:
                raise ImageNotFound("No such image")
            labels = {"com.docker.compose.project": "mlhub", "maintainer": "us"}
            return {"Config": {"Labels": labels, "Cmd": ["start-notebook.py"]}}
        if method == "pull":
            raise NotFound("pull access denied / manifest unknown")
        if method == "inspect_volume":
            if self.volume_exists:
                return {"Name": args[0]}
            raise NotFound("no such volume")
        if method == "create_volume":
            return {"Name": kwargs["name"]}
        if method == "create_container":
            return {"Id": "c0ffee" * 8}
        if method == "remove_container":
            return None
        raise AssertionError(f"unexpected docker call {method}")

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.calls]

    def call(self, method: str) -> tuple[tuple, dict]:
        (found,) = [(a, k) for m, a, k in self.calls if m == method]
        return found


@pytest.fixture
def fake_engine(monkeypatch):
    # A real APIClient (with a fixed API version it never connects) only builds
    # host configs; every call that would reach the engine goes to FakeDocker.
    client = docker.APIClient(base_url="unix:///nonexistent/docker.sock", version="1.43")
    monkeypatch.setattr(MlhubSpawner, "_client", client)

    def attach(spawner: MlhubSpawner, **kwargs) -> FakeDocker:
        fake = FakeDocker(**kwargs)
        spawner.docker = fake
        return fake

    return attach


async def test_create_object_creates_home_volume_then_locked_down_container(fake_engine):
    s = make_spawner(wired({"MLHUB_NOTEBOOK_MEM_LIMIT": "2G", "MLHUB_NOTEBOOK_CPU_LIMIT": "1.5"}))
    fake = fake_engine(s)
    obj = await s.create_object()
    assert obj["Id"].startswith("c0ffee")

    methods = fake.methods()
    assert methods.index("create_volume") < methods.index("create_container")
    _, vol = fake.call("create_volume")
    assert vol["name"] == "mlhub-home-jane-2edoe-40example-2eorg"
    assert vol["labels"]["org.mlhub.user"] == "jane.doe@example.org"
    assert vol["labels"]["org.mlhub.component"] == "home"
    assert "org.mlhub.server" not in vol["labels"]  # the home belongs to the user

    _, kw = fake.call("create_container")
    assert kw["name"] == "mlhub-nb-jane-2edoe-40example-2eorg"
    assert kw["image"] == "mlhub/notebook:latest"
    assert kw["user"] == "1000:100"
    assert kw["environment"]["HOME"] == "/home/jovyan"
    labels = kw["labels"]
    assert labels["com.docker.compose.project"] == ""  # compose must not adopt it
    assert labels["org.mlhub.user"] == "jane.doe@example.org"
    assert labels["org.mlhub.component"] == "notebook"
    hc = kw["host_config"]
    assert hc["Memory"] == 2 * GiB
    assert hc["CpuQuota"] == int(1.5 * hc["CpuPeriod"])
    assert hc["NetworkMode"] == "mlhub"
    assert hc["CapDrop"] == ["ALL"]
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["Binds"] == [
        "mlhub-home-jane-2edoe-40example-2eorg:/home/jovyan:rw",
        "mlhub-airflow-dags:/home/jovyan/airflow-dags:rw",
    ]
    assert hc["AutoRemove"] is True
    assert "PortBindings" not in hc  # reached on the internal network only
    assert not hc.get("Privileged")


async def test_existing_home_volume_is_reused_not_recreated(fake_engine):
    s = make_spawner(wired())
    fake = fake_engine(s, volume_exists=True)
    await s.create_object()
    assert "create_volume" not in fake.methods()
    assert fake.methods().count("create_container") == 1


async def test_username_with_braces_survives_template_rendering(fake_engine):
    # DockerSpawner str.format()s create kwargs; labels must come out literally.
    s = make_spawner(wired(), user="a{b}c")
    fake = fake_engine(s)
    await s.create_object()
    _, kw = fake.call("create_container")
    assert kw["labels"]["org.mlhub.user"] == "a{b}c"
    assert kw["name"] == "mlhub-nb-a-7bb-7dc"


async def test_missing_image_that_cannot_be_pulled_is_refused_with_a_message(fake_engine):
    s = make_spawner(wired({"MLHUB_NOTEBOOK_IMAGE": "mlhub/missing:1"}))
    fake_engine(s, image_present=False)
    with pytest.raises(SpawnRefused) as info:
        await s.pull_image("mlhub/missing:1")
    message = str(info.value)
    assert "mlhub/missing:1" in message
    assert "MLHUB_NOTEBOOK_IMAGE" in message
    assert info.value.refusal_reason == "image"
    assert "Traceback" not in message


async def test_failed_container_is_removed_and_state_cleared(fake_engine):
    s = make_spawner(wired())
    fake = fake_engine(s)
    s.object_id = "deadbeef" * 8
    await s._remove_failed()
    args, kwargs = fake.call("remove_container")
    assert args == ("deadbeef" * 8,)
    assert s.object_id == ""
    # The user's home volume is never removed with the container.
    assert not any(m.startswith("remove_volume") for m in fake.methods())


async def test_remove_failed_without_a_container_only_looks_it_up(fake_engine):
    # a create call we stopped waiting for (a cancelled spawn) may still have made
    # the container: it is looked up by name, and nothing is removed when none exists
    s = make_spawner(wired())
    fake = fake_engine(s)
    s.object_id = ""
    await s._remove_failed()
    assert "remove_container" not in fake.methods()
    assert set(fake.methods()) <= {"inspect_container"}


async def test_progress_yields_emitted_events_in_order():
    s = make_spawner(wired())
    s._events = []
    s._spawn_done = False
    s._emit(0, "Server requested")
    s._emit(30, "Created your home volume")

    async def finish():
        await asyncio.sleep(0.05)
        s._emit(60, "Starting your container")
        s._spawn_done = True

    task = asyncio.ensure_future(finish())
    events = [e async for e in s.progress()]
    await task
    assert [e["progress"] for e in events] == [0, 30, 60]
    assert events[-1]["message"] == "Starting your container"


# ---------------------------------------------------------------- admin accounts


@pytest.fixture
def hub_db():
    from jupyterhub import orm

    return orm.new_session_factory("sqlite://")()


async def test_admin_accounts_are_created_with_the_generated_password(tmp_path, hub_db):
    from hub.secrets import ensure
    from nativeauthenticator.orm import UserInfo

    c = wired({"MLHUB_ADMIN_USERS": "Admin,boss", "MLHUB_SECRETS_DIR": str(tmp_path)})
    password = ensure(str(tmp_path), "admin_password")
    auth = MlhubNativeAuthenticator(config=c, db=hub_db)
    rows = {u.username: u for u in hub_db.query(UserInfo)}
    assert set(rows) == {"admin", "boss"}
    assert all(u.is_authorized for u in rows.values())
    assert await auth.authenticate(None, {"username": "admin", "password": password}) == "admin"
    assert await auth.authenticate(None, {"username": "admin", "password": "wrong-pass"}) is None
    # A restart neither duplicates nor resets the accounts.
    assert MlhubNativeAuthenticator(config=c, db=hub_db).create_admin_accounts() == []
    assert hub_db.query(UserInfo).count() == 2
    assert os.path.exists(tmp_path / "admin_password")
