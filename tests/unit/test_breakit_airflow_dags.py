"""Break-it (fixed): MLHUB_AIRFLOW_GROUP is meant to keep non-members out of
Airflow, but every notebook mounted the team's DAGs volume read-write, and every
file there is code that Airflow's dag-processor and workers run with Airflow's
secrets (JWT secret, Fernet key, DB password, its hub token). A user refused
Airflow by the hub could still run code as Airflow. Now the DAGs volume goes
only to the group's members and hub admins, read at each start."""

from __future__ import annotations

from types import SimpleNamespace

from traitlets.config import Config

from hub.services import AIRFLOW, service_scopes
from hub.settings import load_settings
from hub.spawner import MlhubSpawner
from hub.wiring import configure


def spawner_for(c, user, groups, admin=False):
    fake_user = SimpleNamespace(
        name=user, url=f"/user/{user}/", admin=admin, groups=[SimpleNamespace(name=g) for g in groups]
    )
    orm_spawner = SimpleNamespace(name="", server=None, state=None, user_options=None)
    hub = SimpleNamespace(api_url="http://hub:8081/hub/api", base_url="/hub/", public_host="", url="http://hub:8081/hub/")
    return MlhubSpawner(config=c, user=fake_user, orm_spawner=orm_spawner, hub=hub)


def test_only_airflow_group_members_and_admins_get_the_dags_volume():
    settings = load_settings({"MLHUB_AIRFLOW_GROUP": "airflow-users"})
    c = Config()
    configure(c, settings, read_secrets=False)
    # the hub denies non-members Airflow: no access scope for users or notebook tokens
    assert f"access:services!service={AIRFLOW}" not in service_scopes(settings)
    assert not any(AIRFLOW in s for s in c.Spawner.server_token_scopes)
    dags = f"{settings.prefix}-airflow-dags"
    home = f"{settings.prefix}-home-{{username}}"
    outsider = spawner_for(c, "mallory", groups=["ml-team"]).volumes_for_user()
    assert dags not in outsider and home in outsider, outsider
    member = spawner_for(c, "alice", groups=["airflow-users"]).volumes_for_user()
    assert member[dags] == settings.airflow_dags_path
    admin = spawner_for(c, "root", groups=[], admin=True).volumes_for_user()
    assert dags in admin


def test_membership_is_read_at_each_start():
    c = Config()
    configure(c, load_settings({"MLHUB_AIRFLOW_GROUP": "airflow-users"}), read_secrets=False)
    sp = spawner_for(c, "bob", groups=[])
    assert "mlhub-airflow-dags" not in sp.volumes_for_user()
    sp.user.groups.append(SimpleNamespace(name="airflow-users"))  # an admin adds bob
    assert "mlhub-airflow-dags" in sp.volumes_for_user()


def test_without_an_airflow_group_every_member_gets_the_dags():
    c = Config()
    configure(c, load_settings({}), read_secrets=False)
    assert "mlhub-airflow-dags" in spawner_for(c, "carol", groups=[]).volumes_for_user()
