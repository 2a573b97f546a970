"""Model serving through the `models` hub service, on the core stack.

TF Serving's binary cannot run here (no registry, not on PyPI): the stack's
`tf-serving` service is the STAND-IN of images/local-base/tf-serving-standin/,
which serves TF Serving's REST API from the same volume and models.config with
TensorFlow itself. Everything else is real: a notebook container trains and
publishes with the notebook's own hub token, the models service validates,
versions and labels, and forwards predictions.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest
import requests

from tests.conftest import record
from tests.support.kernel import run_code

pytestmark = pytest.mark.docker

MIA, NOAH = "mia", "noah"
MODEL = "fraud-detector"

TRAIN_AND_PUBLISH = r"""
import json, time, numpy as np, tensorflow as tf
from mlhub_models import publish, model as get_model
tf.keras.utils.set_random_seed(SEED)
x = np.random.rand(128, 4).astype("float32"); y = (x.sum(axis=1) > 2).astype("float32")
m = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, activation="relu"),
                         tf.keras.layers.Dense(1, activation="sigmoid")])
m.compile("adam", "binary_crossentropy"); m.fit(x, y, epochs=1, verbose=0)
probe = np.array([[0.9, 0.1, 0.5, 0.7], [0.1, 0.2, 0.3, 0.4]], dtype="float32")
t0 = time.monotonic()
r = publish(m, "MODEL")
while True:  # publish -> servable
    states = {v["version"]: v["state"] for v in get_model("MODEL")["versions"]}
    if states.get(r["version"]) == "AVAILABLE" or time.monotonic() - t0 > 120:
        break
    time.sleep(0.2)
print("RESULT", json.dumps({"version": r["version"], "servable_s": time.monotonic() - t0,
      "state": states.get(r["version"]), "local": m.predict(probe, verbose=0).ravel().tolist()}))
"""


def kernel_json(platform, user: str, code: str) -> dict:
    out = run_code(platform.hub, platform.user(user), user, code)
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def api(platform, user: str | None, method: str, path: str, **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    if user:
        headers["Authorization"] = f"token {platform.user(user)}"
    return requests.request(
        method, platform.hub.url("/services/models" + path), headers=headers,
        timeout=kw.pop("timeout", 120), allow_redirects=False, **kw,
    )


def predict(platform, user, where: str = "", instances=None):
    body = {"instances": instances or [[0.9, 0.1, 0.5, 0.7], [0.1, 0.2, 0.3, 0.4]]}
    return api(platform, user, "POST", f"/v1/models/{MODEL}{where}:predict", json=body)


@pytest.fixture(scope="module")
def published(platform):
    for u in (MIA, NOAH):
        platform.user(u)
    platform.hub.start_server(platform.user(MIA), MIA)
    runs = {}
    for seed in (1, 2):
        code = TRAIN_AND_PUBLISH.replace("SEED", str(seed)).replace("MODEL", MODEL)
        runs[seed] = kernel_json(platform, MIA, code)
        record(f"models: publish -> servable (version {runs[seed]['version']}): {runs[seed]['servable_s']:.2f} s")
    return runs


def test_publish_from_a_notebook_creates_versions(platform, published):
    assert published[1]["version"] == 1 and published[2]["version"] == 2
    assert published[1]["state"] == published[2]["state"] == "AVAILABLE"
    r = api(platform, MIA, "GET", f"/api/models/{MODEL}")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["owner"] == MIA
    assert [v["version"] for v in m["versions"]] == [1, 2]
    assert all(v["published_by"] == MIA for v in m["versions"])


def test_predictions_through_the_gateway_equal_the_notebooks(platform, published):
    for version, seed in ((1, 1), (2, 2)):
        r = predict(platform, MIA, f"/versions/{version}")
        assert r.status_code == 200, r.text
        got = [p[0] for p in r.json()["predictions"]]
        assert got == pytest.approx(published[seed]["local"], abs=1e-5)
    # without a version: the latest
    latest = [p[0] for p in predict(platform, NOAH).json()["predictions"]]
    assert latest == pytest.approx(published[2]["local"], abs=1e-5)
    meta = api(platform, NOAH, "GET", f"/v1/models/{MODEL}/metadata")
    assert meta.status_code == 200 and "serving_default" in meta.text


def test_labels_and_rollback(platform, published):
    r = api(platform, MIA, "PUT", f"/api/models/{MODEL}/labels/stable", json={"version": 1})
    assert r.status_code == 200 and r.json()["labels"] == {"stable": 1}
    r = api(platform, MIA, "PUT", f"/api/models/{MODEL}/labels/stable", json={"version": 2})
    assert r.json()["labels"] == {"stable": 2}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # TF Serving re-reads its config every few seconds
        r = predict(platform, MIA, "/labels/stable")
        if r.status_code == 200 and [p[0] for p in r.json()["predictions"]] == pytest.approx(published[2]["local"], abs=1e-5):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"label stable never served version 2: {r.status_code} {r.text[:200]}")
    r = api(platform, MIA, "POST", f"/api/models/{MODEL}/rollback", json={"label": "stable"})
    assert r.status_code == 200 and r.json()["labels"] == {"stable": 1}, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = predict(platform, MIA, "/labels/stable")
        if r.status_code == 200 and [p[0] for p in r.json()["predictions"]] == pytest.approx(published[1]["local"], abs=1e-5):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("rollback: label stable never served version 1 again")


def test_models_config_is_a_model_server_config_with_exactly_the_published_versions(platform, published):
    code = (
        "from google.protobuf import text_format\n"
        "from tensorflow_serving.config import model_server_config_pb2 as p\n"
        "c = text_format.Parse(open('/models/models.config').read(), p.ModelServerConfig())\n"
        "import json\n"
        "print(json.dumps([{'name': m.name, 'base_path': m.base_path, "
        "'versions': sorted(m.model_version_policy.specific.versions), "
        "'labels': dict(m.version_labels)} for m in c.model_config_list.config]))\n"
    )
    r = platform.stack.compose("exec", "-T", "tf-serving", "python", "-c", code)
    configs = {c["name"]: c for c in json.loads(r.stdout.strip().splitlines()[-1])}
    assert configs[MODEL]["versions"] == [1, 2]
    assert configs[MODEL]["base_path"] == f"/models/{MODEL}"
    assert configs[MODEL]["labels"] == {"stable": 1}


def test_another_user_cannot_overwrite_or_delete(platform, published):
    tar = _tar_of_version(platform, 1)
    r = api(platform, NOAH, "POST", f"/api/models/{MODEL}/versions", data=tar,
            headers={"Content-Type": "application/gzip"})
    assert r.status_code == 403 and "only mia" in r.json()["error"], r.text
    assert api(platform, NOAH, "DELETE", f"/api/models/{MODEL}/versions/1").status_code == 403
    assert api(platform, NOAH, "DELETE", f"/api/models/{MODEL}").status_code == 403
    r = api(platform, NOAH, "PUT", f"/api/models/{MODEL}/labels/stable", json={"version": 2})
    assert r.status_code == 403
    assert [v["version"] for v in api(platform, MIA, "GET", f"/api/models/{MODEL}").json()["versions"]] == [1, 2]


def test_anonymous_requests_are_refused(platform, published):
    for method, path in (("GET", "/api/models"), ("POST", f"/v1/models/{MODEL}:predict"),
                         ("DELETE", f"/api/models/{MODEL}")):
        r = api(platform, None, method, path, json={"instances": [[1, 2, 3, 4]]})
        assert r.status_code in (401, 403), (method, path, r.status_code)
    r = api(platform, None, "GET", "/api/models", headers={"Authorization": "token not-a-real-token"})
    assert r.status_code in (401, 403), r.status_code
    # a browser without a session is sent to the hub's login
    r = requests.get(platform.hub.url("/services/models/"), allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"]


def _tar_of_version(platform, version: int) -> bytes:
    """A .tar.gz of a published SavedModel, read back from the models volume."""
    r = platform.stack.compose(
        "exec", "-T", "models", "sh", "-c", f"cd /models/{MODEL} && tar -czf - {version} | base64 -w0"
    )
    import base64

    return base64.b64decode(r.stdout.strip())


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


BAD_UPLOADS = {
    "not an archive": (os.urandom(4096), "not a .tar.gz"),
    "path traversal": (_tar([_file("../../etc/evil", b"x"), _file("m/saved_model.pb", b"x")]), "points outside"),
    "absolute path": (_tar([_file("/tmp/evil", b"x")]), "points outside"),
    "symlink": (_tar([_link("m/saved_model.pb", "/etc/passwd")]), "link or a special file"),
    "no saved_model.pb": (_tar([_file("m/readme.txt", b"hello")]), "no saved_model.pb"),
    "garbage saved_model.pb": (_tar([_file("m/saved_model.pb", b"\x00garbage" * 100)]), "not a loadable SavedModel"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads_are_refused_and_served_models_still_answer(platform, published, case):
    body, message = BAD_UPLOADS[case]
    r = api(platform, MIA, "POST", f"/api/models/{MODEL}/versions", data=body,
            headers={"Content-Type": "application/gzip"})
    assert r.status_code == 400, (case, r.status_code, r.text[:300])
    assert message in r.json()["error"], r.json()
    assert [v["version"] for v in api(platform, MIA, "GET", f"/api/models/{MODEL}").json()["versions"]] == [1, 2]
    assert predict(platform, NOAH, "/versions/1").status_code == 200


def test_oversized_upload_is_refused(platform, published):
    # the stack runs with MLHUB_MODELS_MAX_UPLOAD=64M
    big = _tar([_file("m/saved_model.pb", b"\0" * (70 * 1024**2))])  # compresses small, unpacks big
    r = api(platform, MIA, "POST", "/api/models/too-big/versions", data=big,
            headers={"Content-Type": "application/gzip"})
    assert r.status_code == 413, (r.status_code, r.text[:200])
    assert api(platform, MIA, "GET", "/api/models/too-big").status_code == 404
    assert predict(platform, MIA, "/versions/2").status_code == 200


def test_web_page_lists_models_for_a_signed_in_browser(platform, published):
    s = platform.hub.login_session("admin", platform.admin_password)
    r = s.get(platform.hub.url("/services/models/"), timeout=30)  # hub OAuth, then the page
    assert r.status_code == 200, r.text[:300]
    assert MODEL in r.text and "AVAILABLE" in r.text and ":predict" in r.text
    home = s.get(platform.hub.url("/hub/home"), timeout=30).text
    assert "/services/models" in home  # in the hub's Services menu
    spec = s.get(platform.hub.url("/services/models/api/openapi.json"), timeout=30).json()
    assert spec["openapi"].startswith("3.") and "/api/models/{name}/versions" in spec["paths"]


def test_import_of_the_old_layout(platform, published):
    stack = platform.stack
    stack.compose("exec", "-T", "models", "sh", "-c",
                  f"rm -rf /tmp/old && mkdir -p /tmp/old/legacy && cp -r /models/{MODEL}/1 /tmp/old/legacy/7")
    r = stack.compose("exec", "-T", "models", "mlhub-models-import", "/tmp/old", "--owner", MIA)
    assert "imported legacy/7 as legacy version 1" in r.stdout, r.stdout
    assert api(platform, MIA, "GET", "/api/models/legacy").json()["owner"] == MIA


def test_delete_a_version_and_a_model(platform, published):
    assert api(platform, MIA, "DELETE", "/api/models/legacy").status_code == 204
    assert api(platform, MIA, "GET", "/api/models/legacy").status_code == 404


def test_gateway_overhead(platform, published):
    """p50/p95 of predict: gateway (models service, with a token check) vs TF Serving
    directly, measured in the same run from inside the models container."""
    token = platform.user(MIA)
    script = f"""
import json, time, urllib.request, statistics
body = json.dumps({{"instances": [[0.9, 0.1, 0.5, 0.7]]}}).encode()
def run(url, headers, n=150):
    out = []
    for i in range(n + 10):
        req = urllib.request.Request(url, data=body, headers=dict(headers, **{{"Content-Type": "application/json"}}))
        t = time.perf_counter(); urllib.request.urlopen(req, timeout=30).read(); dt = time.perf_counter() - t
        if i >= 10: out.append(dt * 1000)
    out.sort(); return out[len(out)//2], out[int(len(out)*0.95)]
d = run("http://tf-serving:8501/v1/models/{MODEL}/versions/1:predict", {{}})
g = run("http://127.0.0.1:8000/services/models/v1/models/{MODEL}/versions/1:predict", {{"Authorization": "token {token}"}})
print(json.dumps({{"direct": d, "gateway": g}}))
"""
    r = platform.stack.compose("exec", "-T", "models", "python", "-c", script)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    record(
        "models: predict latency p50/p95 (ms): gateway {:.1f}/{:.1f}, direct {:.1f}/{:.1f} (TF Serving stand-in)".format(
            *res["gateway"], *res["direct"]
        )
    )
    assert res["gateway"][0] > 0 and res["direct"][0] > 0


README_FLOW = r"""
import json
from mlhub_models import set_label, predict, rollback, publish, ModelServiceError
probe = [[0.9, 0.1, 0.5, 0.7]]
set_label("MODEL", "canary", 2)
at_once = predict("MODEL", probe, label="canary")    # right after set_label, as the README shows
v2 = predict("MODEL", probe, version=2)
set_label("MODEL", "canary", 1)
v1 = predict("MODEL", probe, version=1)
after_move = predict("MODEL", probe, label="canary")
back = rollback("MODEL", "canary")                    # canary: 1 -> its previous version, 2
after_rollback = predict("MODEL", probe, label="canary")
errors = []
for bad in ("Bad Name/../x", "..", "UPPER"):
    try:
        publish("/nonexistent", bad)
    except ModelServiceError as e:
        errors.append(str(e))
print("RESULT", json.dumps({"at_once": at_once, "v2": v2, "v1": v1, "after_move": after_move,
      "back": back["labels"]["canary"], "after_rollback": after_rollback, "errors": errors}))
"""


def test_readme_client_flow_label_then_predict_at_once(platform, published):
    """set_label/rollback return once TF Serving serves the label (it re-reads its
    config every few seconds), so a predict right after uses the new version; bad
    model names are refused by the client before anything is sent."""
    out = kernel_json(platform, MIA, README_FLOW.replace("MODEL", MODEL))
    first = {k: v[0][0] for k, v in out.items() if k in ("at_once", "v2", "v1", "after_move", "after_rollback")}
    assert first["v1"] != pytest.approx(first["v2"], abs=1e-6), first  # two different models
    assert first["at_once"] == pytest.approx(first["v2"], abs=1e-6), first
    assert first["after_move"] == pytest.approx(first["v1"], abs=1e-6), first
    assert out["back"] == 2 and first["after_rollback"] == pytest.approx(first["v2"], abs=1e-6), first
    assert len(out["errors"]) == 3 and all("invalid model name" in e for e in out["errors"]), out["errors"]
