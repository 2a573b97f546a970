"""Identity providers chosen by settings: each provider's settings -> the hub config
hub.wiring.configure writes -> the oauthenticator class built from that config.

Every row of the table is wired with ``configure(Config(), load_settings(env),
read_secrets=False, oidc_urls=...)`` (the call jupyterhub_config.py makes after
preflight) and then the authenticator class is instantiated with the config, so
traitlets validates the values (oauthenticator 17 refuses e.g. group keys
without ``manage_groups``) and derived values (GitHub/GitLab API URLs) are
checked as the hub would see them. No network, no hub process.
"""

from __future__ import annotations

import pytest
from jupyterhub import orm
from traitlets.config import Config

from hub.auth import MlhubNativeAuthenticator
from hub.oauth import (
    MlhubGitHubAuthenticator,
    MlhubGitLabAuthenticator,
    MlhubOIDCAuthenticator,
    GitHubGroups,
    github_groups,
)
from hub.settings import load_settings
from hub.wiring import configure

#: what preflight hands to configure for oidc (explicit settings or discovery)
OIDC_URLS = {
    "authorize_url": "https://sso.example.org/realms/acme/protocol/openid-connect/auth",
    "token_url": "https://sso.example.org/realms/acme/protocol/openid-connect/token",
    "userinfo_url": "https://sso.example.org/realms/acme/protocol/openid-connect/userinfo",
}

CLIENT = {"MLHUB_OAUTH_CLIENT_ID": "mlhub-client", "MLHUB_OAUTH_CLIENT_SECRET": "s3cret-value"}

#: a substring every refusal (403) message carries
REFUSAL = "You signed in, but your account may not use this hub"

def wire(env: dict[str, str]) -> tuple[Config, object]:
    c = Config()
    configure(c, load_settings(env), read_secrets=False, oidc_urls=dict(OIDC_URLS))
    return c, c.JupyterHub.authenticator_class


# ---------------------------------------------------------------- the table
# (id, env, class, expectations on the authenticator built from the config,
#  substrings of custom_403_message)
# "{secret_file}" in an env value is replaced by a file holding "file-secret\n".

OAUTH_CASES = [
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "oidc",
            **CLIENT,
            "MLHUB_ALLOWED_GROUPS": "ml-team,research",
            "MLHUB_ADMIN_GROUPS": "hub-admins",
            "MLHUB_ADMIN_USERS": "Alice",
        },
        MlhubOIDCAuthenticator,
        {
            "client_id": "mlhub-client",
            "client_secret": "s3cret-value",
            "oauth_callback_url": "http://localhost:8000/hub/oauth_callback",
            "login_service": "single sign-on",
            "allow_all": False,
            "allowed_users": set(),
            "allowed_groups": {"ml-team", "research"},
            "admin_users": {"alice"},  # usernames are lowercased like the hub's
            "admin_groups": {"hub-admins"},
            "manage_groups": True,
            "auth_state_groups_key": "oauth_user.groups",
            "scope": ["openid", "profile", "email"],
            "username_claim": "preferred_username",
            "authorize_url": OIDC_URLS["authorize_url"],
            "token_url": OIDC_URLS["token_url"],
            "userdata_url": OIDC_URLS["userinfo_url"],
            "logout_redirect_url": "",
            "enable_pkce": True,
        },
        ["members of ml-team, research", "ask a hub admin"],
        id="oidc-allowed-and-admin-groups",
    ),
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "oidc",
            **CLIENT,
            "MLHUB_PUBLIC_URL": "https://ml.example.org",
            "MLHUB_ALLOWED_USERS": "Bob,carol",
            "MLHUB_OAUTH_LOGIN_SERVICE": "  Acme SSO ",
            "MLHUB_OIDC_SCOPES": "openid profile email groups",
            "MLHUB_OIDC_USERNAME_CLAIM": "email",
            "MLHUB_OIDC_GROUPS_CLAIM": "roles",
            "MLHUB_OIDC_LOGOUT_URL": "https://sso.example.org/realms/acme/protocol/openid-connect/logout",
        },
        MlhubOIDCAuthenticator,
        {
            "oauth_callback_url": "https://ml.example.org/hub/oauth_callback",
            "login_service": "Acme SSO",
            "allow_all": False,
            "allowed_users": {"bob", "carol"},
            "allowed_groups": set(),
            "admin_users": set(),  # oidc: no implicit 'admin'
            "admin_groups": set(),
            "manage_groups": True,
            "auth_state_groups_key": "oauth_user.roles",
            "scope": ["openid", "profile", "email", "groups"],
            "username_claim": "email",
            "logout_redirect_url": "https://sso.example.org/realms/acme/protocol/openid-connect/logout",
            "enable_pkce": True,
        },
        ["the users listed by the admins"],
        id="oidc-allowed-users-custom-claims-logout",
    ),
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "oidc",
            "MLHUB_OAUTH_CLIENT_ID": "mlhub-client",
            "MLHUB_OAUTH_CLIENT_SECRET_FILE": "{secret_file}",
            "MLHUB_PUBLIC_URL": "https://ml.example.org",
            "MLHUB_OAUTH_CALLBACK_URL": "https://ml.example.org/hub/oauth_callback/",
            "MLHUB_ALLOW_ALL": "true",
            "MLHUB_ADMIN_USERS": "root-admin",
        },
        MlhubOIDCAuthenticator,
        {
            "client_secret": "file-secret",  # read from the file, newline stripped
            "oauth_callback_url": "https://ml.example.org/hub/oauth_callback",
            "allow_all": True,
            "allowed_users": set(),
            "allowed_groups": set(),
            "admin_users": {"root-admin"},
        },
        ["the users the admins allow"],
        id="oidc-allow-all-secret-file-explicit-callback",
    ),
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "github",
            **CLIENT,
            "MLHUB_ALLOWED_GROUPS": "acme,acme:ml-team",
            "MLHUB_ADMIN_GROUPS": "acme:hub-admins",
        },
        MlhubGitHubAuthenticator,
        {
            "client_id": "mlhub-client",
            "client_secret": "s3cret-value",
            "oauth_callback_url": "http://localhost:8000/hub/oauth_callback",
            "login_service": "GitHub",
            "allow_all": False,
            "allowed_users": set(),
            "allowed_organizations": {"acme", "acme:ml-team"},
            "allowed_groups": set(),  # GitHub allow rule is allowed_organizations
            "admin_users": set(),
            "admin_groups": {"acme:hub-admins"},
            "manage_groups": True,
            "auth_state_groups_key": GitHubGroups({"acme"}),
            "populate_teams_in_auth_state": True,
            "scope": ["read:org"],
            "github_url": "https://github.com",
            "github_api": "https://api.github.com",
            "authorize_url": "https://github.com/login/oauth/authorize",
            "token_url": "https://github.com/login/oauth/access_token",
            "userdata_url": "https://api.github.com/user",
            "enable_pkce": True,
        },
        ["members of acme, acme:ml-team"],
        id="github-orgs-and-admin-team",
    ),
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "github",
            **CLIENT,
            "MLHUB_GITHUB_URL": "https://github.example.org/",
            "MLHUB_ALLOWED_USERS": "octocat",
            "MLHUB_ADMIN_USERS": "octocat",
            "MLHUB_OAUTH_LOGIN_SERVICE": "Acme GitHub Enterprise",
        },
        MlhubGitHubAuthenticator,
        {
            "login_service": "Acme GitHub Enterprise",
            "allowed_users": {"octocat"},
            "allowed_organizations": set(),
            "admin_users": {"octocat"},
            "admin_groups": set(),
            "github_url": "https://github.example.org",
            "github_api": "https://github.example.org/api/v3",
            "authorize_url": "https://github.example.org/login/oauth/authorize",
            "token_url": "https://github.example.org/login/oauth/access_token",
            "userdata_url": "https://github.example.org/api/v3/user",
        },
        ["the users listed by the admins"],
        id="github-enterprise-allowed-users",
    ),
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "gitlab",
            **CLIENT,
            "MLHUB_PUBLIC_URL": "https://ml.example.org",
            "MLHUB_ALLOWED_GROUPS": "acme/ml,acme/research",
            "MLHUB_ADMIN_USERS": "alice",
        },
        MlhubGitLabAuthenticator,
        {
            "client_id": "mlhub-client",
            "client_secret": "s3cret-value",
            "oauth_callback_url": "https://ml.example.org/hub/oauth_callback",
            "login_service": "GitLab",
            "allow_all": False,
            "allowed_gitlab_groups": {"acme/ml", "acme/research"},
            "allowed_groups": set(),
            "admin_users": {"alice"},
            "admin_groups": set(),
            "manage_groups": False,  # GitLab reports no groups at sign-in
            "scope": ["read_user", "read_api"],  # group membership needs the API
            "gitlab_url": "https://gitlab.com",
            "gitlab_api": "https://gitlab.com/api/v4",
            "authorize_url": "https://gitlab.com/oauth/authorize",
            "token_url": "https://gitlab.com/oauth/token",
            "userdata_url": "https://gitlab.com/api/v4/user",
            "enable_pkce": True,
        },
        ["members of acme/ml, acme/research"],
        id="gitlab-com-groups",
    ),
    pytest.param(
        {
            "MLHUB_AUTHENTICATOR": "gitlab",
            **CLIENT,
            "MLHUB_GITLAB_URL": "https://gitlab.example.org",
            "MLHUB_ALLOWED_USERS": "dave",
            "MLHUB_ALLOW_ALL": "yes",
        },
        MlhubGitLabAuthenticator,
        {
            "allow_all": True,
            "allowed_users": {"dave"},
            "allowed_gitlab_groups": set(),
            "scope": ["read_user"],  # no group check: no API scope asked for
            "gitlab_url": "https://gitlab.example.org",
            "gitlab_api": "https://gitlab.example.org/api/v4",
            "authorize_url": "https://gitlab.example.org/oauth/authorize",
            "token_url": "https://gitlab.example.org/oauth/token",
            "userdata_url": "https://gitlab.example.org/api/v4/user",
        },
        ["the users listed by the admins"],
        id="gitlab-self-hosted-allow-all",
    ),
]


@pytest.mark.parametrize(("env", "cls", "expected", "refusal"), OAUTH_CASES)
def test_provider_settings_wire_the_authenticator(tmp_path, env, cls, expected, refusal):
    secret_file = tmp_path / "oauth_secret"
    secret_file.write_text("file-secret\n")
    env = {k: v.format(secret_file=secret_file) for k, v in env.items()}

    c, auth_class = wire(env)
    assert auth_class is cls
    # The values are in the config sections oauthenticator reads ...
    assert c.OAuthenticator.client_id == expected.get("client_id", "mlhub-client")
    assert c.OAuthenticator.enable_pkce is True
    assert c.Authenticator.admin_users == expected.get("admin_users", set())

    # ... and the class accepts them (traitlets validation, observers).
    auth = cls(config=c)
    for trait, value in expected.items():
        assert getattr(auth, trait) == value, trait
    message = auth.custom_403_message
    assert message.startswith(REFUSAL)
    for part in refusal:
        assert part in message
    # Nothing leaks the secret into the refusal shown to users.
    assert auth.client_secret not in message


@pytest.mark.parametrize(
    ("signup", "open_signup", "enable_signup"),
    [("approval", False, True), ("open", True, True), ("closed", False, False)],
)
async def test_native_wiring_builds_the_native_authenticator(tmp_path, signup, open_signup, enable_signup):
    (tmp_path / "admin_password").write_text("first-password\n")
    # OAuth settings are ignored by native (preflight warns about them).
    env = {
        "MLHUB_SIGNUP": signup,
        "MLHUB_SECRETS_DIR": str(tmp_path),
        "MLHUB_ALLOWED_GROUPS": "ml-team",
        "MLHUB_OAUTH_CLIENT_ID": "unused",
    }
    c, auth_class = wire(env)
    assert auth_class is MlhubNativeAuthenticator
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allow_all is True
    assert "client_id" not in c.OAuthenticator
    assert "allowed_groups" not in c.GenericOAuthenticator

    db = orm.new_session_factory("sqlite://")()
    auth = MlhubNativeAuthenticator(config=c, db=db)
    assert auth.admin_users == {"admin"}
    assert auth.allow_all is True
    assert auth.open_signup is open_signup
    assert auth.enable_signup is enable_signup
    assert auth.admin_password_file == str(tmp_path / "admin_password")
    assert auth.minimum_password_length == 8
    # the implicit admin got its account with the generated first password
    assert auth.create_admin_accounts() == []  # already created by __init__
    assert await auth.authenticate(None, {"username": "admin", "password": "first-password"}) == "admin"


# ---------------------------------------------------------------- admin defaults


@pytest.mark.parametrize(
    ("provider", "admins", "config_admins"),
    [
        ("native", ("admin",), {"admin"}),
        ("oidc", (), set()),
        ("github", (), set()),
        ("gitlab", (), set()),
    ],
)
def test_empty_admin_users_means_admin_only_for_native(provider, admins, config_admins):
    env = {"MLHUB_AUTHENTICATOR": provider, "MLHUB_ADMIN_USERS": "", **CLIENT}
    settings = load_settings(env)
    assert settings.admin_users == admins
    c = Config()
    configure(c, settings, read_secrets=False, oidc_urls=dict(OIDC_URLS))
    assert c.Authenticator.admin_users == config_admins
    if provider != "native":
        assert c.OAuthenticator.admin_users == config_admins


# ---------------------------------------------------------------- GitHub groups

# /user/teams as GitHub returns it (trimmed), stored by populate_teams_in_auth_state
GITHUB_AUTH_STATE = {
    "access_token": "gho_x",
    "github_user": {"login": "octocat", "id": 1},
    "teams": [
        {
            "id": 11,
            "name": "ML Team",
            "slug": "ml-team",
            "organization": {"login": "acme", "id": 100},
            "permission": "pull",
        },
        {
            "id": 12,
            "name": "Hub Admins",
            "slug": "hub-admins",
            "organization": {"login": "acme", "id": 100},
        },
        {"id": 13, "name": "Research", "slug": "research", "organization": {"login": "globex", "id": 200}},
        # malformed entries are skipped rather than producing 'None:...'
        {"id": 14, "name": "No org", "slug": "orphans"},
        {"id": 15, "name": "No slug", "organization": {"login": "initech"}},
    ],
}


def test_github_groups_are_org_and_org_team_of_trusted_orgs_only():
    assert github_groups(GITHUB_AUTH_STATE, frozenset({"acme", "globex"})) == [
        "acme",
        "acme:hub-admins",
        "acme:ml-team",
        "globex",
        "globex:research",
    ]
    # an org the hub does not name (anyone can register one) gives no group
    assert github_groups(GITHUB_AUTH_STATE, frozenset({"acme"})) == [
        "acme",
        "acme:hub-admins",
        "acme:ml-team",
    ]
    assert github_groups(GITHUB_AUTH_STATE) == []


async def test_github_org_and_team_names_match_whatever_their_case():
    # GitHub returns the org login as spelled at creation ('Acme-Corp'); admins may
    # write it either way in MLHUB_ADMIN_GROUPS. GitHub names are case-insensitive.
    state = {"teams": [{"slug": "hub-admins", "organization": {"login": "Acme-Corp"}}]}
    assert GitHubGroups({"Acme-Corp"})(state) == ["acme-corp", "acme-corp:hub-admins"]
    c, cls = wire({"MLHUB_AUTHENTICATOR": "github", **CLIENT, "MLHUB_ALLOWED_GROUPS": "Acme-Corp",
                   "MLHUB_ADMIN_GROUPS": "Acme-Corp:hub-admins"})
    auth = cls(config=c)
    assert auth.admin_groups == {"acme-corp:hub-admins"}
    assert auth.admin_groups & await auth.get_user_groups(state)


@pytest.mark.parametrize("state", [{}, {"teams": None}, {"teams": []}], ids=["no-key", "none", "empty"])
def test_github_groups_without_teams(state):
    assert github_groups(state) == []


async def test_github_admin_team_makes_a_hub_admin_and_teams_become_hub_groups():
    c, cls = wire({"MLHUB_AUTHENTICATOR": "github", **CLIENT, "MLHUB_ALLOWED_GROUPS": "acme", "MLHUB_ADMIN_GROUPS": "acme:hub-admins"})
    auth = cls(config=c)
    acme = ["acme", "acme:hub-admins", "acme:ml-team"]  # not globex: the hub names only acme
    assert await auth.get_user_groups(GITHUB_AUTH_STATE) == set(acme)
    # oauthenticator's group step, as run after sign-in (private in 17.x)
    model = await auth._apply_managed_groups({"name": "octocat", "admin": None, "auth_state": GITHUB_AUTH_STATE})
    assert model["groups"] == acme
    assert model["admin"] is True
    plain = {**GITHUB_AUTH_STATE, "teams": GITHUB_AUTH_STATE["teams"][:1]}
    model = await auth._apply_managed_groups({"name": "jane", "admin": None, "auth_state": plain})
    assert model["groups"] == ["acme", "acme:ml-team"]
    assert model["admin"] is False  # admin status is revoked when the team is left


# ---------------------------------------------------------------- OIDC groups -> allow / admin


@pytest.mark.parametrize(
    ("user", "groups", "allowed", "admin"),
    [
        ("jane", ["ml-team"], True, False),
        ("boss", ["hub-admins"], True, True),
        ("eve", ["marketing"], False, False),
        ("eve", [], False, False),
        ("carol", [], True, False),  # in MLHUB_ALLOWED_USERS
    ],
)
async def test_oidc_groups_claim_decides_access_and_admin(user, groups, allowed, admin):
    c, cls = wire(
        {
            "MLHUB_AUTHENTICATOR": "oidc",
            **CLIENT,
            "MLHUB_ALLOWED_GROUPS": "ml-team",
            "MLHUB_ALLOWED_USERS": "carol",
            "MLHUB_ADMIN_GROUPS": "hub-admins",
            "MLHUB_OIDC_GROUPS_CLAIM": "groups",
        }
    )
    auth = cls(config=c)
    # auth_state exactly as GenericOAuthenticator builds it from a token + userinfo
    userinfo = {"sub": "123", "preferred_username": user, "groups": groups}
    state = auth.build_auth_state_dict({"access_token": "at", "scope": "openid profile"}, userinfo)
    assert auth.user_info_to_username(userinfo) == user
    model = await auth._apply_managed_groups({"name": user, "admin": None, "auth_state": state})
    assert model["groups"] == sorted(groups)
    assert model["admin"] is admin
    assert await auth.check_allowed(user, model) is allowed


async def test_open_signup_cannot_claim_a_user_an_admin_added(tmp_path):
    """`mlhub-admin add carol --admin` (or the admin page) makes a hub user with no
    password; with MLHUB_SIGNUP=open the first stranger to sign up as carol would
    have been let in as carol, admin included. That sign-up now waits for approval."""
    (tmp_path / "admin_password").write_text("first-password\n")
    c, _ = wire({"MLHUB_SIGNUP": "open", "MLHUB_SECRETS_DIR": str(tmp_path)})
    db = orm.new_session_factory("sqlite://")()
    auth = MlhubNativeAuthenticator(config=c, db=db)
    db.add(orm.User(name="carol", admin=True))
    db.commit()
    password = "a-Long-unusual-passphrase-42"
    carol = auth.create_user("carol", password)
    assert carol is not None and carol.is_authorized is False
    assert await auth.authenticate(None, {"username": "carol", "password": password}) is None
    dave = auth.create_user("dave", password)  # a new name: open sign-up as before
    assert dave.is_authorized is True
    assert await auth.authenticate(None, {"username": "dave", "password": password}) == "dave"
