"""The ``models`` hub service: a tornado app at /services/models/.

Browsers sign in through the hub (OAuth); API clients and notebooks send a hub
token (``Authorization: token ...``). Who may publish/delete/label a model:
its owner, members of its group, hub admins. Who may predict: every signed-in
member (MLHUB_MODELS_PREDICT=members, the default) or only those who may
manage the model (``owners``).

Run: ``python -m mlhub_models_service.app`` (configuration from the environment,
see :class:`Config`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import httpclient, ioloop, web

from .archive import extract, find_savedmodel, validate
from .openapi import OPENAPI
from .store import Store, StoreError, check_label, check_name

log = logging.getLogger("mlhub.models")
SIZE_RE = re.compile(r"(\d+)([KMG]?)")


def fmt_mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB" if n >= 1024**2 else f"{n // 1024} KiB"


def parse_size(text: str) -> int:
    m = SIZE_RE.fullmatch(text.strip().upper().rstrip("B").rstrip("I"))
    if not m:
        raise SystemExit(f"MLHUB_MODELS_MAX_UPLOAD={text!r}: expected a size such as 512M or 2G")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]


@dataclass
class Config:
    models_root: str
    serving_url: str
    predict_policy: str
    max_upload: int
    prefix: str
    public_url: str
    port: int

    @classmethod
    def from_env(cls, env=os.environ) -> "Config":
        policy = env.get("MLHUB_MODELS_PREDICT", "members").strip().lower() or "members"
        if policy not in ("members", "owners"):
            raise SystemExit(f"MLHUB_MODELS_PREDICT={policy!r}: expected members or owners")
        return cls(
            models_root=env.get("MLHUB_MODELS_ROOT", "/models"),
            serving_url=env.get("MLHUB_TF_SERVING_URL", "http://tf-serving:8501").rstrip("/"),
            predict_policy=policy,
            max_upload=parse_size(env.get("MLHUB_MODELS_MAX_UPLOAD", "2G") or "2G"),
            prefix=env.get("JUPYTERHUB_SERVICE_PREFIX", "/services/models/"),
            public_url=env.get("MLHUB_PUBLIC_URL", "").rstrip("/"),
            port=int(env.get("MLHUB_MODELS_PORT", "8000")),
        )


# ---------------------------------------------------------------- identity


class Users:
    """Admin flag and groups of hub users, read with the service's own token
    (the caller's token may not be allowed to read them), cached briefly."""

    def __init__(self, hub_auth: HubOAuth, ttl: float = 30):
        self.hub_auth = hub_auth
        self.ttl = ttl
        self.cache: dict[str, tuple[float, dict]] = {}
        self.http = httpclient.AsyncHTTPClient()

    async def info(self, name: str) -> dict:
        hit = self.cache.get(name)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        resp = await self.http.fetch(
            f"{self.hub_auth.api_url}/users/{quote(name, safe='@~')}",
            headers={"Authorization": f"token {self.hub_auth.api_token}"},
            raise_error=False,
        )
        if resp.code != 200:
            info = {"name": name, "admin": False, "groups": []}
        else:
            data = json.loads(resp.body)
            info = {"name": name, "admin": bool(data.get("admin")), "groups": data.get("groups", [])}
        self.cache[name] = (time.monotonic(), info)
        return info


# ---------------------------------------------------------------- handlers


class Base(HubOAuthenticated, web.RequestHandler):
    def initialize(self):
        self.hub_auth = self.settings["hub_auth"]

    @property
    def cfg(self) -> Config:
        return self.settings["cfg"]

    @property
    def store(self) -> Store:
        return self.settings["store"]

    @property
    def lock(self) -> asyncio.Lock:
        return self.settings["lock"]

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        if isinstance(exc, StoreError):  # a refusal with its own status, not a crash
            status_code = exc.status
            self.set_status(status_code)
            message = str(exc)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "status": status_code}))

    def log_exception(self, typ, value, tb):
        if isinstance(value, StoreError):
            log.info("%s %s refused: %s", self.request.method, self.request.path, value)
        else:
            super().log_exception(typ, value, tb)

    def require_user(self) -> dict:
        user = self.current_user
        if not user:
            raise web.HTTPError(
                401, "sign in first: send 'Authorization: token <your hub API token>' "
                "(in a notebook: $JUPYTERHUB_API_TOKEN), or open the page in a browser"
            )
        return user

    async def identity(self) -> dict:
        """The caller as an owner: hub users by name; hub services as 'service/NAME'.
        JupyterHub refuses '/' in every username, so no user (one who signs up as
        'airflow' or as 'service/airflow') can be taken for a service."""
        user = self.require_user()
        if user.get("kind") == "service":
            return {"name": f"service/{user['name']}", "admin": False, "groups": []}
        return await self.settings["users"].info(user["name"])

    @staticmethod
    def check_may_manage(who: dict, model) -> None:
        if not (who["admin"] or who["name"] == model.owner or (model.group and model.group in who["groups"])):
            owner = model.owner + (f" and members of group {model.group}" if model.group else "")
            raise web.HTTPError(403, f"only {owner} (and hub admins) may change model {model.name}")

    async def check_manage(self, model) -> dict:
        who = await self.identity()
        self.check_may_manage(who, model)
        return who

    def body_json(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        return body

    async def fetch_serving(self, path: str, **kw):
        """A request to TF Serving; None when it does not answer at all."""
        try:
            return await self.settings["http"].fetch(
                f"{self.cfg.serving_url}{path}", raise_error=False, **kw
            )
        except (OSError, httpclient.HTTPClientError) as e:
            log.warning("TF Serving does not answer %s: %s", path, e)
            return None

    async def serving_status(self, name: str) -> dict:
        """Version states as TF Serving reports them ({} if it does not answer)."""
        resp = await self.fetch_serving(f"/v1/models/{name}", request_timeout=5)
        if resp is None or resp.code != 200:
            return {}
        states = {}
        for s in json.loads(resp.body).get("model_version_status", []):
            states[int(s["version"])] = {
                "state": s.get("state"),
                "error": (s.get("status") or {}).get("error_message", ""),
            }
        return states

    async def describe(self, model) -> dict:
        states = await self.serving_status(model.name)
        return {
            "name": model.name,
            "owner": model.owner,
            "group": model.group,
            "labels": model.labels,
            "versions": [
                {
                    "version": v,
                    "state": states.get(v, {}).get("state", "UNKNOWN" if not states else "NOT_LOADED"),
                    "error": states.get(v, {}).get("error", ""),
                    "signature": info.get("signature"),
                    "published_by": info.get("published_by"),
                    "published_at": info.get("published_at"),
                }
                for v, info in sorted(model.versions.items())
            ],
            "predict_url": f"{self.cfg.public_url}{self.cfg.prefix}v1/models/{model.name}:predict",
        }


class HealthHandler(web.RequestHandler):
    def get(self):
        self.write({"status": "ok"})


class LogoutHandler(Base):
    """Forget this browser's hub login here (the hub's logout page calls it)."""

    def get(self):
        self.clear_cookie(self.hub_auth.cookie_name, path=self.hub_auth.base_url)
        self.set_header("Cache-Control", "no-store")
        self.write({"signed_out": True})


class OpenAPIHandler(web.RequestHandler):
    def get(self):
        self.write(OPENAPI)


class IndexHandler(Base):
    @web.authenticated
    async def get(self):
        who = await self.identity()
        models = [await self.describe(m) for m in self.store.all()]
        self.render(
            "index.html", models=models, user=who, cfg=self.cfg,
            example_url=f"{self.cfg.public_url}{self.cfg.prefix}v1/models/NAME:predict",
        )


class ModelsHandler(Base):
    async def get(self):
        self.require_user()
        self.write({"models": [await self.describe(m) for m in self.store.all()]})


class ModelHandler(Base):
    async def get(self, name):
        self.require_user()
        self.write(await self.describe(self.store.require(name)))

    async def delete(self, name):
        who = await self.identity()
        async with self.lock:
            self.check_may_manage(who, self.store.require(name))
            self.store.delete_model(name)
        log.info("model %s deleted by %s", name, who["name"])
        self.set_status(204)


@web.stream_request_body
class UploadHandler(Base):
    """POST a SavedModel archive as the next version of a model."""

    async def prepare(self):
        self._tmp = None
        if self.request.method != "POST":  # before any body is streamed to data_received
            raise web.HTTPError(405, "publish a version with POST")
        self.require_user()
        self.name = check_name(self.path_kwargs.get("name") or self.path_args[0])
        model = self.store.get(self.name)
        if model is not None:
            await self.check_manage(model)
        length = int(self.request.headers.get("Content-Length") or 0)
        if length > self.cfg.max_upload:
            raise web.HTTPError(413, f"upload larger than MLHUB_MODELS_MAX_UPLOAD ({fmt_mib(self.cfg.max_upload)})")
        # tornado's own limit answers a bare 400; ours (data_received) answers 413
        self.request.connection.set_max_body_size(self.cfg.max_upload + 1)
        fd, self._tmp = tempfile.mkstemp(dir=self.store.staging, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._size = 0

    def data_received(self, chunk):
        self._size += len(chunk)
        if self._size > self.cfg.max_upload:
            raise web.HTTPError(413, f"upload larger than MLHUB_MODELS_MAX_UPLOAD ({fmt_mib(self.cfg.max_upload)})")
        self._file.write(chunk)

    def _cleanup(self):
        if getattr(self, "_file", None) and not self._file.closed:
            self._file.close()
        if getattr(self, "_tmp", None) and os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def on_finish(self):
        self._cleanup()

    def on_connection_close(self):
        self._cleanup()

    async def post(self, name):
        self._file.close()
        who = await self.identity()
        group = self.get_argument("group", None) or None
        if group and not (who["admin"] or group in who["groups"]):
            raise web.HTTPError(403, f"you are not a member of group {group}")
        label = self.get_argument("label", None)
        if label:
            check_label(label)
        unpack = tempfile.mkdtemp(dir=self.store.staging, prefix="unpack-")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, extract, self._tmp, unpack, self.cfg.max_upload)
            root = find_savedmodel(unpack)
            t0 = time.monotonic()
            signature = await loop.run_in_executor(None, validate, root)
            async with self.lock:
                existing = self.store.get(name)  # may have appeared while we validated
                if existing is not None:
                    self.check_may_manage(who, existing)
                model, version = self.store.add_version(
                    name, root, who["name"], {"signature": signature}, group=group
                )
                if label:
                    model = self.store.set_label(name, label, version)
        finally:
            shutil.rmtree(unpack, ignore_errors=True)
        log.info(
            "model %s version %s published by %s (validated in %.1f s)",
            name, version, who["name"], time.monotonic() - t0,
        )
        self.set_status(201)
        self.write({"name": name, "version": version, "labels": model.labels, "signature": signature})


class VersionHandler(Base):
    async def delete(self, name, version):
        who = await self.identity()
        async with self.lock:
            self.check_may_manage(who, self.store.require(name))
            self.store.delete_version(name, int(version))
        self.set_status(204)


class LabelHandler(Base):
    async def put(self, name, label):
        who = await self.identity()
        body = self.body_json()
        if not isinstance(body.get("version"), int) or isinstance(body.get("version"), bool):
            raise web.HTTPError(400, 'send {"version": N}')
        async with self.lock:
            self.check_may_manage(who, self.store.require(name))
            model = self.store.set_label(name, label, body["version"])
        self.write({"name": name, "labels": model.labels})

    async def delete(self, name, label):
        who = await self.identity()
        async with self.lock:
            self.check_may_manage(who, self.store.require(name))
            self.store.delete_label(name, label)
        self.set_status(204)


class RollbackHandler(Base):
    async def post(self, name):
        who = await self.identity()
        label = self.body_json().get("label", "stable")
        if not isinstance(label, str):
            raise web.HTTPError(400, 'send {"label": "NAME"} (a string, default "stable")')
        async with self.lock:
            self.check_may_manage(who, self.store.require(name))
            model = self.store.rollback(name, label)
        self.write({"name": name, "labels": model.labels})


class PredictGateway(Base):
    """/v1/models/NAME[/versions/N|/labels/L][:predict|/metadata] -> TF Serving."""

    async def _forward(self, rest: str):
        self.require_user()
        name = re.split(r"[/:]", rest, maxsplit=1)[0]
        model = self.store.require(name)
        if self.cfg.predict_policy == "owners":
            await self.check_manage(model)
        resp = await self.fetch_serving(
            f"/v1/models/{rest}",
            method=self.request.method,
            body=self.request.body if self.request.method == "POST" else None,
            headers={"Content-Type": self.request.headers.get("Content-Type", "application/json")},
            request_timeout=60,
        )
        if resp is None or resp.code == 599:
            raise web.HTTPError(503, "TensorFlow Serving does not answer; try again shortly")
        self.set_status(resp.code)
        self.set_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
        self.finish(resp.body)

    async def get(self, rest):
        await self._forward(rest)

    async def post(self, rest):
        await self._forward(rest)


def make_app(cfg: Config, hub_auth: HubOAuth | None = None) -> web.Application:
    # Every HubOAuthenticated handler (the OAuth callback too) uses the HubOAuth
    # singleton, so create that one with our token.
    hub_auth = hub_auth or HubOAuth.instance(api_token=read_token(), cache_max_age=60)
    store = Store(cfg.models_root)
    p = cfg.prefix.rstrip("/")
    name = r"(?P<name>[^/]+)"
    return web.Application(
        [
            (p + r"/?", IndexHandler),
            (p + r"/oauth_callback", HubOAuthCallbackHandler),
            (p + r"/health", HealthHandler),
            (p + r"/logout", LogoutHandler),
            (p + r"/api/openapi.json", OpenAPIHandler),
            (p + r"/api/models", ModelsHandler),
            (p + rf"/api/models/{name}", ModelHandler),
            (p + rf"/api/models/{name}/versions", UploadHandler),
            (p + rf"/api/models/{name}/versions/(?P<version>\d+)", VersionHandler),
            (p + rf"/api/models/{name}/labels/(?P<label>[^/]+)", LabelHandler),
            (p + rf"/api/models/{name}/rollback", RollbackHandler),
            (p + r"/v1/models/(?P<rest>.+)", PredictGateway),
        ],
        cfg=cfg,
        store=store,
        lock=asyncio.Lock(),
        hub_auth=hub_auth,
        users=Users(hub_auth),
        http=httpclient.AsyncHTTPClient(),
        cookie_secret=read_cookie_secret(),
        template_path=os.path.join(os.path.dirname(__file__), "templates"),
        login_url=hub_auth.login_url,
    )


def _read(env_file: str, env_value: str) -> str | None:
    path = os.environ.get(env_file)
    if path and os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    return os.environ.get(env_value)


def read_token() -> str:
    token = _read("MLHUB_MODELS_API_TOKEN_FILE", "JUPYTERHUB_API_TOKEN")
    if not token:
        raise SystemExit("no hub API token: set MLHUB_MODELS_API_TOKEN_FILE or JUPYTERHUB_API_TOKEN")
    return token


def read_cookie_secret() -> bytes:
    value = _read("MLHUB_MODELS_COOKIE_SECRET_FILE", "MLHUB_MODELS_COOKIE_SECRET")
    return value.encode() if value else secrets.token_bytes(32)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    cfg = Config.from_env()
    app = make_app(cfg)
    app.listen(cfg.port, "0.0.0.0")
    log.info(
        "models service at %s (port %d), TF Serving at %s, predict: %s, max upload %d MiB",
        cfg.prefix, cfg.port, cfg.serving_url, cfg.predict_policy, cfg.max_upload // 1024**2,
    )
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
