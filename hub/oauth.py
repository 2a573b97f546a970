"""Sign-in through an outside identity provider, all through oauthenticator.

One function per provider turns settings into that authenticator's config; the
shared parts (client, callback, allow rules, admins, refusal message) are set
once in :func:`configure_oauth`. Provider groups become hub groups
(``manage_groups``) where the provider reports them, so GPU quotas and service
roles can hang on them:

- oidc: the groups claim of userinfo (MLHUB_OIDC_GROUPS_CLAIM);
- github: ``org:team`` of the user's teams, plus the org names, for the orgs
  named in MLHUB_ALLOWED_GROUPS/MLHUB_ADMIN_GROUPS only;
- gitlab: membership is checked against MLHUB_ALLOWED_GROUPS; GitLab does not
  return groups in the login, so hub groups are managed by admins.
"""

from __future__ import annotations

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.gitlab import GitLabOAuthenticator

from .logout import ServicesLogoutMixin
from .settings import Settings, callback_url

LOGIN_SERVICE = {"oidc": "single sign-on", "github": "GitHub", "gitlab": "GitLab"}


class MlhubOIDCAuthenticator(ServicesLogoutMixin, GenericOAuthenticator):
    """GenericOAuthenticator for OpenID Connect providers."""


class MlhubGitHubAuthenticator(ServicesLogoutMixin, GitHubOAuthenticator):
    """GitHubOAuthenticator whose teams become hub groups ('org:team')."""


class MlhubGitLabAuthenticator(ServicesLogoutMixin, GitLabOAuthenticator):
    """GitLabOAuthenticator (self-hosted URL supported)."""


CLASSES = {
    "oidc": MlhubOIDCAuthenticator,
    "github": MlhubGitHubAuthenticator,
    "gitlab": MlhubGitLabAuthenticator,
}


def github_groups(auth_state: dict, orgs: frozenset = frozenset()) -> list[str]:
    """Hub groups of a GitHub user: each org of ``orgs`` they belong to (through a
    team) and 'org:team' for each of their teams in those orgs.

    Only the organisations the hub trusts (those named in MLHUB_ALLOWED_GROUPS or
    MLHUB_ADMIN_GROUPS) give groups: org names are a global namespace anyone can
    register, so a self-made org called 'airflow-ops' must not become the hub
    group 'airflow-ops'. Lowercase: GitHub logins and slugs are case-insensitive."""
    groups = set()
    for team in auth_state.get("teams") or []:
        org = ((team.get("organization") or {}).get("login") or "").lower()
        if org and team.get("slug") and org in orgs:
            groups.add(f"{org}:{team['slug']}".lower())
            groups.add(org)
    return sorted(groups)


class GitHubGroups:
    """``auth_state_groups_key`` for GitHub: :func:`github_groups` over the trusted orgs."""

    def __init__(self, orgs):
        self.orgs = frozenset(o.split(":", 1)[0].lower() for o in orgs)

    def __call__(self, auth_state: dict) -> list[str]:
        return github_groups(auth_state, self.orgs)

    def __eq__(self, other):
        return isinstance(other, GitHubGroups) and other.orgs == self.orgs

    def __hash__(self):
        return hash(self.orgs)

    def __repr__(self):
        return f"GitHubGroups({sorted(self.orgs)!r})"


def client_secret(settings: Settings) -> str:
    if settings.oauth_client_secret_file:
        with open(settings.oauth_client_secret_file) as f:
            return f.read().strip()
    return settings.oauth_client_secret


def refusal_message(settings: Settings) -> str:
    who = []
    if settings.allowed_groups:
        who.append("members of " + ", ".join(settings.allowed_groups))
    if settings.allowed_users:
        who.append("the users listed by the admins")
    rule = " and ".join(who) or "the users the admins allow"
    return (
        "You signed in, but your account may not use this hub: it is open to "
        f"{rule}. If you should have access, ask a hub admin to add you."
    )


def configure_oauth(c, settings: Settings, oidc_urls: dict[str, str]) -> None:
    """Wire the OAuth provider chosen in settings into the hub config ``c``.

    ``oidc_urls`` holds authorize/token/userinfo URLs resolved by preflight
    (explicit settings or discovery)."""
    provider = settings.authenticator
    cls = CLASSES[provider]
    c.JupyterHub.authenticator_class = cls
    a = c.OAuthenticator
    a.client_id = settings.oauth_client_id
    a.client_secret = client_secret(settings)
    a.oauth_callback_url = callback_url(settings)
    a.login_service = settings.oauth_login_service or LOGIN_SERVICE[provider]
    a.allow_all = settings.allow_all
    a.allowed_users = set(settings.allowed_users)
    a.admin_users = set(settings.admin_users)
    a.custom_403_message = refusal_message(settings)
    a.enable_pkce = True

    if provider == "oidc":
        g = c.GenericOAuthenticator
        g.authorize_url = oidc_urls["authorize_url"]
        g.token_url = oidc_urls["token_url"]
        g.userdata_url = oidc_urls["userinfo_url"]
        g.scope = list(settings.oidc_scopes)
        g.username_claim = settings.oidc_username_claim
        g.manage_groups = True
        g.auth_state_groups_key = f"oauth_user.{settings.oidc_groups_claim}"
        g.allowed_groups = set(settings.allowed_groups)
        g.admin_groups = set(settings.admin_groups)
        if settings.oidc_logout_url:
            g.logout_redirect_url = settings.oidc_logout_url
    elif provider == "github":
        gh = c.GitHubOAuthenticator
        gh.github_url = settings.github_url
        gh.allowed_organizations = set(settings.allowed_groups)
        gh.scope = ["read:org"]
        gh.populate_teams_in_auth_state = True
        gh.manage_groups = True
        gh.auth_state_groups_key = GitHubGroups(settings.allowed_groups + settings.admin_groups)
        gh.admin_groups = {g.lower() for g in settings.admin_groups}
    elif provider == "gitlab":
        gl = c.GitLabOAuthenticator
        gl.gitlab_url = settings.gitlab_url
        gl.allowed_gitlab_groups = set(settings.allowed_groups)
        gl.scope = ["read_user", "read_api"] if settings.allowed_groups else ["read_user"]
