"""The TF Serving STAND-IN image (images/local-base/tf-serving-standin/) on the real engine.

This is NOT TensorFlow Serving: no registry is reachable here, so the stand-in serves
TF Serving's REST API with TensorFlow from the same /models volume and models.config.
The test builds the image, exports real Keras SavedModels in a container of it, runs it
with the production flags and checks status, labels, metadata, predictions (against the
same models computed in TensorFlow), a broken version, a config change and errors.
Every container and image it makes is named tfsstandin-<run id> and removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import record
from tests.support.stack import ROOT, docker, engine_problem, free_port

pytestmark = pytest.mark.docker

RUN = f"tfsstandin-{uuid.uuid4().hex[:8]}"
IMAGE = f"{RUN}:test"

# Run in a container of the image (uid 1000): two tiny Keras models as versions 1 and 2
# of "demo", a two-input two-output model "multi", a broken version 3 of "broken", and
# what TensorFlow itself computes for fixed inputs with each of them.
MAKE_MODELS = r"""
import json, os, numpy as np, keras
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 4)).astype("float32")
y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")
probe = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 2.0, -2.0], [0.0, 0.5, 0.0, 0.0]], "float32")
out = {"probe": probe.tolist()}
for v, units in ((1, 3), (2, 5)):
    keras.utils.set_random_seed(v)
    m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(units, activation="relu"),
                          keras.layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    m.export(f"/models/demo/{v}", verbose=False)
    out[f"demo/{v}"] = m(probe).numpy().tolist()
keras.utils.set_random_seed(3)
a, b = keras.Input(shape=(2,), name="a"), keras.Input(shape=(3,), name="b")
h = keras.layers.Concatenate()([a, b])
mm = keras.Model({"a": a, "b": b}, {"score": keras.layers.Dense(2, name="score")(h),
                                    "value": keras.layers.Dense(1, name="value")(h)})
mm.export("/models/multi/1", verbose=False)
ma, mb = np.array([[1, 2], [0, -1]], "float32"), np.array([[1, 2, 3], [0, 0, 1]], "float32")
r = mm({"a": ma, "b": mb})
out["multi"] = {"a": ma.tolist(), "b": mb.tolist(),
                "score": r["score"].numpy().tolist(), "value": r["value"].numpy().tolist()}
os.makedirs("/models/broken/3")
with open("/models/broken/3/saved_model.pb", "wb") as f:
    f.write(b"this is not a SavedModel")
print("RESULT " + json.dumps(out))
"""

# The server's JSON must parse as TF Serving's own response messages (field names, enums).
CHECK_PROTO_JSON = r"""
import json, sys
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2
d = json.load(sys.stdin)
json_format.ParseDict(d["status"], get_model_status_pb2.GetModelStatusResponse())
json_format.ParseDict(d["metadata"]["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap())
json_format.ParseDict(d["metadata"]["model_spec"], model_pb2.ModelSpec())
print("PROTO-OK")
"""

FLAGS = [  # production's flags (docker-compose.yml), with a 1 s config poll
    "--model_config_file=/models/models.config", "--model_config_file_poll_wait_seconds=1",
    "--rest_api_port=8501", "--port=8500", "--allow_version_labels_for_unavailable_models=true",
]


def model_config(*models: str) -> str:
    return "model_config_list {\n" + "".join(models) + "}\n"


def demo(versions=(1, 2), labels=None) -> str:
    labels = {"stable": 1, "canary": 2} if labels is None else labels
    vs = " ".join(f"versions: {v}" for v in versions)
    ls = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in sorted(labels.items()))
    return ('  config {\n    name: "demo"\n    base_path: "/models/demo"\n'
            f'    model_platform: "tensorflow"\n    model_version_policy {{ specific {{ {vs} }} }}\n'
            f"{ls}  }}\n")


MULTI = '  config { name: "multi" base_path: "/models/multi" model_platform: "tensorflow" }\n'
BROKEN = '  config { name: "broken" base_path: "/models/broken" model_platform: "tensorflow" }\n'


def write_config(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # atomic, as the models service writes it


def close(a, b, tol=1e-6) -> bool:
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    return abs(a - b) <= tol * max(1.0, abs(b))


class Standin:
    def __init__(self, url: str, container: str, models: Path, expected: dict):
        self.url, self.container, self.models, self.expected = url, container, models, expected

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=10)

    def post(self, path: str, body) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return requests.post(self.url + path, data=data, timeout=30)

    def versions(self, model: str) -> dict[str, tuple[str, str, str]]:
        r = self.get(f"/v1/models/{model}")
        if r.status_code != 200:
            return {}
        return {v["version"]: (v["state"], v["status"]["error_code"], v["status"]["error_message"])
                for v in r.json()["model_version_status"]}

    def logs(self) -> str:
        r = docker("logs", self.container, check=False)
        return r.stdout + r.stderr

    def wait(self, what: str, pred, timeout: float = 20.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if pred():
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"{what} not reached in {timeout} s; server log:\n{self.logs()[-4000:]}")


def _cleanup() -> None:
    r = docker("ps", "-aq", "--filter", f"name=^/{RUN}-", check=False)
    for cid in r.stdout.split():
        docker("rm", "-f", cid, check=False)
    docker("rmi", "-f", IMAGE, check=False)


@pytest.fixture(scope="module")
def standin():
    problem = engine_problem()
    if problem:
        pytest.fail(f"this test needs a Docker engine: {problem}", pytrace=False)
    models = Path(tempfile.mkdtemp(prefix=f"{RUN}-models-"))
    os.chmod(models, 0o777)  # the image runs as uid 1000
    try:
        t0 = time.monotonic()
        docker("build", "-q", "-t", IMAGE, "-f",
               "images/local-base/tf-serving-standin/Dockerfile", str(ROOT), timeout=900)
        record(f"tf-serving stand-in: image build (cached layers after the first): "
               f"{time.monotonic() - t0:.1f} s")

        t0 = time.monotonic()
        r = docker("run", "--rm", "--name", f"{RUN}-make", "-e", "TF_CPP_MIN_LOG_LEVEL=3",
                   "-v", f"{models}:/models", "--entrypoint", "python", IMAGE, "-c", MAKE_MODELS,
                   timeout=300)
        expected = json.loads(next(
            line for line in r.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])
        record(f"tf-serving stand-in: train + export 3 tiny Keras SavedModels: "
               f"{time.monotonic() - t0:.1f} s")

        # A second server, started with the broken model in its initial config, must
        # refuse to start as TF Serving does. It runs while the main one is tested.
        (models / "startup-broken.config").write_text(model_config(MULTI, BROKEN))
        docker("run", "-d", "--name", f"{RUN}-startfail", "-v", f"{models}:/models:ro", IMAGE,
               "--model_config_file=/models/startup-broken.config", "--rest_api_port=8501",
               "--max_num_load_retries=1", "--load_retry_interval_micros=100000")

        write_config(models / "models.config", model_config(demo(), MULTI))
        port = free_port()
        t0 = time.monotonic()
        docker("run", "-d", "--name", f"{RUN}-serve", "-p", f"127.0.0.1:{port}:8501",
               "-v", f"{models}:/models:ro", IMAGE, *FLAGS, "--max_num_load_retries=0")
        s = Standin(f"http://127.0.0.1:{port}", f"{RUN}-serve", models, expected)

        def up():
            try:
                return s.versions("demo").get("1", ("",))[0] == "AVAILABLE"
            except requests.RequestException:
                return False
        s.wait("the stand-in answering", up, timeout=90)
        record(f"tf-serving stand-in: container start to REST answering with 3 versions loaded: "
               f"{time.monotonic() - t0:.1f} s")
        yield s
    finally:
        if os.environ.get("MLHUB_TEST_KEEP") != "1":
            _cleanup()
            shutil.rmtree(models, ignore_errors=True)


def test_says_it_is_a_stand_in(standin):
    logs = standin.logs()
    assert "STAND-IN FOR TENSORFLOW SERVING" in logs and "NOT TENSORFLOW SERVING" in logs
    assert "Successfully loaded servable version {name: demo version: 1}" in logs
    user = docker("exec", standin.container, "id", "-u").stdout.strip()
    assert user == "1000"  # not root


def test_model_status(standin):
    assert standin.versions("demo") == {
        "2": ("AVAILABLE", "OK", ""), "1": ("AVAILABLE", "OK", "")}
    r = standin.get("/v1/models/demo/versions/1")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    # TF Serving ignores a label in a status request: all versions, as for the model
    r = standin.get("/v1/models/demo/labels/stable")
    assert r.status_code == 200 and len(r.json()["model_version_status"]) == 2


def test_metadata_and_labels(standin):
    latest = standin.get("/v1/models/demo/metadata").json()
    assert latest["model_spec"] == {"name": "demo", "signature_name": "", "version": "2"}
    sig = latest["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    (inp,) = sig["inputs"].values()
    assert inp["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in inp["tensor_shape"]["dim"]] == ["-1", "4"]
    assert standin.get("/v1/models/demo/labels/stable/metadata").json()["model_spec"]["version"] == "1"
    assert standin.get("/v1/models/demo/labels/canary/metadata").json()["model_spec"]["version"] == "2"
    assert standin.get("/v1/models/demo/versions/1/metadata").json()["model_spec"]["version"] == "1"
    # The JSON is TF Serving's: it parses into TF Serving's own protobuf messages.
    payload = json.dumps({"status": standin.get("/v1/models/demo").json(), "metadata": latest})
    r = subprocess.run(["docker", "exec", "-i", "-e", "TF_CPP_MIN_LOG_LEVEL=3", standin.container,
                        "python", "-c", CHECK_PROTO_JSON], input=payload, capture_output=True,
                       text=True, timeout=120)
    assert "PROTO-OK" in r.stdout, r.stderr[-2000:]


def test_predictions_equal_tensorflow(standin):
    probe, exp = standin.expected["probe"], standin.expected
    for path, key in [("/v1/models/demo/versions/1", "demo/1"), ("/v1/models/demo/versions/2", "demo/2"),
                      ("/v1/models/demo/labels/stable", "demo/1"), ("/v1/models/demo/labels/canary", "demo/2"),
                      ("/v1/models/demo", "demo/2")]:
        r = standin.post(path + ":predict", {"instances": probe})
        assert r.status_code == 200, r.text
        assert close(r.json()["predictions"], exp[key]), (path, r.json(), exp[key])
        r = standin.post(path + ":predict", {"signature_name": "serving_default", "inputs": probe})
        assert r.status_code == 200 and close(r.json()["outputs"], exp[key]), (path, r.text)
    # two named inputs, two named outputs: row format with objects, and columnar
    m = exp["multi"]
    rows = [{"a": a, "b": b} for a, b in zip(m["a"], m["b"])]
    preds = standin.post("/v1/models/multi:predict", {"instances": rows}).json()["predictions"]
    assert close([p["score"] for p in preds], m["score"]) and close([p["value"] for p in preds], m["value"])
    out = standin.post("/v1/models/multi:predict", {"inputs": {"a": m["a"], "b": m["b"]}}).json()["outputs"]
    assert close(out["score"], m["score"]) and close(out["value"], m["value"])


def test_errors_as_tf_serving(standin):
    def err(r, code, text):
        assert r.status_code == code, (r.status_code, r.text)
        assert text in r.json()["error"], r.text
    probe = {"instances": standin.expected["probe"]}
    err(standin.get("/v1/models/nope"), 404, "Could not find any versions of model nope")
    err(standin.get("/v1/models/demo/versions/9"), 404, "Could not find version 9 of model demo")
    err(standin.get("/v1/models/nope/metadata"), 404, "Servable not found for request: Latest(nope)")
    err(standin.post("/v1/models/nope:predict", probe), 404, "Latest(nope)")
    err(standin.post("/v1/models/demo/versions/9:predict", probe), 404, "Specific(demo, 9)")
    # an unknown label is INVALID_ARGUMENT in TF Serving, hence 400 (not 404)
    err(standin.post("/v1/models/demo/labels/nope:predict", probe), 400,
        "Unrecognized servable version label: nope")
    err(standin.post("/v1/models/demo:predict", "not json"), 400, "JSON Parse error")
    err(standin.post("/v1/models/demo:predict", {"instances": [[1, 2]]}), 400, "")
    err(standin.post("/v1/models/demo:predict", {"instances": [["a", "b", "c", "d"]]}), 400, "")
    err(standin.post("/v1/models/demo:predict", {"nothing": 1}), 400, "Missing 'inputs' or 'instances' key")
    err(standin.post("/v1/models/demo:predict", {"signature_name": "nope", "instances": [[1, 2, 3, 4]]}),
        400, 'Serving signature name: "nope" not found in signature def')
    err(standin.post("/v1/models/multi:predict", {"instances": [[1, 2]]}), 400, "plain list")


def test_startup_with_a_broken_model_fails_like_tf_serving(standin):
    name = f"{RUN}-startfail"
    r = docker("wait", name, timeout=120)
    assert r.stdout.strip() == "255"
    out = docker("logs", name).stdout
    assert "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available" in out
    assert "{name: broken version: 3} due to error: DATA_LOSS" in out


def test_broken_version_added_on_reload_does_not_affect_demo(standin):
    write_config(standin.models / "models.config", model_config(demo(), MULTI, BROKEN))
    took = standin.wait("broken version 3 at END", lambda: standin.versions("broken").get("3", ("",))[0] == "END")
    state, code, msg = standin.versions("broken")["3"]
    assert code == "DATA_LOSS" and "Can't parse /models/broken/3/saved_model.pb" in msg
    record(f"tf-serving stand-in: config change -> broken version END: {took:.1f} s")
    assert standin.versions("demo") == {"2": ("AVAILABLE", "OK", ""), "1": ("AVAILABLE", "OK", "")}
    r = standin.post("/v1/models/demo:predict", {"instances": standin.expected["probe"]})
    assert r.status_code == 200 and close(r.json()["predictions"], standin.expected["demo/2"])
    assert standin.post("/v1/models/broken:predict", {"instances": [[1]]}).status_code == 404


def test_config_change_unloads_a_version(standin):
    write_config(standin.models / "models.config",
                 model_config(demo(versions=(2,), labels={"stable": 2}), MULTI, BROKEN))
    took = standin.wait("version 1 unloaded",
                        lambda: standin.versions("demo").get("1", ("",))[0] == "END", timeout=15)
    record(f"tf-serving stand-in: config change -> version unloaded: {took:.1f} s")
    assert took < 5
    assert standin.versions("demo") == {"2": ("AVAILABLE", "OK", ""), "1": ("END", "OK", "")}
    r = standin.post("/v1/models/demo/versions/1:predict", {"instances": standin.expected["probe"]})
    assert r.status_code == 404 and "Specific(demo, 1)" in r.json()["error"]
    assert standin.get("/v1/models/demo/labels/stable/metadata").json()["model_spec"]["version"] == "2"
    r = standin.post("/v1/models/demo/labels/stable:predict", {"instances": standin.expected["probe"]})
    assert close(r.json()["predictions"], standin.expected["demo/2"])
    logs = standin.logs()
    assert "Unloading servable version {name: demo version: 1}" in logs
    assert "Done unloading servable version {name: demo version: 1}" in logs
