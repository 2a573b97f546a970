"""Break-it (fixed): the models service keyed ownership on the caller's bare
name and never looked at its kind, so the hub *service* "airflow" (whose token
every Airflow DAG task runs with) and a hub *user* named "airflow" were one
owner. Services now own models as 'service/NAME' ('/' is in no username)."""

from __future__ import annotations

from tests.unit.test_models_app import FakeHubAuth, make_service, savedmodel_tgz  # noqa: F401


class KindAwareHub(FakeHubAuth):
    def get_user(self, handler):
        auth = handler.request.headers.get("Authorization", "")
        if auth == "token svc-airflow":
            return {"name": "airflow", "kind": "service"}
        if auth == "token user-airflow":  # someone who signed up as "airflow"
            return {"name": "airflow", "kind": "user"}
        if auth == "token user-service-airflow":  # or as "service:airflow"
            return {"name": "service:airflow", "kind": "user"}
        return super().get_user(handler)


async def test_a_user_named_like_a_service_does_not_own_the_services_models(make_service):
    svc = await make_service()
    svc.app.settings["hub_auth"] = KindAwareHub()
    svc_auth = {"Authorization": "token svc-airflow"}
    r = await svc.call("POST", "/api/models/example-classifier/versions", user=None,
                       body=savedmodel_tgz(), headers={**svc_auth, "Content-Type": "application/gzip"})
    assert r.code == 201, r.body
    assert svc.store.require("example-classifier").owner == "service/airflow"
    # a hub *user* called airflow is not the Airflow service ...
    r = await svc.call("DELETE", "/api/models/example-classifier",
                       headers={"Authorization": "token user-airflow"})
    assert r.code == 403, "hub user 'airflow' deleted the model the Airflow service published"
    r = await svc.call("DELETE", "/api/models/example-classifier",
                       headers={"Authorization": "token user-service-airflow"})
    assert r.code == 403, "hub user 'service:airflow' deleted the model the Airflow service published"
    # ... and the service still manages its own model
    r = await svc.call("POST", "/api/models/example-classifier/versions", user=None,
                       body=savedmodel_tgz(), headers={**svc_auth, "Content-Type": "application/gzip"})
    assert r.code == 201, r.body
    assert svc.store.require("example-classifier").versions.keys() == {1, 2}


def test_no_authenticator_accepts_the_service_owner_namespace():
    """'service/NAME' cannot be a username: JupyterHub refuses '/' for every authenticator."""
    from jupyterhub.auth import Authenticator

    from hub.auth import MlhubNativeAuthenticator

    for cls in (Authenticator, MlhubNativeAuthenticator):
        a = cls.__new__(cls)
        assert not a.validate_username("service/airflow"), cls
