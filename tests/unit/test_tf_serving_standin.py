"""The TF Serving STAND-IN (images/local-base/tf-serving-standin/server.py) without
TensorFlow: flags, version policies, the manager's state machine (loads, failures,
retries, unloads, labels, startup), REST routing and JSON formats, with a fake loader.
The TensorFlow side (real SavedModels, predictions) is tested on the engine in
tests/integration/test_tf_serving_standin.py."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "tf_serving_standin", ROOT / "images/local-base/tf-serving-standin/server.py")
S = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = S  # dataclasses look their module up
_spec.loader.exec_module(S)


# ----------------------------------------------------------------------------- helpers


class FakeServable:
    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path
        self.signature_def_json = {"signature_def": {"serving_default": {
            "inputs": {"x": {"dtype": "DT_FLOAT"}}, "outputs": {"y": {"dtype": "DT_FLOAT"}},
            "method_name": "tensorflow/serving/predict"}}}

    def input_names(self, sig):
        if (sig or "serving_default") != "serving_default":
            raise S.invalid(f'Serving signature name: "{sig}" not found in signature def')
        return ["x"]

    def predict(self, sig, values):  # y = version * x
        def mul(v):
            return [mul(e) for e in v] if isinstance(v, list) else v * self.version
        return {"y": mul(values["x"])}


class FakeLoader:
    """Loads version dirs; a dir holding a file BROKEN fails, one holding BLOCK waits
    for release(path)."""

    def __init__(self):
        self.calls: list[str] = []
        self.gates: dict[str, threading.Event] = {}

    def __call__(self, name, version, path, tags):
        self.calls.append(path)
        if os.path.exists(os.path.join(path, "BLOCK")):
            self.gates.setdefault(path, threading.Event()).wait(10)
        if os.path.exists(os.path.join(path, "BROKEN")):
            raise S.StatusError("DATA_LOSS", f"Can't parse {path}/saved_model.pb as binary proto")
        return FakeServable(name, version, path)

    def release(self, path):
        self.gates.setdefault(str(path), threading.Event()).set()


def make_versions(base: Path, *versions, broken=(), block=()):
    for v in versions:
        d = base / str(v)
        d.mkdir(parents=True, exist_ok=True)
        if v in broken:
            (d / "BROKEN").write_text("")
        if v in block:
            (d / "BLOCK").write_text("")


def cfg(name, base, policy="latest", versions=(), labels=None, num_versions=1):
    return S.ModelCfg(name=name, base_path=str(base), policy=policy, versions=tuple(versions),
                      num_versions=num_versions, labels=tuple(sorted((labels or {}).items())))


def states(core, name):
    return {int(v["version"]): (v["state"], v["status"]["error_code"])
            for v in core.model_status(name, None)["model_version_status"]}


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.fixture
def core_factory():
    cores = []

    def make(**opts):
        o = S.Options(max_num_load_retries=0, load_retry_interval_micros=0, **opts)
        loader = FakeLoader()
        core = S.Core(o, loader=loader)
        cores.append(core)
        return core, loader

    yield make
    for c in cores:
        c.stop()


# ----------------------------------------------------------------------------- flags


def test_production_command_line_is_accepted():
    opts, ignored, unknown = S.parse_flags([
        "--port=8500", "--rest_api_port=8501", "--model_name=model",
        "--model_base_path=/models/model", "--model_config_file=/models/models.config",
        "--model_config_file_poll_wait_seconds=10",
        "--allow_version_labels_for_unavailable_models", "--enable_batching",
        "--no_such_flag=1"])
    assert opts.rest_api_port == 8501
    assert opts.model_config_file == "/models/models.config"
    assert opts.model_config_file_poll_wait_seconds == 10
    assert opts.allow_version_labels_for_unavailable_models is True
    assert "--port=8500" in ignored and "--enable_batching=true" in ignored
    assert unknown == ["--no_such_flag=1"]


def test_flag_forms_and_tf_serving_defaults():
    opts, _, _ = S.parse_flags([])
    assert opts.model_config_file_poll_wait_seconds == 0  # TF Serving: read once
    assert opts.file_system_poll_wait_seconds == 1
    assert opts.max_num_load_retries == 5 and opts.load_retry_interval_micros == 60_000_000
    assert opts.rest_api_port == 0 and opts.model_name == "default"
    opts, _, _ = S.parse_flags(["--rest_api_port", "9000",
                                "--allow_version_labels_for_unavailable_models=false"])
    assert opts.rest_api_port == 9000 and opts.allow_version_labels_for_unavailable_models is False
    with pytest.raises(ValueError):
        S.parse_flags(["--enable_batching=maybe"])
    with pytest.raises(ValueError):
        S.parse_flags(["--rest_api_port=x"])


# ----------------------------------------------------------------------------- policies


def test_version_policies(tmp_path):
    make_versions(tmp_path, 1, 2, 10)
    (tmp_path / "tmp-upload").mkdir()
    (tmp_path / "3a").mkdir()
    assert set(S.aspired_versions(cfg("m", tmp_path))) == {10}
    assert set(S.aspired_versions(cfg("m", tmp_path, num_versions=2))) == {10, 2}
    assert set(S.aspired_versions(cfg("m", tmp_path, policy="all"))) == {1, 2, 10}
    warnings = []
    got = S.aspired_versions(cfg("m", tmp_path, policy="specific", versions=(1, 7)), warnings.append)
    assert got == {1: str(tmp_path / "1")}
    assert any("Version 7 of servable m" in w for w in warnings)
    (tmp_path / "0011").mkdir()
    assert S.aspired_versions(cfg("m", tmp_path)) == {11: str(tmp_path / "0011")}
    with pytest.raises(S.StatusError) as e:
        S.aspired_versions(cfg("m", tmp_path / "nope"))
    assert "Could not find base path" in e.value.message


def test_config_validation():
    with pytest.raises(S.StatusError, match="multiple times"):
        S.validate_config([cfg("a", "/m/a"), cfg("a", "/m/b")])
    with pytest.raises(S.StatusError, match="absolute path"):
        S.validate_config([cfg("a", "m/a")])
    with pytest.raises(S.StatusError, match="unsupported platform"):
        S.validate_config([S.ModelCfg(name="a", base_path="/m/a", platform="tflite")])


# ----------------------------------------------------------------------------- the core


def test_startup_loads_every_version_then_answers(core_factory, tmp_path):
    make_versions(tmp_path / "demo", 1, 2)
    core, _ = core_factory(allow_version_labels_for_unavailable_models=True)
    core.apply_config([cfg("demo", tmp_path / "demo", "specific", (1, 2), {"stable": 1})])
    wait_for(lambda: states(core, "demo") == {1: ("AVAILABLE", "OK"), 2: ("AVAILABLE", "OK")})
    assert core.resolve("demo", None, None)[0] == 2  # latest available
    assert core.resolve("demo", None, "stable")[0] == 1
    assert core.resolve("demo", 1, None)[1].version == 1
    with pytest.raises(S.StatusError) as e:
        core.resolve("demo", None, "nope")
    assert e.value.http_status == 400 and "Unrecognized servable version label" in e.value.message
    with pytest.raises(S.StatusError) as e:
        core.resolve("demo", 3, None)
    assert e.value.http_status == 404 and "Specific(demo, 3)" in e.value.message
    with pytest.raises(S.StatusError) as e:
        core.model_status("other", None)
    assert e.value.http_status == 404


def test_startup_fails_when_a_model_does_not_become_available(core_factory, tmp_path):
    make_versions(tmp_path / "good", 1)
    make_versions(tmp_path / "bad", 3, broken=(3,))
    core, _ = core_factory()
    with pytest.raises(S.StatusError) as e:
        core.apply_config([cfg("good", tmp_path / "good"), cfg("bad", tmp_path / "bad")])
    assert e.value.message.startswith("1 servable(s) did not become available")
    assert "{name: bad version: 3} due to error: DATA_LOSS" in e.value.message
    assert states(core, "bad") == {3: ("END", "DATA_LOSS")}
    assert states(core, "good") == {1: ("AVAILABLE", "OK")}


def test_broken_version_on_reload_leaves_the_rest_alone_and_is_not_retried(core_factory, tmp_path):
    make_versions(tmp_path / "demo", 1)
    make_versions(tmp_path / "bad", 3, broken=(3,))
    core, loader = core_factory()
    demo = cfg("demo", tmp_path / "demo")
    core.apply_config([demo])
    with pytest.raises(S.StatusError, match="1 model\\(s\\) did not become available"):
        core.apply_config([demo, cfg("bad", tmp_path / "bad")])
    st = core.model_status("bad", 3)["model_version_status"][0]
    assert st["state"] == "END" and st["status"]["error_code"] == "DATA_LOSS"
    assert "Can't parse" in st["status"]["error_message"]
    assert core.resolve("demo", None, None)[0] == 1
    for _ in range(3):
        core.poll_file_system()
    assert loader.calls.count(str(tmp_path / "bad" / "3")) == 1  # not retried while aspired
    core.apply_config([demo])  # removed: forgotten failure...
    (tmp_path / "bad" / "3" / "BROKEN").unlink()
    core.apply_config([demo, cfg("bad", tmp_path / "bad")])  # ...re-added: loaded again
    assert states(core, "bad") == {3: ("AVAILABLE", "OK")}


def test_load_retries(core_factory, tmp_path):
    make_versions(tmp_path / "bad", 1, broken=(1,))
    core, loader = core_factory()
    core.opts.max_num_load_retries = 2
    with pytest.raises(S.StatusError):
        core.apply_config([cfg("bad", tmp_path / "bad")])
    assert loader.calls == [str(tmp_path / "bad" / "1")] * 3


def test_removed_version_is_unloaded_and_its_state_kept(core_factory, tmp_path):
    make_versions(tmp_path / "demo", 1, 2)
    core, _ = core_factory(allow_version_labels_for_unavailable_models=True)
    core.apply_config([cfg("demo", tmp_path / "demo", "specific", (1, 2), {"stable": 1})])
    wait_for(lambda: states(core, "demo") == {1: ("AVAILABLE", "OK"), 2: ("AVAILABLE", "OK")})
    core.apply_config([cfg("demo", tmp_path / "demo", "specific", (2,), {"stable": 2})])
    assert states(core, "demo") == {1: ("END", "OK"), 2: ("AVAILABLE", "OK")}
    with pytest.raises(S.StatusError) as e:
        core.resolve("demo", 1, None)
    assert e.value.http_status == 404
    assert core.resolve("demo", None, "stable")[0] == 2
    core.apply_config([])  # model removed from the config
    assert states(core, "demo") == {1: ("END", "OK"), 2: ("END", "OK")}
    with pytest.raises(S.StatusError, match=r"Latest\(demo\)"):
        core.resolve("demo", None, None)


def test_availability_preserving_when_a_new_version_arrives(core_factory, tmp_path):
    base = tmp_path / "m"
    make_versions(base, 1)
    core, loader = core_factory()
    core.apply_config([cfg("m", base)])
    make_versions(base, 2, block=(2,))
    core.poll_file_system()
    wait_for(lambda: states(core, "m").get(2, ("",))[0] == "LOADING")
    # the old version serves while the new one loads, in the background
    assert states(core, "m")[1] == ("AVAILABLE", "OK")
    assert core.resolve("m", None, None)[0] == 1
    loader.release(base / "2")
    wait_for(lambda: states(core, "m") == {2: ("AVAILABLE", "OK"), 1: ("END", "OK")})
    # a newer version that fails keeps the current one serving
    make_versions(base, 3, broken=(3,))
    core.poll_file_system()
    wait_for(lambda: states(core, "m").get(3) == ("END", "DATA_LOSS"))
    assert core.resolve("m", None, None)[0] == 2


def test_labels_to_unavailable_versions(core_factory, tmp_path):
    make_versions(tmp_path / "m", 1, 2)
    m = tmp_path / "m"
    strict, _ = core_factory()
    with pytest.raises(S.StatusError) as e:
        strict.apply_config([cfg("m", m, "specific", (1,), {"stable": 1})])
    assert e.value.code == "FAILED_PRECONDITION" and "not currently available" in e.value.message

    core, _ = core_factory(allow_version_labels_for_unavailable_models=True)
    core.apply_config([cfg("m", m, "specific", (1,), {"stable": 1})])  # new label: allowed
    # Moving a label to a version that is not loaded yet is refused even with the flag,
    # and the whole new config with it (version 2 is then never loaded).
    with pytest.raises(S.StatusError, match="version 2 of model m"):
        core.apply_config([cfg("m", m, "specific", (1, 2), {"stable": 2})])
    assert core.config == [cfg("m", m, "specific", (1,), {"stable": 1})]
    core.apply_config([cfg("m", m, "specific", (1, 2), {"stable": 1})])
    wait_for(lambda: states(core, "m").get(2) == ("AVAILABLE", "OK"))
    core.apply_config([cfg("m", m, "specific", (1, 2), {"stable": 2})])  # now it is available
    assert core.resolve("m", None, "stable")[0] == 2


def test_a_missing_base_path_stops_version_updates_for_every_model(core_factory, tmp_path):
    make_versions(tmp_path / "a", 1)
    core, _ = core_factory()
    core.apply_config([cfg("a", tmp_path / "a")])
    core.apply_config([cfg("a", tmp_path / "a"), cfg("b", tmp_path / "b")], wait=False)
    make_versions(tmp_path / "a", 2)
    core.poll_file_system()
    assert 2 not in states(core, "a")  # as TF Serving: the whole poll fails
    make_versions(tmp_path / "b", 1)
    core.poll_file_system()
    wait_for(lambda: states(core, "a").get(2) == ("AVAILABLE", "OK"))


def test_requests_are_answered_while_a_reload_loads(core_factory, tmp_path):
    make_versions(tmp_path / "a", 1)
    make_versions(tmp_path / "slow", 1, block=(1,))
    core, loader = core_factory()
    core.apply_config([cfg("a", tmp_path / "a")])
    t = threading.Thread(target=core.apply_config,
                         args=([cfg("a", tmp_path / "a"), cfg("slow", tmp_path / "slow")],))
    t.start()
    wait_for(lambda: "slow" in core._states and states(core, "slow")[1][0] == "LOADING")
    assert core.resolve("a", None, None)[0] == 1
    assert t.is_alive()
    loader.release(tmp_path / "slow" / "1")
    t.join(5)
    assert states(core, "slow") == {1: ("AVAILABLE", "OK")}


# ----------------------------------------------------------------------------- REST


def test_paths():
    assert S.parse_model_path("GET", "/v1/models/demo") == ("demo", None, None, "status")
    assert S.parse_model_path("GET", "/v1/models/demo/versions/2/metadata") == ("demo", 2, None, "metadata")
    assert S.parse_model_path("GET", "/v1/models/demo/labels/sta%20ble") == ("demo", None, "sta ble", "status")
    assert S.parse_model_path("POST", "/v1/models/demo/labels/canary:predict") == ("demo", None, "canary", "predict")
    assert S.parse_model_path("POST", "/V1/MODELS/demo:PREDICT") == ("demo", None, None, "predict")
    assert S.parse_model_path("POST", "/v1/models/demo") is None
    assert S.parse_model_path("GET", "/v1/models/demo:predict") is None
    assert S.parse_model_path("DELETE", "/v1/models/demo") is None


def test_predict_request_formats():
    def names(sig):
        return ["a", "b"] if sig == "two" else ["x"]
    assert S.parse_predict_request(b'{"instances": [[1, 2], [3, 4]]}', names) == (
        "row", "", {"x": [[1, 2], [3, 4]]})
    assert S.parse_predict_request(b'{"instances": [{"x": 1}, {"x": 2}]}', names) == (
        "row", "", {"x": [1, 2]})
    assert S.parse_predict_request(b'{"inputs": [[1]]}', names) == ("columnar", "", {"x": [[1]]})
    assert S.parse_predict_request(
        b'{"signature_name": "two", "inputs": {"a": 1, "b": [2], "c": 0}}', names) == (
        "columnar", "two", {"a": 1, "b": [2]})
    fmt, _, vals = S.parse_predict_request(
        b'{"signature_name": "two", "instances": [{"a": 1, "b": {"b64": "eA=="}}]}', names)
    assert vals == {"a": [1], "b": [{"b64": "eA=="}]}
    bad = [
        (b"", "document is empty"), (b"[1]", "Is not object"), (b"{}", "Missing 'inputs' or 'instances'"),
        (b'{"instances": []}', "No values"), (b'{"instances": 1}', "list/array"),
        (b'{"instances": [1], "inputs": 1}', "only one of"),
        (b'{"signature_name": "two", "instances": [1]}', "plain list"),
        (b'{"signature_name": "two", "instances": [{"a": 1}]}', "keys must be equal"),
        (b'{"signature_name": "two", "inputs": {"a": 1}}', "Missing named input: b"),
        (b'{"instances": [[1, 2], [3]]}', "different shapes"),
    ]
    for body, msg in bad:
        with pytest.raises(S.StatusError) as e:
            S.parse_predict_request(body, names)
        assert e.value.http_status == 400 and msg in e.value.message, (body, e.value.message)


def test_predict_response_formats():
    assert S.format_predict_response("row", {"y": [[1.5], [2.5]]}) == {"predictions": [[1.5], [2.5]]}
    assert S.format_predict_response("row", {"p": [1, 2], "q": [[0], [1]]}) == {
        "predictions": [{"p": 1, "q": [0]}, {"p": 2, "q": [1]}]}
    assert S.format_predict_response("columnar", {"y": [1]}) == {"outputs": [1]}
    assert S.format_predict_response("columnar", {"p": 1, "q": [2]}) == {"outputs": {"p": 1, "q": [2]}}
    with pytest.raises(S.StatusError, match="inconsistent batch size"):
        S.format_predict_response("row", {"p": [1, 2], "q": [1]})
    with pytest.raises(S.StatusError, match="no shape information"):
        S.format_predict_response("row", {"p": 1})


def test_b64_strings():
    assert S.decode_b64_strings([{"b64": "aGk="}, "hé"]) == [b"hi", "hé".encode()]
    with pytest.raises(S.StatusError):
        S.decode_b64_strings({"b64": "not base64!"})
    with pytest.raises(S.StatusError, match="only valid for string"):
        S.reject_b64([{"b64": "aGk="}])


def test_http_server_end_to_end(core_factory, tmp_path):
    make_versions(tmp_path / "demo", 1, 2)
    core, _ = core_factory(allow_version_labels_for_unavailable_models=True)
    core.apply_config([cfg("demo", tmp_path / "demo", "all", labels={"stable": 1})])
    wait_for(lambda: states(core, "demo") == {1: ("AVAILABLE", "OK"), 2: ("AVAILABLE", "OK")})
    server = S.make_http_server(core, 0, host="127.0.0.1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def call(path, body=None):
        req = urllib.request.Request(base + path, data=body, method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            assert e.headers["Content-Type"] == "application/json"
            return e.code, json.loads(e.read())

    try:
        code, body = call("/v1/models/demo")
        assert code == 200 and [v["version"] for v in body["model_version_status"]] == ["2", "1"]
        assert body["model_version_status"][0]["status"] == {"error_code": "OK", "error_message": ""}
        code, body = call("/v1/models/demo/labels/stable/metadata")
        assert code == 200 and body["model_spec"] == {"name": "demo", "signature_name": "", "version": "1"}
        assert "serving_default" in body["metadata"]["signature_def"]["signature_def"]
        assert call("/v1/models/demo:predict", b'{"instances": [1, 2]}') == (200, {"predictions": [2, 4]})
        assert call("/v1/models/demo/labels/stable:predict", b'{"inputs": [3]}') == (200, {"outputs": [3]})
        assert call("/v1/models/demo/versions/9:predict", b'{"inputs": [3]}')[0] == 404
        assert call("/v1/models/nope:predict", b'{"inputs": [3]}')[0] == 404
        assert call("/v1/models/nope/metadata")[0] == 404
        code, body = call("/v1/models/demo/labels/nope:predict", b'{"inputs": [3]}')
        assert code == 400 and "Unrecognized servable version label" in body["error"]
        code, body = call("/v1/models/demo:predict", b'{"signature_name": "x", "inputs": [3]}')
        assert code == 400 and 'Serving signature name: "x" not found' in body["error"]
        assert call("/v1/models/demo:classify", b"{}")[0] == 501
        assert call("/v1/models/demo:explode", b"{}")[0] == 400  # Malformed request
        assert call("/v1/models")[0] == 400
        assert call("/healthz")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
