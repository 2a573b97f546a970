"""Break-it: request shapes the models service answers with a 500 (an
unhandled exception, logged as a crash) instead of a 4xx refusal."""

from __future__ import annotations

import pytest

from tests.unit.test_models_app import make_service, published  # noqa: F401


@pytest.mark.parametrize("label", [5, ["stable"], {"a": 1}])
async def test_rollback_with_a_non_string_label_is_400(make_service, label):
    svc = await make_service()
    await published(svc, "m", n=2)
    r = await svc.call("POST", "/api/models/m/rollback", user="alice", json_body={"label": label})
    assert r.code == 400, (r.code, r.body)


async def test_other_methods_with_a_body_on_the_upload_route_are_405(make_service):
    svc = await make_service()
    await published(svc, "m")
    r = await svc.call("PUT", "/api/models/m/versions", user="alice", body=b"x" * 10)
    assert r.code == 405, (r.code, r.body)
