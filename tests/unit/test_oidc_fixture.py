"""Exercises the TEST FIXTURE tests/support/oidc.py (a real oidc-provider run with Node), not
the platform: a full authorization-code flow with `requests` and no browser, the claims at the
userinfo endpoint, both client authentication methods, refused sign-ins, and a token/userinfo
call that arrives with another Host header (as from a hub in a container)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.support.oidc import OidcProvider, SignInRefused, ensure_installed, sign_in

REDIRECT = "http://127.0.0.1:9/hub/oauth_callback"  # never contacted: the flow stops before it
ACCOUNTS = {
    "alice": {"password": "alice-pw", "email": "alice@example.org",
              "groups": ["ml-team", "gpu-users"], "name": "Alice Example"},
    "bob": {"password": "bob-pw", "email": "bob@example.org", "groups": [], "name": "Bob"},
}
CLIENTS = [
    {"client_id": "hub-post", "client_secret": "post-secret", "redirect_uris": [REDIRECT]},
    {"client_id": "hub-basic", "client_secret": "basic-secret", "redirect_uris": [REDIRECT],
     "token_endpoint_auth_method": "client_secret_basic"},
]
SCOPE = "openid profile email groups"

@pytest.fixture(scope="module")
def idp():
    install = ensure_installed()
    with OidcProvider(clients=CLIENTS, accounts=ACCOUNTS) as p:
        print(f"\noidc fixture: npm ci {install:.1f} s, provider start {p.start_seconds:.2f} s")
        yield p


def authorize(idp: OidcProvider, session: requests.Session, client_id: str, login: str,
              password: str) -> tuple[str, str]:
    state = secrets.token_urlsafe(16)
    url = idp.authorize_url + "?" + urlencode({
        "client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code",
        "scope": SCOPE, "state": state,
    })
    back = sign_in(session, url, login, password, stop_at=REDIRECT)
    q = parse_qs(urlsplit(back.url).query)
    assert "error" not in q, q
    assert q["state"] == [state]
    assert q.get("iss") in (None, [idp.issuer])
    return q["code"][0], state


def test_fixture_code_flow_client_secret_post_gives_claims_at_userinfo(idp):
    t0 = time.monotonic()
    s = requests.Session()
    code, _ = authorize(idp, s, "hub-post", "alice", "alice-pw")
    r = requests.post(idp.token_url, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": "hub-post", "client_secret": "post-secret",
    }, timeout=10)
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["token_type"].lower() == "bearer"
    assert tok["id_token"].count(".") == 2
    id_claims = json.loads(base64.urlsafe_b64decode(tok["id_token"].split(".")[1] + "=="))
    assert id_claims["iss"] == idp.issuer and id_claims["sub"] == "alice"

    info = requests.get(idp.userinfo_url, headers={
        "Authorization": f"Bearer {tok['access_token']}"}, timeout=10)
    assert info.status_code == 200, info.text
    claims = info.json()
    assert claims["sub"] == "alice"
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.org"
    assert claims["name"] == "Alice Example"
    assert claims["groups"] == ["ml-team", "gpu-users"]
    # a code is single-use
    again = requests.post(idp.token_url, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": "hub-post", "client_secret": "post-secret",
    }, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert time.monotonic() - t0 < 10


def test_fixture_code_flow_client_secret_basic_and_other_host_header(idp):
    """Token and userinfo reached under another Host than the issuer, as a hub in a container
    does through host.docker.internal: same answers, tokens still carry the issuer."""
    s = requests.Session()
    code, _ = authorize(idp, s, "hub-basic", "bob", "bob-pw")
    other = {"Host": f"host.docker.internal:{idp.port}"}
    r = requests.post(idp.token_url, auth=("hub-basic", "basic-secret"), headers=other, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}, timeout=10)
    assert r.status_code == 200, r.text
    tok = r.json()
    id_claims = json.loads(base64.urlsafe_b64decode(tok["id_token"].split(".")[1] + "=="))
    assert id_claims["iss"] == idp.issuer
    info = requests.get(idp.userinfo_url, timeout=10, headers={
        **other, "Authorization": f"Bearer {tok['access_token']}"})
    assert info.status_code == 200, info.text
    assert info.json()["preferred_username"] == "bob"
    assert info.json()["groups"] == []
    # oidc-provider 9 takes client_secret_post for a client registered with client_secret_basic
    # too (and vice versa): the client authenticates, the bogus code is what is refused
    other_method = requests.post(idp.token_url, data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT,
        "client_id": "hub-basic", "client_secret": "basic-secret"}, timeout=10)
    assert other_method.status_code == 400 and other_method.json()["error"] == "invalid_grant"
    # ... but with a wrong secret the client is refused either way
    bad = requests.post(idp.token_url, auth=("hub-basic", "wrong"), data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT}, timeout=10)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


@pytest.mark.parametrize("login,password", [("alice", "wrong"), ("mallory", "anything"),
                                            ("alice", "")])
def test_fixture_refuses_wrong_password_and_unknown_login(idp, login, password):
    s = requests.Session()
    url = idp.authorize_url + "?" + urlencode({
        "client_id": "hub-post", "redirect_uri": REDIRECT, "response_type": "code",
        "scope": SCOPE, "state": "st"})
    with pytest.raises(SignInRefused) as e:
        sign_in(s, url, login, password, stop_at=REDIRECT)
    assert "Invalid login or password" in e.value.response.text
    # the same interaction still accepts the right credentials afterwards
    if login == "alice":
        form = e.value.response.url
        r = s.post(form, data={"prompt": "login", "login": "alice", "password": "alice-pw"},
                   allow_redirects=False, timeout=10)
        assert r.is_redirect, r.text


def test_fixture_bad_client_secret_and_bad_token_are_refused(idp):
    r = requests.post(idp.token_url, data={
        "grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT,
        "client_id": "hub-post", "client_secret": "nope"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.get(idp.userinfo_url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401


def test_fixture_urls_and_discovery(idp):
    d = requests.get(idp.discovery_url, timeout=10).json()
    assert d["issuer"] == idp.issuer
    assert d["authorization_endpoint"] == idp.authorize_url
    assert d["token_endpoint"] == idp.token_url
    assert d["userinfo_endpoint"] == idp.userinfo_url
    assert {"openid", "profile", "email", "groups"} <= set(d["scopes_supported"])
    assert idp.internal_url("token") == f"http://host.docker.internal:{idp.port}/token"
    assert idp.internal_url("userinfo", "172.17.0.1") == f"http://172.17.0.1:{idp.port}/me"
    cfg = idp.generic_oauthenticator_config("hub-post")
    assert cfg["token_url"].startswith("http://host.docker.internal:") and not cfg["basic_auth"]
    assert cfg["authorize_url"] == idp.authorize_url
    assert "GET 127.0.0.1" in idp.log_text()
