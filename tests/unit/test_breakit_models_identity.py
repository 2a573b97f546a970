"""Break-it (fixed): the models service keyed ownership on the caller's bare
name and never looked at its kind, so the hub *service* "airflow" (whose token
every Airflow DAG task runs with) and a hub *user* named "airflow" were one
owner. Services now own models as 'service:NAME'."""

from __future__ import annotations

from tests.unit.test_models_app import FakeHubAuth, make_service, savedmodel_tgz  # noqa: F401


class KindAwareHub(FakeHubAuth):
    def get_user(self, handler):
        auth = handler.request.headers.get("Authorization", "")
        if auth == "token svc-airflow":
            return {"name": "airflow", "kind": "service"}
        if auth == "token user-airflow":  # someone who signed up as "airflow"
            return {"name": "airflow", "kind": "user"}
        return super().get_user(handler)


async def test_a_user_named_like_a_service_does_not_own_the_services_models(make_service):
    svc = await make_service()
    svc.app.settings["hub_auth"] = KindAwareHub()
    svc_auth = {"Authorization": "token svc-airflow"}
    r = await svc.call("POST", "/api/models/example-classifier/versions", user=None,
                       body=savedmodel_tgz(), headers={**svc_auth, "Content-Type": "application/gzip"})
    assert r.code == 201, r.body
    assert svc.store.require("example-classifier").owner == "service:airflow"
    # a hub *user* called airflow is not the Airflow service ...
    r = await svc.call("DELETE", "/api/models/example-classifier",
                       headers={"Authorization": "token user-airflow"})
    assert r.code == 403, "hub user 'airflow' deleted the model the Airflow service published"
    # ... and the service still manages its own model
    r = await svc.call("POST", "/api/models/example-classifier/versions", user=None,
                       body=savedmodel_tgz(), headers={**svc_auth, "Content-Type": "application/gzip"})
    assert r.code == 201, r.body
    assert svc.store.require("example-classifier").versions.keys() == {1, 2}
