"""hub.preflight: sign-in mistakes found before the hub starts.

The table drives ``check(settings, fetch)`` with a fake ``fetch`` (URL -> answer
or exception), so each message is checked exactly, without a network. A
representative subset then runs the real ``jupyterhub -f jupyterhub_config.py``:
exit code 2, the message on stderr, no traceback, nothing written.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hub.preflight import Report, check, http_fetch, load_or_exit
from hub.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "jupyterhub_config.py"
JUPYTERHUB = Path(sys.executable).parent / "jupyterhub"

PUBLIC = "https://ml.example.org"
CALLBACK = PUBLIC + "/hub/oauth_callback"
ISSUER = "https://sso.example.org/realms/acme"
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
DISCOVERED = {
    "issuer": ISSUER,
    "authorization_endpoint": ISSUER + "/protocol/openid-connect/auth",
    "token_endpoint": ISSUER + "/protocol/openid-connect/token",
    "userinfo_endpoint": ISSUER + "/protocol/openid-connect/userinfo",
    "end_session_endpoint": ISSUER + "/protocol/openid-connect/logout",
}
DISCOVERED_URLS = {
    "authorize_url": DISCOVERED["authorization_endpoint"],
    "token_url": DISCOVERED["token_endpoint"],
    "userinfo_url": DISCOVERED["userinfo_endpoint"],
}
EXPLICIT = {
    "MLHUB_OIDC_AUTHORIZE_URL": "https://idp.example.net/authorize",
    "MLHUB_OIDC_TOKEN_URL": "https://idp.example.net/token",
    "MLHUB_OIDC_USERINFO_URL": "https://idp.example.net/userinfo",
}
EXPLICIT_URLS = {
    "authorize_url": EXPLICIT["MLHUB_OIDC_AUTHORIZE_URL"],
    "token_url": EXPLICIT["MLHUB_OIDC_TOKEN_URL"],
    "userinfo_url": EXPLICIT["MLHUB_OIDC_USERINFO_URL"],
}

CLIENT = {"MLHUB_OAUTH_CLIENT_ID": "mlhub-client", "MLHUB_OAUTH_CLIENT_SECRET": "s3cret"}
COMMON = {"MLHUB_PUBLIC_URL": PUBLIC, **CLIENT, "MLHUB_ADMIN_USERS": "alice"}
OIDC = {"MLHUB_AUTHENTICATOR": "oidc", **COMMON, "MLHUB_ALLOWED_GROUPS": "ml-team", "MLHUB_OIDC_ISSUER": ISSUER}
GITHUB = {"MLHUB_AUTHENTICATOR": "github", **COMMON, "MLHUB_ALLOWED_GROUPS": "acme"}
GITLAB = {"MLHUB_AUTHENTICATOR": "gitlab", **COMMON, "MLHUB_ALLOWED_GROUPS": "acme/ml"}

DISCOVERY_OK = {DISCOVERY_URL: (200, json.dumps(DISCOVERED).encode())}
PROVIDERS_UP = {
    **DISCOVERY_OK,
    EXPLICIT["MLHUB_OIDC_TOKEN_URL"]: (405, b""),  # a token endpoint refuses GET: it answered
    "https://github.com": (200, b"<html>"),
    "https://github.example.org": (200, b"<html>"),
    "https://gitlab.com": (200, b"<html>"),
    "https://gitlab.example.org": (302, b""),
}
REFUSED = ConnectionRefusedError(111, "Connection refused")


class FakeFetch:
    """fetch(url) -> (status, body): answers from a table, raises exceptions given
    as answers, and OSError (nothing answers) for URLs not in the table."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, url: str) -> tuple[int, bytes]:
        self.calls.append(url)
        answer = self.answers.get(url, OSError(f"[Errno -2] Name or service not known: {url}"))
        if isinstance(answer, BaseException):
            raise answer
        return answer


def run_check(env: dict, answers: dict | None = None, tmp_path: Path | None = None) -> tuple[Report, FakeFetch]:
    if tmp_path is not None:
        env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    fetch = FakeFetch(PROVIDERS_UP if answers is None else answers)
    return check(load_settings(env), fetch), fetch


def without(env: dict, *names: str) -> dict:
    return {k: v for k, v in env.items() if k not in names}


# ---------------------------------------------------------------- the table
# (env, fetch answers or None = every provider up, expected error substrings
#  (one list per error, in order), expected warning substrings (same), expected
#  oidc_urls or None = not checked, URLs fetched or None = not checked)

CASES = [
    # -------- settings that pass
    pytest.param(OIDC, None, [], [], DISCOVERED_URLS, [DISCOVERY_URL], id="oidc-discovery-ok"),
    pytest.param(
        {**OIDC, "MLHUB_OIDC_ISSUER": ISSUER + "/"}, None, [], [], DISCOVERED_URLS, [DISCOVERY_URL],
        id="oidc-issuer-trailing-slash",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OIDC_AUTHORIZE_URL": "https://sso.example.org/custom/auth"},
        None, [], [],
        {**DISCOVERED_URLS, "authorize_url": "https://sso.example.org/custom/auth"},
        [DISCOVERY_URL],
        id="oidc-explicit-url-overrides-discovery",
    ),
    pytest.param(
        {**without(OIDC, "MLHUB_OIDC_ISSUER"), **EXPLICIT}, None, [], [], EXPLICIT_URLS,
        [EXPLICIT["MLHUB_OIDC_TOKEN_URL"]],  # probed, not discovered
        id="oidc-explicit-urls-no-issuer",
    ),
    pytest.param(
        {**OIDC, **EXPLICIT}, None, [], [], EXPLICIT_URLS, [EXPLICIT["MLHUB_OIDC_TOKEN_URL"]],
        id="oidc-all-explicit-issuer-not-needed",
    ),
    pytest.param(GITHUB, None, [], [], {}, ["https://github.com"], id="github-ok"),
    pytest.param(
        {**GITLAB, "MLHUB_GITLAB_URL": "https://gitlab.example.org"}, None, [], [], {},
        ["https://gitlab.example.org"], id="gitlab-self-hosted-ok",
    ),
    pytest.param(
        {**without(OIDC, "MLHUB_OAUTH_CLIENT_SECRET"), "MLHUB_OAUTH_CLIENT_SECRET_FILE": "{tmp}/oauth_secret"},
        None, [], [], DISCOVERED_URLS, None, id="secret-from-file",
    ),
    pytest.param(
        {**without(OIDC, "MLHUB_ALLOWED_GROUPS"), "MLHUB_ALLOW_ALL": "true"}, None, [], [], DISCOVERED_URLS, None,
        id="allow-all-is-an-allow-rule",
    ),
    pytest.param(
        {**without(GITHUB, "MLHUB_ALLOWED_GROUPS"), "MLHUB_ALLOWED_USERS": "octocat"}, None, [], [], {}, None,
        id="allowed-users-is-an-allow-rule",
    ),
    pytest.param(
        {**without(OIDC, "MLHUB_ADMIN_USERS"), "MLHUB_ADMIN_GROUPS": "hub-admins"}, None, [], [], DISCOVERED_URLS, None,
        id="admin-groups-is-an-admin",
    ),
    # -------- client
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CLIENT_ID": ""}, None,
        [["MLHUB_OAUTH_CLIENT_ID is empty", "at your oidc provider", f"with the callback URL {CALLBACK}",
          "then set its client id"]],
        [], None, None, id="oidc-empty-client-id",
    ),
    pytest.param(
        {**GITHUB, "MLHUB_OAUTH_CLIENT_ID": "  "}, None,
        [["MLHUB_OAUTH_CLIENT_ID is empty", "at your github provider", f"callback URL {CALLBACK}"]],
        [], None, None, id="github-empty-client-id",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CLIENT_SECRET": ""}, None,
        [["MLHUB_OAUTH_CLIENT_SECRET is empty", "(or MLHUB_OAUTH_CLIENT_SECRET_FILE)"]],
        [], None, None, id="empty-secret",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CLIENT_SECRET_FILE": "{tmp}/missing"}, None,
        [["MLHUB_OAUTH_CLIENT_SECRET_FILE={tmp}/missing: no such file."]],
        [], None, None, id="secret-file-missing",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CLIENT_SECRET_FILE": "{tmp}/blank"}, None,
        [["MLHUB_OAUTH_CLIENT_SECRET_FILE={tmp}/blank is empty."]],
        [], None, None, id="secret-file-empty",
    ),
    # -------- callback
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CALLBACK_URL": "https://other.example.org/hub/oauth_callback"}, None,
        [["MLHUB_OAUTH_CALLBACK_URL=https://other.example.org/hub/oauth_callback is not under "
          f"MLHUB_PUBLIC_URL={PUBLIC}", "somewhere the hub is not", f"Use {CALLBACK} (and register exactly that URL)"]],
        [], None, None, id="callback-other-host",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CALLBACK_URL": "http://ml.example.org/hub/oauth_callback"}, None,
        [["MLHUB_OAUTH_CALLBACK_URL=http://ml.example.org/hub/oauth_callback is not under"]],
        [], None, None, id="callback-other-scheme",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OAUTH_CALLBACK_URL": PUBLIC + "/oauth_callback"}, None,
        [[f"MLHUB_OAUTH_CALLBACK_URL={PUBLIC}/oauth_callback: the hub receives the callback at {CALLBACK}",
          "use (and register) that URL"]],
        [], None, None, id="callback-wrong-path",
    ),
    # -------- allow / admin rules
    *[
        pytest.param(
            without(env, "MLHUB_ALLOWED_GROUPS"), None,
            [[f"No allow rule: with MLHUB_AUTHENTICATOR={name} everyone except admins would be refused (403)",
              "MLHUB_ALLOWED_GROUPS and/or MLHUB_ALLOWED_USERS", "MLHUB_ALLOW_ALL=true"]],
            [], None, None, id=f"{name}-no-allow-rule",
        )
        for name, env in (("oidc", OIDC), ("github", GITHUB), ("gitlab", GITLAB))
    ],
    pytest.param(
        {**without(OIDC, "MLHUB_ALLOWED_GROUPS"), "MLHUB_ALLOW_ALL": "false"}, None,
        [["No allow rule"]], [], None, None, id="allow-all-false-is-no-rule",
    ),
    pytest.param(
        without(OIDC, "MLHUB_ADMIN_USERS"), None, [],
        [["No admin: set MLHUB_ADMIN_USERS or MLHUB_ADMIN_GROUPS, or nobody can manage users."]],
        DISCOVERED_URLS, None, id="no-admin-warns",
    ),
    pytest.param(
        {**GITLAB, "MLHUB_ADMIN_GROUPS": "acme/admins"}, None,
        [["MLHUB_ADMIN_GROUPS is not supported with gitlab", "use MLHUB_ADMIN_USERS"]],
        [], None, None, id="gitlab-admin-groups",
    ),
    # -------- OIDC endpoints
    pytest.param(
        without(OIDC, "MLHUB_OIDC_ISSUER"), None,
        [[f"{env} is empty and MLHUB_OIDC_ISSUER is not set",
          "set MLHUB_OIDC_ISSUER (discovery) or the three MLHUB_OIDC_*_URL settings"]
         for env in ("MLHUB_OIDC_AUTHORIZE_URL", "MLHUB_OIDC_TOKEN_URL", "MLHUB_OIDC_USERINFO_URL")],
        [], None, [], id="oidc-no-issuer-no-urls",
    ),
    pytest.param(
        {**without(OIDC, "MLHUB_OIDC_ISSUER"), "MLHUB_OIDC_TOKEN_URL": EXPLICIT["MLHUB_OIDC_TOKEN_URL"]}, None,
        [["MLHUB_OIDC_AUTHORIZE_URL is empty and MLHUB_OIDC_ISSUER is not set"],
         ["MLHUB_OIDC_USERINFO_URL is empty and MLHUB_OIDC_ISSUER is not set"]],
        [], None, [], id="oidc-partial-urls-no-issuer",
    ),
    pytest.param(
        OIDC,
        {DISCOVERY_URL: (200, json.dumps({k: v for k, v in DISCOVERED.items() if k != "userinfo_endpoint"}).encode())},
        [["MLHUB_OIDC_USERINFO_URL is empty and discovery has no userinfo_endpoint"]],
        [], None, [DISCOVERY_URL], id="oidc-discovery-lacks-userinfo",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OIDC_USERINFO_URL": EXPLICIT["MLHUB_OIDC_USERINFO_URL"]},
        {DISCOVERY_URL: (200, json.dumps({k: v for k, v in DISCOVERED.items() if k != "userinfo_endpoint"}).encode())},
        [], [], {**DISCOVERED_URLS, "userinfo_url": EXPLICIT["MLHUB_OIDC_USERINFO_URL"]}, [DISCOVERY_URL],
        id="oidc-explicit-url-fills-discovery-gap",
    ),
    pytest.param(
        OIDC, {DISCOVERY_URL: REFUSED},
        [[f"MLHUB_OIDC_ISSUER={ISSUER}: could not read {DISCOVERY_URL} ([Errno 111] Connection refused)",
          "Fix the issuer URL, or set MLHUB_OIDC_AUTHORIZE_URL, MLHUB_OIDC_TOKEN_URL and MLHUB_OIDC_USERINFO_URL."]],
        [], {}, [DISCOVERY_URL], id="oidc-issuer-unreachable",
    ),
    pytest.param(
        OIDC, {DISCOVERY_URL: (404, b"")},
        [[f"MLHUB_OIDC_ISSUER={ISSUER}: could not read {DISCOVERY_URL} (HTTP 404)"]],
        [], {}, [DISCOVERY_URL], id="oidc-issuer-404",
    ),
    pytest.param(
        OIDC, {DISCOVERY_URL: (200, b"<!doctype html><title>Welcome</title>")},
        [[f"MLHUB_OIDC_ISSUER={ISSUER}: could not read {DISCOVERY_URL} (Expecting value"]],
        [], {}, [DISCOVERY_URL], id="oidc-issuer-answers-html",
    ),
    pytest.param(
        {**without(OIDC, "MLHUB_OIDC_ISSUER"), **EXPLICIT}, {EXPLICIT["MLHUB_OIDC_TOKEN_URL"]: REFUSED},
        [],
        [["MLHUB_OIDC_TOKEN_URL: the provider at https://idp.example.net/token does not answer from the hub "
          "([Errno 111] Connection refused); sign-in will fail until it does."]],
        EXPLICIT_URLS, [EXPLICIT["MLHUB_OIDC_TOKEN_URL"]], id="oidc-explicit-urls-unreachable-warns",
    ),
    # -------- GitHub / GitLab reachability
    pytest.param(
        GITHUB, {},
        [], [["MLHUB_GITHUB_URL: the provider at https://github.com does not answer from the hub",
              "Name or service not known"]],
        {}, ["https://github.com"], id="github-unreachable-warns",
    ),
    pytest.param(
        {**GITHUB, "MLHUB_GITHUB_URL": "https://github.example.org"}, {"https://github.example.org": REFUSED},
        [], [["MLHUB_GITHUB_URL: the provider at https://github.example.org does not answer"]],
        {}, ["https://github.example.org"], id="github-enterprise-unreachable-warns",
    ),
    pytest.param(
        {**GITLAB, "MLHUB_GITLAB_URL": "https://gitlab.example.org"}, {"https://gitlab.example.org": REFUSED},
        [], [["MLHUB_GITLAB_URL: the provider at https://gitlab.example.org does not answer",
              "Check the URL and the hub's network."]],
        {}, ["https://gitlab.example.org"], id="gitlab-unreachable-warns",
    ),
    # -------- native
    pytest.param({}, {}, [], [], {}, [], id="native-default-quiet"),
    pytest.param(
        {"MLHUB_ALLOWED_GROUPS": "ml-team", "MLHUB_ADMIN_GROUPS": "admins", "MLHUB_OAUTH_CLIENT_ID": "x"}, {},
        [], [["MLHUB_ALLOWED_GROUPS, MLHUB_ADMIN_GROUPS, MLHUB_OAUTH_CLIENT_ID set but MLHUB_AUTHENTICATOR=native "
              "ignores them", "set MLHUB_AUTHENTICATOR=oidc, github or gitlab to use a provider."]],
        {}, [], id="native-with-oauth-settings-warns",
    ),
    pytest.param(
        {"MLHUB_AUTHENTICATOR": "native", "MLHUB_OAUTH_CLIENT_ID": "x"}, {},
        [], [["MLHUB_OAUTH_CLIENT_ID set but MLHUB_AUTHENTICATOR=native ignores them"]],
        {}, [], id="native-with-client-id-warns",
    ),
]


def _match(kind: str, got: list[str], expected: list[list[str]], tmp_path: Path) -> None:
    assert len(got) == len(expected), f"{kind}: {got}"
    for message, parts in zip(got, expected):
        for part in parts:
            assert part.replace("{tmp}", str(tmp_path)) in message, f"{kind}: {part!r} not in {message!r}"


@pytest.mark.parametrize(("env", "answers", "errors", "warnings", "oidc_urls", "fetched"), CASES)
def test_preflight_case(tmp_path, env, answers, errors, warnings, oidc_urls, fetched):
    (tmp_path / "oauth_secret").write_text("from-a-file\n")
    (tmp_path / "blank").write_text(" \n")
    report, fetch = run_check(env, answers, tmp_path)
    _match("errors", report.errors, errors, tmp_path)
    _match("warnings", report.warnings, warnings, tmp_path)
    if oidc_urls is not None:
        assert report.oidc_urls == oidc_urls
    if fetched is not None:
        assert fetch.calls == fetched


def test_errors_stop_the_oidc_probe_but_not_discovery():
    # With a setting error the token endpoint is not probed (the hub stops anyway),
    # but discovery still runs so all OIDC problems are listed at once.
    report, fetch = run_check({**OIDC, "MLHUB_OAUTH_CLIENT_SECRET": ""}, {DISCOVERY_URL: (404, b"")})
    assert len(report.errors) == 2
    assert report.errors[0].startswith("MLHUB_OAUTH_CLIENT_SECRET is empty")
    assert report.errors[1].startswith(f"MLHUB_OIDC_ISSUER={ISSUER}: could not read")
    assert fetch.calls == [DISCOVERY_URL]
    report, fetch = run_check({**without(OIDC, "MLHUB_OIDC_ISSUER"), **EXPLICIT, "MLHUB_OAUTH_CLIENT_ID": ""})
    assert len(report.errors) == 1 and fetch.calls == []


def test_all_problems_are_reported_together():
    env = {
        "MLHUB_AUTHENTICATOR": "gitlab",
        "MLHUB_PUBLIC_URL": PUBLIC,
        "MLHUB_OAUTH_CALLBACK_URL": "https://other.example.org/hub/oauth_callback",
        "MLHUB_ADMIN_GROUPS": "acme/admins",
    }
    report, _ = run_check(env, {})
    assert [e.split(" ")[0].split("=")[0] for e in report.errors] == [
        "MLHUB_OAUTH_CLIENT_ID",
        "MLHUB_OAUTH_CLIENT_SECRET",
        "MLHUB_OAUTH_CALLBACK_URL",
        "No",  # No allow rule
        "MLHUB_ADMIN_GROUPS",
    ]
    assert "https://other.example.org/hub/oauth_callback" in report.errors[0]  # the URL to register
    assert len(report.warnings) == 1 and "MLHUB_GITLAB_URL" in report.warnings[0]


def test_unknown_provider_is_a_settings_error_naming_the_choices():
    with pytest.raises(SettingsError) as e:
        load_settings({"MLHUB_AUTHENTICATOR": "ldap"})
    assert e.value.problems == ["MLHUB_AUTHENTICATOR='ldap': expected one of: native, oidc, github, gitlab"]


# ---------------------------------------------------------------- odd answers (were product bugs, now fixed)


@pytest.mark.parametrize("body", [b"[]", b"null", b'"ok"'])
def test_discovery_json_that_is_not_an_object_is_an_issuer_error(body):
    # (was an AttributeError traceback: discovered.get() on a list/None/str)
    report, _ = run_check(OIDC, {DISCOVERY_URL: (200, body)})
    assert report.errors == [
        f"MLHUB_OIDC_ISSUER={ISSUER}: could not read {DISCOVERY_URL} (not a discovery document (JSON object)). "
        "Fix the issuer URL, or set MLHUB_OIDC_AUTHORIZE_URL, MLHUB_OIDC_TOKEN_URL and MLHUB_OIDC_USERINFO_URL."
    ]
    assert report.oidc_urls == {}


def test_undecodable_secret_file_is_a_setting_error(tmp_path):
    secret = tmp_path / "oauth_secret"
    secret.write_bytes("s3cret\r\n".encode("utf-16"))
    report, _ = run_check({**without(OIDC, "MLHUB_OAUTH_CLIENT_SECRET"), "MLHUB_OAUTH_CLIENT_SECRET_FILE": str(secret)})
    assert len(report.errors) == 1 and f"MLHUB_OAUTH_CLIENT_SECRET_FILE={secret}" in report.errors[0]


@pytest.mark.parametrize(
    "callback",
    ["https://ml.example.org:443/hub/oauth_callback", "https://ML.example.org/hub/oauth_callback"],
    ids=["default-port", "host-case"],
)
def test_same_callback_spelled_differently_is_accepted(callback):
    report, _ = run_check({**OIDC, "MLHUB_OAUTH_CALLBACK_URL": callback})
    assert report.errors == []


class BannerServer:
    """A TCP service that is not HTTP (an SSH-like banner), as found when the
    issuer URL has the wrong port."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture
def banner():
    server = BannerServer()
    yield server
    server.close()


@pytest.mark.parametrize("explicit", [False, True], ids=["issuer", "explicit-token-url"])
def test_non_http_service_at_the_provider_url_is_reported(banner, explicit):
    # Real http_fetch against a service that answers, but not in HTTP (was an
    # uncaught http.client.BadStatusLine: a traceback out of jupyterhub_config.py).
    base = f"http://127.0.0.1:{banner.port}"
    if explicit:
        env = {**without(OIDC, "MLHUB_OIDC_ISSUER"), "MLHUB_OIDC_AUTHORIZE_URL": base + "/auth",
               "MLHUB_OIDC_TOKEN_URL": base + "/token", "MLHUB_OIDC_USERINFO_URL": base + "/userinfo"}
    else:
        env = {**OIDC, "MLHUB_OIDC_ISSUER": base}
    report = check(load_settings(env), http_fetch)
    if explicit:  # the provider may come up later: a warning
        assert report.errors == []
        assert report.warnings == [
            f"MLHUB_OIDC_TOKEN_URL: the provider at {base}/token does not answer from the hub "
            "(not an HTTP answer (BadStatusLine)); sign-in will fail until it does. "
            "Check the URL and the hub's network."
        ]
    else:  # no endpoints at all: an error
        assert report.warnings == []
        assert report.errors == [
            f"MLHUB_OIDC_ISSUER={base}: could not read {base}/.well-known/openid-configuration "
            "(not an HTTP answer (BadStatusLine)). Fix the issuer URL, or set MLHUB_OIDC_AUTHORIZE_URL, "
            "MLHUB_OIDC_TOKEN_URL and MLHUB_OIDC_USERINFO_URL."
        ]


# ---------------------------------------------------------------- the real jupyterhub


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_hub(settings: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    cwd = tmp_path / "cwd"
    secrets = tmp_path / "secrets"
    cwd.mkdir()
    secrets.mkdir()
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT") if k in os.environ}
    env.update(HOME=str(cwd), MLHUB_SECRETS_DIR=str(secrets), **settings)
    start = time.monotonic()
    proc = subprocess.run(
        [str(JUPYTERHUB), "-f", str(CONFIG)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    proc.seconds = time.monotonic() - start
    # It stopped before configure(): no secrets, no database, no pid or cookie file.
    proc.wrote = sorted(p.name for p in [*cwd.iterdir(), *secrets.iterdir()])
    return proc


OIDC_EXPLICIT = {**without(OIDC, "MLHUB_OIDC_ISSUER"), **EXPLICIT}

HUB_CASES = [
    pytest.param(
        {"MLHUB_AUTHENTICATOR": "ldap"},
        ["Invalid configuration", "MLHUB_AUTHENTICATOR='ldap': expected one of: native, oidc, github, gitlab"],
        id="unknown-provider",
    ),
    pytest.param(
        {**OIDC_EXPLICIT, "MLHUB_OAUTH_CLIENT_ID": ""},
        ["Sign-in is misconfigured (fix these in .env, then start again):",
         f"  - MLHUB_OAUTH_CLIENT_ID is empty: register the hub as an OAuth application at your oidc provider "
         f"with the callback URL {CALLBACK}, then set its client id."],
        id="empty-client-id",
    ),
    pytest.param(
        {**OIDC_EXPLICIT, "MLHUB_OAUTH_CALLBACK_URL": "https://hub.other.org/hub/oauth_callback"},
        ["Sign-in is misconfigured",
         f"  - MLHUB_OAUTH_CALLBACK_URL=https://hub.other.org/hub/oauth_callback is not under MLHUB_PUBLIC_URL={PUBLIC}"],
        id="callback-mismatch",
    ),
    pytest.param(
        without(OIDC_EXPLICIT, "MLHUB_ALLOWED_GROUPS"),
        ["Sign-in is misconfigured", "  - No allow rule: with MLHUB_AUTHENTICATOR=oidc everyone except admins"],
        id="no-allow-rule",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OIDC_ISSUER": "http://127.0.0.1:{closed}/realms/acme"},
        ["Sign-in is misconfigured",
         "  - MLHUB_OIDC_ISSUER=http://127.0.0.1:{closed}/realms/acme: could not read "
         "http://127.0.0.1:{closed}/realms/acme/.well-known/openid-configuration (",
         "Connection refused"],
        id="issuer-unreachable",
    ),
    pytest.param(
        {**OIDC, "MLHUB_OIDC_ISSUER": "http://127.0.0.1:{banner}"},
        ["Sign-in is misconfigured", "  - MLHUB_OIDC_ISSUER=http://127.0.0.1:{banner}: could not read",
         "(not an HTTP answer (BadStatusLine))"],
        id="issuer-not-http",
    ),
]


@pytest.mark.parametrize(("settings", "expected"), HUB_CASES)
def test_real_jupyterhub_stops_with_the_message(tmp_path, banner, settings, expected):
    ports = {"closed": closed_port(), "banner": banner.port}
    settings = {k: v.format(**ports) for k, v in settings.items()}
    proc = run_hub(settings, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    for part in expected:
        assert part.format(**ports) in proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.wrote == []
    assert proc.seconds < 30


def test_unreachable_provider_with_explicit_urls_only_warns(monkeypatch, capsys):
    port = closed_port()
    env = {
        **without(OIDC, "MLHUB_OIDC_ISSUER"),
        "MLHUB_OIDC_AUTHORIZE_URL": f"http://127.0.0.1:{port}/auth",
        "MLHUB_OIDC_TOKEN_URL": f"http://127.0.0.1:{port}/token",
        "MLHUB_OIDC_USERINFO_URL": f"http://127.0.0.1:{port}/userinfo",
    }
    for name in [k for k in os.environ if k.startswith("MLHUB_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # load_or_exit() reads os.environ and probes with the real http_fetch
    settings, report = load_or_exit()  # no SystemExit
    assert settings.authenticator == "oidc"
    assert report.errors == []
    assert report.oidc_urls == {
        "authorize_url": f"http://127.0.0.1:{port}/auth",
        "token_url": f"http://127.0.0.1:{port}/token",
        "userinfo_url": f"http://127.0.0.1:{port}/userinfo",
    }
    err = capsys.readouterr().err
    assert err.startswith(
        f"[mlhub preflight] WARNING: MLHUB_OIDC_TOKEN_URL: the provider at http://127.0.0.1:{port}/token "
        "does not answer from the hub ("
    )
    assert "Connection refused" in err
    assert "Sign-in is misconfigured" not in err


def test_load_or_exit_exits_2_in_process(monkeypatch, capsys):
    # the same path as the subprocess cases, with the fake fetch: SystemExit(2), no exception
    import hub.preflight as preflight

    real_check = preflight.check
    monkeypatch.setattr(preflight, "check", lambda s: real_check(s, FakeFetch({DISCOVERY_URL: (404, b"")})))
    with pytest.raises(SystemExit) as e:
        load_or_exit({**OIDC})
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "Sign-in is misconfigured (fix these in .env, then start again):\n"
        f"  - MLHUB_OIDC_ISSUER={ISSUER}: could not read {DISCOVERY_URL} (HTTP 404). Fix the issuer URL, or set "
        "MLHUB_OIDC_AUTHORIZE_URL, MLHUB_OIDC_TOKEN_URL and MLHUB_OIDC_USERINFO_URL.\n"
    )


# ----------------------------------------------------------------------------- database

from hub.preflight import database_problem, masked_db_url  # noqa: E402

PG = "postgresql+psycopg://hub:s3cret-pw@hub-db:5432/hub"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_sqlite_needs_no_connection():
    def connect(url):
        raise AssertionError("SQLite must not be probed")

    assert database_problem("sqlite:////srv/jupyterhub/data/jupyterhub.sqlite", connect) is None


def test_postgres_reachable_is_no_problem():
    seen = []
    assert database_problem(PG, seen.append) is None
    assert seen == [PG]


def test_postgres_still_starting_is_waited_for():
    clock, calls = FakeClock(), []

    def connect(url):
        calls.append(clock.now)
        if len(calls) < 4:
            raise OSError('connection failed: connection to server at "172.18.0.2", port 5432 failed: Connection refused')

    assert database_problem(PG, connect, wait=60, sleep=clock.sleep, clock=clock) is None
    assert calls == [0, 2, 4, 6]


def test_postgres_unreachable_names_the_setting_without_the_password():
    clock = FakeClock()

    def connect(url):
        raise OSError('connection failed: could not translate host name "hub-db" to address\nmore')

    msg = database_problem(PG, connect, wait=10, sleep=clock.sleep, clock=clock)
    assert msg.startswith("MLHUB_DB_URL=postgresql+psycopg://hub:***@hub-db:5432/hub: cannot connect")
    assert 'could not translate host name "hub-db"' in msg and "more" not in msg
    assert "s3cret-pw" not in msg
    assert clock.now >= 10


def test_wrong_password_is_not_retried():
    clock, calls = FakeClock(), []

    def connect(url):
        calls.append(1)
        raise OSError('connection failed: FATAL:  password authentication failed for user "hub"')

    msg = database_problem(PG, connect, wait=60, sleep=clock.sleep, clock=clock)
    assert len(calls) == 1 and "password authentication failed" in msg


def test_masked_db_url():
    assert masked_db_url("postgresql://u:p%40ss@db/hub") == "postgresql://u:***@db/hub"
    assert masked_db_url("postgresql://u@db/hub") == "postgresql://u@db/hub"
    assert masked_db_url("sqlite:////x.sqlite") == "sqlite:////x.sqlite"


def test_load_or_exit_stops_on_an_unreachable_database(monkeypatch, capsys):
    import hub.preflight as preflight

    monkeypatch.setattr(preflight, "database_problem", lambda url: f"MLHUB_DB_URL={url}: cannot connect")
    with pytest.raises(SystemExit) as e:
        load_or_exit({"MLHUB_DB_URL": "postgresql://hub:pw@nowhere/hub"})
    assert e.value.code == 2
    assert "MLHUB_DB_URL=postgresql+psycopg://hub:pw@nowhere/hub: cannot connect" in capsys.readouterr().err
