"""Break-it (fixed): GET /hub/api/gpus needs admin:servers, which the mlhub-admin
service token (and any admin-role service) holds; but the handler reached the
ledger through ``current_user.spawner`` and a service has no spawner, so the
"who-has-which-GPU ... by API" view answered 500 to the platform's own admin
token. A service now reaches the (per-process, shared) allocator through any
hub user's spawner."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from jupyterhub import orm
from tornado import web
from traitlets.config import Config

from hub.admin_gpus import _spawner_of
from hub.spawner import MlhubSpawner


@pytest.fixture
def db():
    session = orm.new_session_factory("sqlite://")()
    yield session
    session.close()


def test_gpu_api_works_for_an_admin_service_token(db):
    service = orm.Service(name="mlhub-admin", admin=True)
    db.add(service)
    db.commit()
    handler = SimpleNamespace(current_user=service, db=db, users={})
    with pytest.raises(web.HTTPError) as e:  # no user at all: a refusal, not a crash
        _spawner_of(handler)
    assert e.value.status_code == 409

    alice = orm.User(name="alice")
    db.add(alice)
    db.commit()
    spawner = MlhubSpawner.__new__(MlhubSpawner)  # the user's spawner, as JupyterHub builds it
    handler.users = {alice: SimpleNamespace(spawner=spawner)}
    assert _spawner_of(handler) is spawner


def test_a_users_own_spawner_is_used(db):
    spawner = MlhubSpawner.__new__(MlhubSpawner)
    handler = SimpleNamespace(current_user=SimpleNamespace(spawner=spawner), db=db, users={})
    assert _spawner_of(handler) is spawner
