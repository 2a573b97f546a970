"""``mlhub-admin``: manage users, admins, groups, quotas and servers from a shell.

It talks to the hub's REST API with the token of the ``mlhub-admin`` service
(an admin service: JupyterHub lets only admins grant admin rights; its token
is in the secrets volume, mode 0600). On the Docker host:

    docker compose exec hub mlhub-admin users
    docker compose exec hub mlhub-admin add alice --admin
    docker compose exec hub mlhub-admin group-add ml-team alice bob
    docker compose exec hub mlhub-admin quota ml-team --gpus 2 --memory 32G
    docker compose exec hub mlhub-admin stop alice
    docker compose exec hub mlhub-admin remove alice          # keeps alice's home volume
    docker compose exec hub mlhub-admin remove alice --purge  # and deletes it

Elsewhere: ``--url https://hub.example.org/hub/api --token ...`` (or
JUPYTERHUB_API_URL / MLHUB_ADMIN_TOKEN) with a token holding those scopes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from urllib.parse import quote

import requests

from .naming import safe_name

SERVICE_NAME = "mlhub-admin"
#: scopes a token needs for every command (promote/demote also need an admin token)
SCOPES = [
    "list:users", "read:users", "admin:users",
    "list:groups", "read:groups", "admin:groups", "groups",
    "servers", "read:servers",
]
DEFAULT_URL = "http://127.0.0.1:8081/hub/api"
TOKEN_FILE = "/srv/jupyterhub/secrets/admin_api_token"


class CliError(Exception):
    pass


class Api:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"token {token}"

    #: seconds to keep trying a hub that refuses connections (it is starting,
    #: e.g. right after `docker compose restart hub`)
    connect_wait = 30

    def __call__(self, method: str, path: str, ok=(200, 201, 202, 204), **kw):
        deadline = time.monotonic() + self.connect_wait
        while True:
            try:
                r = self.s.request(method, self.url + path, timeout=60, **kw)
                break
            except requests.ConnectionError as e:
                if time.monotonic() >= deadline:
                    raise CliError(f"the hub API at {self.url} does not answer: {e}") from None
                time.sleep(1)
            except requests.RequestException as e:
                raise CliError(f"the hub API at {self.url} does not answer: {e}") from None
        if r.status_code not in ok:
            try:
                msg = r.json().get("message", r.text)
            except ValueError:
                msg = r.text
            raise CliError(f"{method} {path}: HTTP {r.status_code}: {msg}")
        return r.json() if r.content and r.headers.get("Content-Type", "").startswith("application/json") else None


def q(name: str) -> str:
    return quote(name, safe="@~")


def server_state(model: dict) -> str:
    if model.get("ready"):
        return "ready"
    return f"pending {model['pending']}" if model.get("pending") else "stopped"


def cmd_users(api: Api, args) -> None:
    users = api("GET", "/users", params={"include_stopped_servers": "1", "limit": 1000})
    rows = [("USER", "ADMIN", "GROUPS", "SERVERS", "LAST ACTIVITY")]
    for u in sorted(users, key=lambda u: u["name"]):
        servers = ", ".join(
            f"{name or '(default)'}: {server_state(s)}" for name, s in sorted(u.get("servers", {}).items())
        ) or "-"
        rows.append((
            u["name"], "yes" if u["admin"] else "no", ",".join(u.get("groups", [])) or "-",
            servers, (u.get("last_activity") or "-")[:19],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_add(api: Api, args) -> None:
    for name in args.names:
        api("POST", f"/users/{q(name)}", json={"admin": args.admin}, ok=(201,))
        print(f"added {name}" + (" (admin)" if args.admin else ""))


def _set_admin(api: Api, names, admin: bool) -> None:
    for name in names:
        api("PATCH", f"/users/{q(name)}", json={"admin": admin})
        print(f"{name} is {'now an admin' if admin else 'no longer an admin'}")


def cmd_promote(api, args):
    _set_admin(api, args.names, True)


def cmd_demote(api, args):
    _set_admin(api, args.names, False)


def _ensure_group(api: Api, group: str) -> None:
    api("POST", f"/groups/{q(group)}", ok=(201, 409))


def cmd_group_add(api: Api, args) -> None:
    _ensure_group(api, args.group)
    api("POST", f"/groups/{q(args.group)}/users", json={"users": args.names})
    print(f"added {', '.join(args.names)} to group {args.group}")


def cmd_group_remove(api: Api, args) -> None:
    api("DELETE", f"/groups/{q(args.group)}/users", json={"users": args.names})
    print(f"removed {', '.join(args.names)} from group {args.group}")


def cmd_groups(api: Api, args) -> None:
    for g in sorted(api("GET", "/groups"), key=lambda g: g["name"]):
        props = g.get("properties") or {}
        quota = ", ".join(f"{k}={v}" for k, v in sorted(props.items())) or "default quota"
        print(f"{g['name']}: {', '.join(g.get('users', [])) or '(no members)'} [{quota}]")


def cmd_quota(api: Api, args) -> None:
    _ensure_group(api, args.group)
    group = api("GET", f"/groups/{q(args.group)}")
    props = dict(group.get("properties") or {})
    if args.gpus is not None:
        props["gpu_quota"] = args.gpus
    if args.memory is not None:
        props["mem_quota"] = args.memory
    api("PUT", f"/groups/{q(args.group)}/properties", json=props)
    print(f"group {args.group}: " + ", ".join(f"{k}={v}" for k, v in sorted(props.items())))


def _stop(api: Api, name: str, server: str, wait: float = 120) -> bool:
    path = f"/users/{q(name)}/servers/{q(server)}" if server else f"/users/{q(name)}/server"
    api("DELETE", path, ok=(202, 204, 400))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        user = api("GET", f"/users/{q(name)}")
        if server not in user.get("servers", {}):
            return True
        time.sleep(0.5)
    return False


def cmd_stop(api: Api, args) -> None:
    user = api("GET", f"/users/{q(args.name)}")
    servers = [args.server] if args.server is not None else list(user.get("servers", {}))
    if not servers:
        print(f"{args.name} has no running server")
        return
    for server in servers:
        label = f"{args.name}/{server}" if server else args.name
        if _stop(api, args.name, server):
            print(f"stopped {label}")
        else:
            raise CliError(f"{label} did not stop within 120 s")


def home_volume(name: str) -> str:
    prefix = os.environ.get("MLHUB_PREFIX", "mlhub")
    return f"{prefix}-home-{safe_name(name)}"


def cmd_remove(api: Api, args) -> None:
    for name in args.names:
        user = api("GET", f"/users/{q(name)}")
        for server in list(user.get("servers", {})):
            _stop(api, name, server)
        api("DELETE", f"/users/{q(name)}", ok=(204,))
        volume = home_volume(name)
        if not args.purge:
            print(
                f"removed {name}; kept their home volume {volume} (remove it with --purge). "
                f"A new user named {name} would get these files."
            )
            continue
        import docker  # only --purge needs the engine
        try:
            docker.from_env().volumes.get(volume).remove()
            print(f"removed {name} and deleted their home volume {volume}")
        except docker.errors.NotFound:
            print(f"removed {name}; they had no home volume ({volume})")
        except docker.errors.DockerException as e:
            raise CliError(f"removed {name}, but could not delete volume {volume}: {e}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlhub-admin", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("JUPYTERHUB_API_URL", DEFAULT_URL),
                   help=f"hub API URL (default: $JUPYTERHUB_API_URL or {DEFAULT_URL})")
    p.add_argument("--token", default=os.environ.get("MLHUB_ADMIN_TOKEN"),
                   help=f"API token (default: $MLHUB_ADMIN_TOKEN or the file {TOKEN_FILE})")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("users", help="list users with admin flag, groups and servers").set_defaults(fn=cmd_users)
    a = sub.add_parser("add", help="add users")
    a.add_argument("names", nargs="+")
    a.add_argument("--admin", action="store_true", help="make them admins")
    a.set_defaults(fn=cmd_add)
    r = sub.add_parser("remove", help="remove users (their home volume is kept unless --purge)")
    r.add_argument("names", nargs="+")
    r.add_argument("--purge", action="store_true", help="also delete their home volume (their files)")
    r.set_defaults(fn=cmd_remove)
    for name, fn, text in (("promote", cmd_promote, "make users admins"), ("demote", cmd_demote, "remove admin rights")):
        x = sub.add_parser(name, help=text)
        x.add_argument("names", nargs="+")
        x.set_defaults(fn=fn)
    g = sub.add_parser("group-add", help="add users to a group (created if missing)")
    g.add_argument("group")
    g.add_argument("names", nargs="+")
    g.set_defaults(fn=cmd_group_add)
    g = sub.add_parser("group-remove", help="remove users from a group")
    g.add_argument("group")
    g.add_argument("names", nargs="+")
    g.set_defaults(fn=cmd_group_remove)
    sub.add_parser("groups", help="list groups, members and quotas").set_defaults(fn=cmd_groups)
    qu = sub.add_parser("quota", help="set a group's GPU and memory quota")
    qu.add_argument("group")
    qu.add_argument("--gpus", type=int, help="GPUs a member may hold at once")
    qu.add_argument("--memory", help="most memory per server, e.g. 32G")
    qu.set_defaults(fn=cmd_quota)
    s = sub.add_parser("stop", help="stop a user's servers (all, or --server NAME)")
    s.add_argument("name")
    s.add_argument("--server", default=None, help="only this named server ('' = the default one)")
    s.set_defaults(fn=cmd_stop)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    token = args.token
    if not token:
        try:
            with open(TOKEN_FILE) as f:
                token = f.read().strip()
        except OSError:
            print(f"mlhub-admin: no token: pass --token, set MLHUB_ADMIN_TOKEN, or run it in the hub "
                  f"container (docker compose exec hub mlhub-admin ...) where {TOKEN_FILE} exists",
                  file=sys.stderr)
            return 2
    try:
        args.fn(Api(args.url, token), args)
    except CliError as e:
        print(f"mlhub-admin: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
