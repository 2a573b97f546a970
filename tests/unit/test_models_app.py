"""The models hub service's HTTP API (services/models/mlhub_models_service/app.py),
served for real on a free port in the test's event loop, with a fake hub
(identity from 'Authorization: token <name>', groups and admin flags from a
table) and a fake TF Serving (a tiny tornado app in the same loop).
TensorFlow is not needed: archive.validate is replaced by a fake that checks
it was handed the unpacked SavedModel."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import socket
import threading
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado import httpclient, httpserver, web
from tornado.testing import bind_unused_port

from mlhub_models_service import app as app_mod
from mlhub_models_service.app import Config, Users, make_app, parse_size
from mlhub_models_service.openapi import OPENAPI
from mlhub_models_service.store import StoreError

PREFIX = "/services/models"
REAL_USERS_INFO = Users.info
PUBLIC = "https://hub.example.org"
SIGNATURE = {"inputs": {"x": {"dtype": "float32", "shape": [None, 4]}},
             "outputs": {"y": {"dtype": "float32", "shape": [None, 1]}}}

# who is who on the fake hub
USERS = {
    "alice": {"admin": False, "groups": ["team"]},
    "bob": {"admin": False, "groups": []},
    "carol": {"admin": False, "groups": ["team"]},
    "dave": {"admin": False, "groups": ["other"]},
    "root": {"admin": True, "groups": []},
}


def read_text(path) -> str:
    with open(path) as f:
        return f.read()


# ---------------------------------------------------------------- fakes


class FakeHubAuth:
    """What the handlers and Users need of HubOAuth: a user from the request's token."""

    login_url = "/hub/login"
    api_url = "http://127.0.0.1:9/hub/api"
    api_token = "the-service-token"
    access_scopes: set = set()  # no scope filter here: every identified user is let in

    def __init__(self):
        self.seen: list[str] = []

    def get_user(self, handler):
        auth = handler.request.headers.get("Authorization", "")
        self.seen.append(auth)
        name = auth[len("token "):].strip() if auth.startswith("token ") else ""
        return {"name": name, "kind": "user"} if name in USERS else None

    def _persist_url_token_if_set(self, handler):
        pass


class NobodyHubAuth(FakeHubAuth):
    def get_user(self, handler):
        return None


@dataclass
class FakeServing:
    """TF Serving's REST API, as much as the gateway uses."""

    status: dict[str, list[dict]] = field(default_factory=dict)
    requests: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    # "NAME[/versions/N|/labels/L]" -> the version served there (metadata's model_spec)
    resolve: Callable[[str], str | None] = lambda where: None

    def app(self) -> web.Application:
        serving = self

        class Handler(web.RequestHandler):
            def get(self, rest):
                serving.requests.append(("GET", rest, self.request.body, self.request.headers.get("Content-Type", "")))
                if rest.endswith("/metadata"):
                    spec = {"name": rest.split("/")[0]}
                    served = serving.resolve(rest[: -len("/metadata")])
                    if served is not None:
                        spec["version"] = served
                    self.write({"model_spec": spec, "metadata": {"signature_def": "..."}})
                elif rest in serving.status:
                    self.write({"model_version_status": serving.status[rest]})
                else:
                    self.set_status(404)
                    self.write({"error": f"Could not find any versions of model {rest}"})

            def post(self, rest):
                serving.requests.append(("POST", rest, self.request.body, self.request.headers.get("Content-Type", "")))
                body = json.loads(self.request.body)
                if body.get("instances") == "bad":
                    self.set_status(400)
                    self.set_header("Content-Type", "application/json")
                    self.finish(b'{ "error": "Failed to process element: 0 of \'instances\' list." }')
                    return
                self.write({"predictions": body["instances"], "served": rest})

        return web.Application([(r"/v1/models/(.+)", Handler)])


def serve(application: web.Application) -> tuple[httpserver.HTTPServer, int]:
    sock, port = bind_unused_port()
    server = httpserver.HTTPServer(application)
    server.add_sockets([sock])
    return server, port


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Resp:
    def __init__(self, r: httpclient.HTTPResponse):
        self.code = r.code
        self.headers = r.headers
        self.body = r.body or b""

    def json(self):
        assert self.headers.get("Content-Type", "").startswith("application/json"), (self.code, self.headers, self.body)
        return json.loads(self.body)

    def error(self, status: int) -> str:
        """The service's JSON error, checked to have the given status."""
        assert self.code == status, (self.code, self.body[:500])
        data = self.json()
        assert data["status"] == status and isinstance(data["error"], str) and data["error"]
        return data["error"]


class Service:
    """The models service on a free port, plus its fakes and a client."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.root = str(tmp_path / "models")
        self.serving = FakeServing(resolve=self.served_version)
        self.validated: list[str] = []
        self.validate_result: dict | Exception = SIGNATURE
        self.barrier: threading.Barrier | None = None  # hold validations until N uploads are there
        self.servers: list[httpserver.HTTPServer] = []
        self.client = httpclient.AsyncHTTPClient(force_instance=True)

    def served_version(self, where: str) -> str | None:
        """What a TF Serving that has read the current config serves at ``where``."""
        name, _, rest = where.partition("/")
        model = self.store.get(name)
        if model is None:
            return None
        kind, _, key = rest.partition("/")
        if kind == "versions":
            return key if int(key) in model.versions else None
        if kind == "labels":
            v = model.labels.get(key)
            return None if v is None else str(v)
        return str(max(model.versions)) if model.versions else None

    def fake_validate(self, path: str, timeout: float = 300) -> dict:
        assert os.path.isfile(os.path.join(path, "saved_model.pb")), os.listdir(path)
        assert path.startswith(self.store.staging)  # never validated in place of a served version
        self.validated.append(path)
        if self.barrier is not None:
            self.barrier.wait()
        if isinstance(self.validate_result, Exception):
            raise self.validate_result
        return self.validate_result

    async def start(self, *, serving_up: bool = True, **env) -> "Service":
        server, sport = serve(self.serving.app())
        self.servers.append(server)
        environ = {
            "MLHUB_MODELS_ROOT": self.root,
            "MLHUB_TF_SERVING_URL": f"http://127.0.0.1:{sport if serving_up else closed_port()}/",
            "MLHUB_PUBLIC_URL": PUBLIC + "/",
            "MLHUB_MODELS_MAX_UPLOAD": "64M",
            **env,
        }
        self.cfg = Config.from_env(environ)
        self.hub_auth = FakeHubAuth()

        async def info(users_self, name):
            assert users_self.hub_auth is self.hub_auth
            return {"name": name, **USERS.get(name, {"admin": False, "groups": []})}

        self.monkeypatch.setattr(Users, "info", info)
        self.monkeypatch.setattr(app_mod, "validate", self.fake_validate)
        self.app = make_app(self.cfg, hub_auth=self.hub_auth)
        self.store = self.app.settings["store"]
        server, self.port = serve(self.app)
        self.servers.append(server)
        return self

    async def stop(self):
        self.client.close()
        for s in self.servers:
            s.stop()
            await s.close_all_connections()

    async def call(self, method, path, user=None, body=None, json_body=None, params=None, headers=None) -> Resp:
        headers = dict(headers or {})
        if user:
            headers["Authorization"] = f"token {user}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT"):
            body = b""
        url = f"http://127.0.0.1:{self.port}{PREFIX}{path}" + (f"?{urlencode(params)}" if params else "")
        r = await self.client.fetch(
            url, method=method, body=body, headers=headers, raise_error=False,
            follow_redirects=False, request_timeout=30,
        )
        return Resp(r)

    async def upload(self, name, user="alice", data=None, **params) -> Resp:
        return await self.call(
            "POST", f"/api/models/{name}/versions", user=user, body=savedmodel_tgz() if data is None else data,
            params=params or None, headers={"Content-Type": "application/gzip"},
        )

    def staging_clean(self) -> bool:
        return os.listdir(self.store.staging) == []


def savedmodel_tgz(extra: dict[str, bytes] | None = None) -> bytes:
    files = {"saved_model.pb": b"\x08\x01proto", "variables/variables.index": b"idx",
             "variables/variables.data-00000-of-00001": os.urandom(2048), **(extra or {})}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo("savedmodel/" + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
async def make_service(tmp_path, monkeypatch):
    started: list[Service] = []

    async def make(**kw) -> Service:
        svc = await Service(tmp_path / f"s{len(started)}", monkeypatch).start(**kw)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        await svc.stop()


@pytest.fixture
async def svc(make_service) -> Service:
    return await make_service()


async def published(svc: Service, name="m", user="alice", n=1, **params) -> None:
    for _ in range(n):
        r = await svc.upload(name, user=user, **params)
        assert r.code == 201, r.body


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "text,size",
    [("2G", 2 * 1024**3), ("512M", 512 * 1024**2), ("512MiB", 512 * 1024**2), ("1k", 1024),
     ("100", 100), (" 3gb ", 3 * 1024**3), ("64KB", 64 * 1024)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "1T", "-1M", "1.5G"])
def test_parse_size_refuses_nonsense(text):
    with pytest.raises(SystemExit, match="MLHUB_MODELS_MAX_UPLOAD"):
        parse_size(text)


def test_config_from_env_defaults_and_refusals():
    cfg = Config.from_env({})
    assert (cfg.models_root, cfg.serving_url, cfg.predict_policy, cfg.max_upload, cfg.prefix, cfg.port) == (
        "/models", "http://tf-serving:8501", "members", 2 * 1024**3, "/services/models/", 8000)
    cfg = Config.from_env({"MLHUB_MODELS_PREDICT": " Owners ", "MLHUB_MODELS_MAX_UPLOAD": "",
                           "MLHUB_TF_SERVING_URL": "http://x:1/", "MLHUB_PUBLIC_URL": "https://h/"})
    assert (cfg.predict_policy, cfg.max_upload, cfg.serving_url, cfg.public_url) == (
        "owners", 2 * 1024**3, "http://x:1", "https://h")
    with pytest.raises(SystemExit, match="MLHUB_MODELS_PREDICT='everyone'"):
        Config.from_env({"MLHUB_MODELS_PREDICT": "everyone"})


# ---------------------------------------------------------------- identity


async def test_handlers_use_the_fake_hub_auth(svc):
    r = await svc.call("GET", "/api/models", user="alice")
    assert r.code == 200 and r.json() == {"models": []}
    assert "token alice" in svc.hub_auth.seen


async def test_handlers_use_the_hub_auth_given_to_make_app(make_service, monkeypatch):
    """Not HubOAuth.instance(): were the handlers to fall back to that singleton
    (built from the environment, without the service's token), it would identify nobody."""
    monkeypatch.setattr(HubOAuth, "instance", classmethod(lambda cls, *a, **k: NobodyHubAuth()))
    svc = await make_service()
    for path in ("/api/models", "/"):
        r = await svc.call("GET", path, user="alice")
        assert r.code == 200, (path, r.code, r.body[:300])
    assert svc.hub_auth.seen == ["token alice", "token alice"]


async def test_users_info_reads_the_hub_api_with_the_service_token_and_caches():
    seen = []

    class HubUsers(web.RequestHandler):
        def get(self, name):
            seen.append((self.request.path, self.request.headers.get("Authorization")))
            if name == "root":
                self.write({"name": "root", "admin": True, "groups": ["ops"]})
            elif name == "a b@x":
                self.write({"name": name, "groups": ["g"]})
            else:
                self.set_status(404)

    server, port = serve(web.Application([(r"/hub/api/users/(.+)", HubUsers)]))
    try:
        auth = FakeHubAuth()
        auth.api_url = f"http://127.0.0.1:{port}/hub/api"
        users = Users(auth, ttl=60)
        assert await REAL_USERS_INFO(users, "root") == {"name": "root", "admin": True, "groups": ["ops"]}
        assert await REAL_USERS_INFO(users, "root") == {"name": "root", "admin": True, "groups": ["ops"]}
        assert await REAL_USERS_INFO(users, "nobody") == {"name": "nobody", "admin": False, "groups": []}
        assert await REAL_USERS_INFO(users, "a b@x") == {"name": "a b@x", "admin": False, "groups": ["g"]}
        assert seen == [
            ("/hub/api/users/root", "token the-service-token"),
            ("/hub/api/users/nobody", "token the-service-token"),
            ("/hub/api/users/a%20b@x", "token the-service-token"),
        ]
        fresh = Users(auth, ttl=0)
        await REAL_USERS_INFO(fresh, "root")
        await REAL_USERS_INFO(fresh, "root")
        assert len(seen) == 5
    finally:
        server.stop()


# ---------------------------------------------------------------- anonymous


ANON_CALLS = [
    ("GET", "/api/models", None),
    ("GET", "/api/models/{m}", None),
    ("DELETE", "/api/models/{m}", None),
    ("POST", "/api/models/{m}/versions", "tgz"),
    ("DELETE", "/api/models/{m}/versions/1", None),
    ("PUT", "/api/models/{m}/labels/stable", {"version": 1}),
    ("DELETE", "/api/models/{m}/labels/stable", None),
    ("POST", "/api/models/{m}/rollback", {"label": "stable"}),
    ("POST", "/v1/models/{m}:predict", {"instances": [[1, 2, 3, 4]]}),
    ("POST", "/v1/models/{m}/labels/stable:predict", {"instances": [[1, 2, 3, 4]]}),
    ("GET", "/v1/models/{m}/metadata", None),
]


async def anon_call(svc, method, path, body, name, user=None):
    kw = {"json_body": body} if isinstance(body, dict) else {"body": savedmodel_tgz()} if body else {}
    return await svc.call(method, path.format(m=name), user=user, **kw)


@pytest.mark.parametrize("method,path,body", ANON_CALLS, ids=[f"{m} {p}" for m, p, _ in ANON_CALLS])
@pytest.mark.parametrize("who", [None, "mallory"], ids=["no-token", "unknown-token"])
async def test_anonymous_gets_401_json_and_changes_nothing(svc, method, path, body, who):
    await published(svc, n=1)
    await svc.call("PUT", "/api/models/m/labels/stable", user="alice", json_body={"version": 1})
    before = svc.store.require("m").to_json()
    r = await anon_call(svc, method, path, body, "m", user=who)
    assert "sign in first" in r.error(401)
    assert svc.store.require("m").to_json() == before
    assert [req for req in svc.serving.requests if req[0] == "POST"] == []
    assert svc.staging_clean()


@pytest.mark.parametrize(
    "method,path,body",
    [pytest.param(m, p, b) for m, p, b in ANON_CALLS[1:]],
    ids=[f"{m} {p}" for m, p, _ in ANON_CALLS[1:]],
)
async def test_anonymous_gets_401_for_missing_models_too(svc, method, path, body):
    r = await anon_call(svc, method, path, body, "ghost")
    assert r.code == 401, (r.code, r.body)
    assert "sign in first" in r.error(401)


async def test_health_and_openapi_need_no_login(svc):
    r = await svc.call("GET", "/health")
    assert (r.code, r.json()) == (200, {"status": "ok"})
    r = await svc.call("GET", "/api/openapi.json")
    assert r.code == 200 and r.json() == json.loads(json.dumps(OPENAPI))


# ---------------------------------------------------------------- the browser page


async def test_index_redirects_to_the_hub_login_and_lists_models_when_signed_in(svc):
    r = await svc.call("GET", "/")
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login?next=")
    assert "%2Fservices%2Fmodels%2F" in r.headers["Location"]
    r = await svc.call("GET", "/", user="alice")
    assert r.code == 200 and b"No models yet" in r.body and b"signed in as alice" in r.body
    await published(svc, "fraud", label="stable")
    r = await svc.call("GET", "/", user="root")
    html = r.body.decode()
    assert r.code == 200 and 'data-model="fraud"' in html and "signed in as root (admin)" in html
    assert "stable &rarr; v1" in html
    assert f"{PUBLIC}{PREFIX}/v1/models/NAME:predict" in html


# ---------------------------------------------------------------- listing and describing


async def test_list_and_get_models_with_serving_states(svc):
    await published(svc, "m", n=3)
    await published(svc, "other", user="bob")
    svc.serving.status["m"] = [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "2", "state": "END", "status": {"error_code": "UNKNOWN", "error_message": "Could not load"}},
    ]
    r = await svc.call("GET", "/api/models", user="dave")
    models = {m["name"]: m for m in r.json()["models"]}
    assert list(models) == ["m", "other"]
    m = models["m"]
    assert (m["owner"], m["group"], m["labels"]) == ("alice", None, {})
    assert [(v["version"], v["state"], v["error"]) for v in m["versions"]] == [
        (1, "AVAILABLE", ""), (2, "END", "Could not load"), (3, "NOT_LOADED", "")]
    assert all(v["signature"] == SIGNATURE and v["published_by"] == "alice" for v in m["versions"])
    assert m["predict_url"] == f"{PUBLIC}{PREFIX}/v1/models/m:predict"
    assert [v["state"] for v in models["other"]["versions"]] == ["UNKNOWN"]  # TF Serving: 404
    r = await svc.call("GET", "/api/models/m", user="bob")
    assert r.json() == m


async def test_listing_when_tf_serving_is_down(make_service):
    svc = await make_service(serving_up=False)
    await published(svc, "m")
    r = await svc.call("GET", "/api/models/m", user="alice")
    assert r.code == 200 and [v["state"] for v in r.json()["versions"]] == ["UNKNOWN"]


@pytest.mark.parametrize(
    "method,path,body,status,message",
    [
        ("GET", "/api/models/Bad_Name", None, 400, "invalid model name 'Bad_Name'"),
        ("GET", "/api/models/ghost", None, 404, "no model named 'ghost'"),
        ("DELETE", "/api/models/ghost", None, 404, "no model named 'ghost'"),
        ("DELETE", "/api/models/m/versions/9", None, 404, "m has no version 9"),
        ("DELETE", "/api/models/..%2Fetc", None, 400, "invalid model name '../etc'"),
        ("POST", "/v1/models/ghost:predict", {"instances": [[1]]}, 404, "no model named 'ghost'"),
        ("POST", "/v1/models/BAD:predict", {"instances": [[1]]}, 400, "invalid model name 'BAD'"),
        ("POST", "/api/models/m/rollback", {}, 409, "no earlier version to roll back to"),
        ("PUT", "/api/models/m/labels/Stable", {"version": 1}, 400, "invalid label 'Stable'"),
        ("PUT", "/api/models/m/labels/stable", {"version": 9}, 404, "m has no version 9"),
        ("PUT", "/api/models/ghost/labels/stable", {"version": 1}, 404, "no model named 'ghost'"),
    ],
)
async def test_store_errors_answer_with_their_status(svc, method, path, body, status, message):
    await published(svc, "m")
    before = svc.store.require("m").to_json()
    r = await svc.call(method, path, user="alice", json_body=body)
    assert message in r.error(status)
    assert not any(req[0] == "POST" for req in svc.serving.requests)  # nothing forwarded
    assert svc.store.require("m").to_json() == before


# ---------------------------------------------------------------- publishing


async def test_upload_publishes_version_1_then_2(svc):
    r = await svc.upload("fraud")
    assert r.code == 201
    assert r.json() == {"name": "fraud", "version": 1, "labels": {}, "signature": SIGNATURE}
    assert os.path.isfile(os.path.join(svc.root, "fraud", "1", "saved_model.pb"))
    assert os.path.isfile(os.path.join(svc.root, "fraud", "1", "variables", "variables.index"))
    r = await svc.upload("fraud", label="stable")
    assert r.code == 201 and r.json()["version"] == 2 and r.json()["labels"] == {"stable": 2}
    assert len(svc.validated) == 2
    with open(os.path.join(svc.root, "models.config")) as f:
        config = f.read()
    assert "versions: 1 versions: 2" in config and 'version_labels { key: "stable" value: 2 }' in config
    m = svc.store.require("fraud")
    assert (m.owner, m.group) == ("alice", None)
    assert svc.staging_clean()


@pytest.mark.parametrize("kind", ["tar", "zip"])
async def test_upload_of_tar_and_zip(svc, kind):
    buf = io.BytesIO()
    if kind == "tar":
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("saved_model.pb")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"pb"))
    else:
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("export/saved_model.pb", b"pb")
            z.writestr("export/variables/variables.index", b"i")
    r = await svc.upload("m", data=buf.getvalue())
    assert r.code == 201 and r.json()["version"] == 1
    assert os.path.isfile(os.path.join(svc.root, "m", "1", "saved_model.pb"))


async def test_concurrent_uploads_get_distinct_versions(svc):
    rs = await asyncio.gather(*(svc.upload("m") for _ in range(3)))
    assert sorted(r.json()["version"] for r in rs) == [1, 2, 3]
    assert sorted(svc.store.require("m").versions) == [1, 2, 3]
    assert svc.staging_clean()


async def test_racing_first_uploads_do_not_bypass_the_owner_check(svc):
    svc.barrier = threading.Barrier(2, timeout=10)  # both pass prepare() before either publishes
    ra, rb = await asyncio.gather(svc.upload("m", user="alice"), svc.upload("m", user="bob"))
    m = svc.store.require("m")
    publishers = {info["published_by"] for info in m.versions.values()}
    assert publishers == {m.owner}, (m.owner, publishers, ra.code, rb.code)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"definitely not an archive", "not a .tar.gz, .tar or .zip archive"),
        ("no-pb", "no saved_model.pb in the archive"),
        ("traversal", "points outside the archive"),
    ],
)
async def test_bad_uploads_are_refused_with_400(svc, data, message):
    if data == "no-pb":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("model.h5", b"keras")
        data = buf.getvalue()
    elif data == "traversal":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("../../escape")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        data = buf.getvalue()
    r = await svc.upload("m", data=data)
    assert message in r.error(400)
    assert svc.store.get("m") is None and svc.validated == []
    assert svc.staging_clean()
    assert not os.path.exists(os.path.join(os.path.dirname(svc.root), "escape"))


async def test_validation_refusal_publishes_nothing(svc):
    svc.validate_result = StoreError("refused: no serving_default signature (found: []): export it with a serving signature")
    r = await svc.upload("m", label="stable")
    assert "no serving_default signature" in r.error(400)
    assert svc.store.get("m") is None
    assert svc.staging_clean()
    assert "config {" not in read_text(os.path.join(svc.root, "models.config"))


async def test_unexpected_errors_are_500_json_and_clean_up(svc):
    svc.validate_result = RuntimeError("boom")
    r = await svc.upload("m")
    assert r.error(500) == "Internal Server Error"
    assert svc.store.get("m") is None and svc.staging_clean()


async def test_upload_with_a_bad_label_or_name(svc):
    r = await svc.upload("m", label="Not-A-Label")
    assert "invalid label" in r.error(400)
    r = await svc.upload("Bad.Name")
    assert "invalid model name 'Bad.Name'" in r.error(400)
    assert svc.store.names() == [] and svc.staging_clean()


async def test_archive_unpacking_over_the_max_is_413(make_service):
    svc = await make_service(MLHUB_MODELS_MAX_UPLOAD="1M")
    data = savedmodel_tgz({"variables/huge": bytes(2 * 1024**2)})  # 2 MiB of zeros: a few KiB packed
    assert len(data) < 64 * 1024
    r = await svc.upload("m", data=data)
    assert "unpacks to more than 1 MiB" in r.error(413)
    assert svc.store.get("m") is None and svc.staging_clean()


async def test_upload_body_over_the_max_is_413_json(make_service):
    svc = await make_service(MLHUB_MODELS_MAX_UPLOAD="1M")
    r = await svc.upload("m", data=os.urandom(1024**2 + 4096))
    assert r.code == 413, (r.code, r.body)
    assert "upload larger than MLHUB_MODELS_MAX_UPLOAD (1 MiB)" in r.error(413)
    assert svc.staging_clean()


async def test_upload_body_over_the_max_is_refused_and_publishes_nothing(make_service):
    svc = await make_service(MLHUB_MODELS_MAX_UPLOAD="1M")
    r = await svc.upload("m", data=os.urandom(1024**2 + 4096))
    assert r.code in (400, 413, 599)  # refused one way or another
    assert svc.store.get("m") is None and svc.validated == []
    r = await svc.upload("m")  # the service still works afterwards
    assert r.code == 201


# ---------------------------------------------------------------- labels and rollback


async def test_label_rollback_and_delete_endpoints(svc):
    await published(svc, "m", n=3)
    r = await svc.call("PUT", "/api/models/m/labels/stable", user="alice", json_body={"version": 1})
    assert (r.code, r.json()) == (200, {"name": "m", "labels": {"stable": 1}})
    r = await svc.call("PUT", "/api/models/m/labels/stable", user="alice", json_body={"version": 3})
    assert r.json()["labels"] == {"stable": 3}
    r = await svc.call("PUT", "/api/models/m/labels/canary", user="alice", json_body={"version": 2})
    assert r.json()["labels"] == {"stable": 3, "canary": 2}
    r = await svc.call("POST", "/api/models/m/rollback", user="alice")  # empty body: label stable
    assert (r.code, r.json()) == (200, {"name": "m", "labels": {"stable": 1, "canary": 2}})
    r = await svc.call("POST", "/api/models/m/rollback", user="alice", json_body={"label": "stable"})
    assert "no earlier version" in r.error(409)
    r = await svc.call("POST", "/api/models/m/rollback", user="alice", json_body={"label": "canary"})
    assert r.code == 409
    r = await svc.call("DELETE", "/api/models/m/labels/canary", user="alice")
    assert r.code == 204 and svc.store.require("m").labels == {"stable": 1}
    r = await svc.call("DELETE", "/api/models/m/versions/1", user="alice")
    assert r.code == 204
    m = svc.store.require("m")
    assert sorted(m.versions) == [2, 3] and m.labels == {}
    assert not os.path.exists(os.path.join(svc.root, "m", "1"))


@pytest.mark.parametrize("body", [b"", b"not json", b'{"version": "2"}', b'{"version": 1.5}', b"{}"])
async def test_label_put_needs_an_integer_version(svc, body):
    await published(svc, "m")
    r = await svc.call("PUT", "/api/models/m/labels/stable", user="alice", body=body,
                       headers={"Content-Type": "application/json"})
    message = r.error(400)
    assert message in ("the request body must be a JSON object", 'send {"version": N}')
    assert svc.store.require("m").labels == {}


@pytest.mark.parametrize("path", ["/api/models/m/labels/stable", "/api/models/m/rollback"])
async def test_non_object_json_bodies_are_400(svc, path):
    await published(svc, "m")
    r = await svc.call("PUT" if "labels" in path else "POST", path, user="alice", body=b"[1]",
                       headers={"Content-Type": "application/json"})
    assert r.code == 400, (r.code, r.body)


# ---------------------------------------------------------------- permissions


MANAGE_CALLS = [
    ("POST", "/api/models/m/versions", "tgz"),
    ("DELETE", "/api/models/m", None),
    ("DELETE", "/api/models/m/versions/1", None),
    ("PUT", "/api/models/m/labels/stable", {"version": 1}),
    ("DELETE", "/api/models/m/labels/stable", None),
    ("POST", "/api/models/m/rollback", {"label": "stable"}),
]


@pytest.mark.parametrize("method,path,body", MANAGE_CALLS, ids=[f"{m} {p}" for m, p, _ in MANAGE_CALLS])
async def test_others_may_not_change_a_model(svc, method, path, body):
    await published(svc, "m", n=2)
    for v in (1, 2):
        await svc.call("PUT", "/api/models/m/labels/stable", user="alice", json_body={"version": v})
    before = svc.store.require("m").to_json()
    for who in ("bob", "carol"):  # carol is in alice's group, but the model has no group
        r = await anon_call(svc, method, path, body, "m", user=who)
        assert "only alice (and hub admins) may change model m" in r.error(403)
    assert svc.store.require("m").to_json() == before
    assert sorted(os.listdir(os.path.join(svc.root, "m"))) == ["1", "2", "mlhub.json"]
    assert svc.staging_clean()


async def test_admin_may_manage_any_model(svc):
    await published(svc, "m", n=2)
    r = await svc.upload("m", user="root", label="stable")
    assert r.code == 201 and r.json()["version"] == 3
    assert svc.store.require("m").owner == "alice"  # publishing does not take it over
    assert (await svc.call("DELETE", "/api/models/m/versions/1", user="root")).code == 204
    assert (await svc.call("DELETE", "/api/models/m", user="root")).code == 204
    assert svc.store.get("m") is None and not os.path.exists(os.path.join(svc.root, "m"))
    assert "config {" not in read_text(os.path.join(svc.root, "models.config"))


async def test_owner_may_delete_the_model(svc):
    await published(svc, "m")
    assert (await svc.call("DELETE", "/api/models/m", user="alice")).code == 204
    r = await svc.call("GET", "/api/models/m", user="alice")
    assert r.code == 404


async def test_group_members_may_publish_and_label_others_may_not(svc):
    await published(svc, "m", user="alice", group="team")
    assert svc.store.require("m").group == "team"
    r = await svc.upload("m", user="carol", label="stable")  # carol is in team
    assert r.code == 201 and r.json()["version"] == 2
    m = svc.store.require("m")
    assert (m.owner, m.group, m.versions[2]["published_by"]) == ("alice", "team", "carol")
    r = await svc.call("PUT", "/api/models/m/labels/stable", user="carol", json_body={"version": 1})
    assert r.code == 200
    r = await svc.upload("m", user="dave")
    assert "only alice and members of group team (and hub admins) may change model m" in r.error(403)
    r = await svc.call("DELETE", "/api/models/m", user="bob")
    assert r.code == 403
    assert sorted(svc.store.require("m").versions) == [1, 2]


async def test_only_members_may_give_a_model_their_group(svc):
    r = await svc.upload("m", user="bob", group="team")
    assert "you are not a member of group team" in r.error(403)
    assert svc.store.get("m") is None and svc.staging_clean()
    r = await svc.upload("m", user="root", group="anything")  # admins may
    assert r.code == 201 and svc.store.require("m").group == "anything"


# ---------------------------------------------------------------- predictions


@pytest.mark.parametrize("where", ["", "/versions/2", "/labels/stable"])
async def test_predict_is_forwarded_to_tf_serving(svc, where):
    await published(svc, "m", n=2)
    body = b'{"instances": [[0.1, 0.2, 0.3, 0.4]]}'
    r = await svc.call("POST", f"/v1/models/m{where}:predict", user="bob", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.code == 200
    assert r.json() == {"predictions": [[0.1, 0.2, 0.3, 0.4]], "served": f"m{where}:predict"}
    assert svc.serving.requests[-1] == ("POST", f"m{where}:predict", body, "application/json")


async def test_predict_passes_tf_serving_errors_through(svc):
    await published(svc, "m")
    r = await svc.call("POST", "/v1/models/m:predict", user="bob", json_body={"instances": "bad"})
    assert r.code == 400
    assert r.body == b'{ "error": "Failed to process element: 0 of \'instances\' list." }'


async def test_metadata_is_forwarded_as_get(svc):
    await published(svc, "m")
    r = await svc.call("GET", "/v1/models/m/metadata", user="bob")
    assert r.code == 200 and r.json()["model_spec"] == {"name": "m", "version": "1"}
    assert svc.serving.requests[-1][:3] == ("GET", "m/metadata", b"")


async def test_predict_when_tf_serving_is_down_is_503(make_service):
    svc = await make_service(serving_up=False)
    await published(svc, "m")
    r = await svc.call("POST", "/v1/models/m:predict", user="alice", json_body={"instances": [[1]]})
    assert "TensorFlow Serving does not answer" in r.error(503)


async def test_predict_policy_owners(make_service):
    svc = await make_service(MLHUB_MODELS_PREDICT="owners")
    await published(svc, "m", user="alice", group="team")
    body = {"instances": [[1, 2, 3, 4]]}
    r = await svc.call("POST", "/v1/models/m:predict", user="bob", json_body=body)
    assert "only alice and members of group team" in r.error(403)
    r = await svc.call("GET", "/v1/models/m/metadata", user="dave")
    assert r.code == 403
    assert svc.serving.requests == []
    for who in ("alice", "carol", "root"):
        r = await svc.call("POST", "/v1/models/m:predict", user=who, json_body=body)
        assert r.code == 200 and r.json()["predictions"] == [[1, 2, 3, 4]]
    assert len(svc.serving.requests) == 3


# ---------------------------------------------------------------- OpenAPI


def fill(path: str) -> str:
    return path.replace("{name}", "m").replace("{version}", "1").replace("{label}", "stable")


async def test_openapi_document_matches_the_routes(svc):
    await published(svc, "m")
    doc = (await svc.call("GET", "/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and doc["servers"] == [{"url": PREFIX}]
    # every $ref resolves
    text = json.dumps(doc)
    for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text):
        assert ref in doc["components"]["schemas"]
    # every route of the API is documented ...
    api_routes = [
        rule.matcher.regex for rule in svc.app.wildcard_router.rules
        if re.search(r"/(api/models|v1/)", rule.matcher.regex.pattern)
    ]
    assert len(api_routes) == 7
    documented = [PREFIX + fill(p) for p in doc["paths"]]
    for regex in api_routes:
        assert any(regex.fullmatch(url) for url in documented), f"undocumented route {regex.pattern}"
    # ... and every documented operation is routed and asks for a login
    for path, item in doc["paths"].items():
        for method in item:
            if method == "parameters":
                continue
            body = None
            if method == "put":
                body = {"version": 1}
            elif method == "post":
                body = {"instances": [[1]]} if path.startswith("/v1/") else {}
            r = await svc.call(method.upper(), fill(path), json_body=body)
            assert r.code == 401, f"{method.upper()} {path}: {r.code} {r.body[:200]}"
            r.error(401)
            for code in item[method]["responses"]:
                assert code.isdigit()


# ---------------------------------------------------------------- the notebook client against the service


async def test_notebook_client_round_trip(svc, tmp_path, monkeypatch):
    import mlhub_models as client

    export = tmp_path / "export"
    (export / "variables").mkdir(parents=True)
    (export / "saved_model.pb").write_bytes(b"pb")
    (export / "variables" / "variables.index").write_bytes(b"i")
    monkeypatch.setenv("MLHUB_MODELS_URL", f"http://127.0.0.1:{svc.port}{PREFIX}/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "alice")
    loop = asyncio.get_running_loop()

    async def run(fn, *a, **kw):  # requests blocks: keep the service's loop free
        return await loop.run_in_executor(None, lambda: fn(*a, **kw))

    r = await run(client.publish, str(export), "fraud", label="stable", group="team")
    assert r == {"name": "fraud", "version": 1, "labels": {"stable": 1}, "signature": SIGNATURE}
    assert (await run(client.publish, export, "fraud"))["version"] == 2
    assert read_text(os.path.join(svc.root, "fraud", "2", "variables", "variables.index")) == "i"
    assert svc.store.require("fraud").group == "team"
    assert [m["name"] for m in await run(client.models)] == ["fraud"]
    assert [v["version"] for v in (await run(client.model, "fraud"))["versions"]] == [1, 2]
    assert (await run(client.set_label, "fraud", "stable", 2))["labels"] == {"stable": 2}
    assert (await run(client.rollback, "fraud"))["labels"] == {"stable": 1}
    assert await run(client.predict, "fraud", [[1, 2, 3, 4]], label="stable") == [[1, 2, 3, 4]]
    assert svc.serving.requests[-1][1] == "fraud/labels/stable:predict"
    await run(client.predict, "fraud", [[1]], version=2)
    assert svc.serving.requests[-1][1] == "fraud/versions/2:predict"
    assert await run(client.delete, "fraud", 2) is None
    assert sorted(svc.store.require("fraud").versions) == [1]

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "bob")
    with pytest.raises(client.ModelServiceError, match=r"DELETE /api/models/fraud: 403: only alice and members"):
        await run(client.delete, "fraud")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    with pytest.raises(client.ModelServiceError, match="JUPYTERHUB_API_TOKEN is not set"):
        await run(client.models)
    assert svc.store.get("fraud") is not None


async def test_notebook_client_waits_until_tf_serving_serves_the_label(svc, tmp_path, monkeypatch):
    """TF Serving re-reads models.config every few seconds: set_label returns only
    once the label serves the new version, so a predict right after uses it."""
    import mlhub_models as client

    export = tmp_path / "export"
    (export / "variables").mkdir(parents=True)
    (export / "saved_model.pb").write_bytes(b"pb")
    monkeypatch.setenv("MLHUB_MODELS_URL", f"http://127.0.0.1:{svc.port}{PREFIX}/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "alice")
    loop = asyncio.get_running_loop()

    async def run(fn, *a, **kw):
        return await loop.run_in_executor(None, lambda: fn(*a, **kw))

    await run(client.publish, str(export), "fraud", label="stable")
    await run(client.publish, str(export), "fraud")
    up_to_date = svc.served_version
    lagging = {"polls": 0}

    def slow_serving(where):  # the old mapping for the first 3 polls
        lagging["polls"] += 1
        return "1" if lagging["polls"] <= 3 and where == "fraud/labels/stable" else up_to_date(where)

    svc.serving.resolve = slow_serving
    assert (await run(client.set_label, "fraud", "stable", 2))["labels"] == {"stable": 2}
    assert lagging["polls"] == 4  # waited through the three stale answers

    monkeypatch.setattr(client, "WAIT_S", 1)
    svc.serving.resolve = lambda where: "1"  # a TF Serving that never picks it up
    with pytest.raises(client.ModelServiceError, match="has not served version 2 within"):
        await run(client.set_label, "fraud", "stable", 2)
    for bad in ("Bad Name/../x", "..", "UPPER"):
        with pytest.raises(client.ModelServiceError, match="invalid model name"):
            await run(client.publish, str(export), bad)

