"""Break-it (fixed): with MLHUB_AUTHENTICATOR=github, hub groups came from every
team the user belongs to in *any* GitHub organisation, and the bare org name
was a group too. GitHub org names are a global namespace anyone can register,
so an allowed user who created an org called "airflow-ops" (the default
MLHUB_AIRFLOW_OP_GROUP) got the hub group "airflow-ops" and was Airflow Op at
the next sign-in. Now only the orgs the hub names give groups."""

from __future__ import annotations

from hub.settings import load_settings
from tests.unit.test_oauth_providers import CLIENT, wire


async def test_self_made_org_grants_no_hub_group():
    op_group = load_settings({}).airflow_op_group
    assert op_group == "airflow-ops"
    c, cls = wire({"MLHUB_AUTHENTICATOR": "github", **CLIENT, "MLHUB_ALLOWED_GROUPS": "acme"})
    auth = cls(config=c)
    auth_state = {"teams": [
        {"slug": "ml", "organization": {"login": "acme"}},          # the real, allowed org
        {"slug": "me", "organization": {"login": "Airflow-Ops"}},   # created by the user, free
    ]}
    groups = await auth.get_user_groups(auth_state)
    assert groups == {"acme", "acme:ml"}, groups
    assert op_group not in groups
