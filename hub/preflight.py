"""Checks run before the hub starts, for mistakes that otherwise show up only
when the first person tries to sign in (a 404 from the provider, a callback
mismatch, everyone refused with 403).

Errors stop the hub with a message naming the setting and what to do; warnings
(a provider that does not answer right now) are printed and startup goes on.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import urlparse, urlsplit, urlunsplit

from .settings import Settings, SettingsError, callback_url, load_settings

OIDC_URL_SETTINGS = {
    "authorize_url": ("MLHUB_OIDC_AUTHORIZE_URL", "authorization_endpoint"),
    "token_url": ("MLHUB_OIDC_TOKEN_URL", "token_endpoint"),
    "userinfo_url": ("MLHUB_OIDC_USERINFO_URL", "userinfo_endpoint"),
}


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    oidc_urls: dict[str, str] = field(default_factory=dict)


# fetch(url) -> (status, body); raises OSError when nothing answers
Fetch = Callable[[str], tuple[int, bytes]]


def http_fetch(url: str, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(1_000_000)
    except urllib.error.HTTPError as e:  # it answered: reachable
        return e.code, b""
    except urllib.error.URLError as e:
        raise OSError(str(e.reason)) from None
    except (http.client.HTTPException, ValueError) as e:  # something answered, not HTTP
        raise OSError(f"not an HTTP answer ({e.__class__.__name__})") from None


def _origin(url: str) -> tuple[str, str, int]:
    u = urlparse(url)
    scheme = u.scheme.lower()
    return scheme, (u.hostname or "").lower(), u.port or (443 if scheme == "https" else 80)


def _under(url: str, base: str) -> bool:
    """Is ``url`` under ``base`` (same origin, ignoring case and default ports)?"""
    return _origin(url) == _origin(base) and urlparse(url).path.startswith(
        urlparse(base).path.rstrip("/") + "/"
    )


def check(settings: Settings, fetch: Fetch = http_fetch) -> Report:
    report = Report()
    provider = settings.authenticator
    if provider == "native":
        ignored = [
            name
            for name, value in (
                ("MLHUB_ALLOWED_GROUPS", settings.allowed_groups),
                ("MLHUB_ADMIN_GROUPS", settings.admin_groups),
                ("MLHUB_OAUTH_CLIENT_ID", settings.oauth_client_id),
            )
            if value
        ]
        if ignored:
            report.warnings.append(
                f"{', '.join(ignored)} set but MLHUB_AUTHENTICATOR=native ignores them; "
                "set MLHUB_AUTHENTICATOR=oidc, github or gitlab to use a provider."
            )
        return report

    err = report.errors.append
    cb = callback_url(settings)
    if not settings.oauth_client_id:
        err(
            f"MLHUB_OAUTH_CLIENT_ID is empty: register the hub as an OAuth application at "
            f"your {provider} provider with the callback URL {cb}, then set its client id."
        )
    secret_file = settings.oauth_client_secret_file
    if secret_file:
        if not os.path.isfile(secret_file):
            err(f"MLHUB_OAUTH_CLIENT_SECRET_FILE={secret_file}: no such file.")
        else:
            try:
                with open(secret_file, encoding="utf-8") as f:
                    if not f.read().strip():
                        err(f"MLHUB_OAUTH_CLIENT_SECRET_FILE={secret_file} is empty.")
            except UnicodeDecodeError:
                err(f"MLHUB_OAUTH_CLIENT_SECRET_FILE={secret_file} is not UTF-8 text: save the secret as plain UTF-8.")
            except OSError as e:
                err(f"MLHUB_OAUTH_CLIENT_SECRET_FILE={secret_file}: cannot read it ({e.strerror}).")
    elif not settings.oauth_client_secret:
        err(
            "MLHUB_OAUTH_CLIENT_SECRET is empty: set the client secret the provider gave "
            "you (or MLHUB_OAUTH_CLIENT_SECRET_FILE)."
        )
    if not _under(cb, settings.public_url):
        err(
            f"MLHUB_OAUTH_CALLBACK_URL={cb} is not under MLHUB_PUBLIC_URL={settings.public_url}: "
            f"the provider would send users somewhere the hub is not. Use "
            f"{settings.public_url}/hub/oauth_callback (and register exactly that URL)."
        )
    elif urlparse(cb).path.rstrip("/") != urlparse(settings.public_url).path.rstrip("/") + "/hub/oauth_callback":
        err(
            f"MLHUB_OAUTH_CALLBACK_URL={cb}: the hub receives the callback at "
            f"{settings.public_url}/hub/oauth_callback; use (and register) that URL."
        )
    if not (settings.allow_all or settings.allowed_users or settings.allowed_groups):
        err(
            "No allow rule: with MLHUB_AUTHENTICATOR=" + provider + " everyone except admins "
            "would be refused (403). Set MLHUB_ALLOWED_GROUPS and/or MLHUB_ALLOWED_USERS, "
            "or MLHUB_ALLOW_ALL=true to let in everyone the provider authenticates."
        )
    if not (settings.admin_users or settings.admin_groups):
        report.warnings.append(
            "No admin: set MLHUB_ADMIN_USERS or MLHUB_ADMIN_GROUPS, or nobody can manage users."
        )
    if settings.admin_groups and provider == "gitlab":
        err("MLHUB_ADMIN_GROUPS is not supported with gitlab (GitLab reports no groups at sign-in); use MLHUB_ADMIN_USERS.")

    if provider == "oidc":
        _resolve_oidc(settings, report, fetch)
    else:
        base = settings.github_url if provider == "github" else settings.gitlab_url
        _probe(base, f"MLHUB_{provider.upper()}_URL", report, fetch)
    return report


def _resolve_oidc(settings: Settings, report: Report, fetch: Fetch) -> None:
    explicit = {
        "authorize_url": settings.oidc_authorize_url,
        "token_url": settings.oidc_token_url,
        "userinfo_url": settings.oidc_userinfo_url,
    }
    missing = [k for k, v in explicit.items() if not v]
    discovered: dict = {}
    if missing and settings.oidc_issuer:
        url = settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            status, body = fetch(url)
            if status != 200:
                raise ValueError(f"HTTP {status}")
            discovered = json.loads(body)
            if not isinstance(discovered, dict):
                raise ValueError("not a discovery document (JSON object)")
        except (OSError, ValueError) as e:
            report.errors.append(
                f"MLHUB_OIDC_ISSUER={settings.oidc_issuer}: could not read {url} ({e}). "
                "Fix the issuer URL, or set MLHUB_OIDC_AUTHORIZE_URL, MLHUB_OIDC_TOKEN_URL "
                "and MLHUB_OIDC_USERINFO_URL."
            )
            return
    for key, (env, doc_key) in OIDC_URL_SETTINGS.items():
        value = explicit[key] or discovered.get(doc_key, "")
        if not value:
            report.errors.append(
                f"{env} is empty and "
                + ("MLHUB_OIDC_ISSUER is not set" if not settings.oidc_issuer else f"discovery has no {doc_key}")
                + ": set MLHUB_OIDC_ISSUER (discovery) or the three MLHUB_OIDC_*_URL settings."
            )
        report.oidc_urls[key] = value
    if not report.errors and not discovered:
        _probe(report.oidc_urls["token_url"], "MLHUB_OIDC_TOKEN_URL", report, fetch)


def _probe(url: str, env: str, report: Report, fetch: Fetch) -> None:
    try:
        fetch(url)
    except OSError as e:
        report.warnings.append(
            f"{env}: the provider at {url} does not answer from the hub ({e}); sign-in will "
            "fail until it does. Check the URL and the hub's network."
        )


# ----------------------------------------------------------------------------- database


def masked_db_url(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = u.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(u._replace(netloc=f"{user}:***@{netloc[1]}"))


def _psycopg_connect(url: str) -> None:
    import psycopg  # in the hub image (hub's postgres extra); only needed for Postgres

    psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=5).close()


# The server answered and refused: waiting will not help.
_FINAL = ("password authentication failed", "does not exist", "no pg_hba.conf entry")


def database_problem(
    url: str,
    connect: Callable[[str], None] = _psycopg_connect,
    wait: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """None when the hub database can be reached, else what to fix. A Postgres
    server that is still starting is waited for up to ``wait`` seconds; SQLite
    needs nothing (JupyterHub creates the file on its volume)."""
    if not url.startswith("postgresql"):
        return None
    deadline = clock() + wait
    while True:
        try:
            connect(url)
            return None
        except Exception as e:  # noqa: BLE001 - any driver error is reported, never raised
            lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
            reason = lines[0] if lines else e.__class__.__name__
        if any(f in reason for f in _FINAL) or clock() >= deadline:
            break
        sleep(2)
    return (
        f"MLHUB_DB_URL={masked_db_url(url)}: cannot connect to the hub database ({reason}). "
        "Check the host, port, user, password and database name in MLHUB_DB_URL, and that "
        "the Postgres server is running and reachable from the hub container."
    )


def load_or_exit(environ: Mapping[str, str] = os.environ) -> tuple[Settings, Report]:
    """Settings and preflight for jupyterhub_config.py: exit 2 with the problems,
    never a traceback."""
    try:
        settings = load_settings(environ)
    except SettingsError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    report = check(settings)
    for w in report.warnings:
        print(f"[mlhub preflight] WARNING: {w}", file=sys.stderr)
    if report.errors:
        print(
            "Sign-in is misconfigured (fix these in .env, then start again):\n"
            + "\n".join(f"  - {e}" for e in report.errors),
            file=sys.stderr,
        )
        sys.exit(2)
    problem = database_problem(settings.db_url)
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(2)
    return settings, report
