"""The models volume (services/models/mlhub_models_service/store.py): names,
versions, owners, labels with history and rollback, deletion, the
models.config that TF Serving reads, and atomic writes. Real files in tmp."""

from __future__ import annotations

import json
import os
import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlhub_models_service import store as store_mod
from mlhub_models_service.store import (
    CONFIG,
    META,
    Store,
    StoreError,
    atomic_write,
    check_label,
    check_name,
)


def read_text(path) -> str:
    with open(path) as f:
        return f.read()


# ---------------------------------------------------------------- helpers


def staged(store: Store, marker: str = "x") -> str:
    """A SavedModel-like directory in the staging area, as the upload handler leaves it."""
    d = tempfile.mkdtemp(dir=store.staging, prefix="unpack-")
    os.makedirs(os.path.join(d, "variables"))
    with open(os.path.join(d, "saved_model.pb"), "w") as f:
        f.write(marker)
    with open(os.path.join(d, "variables", "variables.index"), "w") as f:
        f.write("idx")
    return d


def publish(store: Store, name: str, who: str = "alice", group: str | None = None, marker: str = "x"):
    return store.add_version(name, staged(store, marker), who, {"signature": {"inputs": {}}}, group=group)


CONFIG_BLOCK = re.compile(
    r'  config \{\n'
    r'    name: "(?P<name>[^"]+)"\n'
    r'    base_path: "(?P<base>[^"]+)"\n'
    r'    model_platform: "tensorflow"\n'
    r'    model_version_policy \{ specific \{ (?P<versions>(?:versions: \d+ )+)\} \}\n'
    r'(?P<labels>(?:    version_labels \{ key: "[^"]+" value: \d+ \}\n)*)'
    r'  \}\n'
)
LABEL_LINE = re.compile(r'    version_labels \{ key: "([^"]+)" value: (\d+) \}\n')


def parse_config(text: str) -> dict[str, dict]:
    """Tiny check of models.config without a protobuf parser: the whole text must be
    the list wrapper around well-formed config blocks; returns name -> its content."""
    assert text.startswith("model_config_list {\n") and text.endswith("}\n"), text
    body = text[len("model_config_list {\n"):-len("}\n")]
    out: dict[str, dict] = {}
    pos = 0
    while pos < len(body):
        m = CONFIG_BLOCK.match(body, pos)
        assert m, f"malformed config block at {body[pos:pos + 200]!r}"
        name = m["name"]
        assert name not in out, f"model {name} listed twice"
        versions = [int(v) for v in re.findall(r"versions: (\d+)", m["versions"])]
        out[name] = {
            "base_path": m["base"],
            "versions": versions,
            "labels": {k: int(v) for k, v in LABEL_LINE.findall(m["labels"])},
        }
        pos = m.end()
    assert body.count("{") == body.count("}")
    return out


def version_dirs(store: Store, name: str) -> list[int]:
    d = os.path.join(store.root, name)
    return sorted(int(e) for e in os.listdir(d) if e.isdigit() and os.path.isdir(os.path.join(d, e)))


def temp_leftovers(root: str) -> list[str]:
    return [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f.startswith(".tmp-")]


def check_consistent(store: Store) -> None:
    """models.config on disk == render_config() == what the store holds == the volume."""
    with open(store.config_path) as f:
        on_disk = f.read()
    assert on_disk == store.render_config()
    parsed = parse_config(on_disk)
    models = {m.name: m for m in store.all()}
    assert set(parsed) == {n for n, m in models.items() if m.versions}
    for name, m in models.items():
        assert sorted(m.versions) == version_dirs(store, name)
        for label, v in m.labels.items():
            assert v in m.versions, f"{name}: label {label} -> missing version {v}"
        for label, hist in m.label_history.items():
            assert set(hist) <= set(m.versions), f"{name}: history of {label} names deleted versions {hist}"
        if m.versions:
            assert parsed[name]["versions"] == sorted(m.versions)
            assert parsed[name]["labels"] == m.labels
            assert parsed[name]["base_path"] == f"/models/{name}"
    assert temp_leftovers(store.root) == []


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "models"))


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name", ["a", "0", "fraud-detector", "m_1", "resnet50", "9lives", "a" * 63, "a-", "a_"]
)
def test_good_model_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "Fraud", "-a", "_a", "a" * 64, "a.b", "a/b", "..", ".", ".staging", "models.config",
     "a b", "é", "a\n", "mlhub.json", "../etc", None],
)
def test_bad_model_names_are_refused_with_400(name):
    with pytest.raises(StoreError, match="invalid model name") as e:
        check_name(name)
    assert e.value.status == 400


@pytest.mark.parametrize("label", ["stable", "canary", "a", "v2", "blue-green", "prod_eu", "a" * 32])
def test_good_labels(label):
    assert check_label(label) == label


@pytest.mark.parametrize("label", ["", "1stable", "Stable", "-x", "_x", "a" * 33, "st/able", "st able", None])
def test_bad_labels_are_refused(label):
    with pytest.raises(StoreError, match="invalid label") as e:
        check_label(label)
    assert e.value.status == 400


def test_store_refuses_invalid_names_before_touching_the_disk(store):
    for call in (lambda: store.get("../x"), lambda: store.require("A"), lambda: store.delete_model("..")):
        with pytest.raises(StoreError, match="invalid model name"):
            call()
    with pytest.raises(StoreError, match="invalid model name"):
        publish(store, "../escape")
    assert not os.path.exists(os.path.join(os.path.dirname(store.root), "escape"))


# ---------------------------------------------------------------- layout and versions


def test_new_store_creates_staging_and_an_empty_config(tmp_path):
    root = tmp_path / "vol"
    s = Store(str(root))
    assert (root / ".staging").is_dir()
    assert (root / CONFIG).read_text() == "model_config_list {\n}\n"
    assert s.names() == [] and s.all() == []


def test_restart_keeps_the_existing_config(store):
    publish(store, "m")
    before = read_text(store.config_path)
    again = Store(store.root)
    assert read_text(again.config_path) == before
    assert again.require("m").owner == "alice"


def test_names_lists_only_model_dirs_with_metadata(store):
    publish(store, "b")
    publish(store, "a")
    os.makedirs(os.path.join(store.root, "stray"))  # no mlhub.json
    os.makedirs(os.path.join(store.root, "Upper"))
    with open(os.path.join(store.root, "Upper", META), "w") as f:
        f.write("{}")
    assert store.names() == ["a", "b"]
    assert store.get("stray") is None
    with pytest.raises(StoreError, match="no model named 'nope'") as e:
        store.require("nope")
    assert e.value.status == 404


def test_add_version_numbers_1_then_2_and_moves_the_files(store):
    src = staged(store, "first")
    model, v1 = store.add_version("m", src, "alice", {"signature": {"inputs": {"x": 1}}})
    assert v1 == 1 and not os.path.exists(src)
    with open(os.path.join(store.root, "m", "1", "saved_model.pb")) as f:
        assert f.read() == "first"
    assert os.path.isfile(os.path.join(store.root, "m", "1", "variables", "variables.index"))
    _, v2 = publish(store, "m", marker="second")
    assert v2 == 2
    m = store.require("m")
    assert sorted(m.versions) == [1, 2]
    assert m.versions[1]["signature"] == {"inputs": {"x": 1}}
    assert m.versions[1]["published_by"] == "alice" and m.versions[1]["published_at"] > 0
    assert version_dirs(store, "m") == [1, 2]
    check_consistent(store)


def test_add_version_never_overwrites_a_directory_left_by_hand(store):
    publish(store, "m")
    os.makedirs(os.path.join(store.root, "m", "2"))
    with open(os.path.join(store.root, "m", "2", "keep"), "w") as f:
        f.write("precious")
    _, v = publish(store, "m")
    assert v == 3
    assert read_text(os.path.join(store.root, "m", "2", "keep")) == "precious"
    assert sorted(store.require("m").versions) == [1, 3]


def test_first_publish_sets_owner_and_group_later_publishers_do_not(store):
    m, _ = publish(store, "m", who="alice", group="team")
    assert (m.owner, m.group) == ("alice", "team")
    m, _ = publish(store, "m", who="bob", group="other")
    assert (m.owner, m.group) == ("alice", "team")
    assert m.versions[2]["published_by"] == "bob"
    # a model without a group: only its owner may give it one
    publish(store, "solo", who="alice")
    assert publish(store, "solo", who="bob", group="bobs")[0].group is None
    assert publish(store, "solo", who="alice", group="alices")[0].group == "alices"
    assert store.require("solo").group == "alices"


def test_metadata_round_trips_through_json(store):
    publish(store, "m", group="g")
    publish(store, "m")
    store.set_label("m", "stable", 2)
    with open(os.path.join(store.root, "m", META)) as f:
        data = json.load(f)
    assert data["versions"].keys() == {"1", "2"}
    assert data["labels"] == {"stable": 2} and data["label_history"] == {"stable": [2]}
    m = store_mod.Model.from_json(data)
    assert m.to_json() == data
    assert sorted(m.versions) == [1, 2]


# ---------------------------------------------------------------- labels and rollback


def test_set_label_records_history_once_per_change(store):
    publish(store, "m")
    publish(store, "m")
    store.set_label("m", "stable", 1)
    store.set_label("m", "stable", 2)
    m = store.set_label("m", "stable", 2)  # unchanged: no new history entry
    assert m.labels == {"stable": 2}
    assert m.label_history == {"stable": [1, 2]}
    store.set_label("m", "canary", 1)
    again = Store(store.root).require("m")
    assert again.labels == {"stable": 2, "canary": 1}
    check_consistent(store)


def test_set_label_errors(store):
    publish(store, "m")
    with pytest.raises(StoreError, match=r"m has no version 7 \(versions: \[1\]\)") as e:
        store.set_label("m", "stable", 7)
    assert e.value.status == 404
    with pytest.raises(StoreError, match="invalid label") as e:
        store.set_label("m", "Stable", 1)
    assert e.value.status == 400
    with pytest.raises(StoreError, match="no model named") as e:
        store.set_label("other", "stable", 1)
    assert e.value.status == 404
    assert store.require("m").labels == {}


def test_rollback_points_the_label_at_the_previous_version(store):
    for _ in range(3):
        publish(store, "m")
    store.set_label("m", "stable", 1)
    store.set_label("m", "stable", 3)
    m = store.rollback("m", "stable")
    assert m.labels == {"stable": 1}
    assert m.label_history == {"stable": [1]}
    assert parse_config(read_text(store.config_path))["m"]["labels"] == {"stable": 1}
    with pytest.raises(StoreError, match="no earlier version to roll back to") as e:
        store.rollback("m", "stable")
    assert e.value.status == 409
    assert store.require("m").labels == {"stable": 1}


def test_rollback_without_history_is_409(store):
    publish(store, "m")
    with pytest.raises(StoreError) as e:
        store.rollback("m", "stable")  # never set
    assert e.value.status == 409
    store.set_label("m", "stable", 1)
    with pytest.raises(StoreError) as e:
        store.rollback("m", "stable")  # set once
    assert e.value.status == 409
    with pytest.raises(StoreError) as e:
        store.rollback("m", "Bad")
    assert e.value.status == 400
    with pytest.raises(StoreError) as e:
        store.rollback("missing", "stable")
    assert e.value.status == 404


def test_rollback_skips_versions_deleted_since(store):
    for _ in range(3):
        publish(store, "m")
    for v in (1, 2, 3):
        store.set_label("m", "stable", v)
    store.delete_version("m", 2)
    m = store.rollback("m", "stable")
    assert m.labels == {"stable": 1}
    check_consistent(store)


def test_rollback_after_deleting_the_labelled_version_goes_one_step_back(store):
    for _ in range(3):
        publish(store, "m")
    for v in (1, 2, 3):
        store.set_label("m", "stable", v)
    store.delete_version("m", 3)
    assert store.require("m").labels == {}
    assert store.rollback("m", "stable").labels == {"stable": 2}


def test_rollback_that_would_change_nothing_is_refused(store):
    publish(store, "m")
    publish(store, "m")
    for v in (1, 2, 1):
        store.set_label("m", "stable", v)
    store.delete_version("m", 2)
    with pytest.raises(StoreError) as e:
        store.rollback("m", "stable")
    assert e.value.status == 409


def test_delete_label(store):
    publish(store, "m")
    store.set_label("m", "stable", 1)
    m = store.delete_label("m", "stable")
    assert m.labels == {} and m.label_history == {}
    assert "version_labels" not in read_text(store.config_path)
    store.delete_label("m", "never-set")  # idempotent
    with pytest.raises(StoreError) as e:
        store.delete_label("missing", "stable")
    assert e.value.status == 404


# ---------------------------------------------------------------- deletion


def test_delete_version_removes_its_labels_history_and_files(store):
    for _ in range(3):
        publish(store, "m")
    store.set_label("m", "stable", 1)
    store.set_label("m", "stable", 2)
    store.set_label("m", "canary", 2)
    store.set_label("m", "latest", 3)
    m = store.delete_version("m", 2)
    assert sorted(m.versions) == [1, 3]
    assert m.labels == {"latest": 3}
    assert m.label_history == {"stable": [1], "canary": [], "latest": [3]}
    assert not os.path.exists(os.path.join(store.root, "m", "2"))
    assert version_dirs(store, "m") == [1, 3]
    assert parse_config(read_text(store.config_path))["m"] == {
        "base_path": "/models/m", "versions": [1, 3], "labels": {"latest": 3},
    }
    with pytest.raises(StoreError, match="m has no version 2") as e:
        store.delete_version("m", 2)
    assert e.value.status == 404
    check_consistent(store)


def test_deleting_the_last_version_drops_the_model_from_the_config(store):
    publish(store, "m")
    publish(store, "other")
    store.delete_version("m", 1)
    assert store.names() == ["m", "other"]  # metadata kept: owner still known
    assert set(parse_config(read_text(store.config_path))) == {"other"}
    check_consistent(store)


def test_a_deleted_version_number_is_never_reused(store):
    publish(store, "m")
    publish(store, "m")
    store.delete_version("m", 2)
    _, v = publish(store, "m")
    assert v == 3


def test_delete_model_removes_everything(store):
    publish(store, "m", group="g")
    publish(store, "keep")
    store.set_label("m", "stable", 1)
    store.delete_model("m")
    assert not os.path.exists(os.path.join(store.root, "m"))
    assert store.names() == ["keep"]
    assert set(parse_config(read_text(store.config_path))) == {"keep"}
    assert os.listdir(store.staging) == []  # the trash is emptied
    with pytest.raises(StoreError) as e:
        store.delete_model("m")
    assert e.value.status == 404
    m, v = publish(store, "m", who="bob")  # a new model of the same name
    assert (v, m.owner, m.group, m.labels) == (1, "bob", None, {})


# ---------------------------------------------------------------- models.config


def test_render_config_without_models(store):
    assert store.render_config() == "model_config_list {\n}\n"
    publish(store, "m")
    store.delete_version("m", 1)  # a model without versions is not served
    assert store.render_config() == "model_config_list {\n}\n"


def test_render_config_exact_text(store):
    publish(store, "fraud")
    publish(store, "fraud")
    store.set_label("fraud", "stable", 1)
    assert store.render_config() == (
        "model_config_list {\n"
        "  config {\n"
        '    name: "fraud"\n'
        '    base_path: "/models/fraud"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { specific { versions: 1 versions: 2 } }\n"
        '    version_labels { key: "stable" value: 1 }\n'
        "  }\n"
        "}\n"
    )
    assert read_text(store.config_path) == store.render_config()


def test_render_config_two_models_sorted_labels_sorted_custom_serving_root(tmp_path):
    s = Store(str(tmp_path / "vol"), serving_root="/srv/models/")
    publish(s, "zeta")
    publish(s, "alpha")
    s.set_label("alpha", "stable", 1)
    s.set_label("alpha", "canary", 1)
    assert s.render_config() == (
        "model_config_list {\n"
        "  config {\n"
        '    name: "alpha"\n'
        '    base_path: "/srv/models/alpha"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { specific { versions: 1 } }\n"
        '    version_labels { key: "canary" value: 1 }\n'
        '    version_labels { key: "stable" value: 1 }\n'
        "  }\n"
        "  config {\n"
        '    name: "zeta"\n'
        '    base_path: "/srv/models/zeta"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { specific { versions: 1 } }\n"
        "  }\n"
        "}\n"
    )


def test_config_parses_back_to_each_model_with_exactly_its_versions(store):
    for name, n in (("a", 3), ("b", 1), ("c", 2)):
        for _ in range(n):
            publish(store, name)
    store.delete_version("a", 2)
    store.set_label("c", "stable", 2)
    parsed = parse_config(read_text(store.config_path))
    assert {n: p["versions"] for n, p in parsed.items()} == {"a": [1, 3], "b": [1], "c": [1, 2]}
    assert parsed["c"]["labels"] == {"stable": 2}
    check_consistent(store)


def test_parse_config_rejects_malformed_text():
    """The checker itself: it must not accept what TF Serving would not."""
    good = (
        "model_config_list {\n  config {\n    name: \"m\"\n    base_path: \"/models/m\"\n"
        "    model_platform: \"tensorflow\"\n    model_version_policy { specific { versions: 1 } }\n  }\n}\n"
    )
    assert parse_config(good)["m"]["versions"] == [1]
    for bad in (good[:-2], good.replace("versions: 1 ", ""), good.replace('"m"', "m", 1), good + good):
        with pytest.raises(AssertionError):
            parse_config(bad)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_creates_replaces_and_leaves_no_temp_files(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write(str(p), "one")
    assert p.read_text() == "one"
    assert oct(p.stat().st_mode & 0o777) == oct(0o644)
    with open(p) as reader:  # a reader of the old file keeps the old content whole
        atomic_write(str(p), "two" * 1000)
        assert reader.read() == "one"
    assert p.read_text() == "two" * 1000
    assert os.listdir(tmp_path) == ["f.txt"]


@pytest.mark.parametrize("failing", ["fsync", "replace", "chmod"])
def test_atomic_write_failure_keeps_the_old_content(tmp_path, monkeypatch, failing):
    p = tmp_path / "models.config"
    atomic_write(str(p), "old config\n")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(str(p), "new config that must not half-appear\n")
    monkeypatch.undo()
    assert p.read_text() == "old config\n"
    assert os.listdir(tmp_path) == ["models.config"]


def test_atomic_write_interrupted_mid_write(tmp_path, monkeypatch):
    p = tmp_path / "models.config"
    atomic_write(str(p), "old\n")
    real_fdopen = os.fdopen

    class HalfFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise KeyboardInterrupt  # even a BaseException cleans up

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(store_mod.os, "fdopen", lambda fd, mode: HalfFile(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(p), "new and long\n" * 100)
    monkeypatch.undo()
    assert p.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["models.config"]


def test_failed_config_write_leaves_the_served_config_intact(store, monkeypatch):
    publish(store, "m")
    before = read_text(store.config_path)

    def boom(*a, **k):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(store_mod.os, "fsync", boom)
    with pytest.raises(OSError):
        store.set_label("m", "stable", 1)
    monkeypatch.undo()
    assert read_text(store.config_path) == before
    assert temp_leftovers(store.root) == []


# ---------------------------------------------------------------- property: any sequence of operations

MODELS = ["a", "b"]
LABELS = ["stable", "canary"]
OPS = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(MODELS)),
    st.tuples(st.just("label"), st.sampled_from(MODELS), st.sampled_from(LABELS), st.integers(0, 5)),
    st.tuples(st.just("rollback"), st.sampled_from(MODELS), st.sampled_from(LABELS)),
    st.tuples(st.just("unlabel"), st.sampled_from(MODELS), st.sampled_from(LABELS)),
    st.tuples(st.just("delete_version"), st.sampled_from(MODELS), st.integers(0, 5)),
    st.tuples(st.just("delete_model"), st.sampled_from(MODELS)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=14))
def test_any_sequence_of_operations_keeps_config_and_volume_consistent(ops):
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "models"))
        for op in ops:
            kind, name = op[0], op[1]
            before = s.get(name)
            try:
                if kind == "add":
                    m, v = publish(s, name)
                    assert v not in (before.versions if before else {})
                    assert v > max(before.versions, default=0) if before else v == 1
                elif kind == "label":
                    s.set_label(name, op[2], op[3])
                    assert s.require(name).labels[op[2]] == op[3]
                elif kind == "rollback":
                    s.rollback(name, op[2])
                    after = s.require(name)
                    assert after.labels[op[2]] in after.versions
                elif kind == "unlabel":
                    s.delete_label(name, op[2])
                    assert op[2] not in s.require(name).labels
                elif kind == "delete_version":
                    s.delete_version(name, op[2])
                    assert op[2] not in s.require(name).versions
                else:
                    s.delete_model(name)
                    assert s.get(name) is None
            except StoreError as e:
                # refusals are 404 (no such model/version) or 409 (nothing to roll back to)
                assert e.status in (404, 409), e
                after = s.get(name)
                assert (after.to_json() if after else None) == (before.to_json() if before else None)
            check_consistent(s)
