"""Secrets generated on first start and kept on the secrets volume.

Never baked into an image, never logged: each is a file of mode 0600 created
atomically (write to a temporary file, then link it into place, so two
processes starting at once agree on one value).

Run as ``python -m hub.secrets DIR`` (the compose ``setup`` service) to create
the missing ones; existing secrets are never replaced.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import tempfile

#: name -> generator of a new value
SECRETS = {
    # JupyterHub's cookie secret: 32 random bytes, hex-encoded.
    "cookie_secret": lambda: secrets.token_hex(32),
    # Shared by the hub and configurable-http-proxy for the proxy's REST API.
    "proxy_token": lambda: secrets.token_hex(32),
    # First password of the admins named in MLHUB_ADMIN_USERS (native login).
    "admin_password": lambda: secrets.token_urlsafe(18),
    # API token of the mlhub-admin service (the mlhub-admin command).
    "admin_api_token": lambda: secrets.token_hex(32),
    # The models service's hub API token and cookie secret (its own volume).
    "models_api_token": lambda: secrets.token_hex(32),
    "models_cookie_secret": lambda: secrets.token_hex(32),
    # Airflow's (its own volume): hub API token (= OAuth client secret), its
    # database password, Fernet key, JWT secret and Flask secret key.
    "airflow_api_token": lambda: secrets.token_hex(32),
    "airflow_db_password": lambda: secrets.token_urlsafe(24),
    "airflow_fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "airflow_jwt_secret": lambda: secrets.token_urlsafe(48),
    "airflow_secret_key": lambda: secrets.token_urlsafe(48),
}


def ensure(directory: str, name: str) -> str:
    """Return the secret ``name`` in ``directory``, creating it if missing."""
    if name not in SECRETS:
        raise KeyError(f"unknown secret {name!r}")
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(SECRETS[name]() + "\n")
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # atomic; fails if another process won the race
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    with open(path) as f:
        value = f.read().strip()
    if not value:
        raise ValueError(f"secret file {path} is empty: delete it to have it regenerated")
    return value


#: the hub's own secrets; services' secrets live in their own volumes
HUB_SECRETS = ("cookie_secret", "proxy_token", "admin_password", "admin_api_token")


def ensure_all(directory: str, names=HUB_SECRETS) -> None:
    for name in names:
        ensure(directory, name)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    names = HUB_SECRETS
    if len(args) >= 2 and args[0] == "--only":
        names = tuple(n for n in args[1].split(",") if n)
        args = args[2:]
        unknown = [n for n in names if n not in SECRETS]
        if unknown:
            print(f"mlhub-secrets: unknown secret(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
    directory = args[0] if args else os.environ.get("MLHUB_SECRETS_DIR", "/srv/jupyterhub/secrets")
    try:
        ensure_all(directory, names)
    except OSError as e:
        print(f"mlhub-secrets: cannot write secrets in {directory}: {e}", file=sys.stderr)
        return 1
    print(f"mlhub-secrets: secrets ready in {directory} ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
