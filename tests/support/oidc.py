"""A real OpenID Connect provider for the tests, started on the fly.

It is the npm package ``oidc-provider`` (pinned in tests/support/oidc/package-lock.json) run by
tests/support/oidc/server.mjs with Node. Typical use::

    with OidcProvider(
        clients=[{"client_id": "hub", "client_secret": "s3cret",
                  "redirect_uris": [f"{hub_url}/hub/oauth_callback"]}],
        accounts={"alice": {"password": "pw", "email": "alice@example.org",
                            "groups": ["ml"], "name": "Alice"}},
    ) as idp:
        idp.authorize_url                       # browser-facing: http://127.0.0.1:PORT/auth
        idp.token_url, idp.userinfo_url         # same host, for processes on this machine
        idp.internal_url("token")               # for a hub in a container:
                                                #   http://host.docker.internal:PORT/token

The browser uses the issuer (``http://127.0.0.1:PORT``); a JupyterHub inside a Docker container
reaches the token and userinfo endpoints through the Docker host gateway
(``host.docker.internal`` with compose ``extra_hosts: ["host.docker.internal:host-gateway"]``, or
the bridge gateway ``172.17.0.1``). The server listens on 0.0.0.0 and answers any Host header;
tokens always carry the issuer.

Sign-in is oidc-provider's development login form (fields ``login`` and ``password``, button
``button[type=submit]``) and consent form (button ``button[type=submit]``, "Continue"). The
server checks the password: an unknown login or a wrong password is answered 401 with the form
again and the text "Invalid login or password".

Clients are registered with ``client_secret_post`` (oauthenticator 17's default,
``basic_auth = False``) unless a client sets ``"token_endpoint_auth_method"``; oidc-provider 9
accepts ``client_secret_basic`` and ``client_secret_post`` alike for such a client, so the hub's
``basic_auth`` setting does not matter (sending both at once is refused).
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
READY_LINE = "OIDC provider ready at "

# Endpoint paths of oidc-provider 9 (also in the discovery document).
PATHS = {
    "authorize": "/auth",
    "token": "/token",
    "userinfo": "/me",
    "jwks": "/jwks",
    "end_session": "/session/end",
    "introspection": "/token/introspection",
    "revocation": "/token/revocation",
    "discovery": "/.well-known/openid-configuration",
}

DOCKER_HOST_GATEWAY = "host.docker.internal"


class OidcProviderError(RuntimeError):
    pass


def free_port(host: str = "0.0.0.0") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pinned_version() -> str:
    lock = json.loads((OIDC_DIR / "package-lock.json").read_text())
    return lock["packages"]["node_modules/oidc-provider"]["version"]


def _installed_version() -> str | None:
    try:
        return json.loads(
            (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").read_text()
        )["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_installed(timeout: float = 600) -> float:
    """``npm ci`` in tests/support/oidc unless node_modules already holds the pinned version.

    Serialised with a lock file so that parallel test processes install once. Returns the
    seconds spent installing (0.0 when nothing was done).
    """
    if _installed_version() == _pinned_version():
        return 0.0
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise OidcProviderError("the OIDC test provider needs Node.js and npm on PATH")
    with open(OIDC_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed_version() == _pinned_version():
                return 0.0
            start = time.monotonic()
            r = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=OIDC_DIR, capture_output=True, text=True, timeout=timeout,
            )
            if r.returncode != 0:
                raise OidcProviderError(
                    f"npm ci in {OIDC_DIR} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
                )
            if _installed_version() != _pinned_version():
                raise OidcProviderError("npm ci did not install the pinned oidc-provider")
            return time.monotonic() - start
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class OidcProvider:
    """One oidc-provider process; a context manager (``start()``/``stop()`` also work).

    Arguments:
      port        listen port; a free one when None
      clients     list of {"client_id", "client_secret", "redirect_uris": [...]} (optionally
                  "token_endpoint_auth_method": "client_secret_post" (default) | "client_secret_basic")
      accounts    {"<login>": {"password", "email", "groups": [...], "name"}}
      host        listen address (default 0.0.0.0, so containers reach it via the host gateway)
      issuer_host host name of the issuer, i.e. what the browser uses (default 127.0.0.1)
      start_timeout  seconds to wait for the ready line and the discovery document

    Attributes: port, issuer, authorize_url, token_url, userinfo_url, jwks_url,
    end_session_url, discovery_url, clients, accounts, install_seconds, start_seconds,
    failed, log_path; methods internal_base(host), internal_url(endpoint, host),
    log_text(), generic_oauthenticator_config(client_id, internal_host).
    """

    def __init__(
        self,
        port: int | None = None,
        clients: list[dict] | None = None,
        accounts: dict[str, dict] | None = None,
        *,
        host: str = "0.0.0.0",
        issuer_host: str = "127.0.0.1",
        start_timeout: float = 30.0,
    ):
        self.port = port or free_port(host)
        self.host = host
        self.clients = list(clients or [])
        self.accounts = dict(accounts or {})
        self.start_timeout = start_timeout
        self.issuer = f"http://{issuer_host}:{self.port}"
        self.authorize_url = self.url("authorize")
        self.token_url = self.url("token")
        self.userinfo_url = self.url("userinfo")
        self.jwks_url = self.url("jwks")
        self.end_session_url = self.url("end_session")
        self.discovery_url = self.url("discovery")
        self.install_seconds = 0.0
        self.start_seconds = 0.0
        self.failed = False
        self.process: subprocess.Popen | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="mlhub-oidc-"))
        self.config_path = self._tmp / "config.json"
        self.log_path = self._tmp / "provider.log"
        self._log = None

    # -- URLs ---------------------------------------------------------------------------

    def url(self, endpoint: str) -> str:
        """Browser-facing URL of an endpoint (authorize, token, userinfo, jwks, ...)."""
        return self.issuer + PATHS[endpoint]

    def internal_base(self, host: str = DOCKER_HOST_GATEWAY) -> str:
        """Base URL under which a container reaches this provider, e.g.
        ``http://host.docker.internal:PORT`` (needs ``--add-host
        host.docker.internal:host-gateway`` / compose ``extra_hosts``) or
        ``http://172.17.0.1:PORT`` (the default bridge's gateway)."""
        return f"http://{host}:{self.port}"

    def internal_url(self, endpoint: str, host: str = DOCKER_HOST_GATEWAY) -> str:
        return self.internal_base(host) + PATHS[endpoint]

    def generic_oauthenticator_config(
        self, client_id: str, internal_host: str | None = DOCKER_HOST_GATEWAY
    ) -> dict:
        """Settings for oauthenticator 17's GenericOAuthenticator (which does not read
        discovery): the browser goes to authorize_url; the hub (in a container when
        internal_host is given, else on this machine) calls token and userinfo."""
        client = next(c for c in self.clients if c["client_id"] == client_id)
        backend = (lambda e: self.internal_url(e, internal_host)) if internal_host else self.url
        return {
            "client_id": client_id,
            "client_secret": client["client_secret"],
            "authorize_url": self.authorize_url,
            "token_url": backend("token"),
            "userdata_url": backend("userinfo"),
            "scope": ["openid", "profile", "email", "groups"],
            "username_claim": "preferred_username",
            "basic_auth": False,  # either works with oidc-provider 9
            "auth_state_groups_key": "oauth_user.groups",
        }

    # -- process ------------------------------------------------------------------------

    def start(self) -> "OidcProvider":
        self.install_seconds = ensure_installed()
        node = shutil.which("node")
        if not node:
            raise OidcProviderError("the OIDC test provider needs Node.js on PATH")
        self.config_path.write_text(json.dumps({
            "issuer": self.issuer,
            "host": self.host,
            "port": self.port,
            "clients": self.clients,
            "accounts": self.accounts,
        }, indent=2))
        start = time.monotonic()
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [node, str(OIDC_DIR / "server.mjs"), str(self.config_path)],
            cwd=OIDC_DIR, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_ready(start + self.start_timeout)
        except BaseException:
            self.failed = True
            self.stop()
            raise
        self.start_seconds = time.monotonic() - start
        return self

    def _wait_ready(self, deadline: float) -> None:
        while READY_LINE not in self.log_text():
            if self.process.poll() is not None:
                raise OidcProviderError(
                    f"the OIDC provider exited ({self.process.returncode}) before it was ready:\n"
                    + self.log_text()
                )
            if time.monotonic() > deadline:
                raise OidcProviderError(
                    f"no ready line from the OIDC provider in {self.start_timeout:.0f} s:\n"
                    + self.log_text()
                )
            time.sleep(0.05)
        last = None
        while time.monotonic() < deadline:
            try:
                r = requests.get(self.discovery_url, timeout=2)
                if r.status_code == 200 and r.json().get("issuer") == self.issuer:
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except (requests.RequestException, ValueError) as e:
                last = repr(e)
            time.sleep(0.1)
        raise OidcProviderError(
            f"discovery {self.discovery_url} did not answer in time (last: {last}):\n"
            + self.log_text()
        )

    def log_text(self) -> str:
        """Everything the provider printed (ready line on stdout, request log on stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        p, self.process = self.process, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            keep = ARTIFACTS / f"oidc-provider-{self.port}.log"
            try:
                shutil.copyfile(self.log_path, keep)
                print(f"\nOIDC provider log: {keep}", file=sys.stderr)
            except OSError:
                pass

    def __enter__(self) -> "OidcProvider":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.failed = True
        self.stop()
        if not self.failed:
            shutil.rmtree(self._tmp, ignore_errors=True)


# -- signing in without a browser ----------------------------------------------------------

_FORM_ACTION = re.compile(r'<form[^>]*\baction="([^"]+)"', re.I)


class SignInRefused(AssertionError):
    def __init__(self, response: requests.Response):
        super().__init__(f"sign-in refused: {response.status_code} {response.text[:500]}")
        self.response = response


def sign_in(
    session: requests.Session,
    url: str,
    login: str,
    password: str,
    stop_at: str | None = None,
    max_steps: int = 20,
) -> requests.Response:
    """Follow redirects from ``url`` (e.g. the authorize URL, or a hub's /hub/oauth_login)
    through the provider's login form and consent form, as a browser would.

    Returns the response of the first request whose URL starts with ``stop_at`` WITHOUT
    sending it (a ``requests.Response`` whose ``.url`` is that target, status 0), or, when
    ``stop_at`` is None, the final response after all redirects. Raises SignInRefused
    when the provider answers the login form with an error.
    """
    method, data = "GET", None
    for _ in range(max_steps):
        if stop_at and url.startswith(stop_at):
            r = requests.Response()
            r.url, r.status_code = url, 0
            return r
        r = session.request(method, url, data=data, allow_redirects=False, timeout=10)
        if r.is_redirect:
            url, method, data = urljoin(url, r.headers["location"]), "GET", None
            continue
        if r.status_code == 401 and 'name="login"' in r.text:
            raise SignInRefused(r)
        m = _FORM_ACTION.search(r.text) if "text/html" in r.headers.get("content-type", "") else None
        if m and "/interaction/" in urlsplit(urljoin(url, m.group(1))).path:
            action = urljoin(url, m.group(1).replace("&amp;", "&"))
            if 'name="login"' in r.text:
                method, data = "POST", {"prompt": "login", "login": login, "password": password}
            elif 'value="consent"' in r.text:
                method, data = "POST", {"prompt": "consent"}
            else:
                return r
            url = action
            continue
        return r
    raise AssertionError(f"sign-in did not finish in {max_steps} steps (at {url})")
