"""A small client for the hub's REST API and login form, used by the tests."""

from __future__ import annotations

import time
from urllib.parse import quote as _quote

import requests


def quote(s: str) -> str:
    """Escape a user or server name the way JupyterHub builds its URLs."""
    return _quote(s, safe="@~")


class HubError(AssertionError):
    pass


class Hub:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def url(self, path: str) -> str:
        return self.base_url + path

    # ------------------------------------------------------------ browser-like login
    def login_session(self, username: str, password: str) -> requests.Session:
        """Log in through /hub/login as a browser would; return the cookie session."""
        s = requests.Session()
        r = s.get(self.url("/hub/login"), timeout=30)
        r.raise_for_status()
        xsrf = s.cookies.get("_xsrf")
        r = s.post(
            self.url("/hub/login"),
            data={"username": username, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        if r.status_code not in (302, 303) or "jupyterhub-session-id" not in s.cookies:
            raise HubError(f"login as {username} failed: {r.status_code} {r.text[:300]}")
        return s

    def token_from_session(self, s: requests.Session, username: str, note: str = "tests") -> str:
        r = s.post(
            self.url(f"/hub/api/users/{quote(username)}/tokens"),
            json={"note": note, "expires_in": 7200},
            headers={"X-XSRFToken": s.cookies.get("_xsrf"), "Referer": self.url("/hub/")},
            timeout=30,
        )
        if r.status_code != 201:
            raise HubError(f"token for {username}: {r.status_code} {r.text[:300]}")
        return r.json()["token"]

    # ------------------------------------------------------------ token API
    def api(self, token: str, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        headers["Authorization"] = f"token {token}"
        return requests.request(
            method, self.url("/hub/api" + path), headers=headers, timeout=kw.pop("timeout", 60), **kw
        )

    def create_user(self, admin_token: str, name: str) -> None:
        r = self.api(admin_token, "POST", f"/users/{quote(name)}")
        if r.status_code not in (201, 409):
            raise HubError(f"create {name}: {r.status_code} {r.text[:300]}")

    def user_token(self, admin_token: str, name: str) -> str:
        r = self.api(admin_token, "POST", f"/users/{quote(name)}/tokens", json={"note": "tests"})
        if r.status_code != 201:
            raise HubError(f"token for {name}: {r.status_code} {r.text[:300]}")
        return r.json()["token"]

    def server_model(self, token: str, name: str, server: str = "") -> dict | None:
        r = self.api(token, "GET", f"/users/{quote(name)}")
        r.raise_for_status()
        return r.json().get("servers", {}).get(server)

    def start_server(
        self, token: str, name: str, server: str = "", options: dict | None = None, timeout: float = 300
    ) -> float:
        """Start a server and wait until it is ready; return seconds from request to ready."""
        path = f"/users/{quote(name)}/servers/{quote(server)}" if server else f"/users/{quote(name)}/server"
        t0 = time.monotonic()
        r = self.api(token, "POST", path, json=options or {})
        if r.status_code not in (201, 202):
            raise HubError(f"start {name}/{server}: {r.status_code} {r.text[:500]}")
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            model = self.server_model(token, name, server)
            if model and model.get("ready"):
                return time.monotonic() - t0
            if model is None and r.status_code == 202 and time.monotonic() - t0 > 5:
                raise HubError(f"server {name}/{server} vanished while starting")
            time.sleep(0.2)
        raise HubError(f"server {name}/{server} not ready after {timeout}s")

    def stop_server(self, token: str, name: str, server: str = "", timeout: float = 120) -> None:
        path = f"/users/{quote(name)}/servers/{quote(server)}" if server else f"/users/{quote(name)}/server"
        r = self.api(token, "DELETE", path)
        if r.status_code not in (202, 204):
            raise HubError(f"stop {name}/{server}: {r.status_code} {r.text[:300]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_model(token, name, server) is None:
                return
            time.sleep(0.3)
        raise HubError(f"server {name}/{server} did not stop in {timeout}s")

    # ------------------------------------------------------------ single-user server
    def server_api(self, token: str, name: str, method: str, path: str, server: str = "", **kw):
        prefix = f"/user/{quote(name)}/{quote(server) + '/' if server else ''}"
        headers = kw.pop("headers", {})
        headers["Authorization"] = f"token {token}"
        return requests.request(
            method, self.url(prefix + path.lstrip("/")), headers=headers,
            timeout=kw.pop("timeout", 60), allow_redirects=False, **kw,
        )


def sign_up_and_approve(hub: Hub, admin_password: str, name: str, password: str) -> requests.Session:
    """Give ``name`` a native password: sign up at /hub/signup (as the form does) and,
    for a fresh request, approve it as the native admin ``admin``. Idempotent (a name
    already signed up is left as it is). Returns a hub session logged in as ``name``."""
    s = requests.Session()
    r = s.get(hub.url("/hub/signup"), timeout=30)
    r.raise_for_status()
    r = s.post(
        hub.url("/hub/signup"),
        data={
            "username": name,
            "signup_password": password,
            "signup_password_confirmation": password,
            "_xsrf": s.cookies.get("_xsrf"),
        },
        timeout=30,
    )
    r.raise_for_status()
    if "Your information has been sent to the admin" in r.text:
        # /hub/authorize/<name> TOGGLES approval: only for a fresh sign-up.
        admin = hub.login_session("admin", admin_password)
        r = admin.get(hub.url(f"/hub/authorize/{quote(name)}"), allow_redirects=False, timeout=30)
        if r.status_code not in (302, 303):
            raise HubError(f"approve {name}: {r.status_code} {r.text[:300]}")
    elif "already in use" not in r.text and "The signup was successful" not in r.text:
        raise HubError(f"sign-up of {name} gave an unexpected page: {r.text[:1500]}")
    return hub.login_session(name, password)  # raises unless the account can log in now
