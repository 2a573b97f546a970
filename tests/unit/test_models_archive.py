"""Safe unpacking of uploaded SavedModel archives and their validation
(services/models/mlhub_models_service/archive.py). Real .tar, .tar.gz and .zip
files built in tmp; TensorFlow is replaced by a fake module or a fake child."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib

import pytest

from mlhub_models_service import archive
from mlhub_models_service.archive import extract, find_savedmodel, validate
from mlhub_models_service.store import StoreError

MIB = 1024**2
SAVEDMODEL = {
    "saved_model.pb": b"\x08\x01fake-proto",
    "fingerprint.pb": b"fp",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": os.urandom(4096),
    "assets/vocab.txt": b"a\nb\n",
}


# ---------------------------------------------------------------- archive builders


def tar_bytes(entries, mode="w:gz") -> bytes:
    """entries: (name, bytes) for files, or TarInfo objects (with data) for anything else."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tar.addfile(e)
            else:
                name, data = e
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def zip_bytes(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for e in entries:
            if isinstance(e, tuple) and isinstance(e[0], zipfile.ZipInfo):
                z.writestr(e[0], e[1])
            else:
                z.writestr(*e)
    return buf.getvalue()


def savedmodel_entries(prefix: str = "savedmodel/"):
    return [(prefix + k, v) for k, v in SAVEDMODEL.items()]


def write(tmp_path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def files_under(root) -> dict[str, bytes]:
    out = {}
    for dp, _, fs in os.walk(root):
        for f in fs:
            full = os.path.join(dp, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, root)] = fh.read()
    return out


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "unpack"
    d.mkdir()
    return str(d)


def refused(archive_path, dest, max_bytes=64 * MIB) -> StoreError:
    with pytest.raises(StoreError) as e:
        extract(archive_path, dest, max_bytes)
    return e.value


# ---------------------------------------------------------------- good archives


@pytest.mark.parametrize("fmt", ["tar.gz", "tar", "tar.bz2", "zip", "zip-stored"])
def test_a_savedmodel_archive_extracts_with_identical_files(tmp_path, dest, fmt):
    if fmt.startswith("zip"):
        comp = zipfile.ZIP_STORED if fmt == "zip-stored" else zipfile.ZIP_DEFLATED
        data = zip_bytes(savedmodel_entries(), comp)
    else:
        data = tar_bytes(savedmodel_entries(), {"tar.gz": "w:gz", "tar": "w", "tar.bz2": "w:bz2"}[fmt])
    extract(write(tmp_path, "upload", data), dest, 64 * MIB)
    assert files_under(dest) == {os.path.join("savedmodel", k): v for k, v in SAVEDMODEL.items()}
    assert find_savedmodel(dest) == os.path.join(dest, "savedmodel")


def test_tar_made_like_the_notebook_client_with_directory_entries(tmp_path, dest):
    src = tmp_path / "export"
    for rel, data in SAVEDMODEL.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "empty-dir").mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # as mlhub_models.publish does
        tar.add(str(src), arcname="savedmodel")
    extract(write(tmp_path, "u.tar.gz", buf.getvalue()), dest, 64 * MIB)
    assert os.path.isdir(os.path.join(dest, "savedmodel", "empty-dir"))
    assert files_under(os.path.join(dest, "savedmodel")) == SAVEDMODEL


def test_dot_prefixed_names_stay_inside(tmp_path, dest):
    data = tar_bytes([("./saved_model.pb", b"pb"), ("./variables/./v.index", b"i"), ("a/../b.txt", b"b")])
    extract(write(tmp_path, "u.tgz", data), dest, MIB)
    assert files_under(dest) == {"saved_model.pb": b"pb", os.path.join("variables", "v.index"): b"i", "b.txt": b"b"}


# ---------------------------------------------------------------- find_savedmodel


def test_find_savedmodel_at_the_root(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"pb")
    (tmp_path / "variables").mkdir()
    assert find_savedmodel(str(tmp_path)) == str(tmp_path)


def test_find_savedmodel_in_the_only_subdirectory_ignoring_hidden_entries(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"pb")
    (tmp_path / "._export").write_bytes(b"macOS resource fork")
    (tmp_path / ".DS_Store").write_bytes(b"")
    assert find_savedmodel(str(tmp_path)) == str(tmp_path / "export")


@pytest.mark.parametrize(
    "layout",
    [
        [],  # empty archive
        ["model.h5"],  # a Keras file, not a SavedModel
        ["a/saved_model.pb", "b/saved_model.pb"],  # two candidates
        ["a/saved_model.pb", "README"],  # the subdir is not the only entry
        ["a/b/saved_model.pb"],  # too deep
    ],
)
def test_find_savedmodel_refuses_other_layouts(tmp_path, layout):
    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    with pytest.raises(StoreError, match="no saved_model.pb in the archive") as e:
        find_savedmodel(str(tmp_path))
    assert e.value.status == 400
    assert "model.export(path)" in str(e.value)


# ---------------------------------------------------------------- refusals: names


@pytest.mark.parametrize(
    "name", ["../evil", "savedmodel/../../evil", "/etc/evil", "..", "..\\evil", "\\evil", "C:/evil", "C:evil"]
)
@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_names_outside_the_archive_are_refused(tmp_path, dest, name, fmt):
    entries = [("savedmodel/saved_model.pb", b"pb"), (name, b"gotcha")]
    data = tar_bytes(entries) if fmt == "tar" else zip_bytes(entries)
    err = refused(write(tmp_path, "u", data), dest)
    assert err.status == 400
    assert f"archive member {name!r} points outside the archive" in str(err)
    assert os.listdir(dest) == []  # checked before anything is written
    assert not (tmp_path / "evil").exists()


# ---------------------------------------------------------------- refusals: links and special files


@pytest.mark.parametrize(
    "member",
    [
        special("savedmodel/variables", tarfile.SYMTYPE, "/etc"),
        special("savedmodel/link", tarfile.SYMTYPE, "saved_model.pb"),  # even harmless-looking
        special("savedmodel/hard", tarfile.LNKTYPE, "savedmodel/saved_model.pb"),
        special("savedmodel/tty", tarfile.CHRTYPE),
        special("savedmodel/disk", tarfile.BLKTYPE),
        special("savedmodel/pipe", tarfile.FIFOTYPE),
    ],
    ids=["symlink-out", "symlink-in", "hardlink", "chardev", "blockdev", "fifo"],
)
def test_tar_links_and_special_files_are_refused(tmp_path, dest, member):
    data = tar_bytes([("savedmodel/saved_model.pb", b"pb"), member])
    err = refused(write(tmp_path, "u.tgz", data), dest)
    assert err.status == 400
    assert f"archive member {member.name!r} is a link or a special file" in str(err)
    assert os.listdir(dest) == []


@pytest.mark.parametrize("mode", [0o120777, 0o010644, 0o020644, 0o060644, 0o140755])
def test_zip_links_and_special_files_are_refused(tmp_path, dest, mode):
    info = zipfile.ZipInfo("savedmodel/variables")
    info.external_attr = mode << 16
    data = zip_bytes([("savedmodel/saved_model.pb", b"pb"), (info, b"/etc")])
    err = refused(write(tmp_path, "u.zip", data), dest)
    assert "'savedmodel/variables' is a link or a special file" in str(err)
    assert os.listdir(dest) == []


def test_zip_from_windows_without_unix_modes_extracts(tmp_path, dest):
    info = zipfile.ZipInfo("savedmodel/saved_model.pb")
    info.create_system = 0  # MS-DOS: no unix mode bits
    info.external_attr = 0x20  # FILE_ATTRIBUTE_ARCHIVE
    extract(write(tmp_path, "u.zip", zip_bytes([(info, b"pb")])), dest, MIB)
    assert files_under(dest) == {os.path.join("savedmodel", "saved_model.pb"): b"pb"}


# ---------------------------------------------------------------- refusals: counts and sizes


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_too_many_files_are_refused(tmp_path, dest, monkeypatch, fmt):
    monkeypatch.setattr(archive, "MAX_FILES", 5)
    entries = [(f"savedmodel/f{i}", b"x") for i in range(6)]
    data = tar_bytes(entries) if fmt == "tar" else zip_bytes(entries)
    err = refused(write(tmp_path, "u", data), dest)
    assert "refused: the archive has more than 5 files" in str(err)
    assert os.listdir(dest) == []
    # exactly at the cap is fine
    ok = entries[:5]
    extract(write(tmp_path, "ok", tar_bytes(ok) if fmt == "tar" else zip_bytes(ok)), dest, MIB)
    assert len(files_under(dest)) == 5


def test_tar_total_size_over_the_max_is_refused_from_headers(tmp_path, dest):
    # 3 MiB of zeros compresses to a few KiB: the headers' sizes are what counts
    data = tar_bytes([("savedmodel/saved_model.pb", b"pb"), ("savedmodel/big", bytes(3 * MIB))])
    assert len(data) < 64 * 1024
    err = refused(write(tmp_path, "u.tgz", data), dest, max_bytes=2 * MIB)
    assert err.status == 413
    assert "unpacks to more than 2 MiB (MLHUB_MODELS_MAX_UPLOAD)" in str(err)
    assert os.listdir(dest) == []


def test_tar_sizes_add_up_across_files(tmp_path, dest):
    entries = [(f"savedmodel/part{i}", bytes(MIB // 2)) for i in range(5)]  # 2.5 MiB in all
    err = refused(write(tmp_path, "u.tgz", tar_bytes(entries)), dest, max_bytes=2 * MIB)
    assert err.status == 413
    extract(write(tmp_path, "ok.tgz", tar_bytes(entries[:4])), dest, max_bytes=2 * MIB)  # exactly 2 MiB
    assert sum(len(v) for v in files_under(dest).values()) == 2 * MIB


def test_zip_bomb_is_refused_from_declared_sizes(tmp_path, dest):
    data = zip_bytes([("savedmodel/saved_model.pb", b"pb"), ("savedmodel/bomb", bytes(8 * MIB))])
    assert len(data) < 64 * 1024  # small compressed, big uncompressed
    err = refused(write(tmp_path, "bomb.zip", data), dest, max_bytes=2 * MIB)
    assert err.status == 413
    assert os.listdir(dest) == []


def lying_zip(real: bytes, declared: int, fix_crc: bool) -> bytes:
    """A zip whose central directory declares ``declared`` bytes for a member that
    really inflates to ``len(real)`` (optionally with the CRC of the declared prefix)."""
    raw = bytearray(zip_bytes([("savedmodel/saved_model.pb", real)]))
    cd = raw.rfind(b"PK\x01\x02")
    assert struct.unpack_from("<I", raw, cd + 24)[0] == len(real)
    struct.pack_into("<I", raw, cd + 24, declared)  # uncompressed size
    if fix_crc:
        struct.pack_into("<I", raw, cd + 16, zlib.crc32(real[:declared]))
    return bytes(raw)


def test_zip_with_lying_sizes_never_writes_more_than_declared(tmp_path, dest):
    """The header says 1000 bytes, the data inflates to 8 MiB. Python's zipfile stops
    at the declared size, so the bomb never lands on disk: with a CRC forged to
    match, only the declared 1000 bytes are written."""
    real = bytes(8 * MIB)
    data = lying_zip(real, 1000, fix_crc=True)
    assert len(data) < 64 * 1024
    extract(write(tmp_path, "liar.zip", data), dest, max_bytes=MIB)
    written = files_under(dest)
    assert written == {os.path.join("savedmodel", "saved_model.pb"): real[:1000]}


def test_zip_with_lying_sizes_and_honest_crc_is_refused(tmp_path, dest):
    data = lying_zip(bytes(8 * MIB), 1000, fix_crc=False)
    err = refused(write(tmp_path, "liar.zip", data), dest, max_bytes=MIB)
    assert err.status in (400, 413)


def test_zip_sizes_add_up_across_files(tmp_path, dest):
    entries = [(f"savedmodel/part{i}", bytes(MIB // 2)) for i in range(5)]
    err = refused(write(tmp_path, "u.zip", zip_bytes(entries)), dest, max_bytes=2 * MIB)
    assert err.status == 413


# ---------------------------------------------------------------- refusals: not an archive, corrupt


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, not an archive\n", b"\x89HDF\r\n\x1a\n" + bytes(600), json.dumps({"a": 1}).encode()],
    ids=["empty", "text", "keras-h5", "json"],
)
def test_not_an_archive_is_refused(tmp_path, dest, data):
    err = refused(write(tmp_path, "u", data), dest)
    assert err.status == 400
    assert "not a .tar.gz, .tar or .zip archive" in str(err)
    assert "mlhub_models.publish" in str(err)


def truncated_tgz() -> bytes:
    data = tar_bytes([("savedmodel/saved_model.pb", os.urandom(100_000))])
    return data[: len(data) // 2]


def conflicting_tar() -> bytes:  # a file, then a file "inside" it
    return tar_bytes([("savedmodel", b"x"), ("savedmodel/saved_model.pb", b"pb")], mode="w")


@pytest.mark.parametrize("make", [truncated_tgz, conflicting_tar], ids=["truncated-tgz", "file-then-dir"])
def test_damaged_archives_are_refused_not_crashed(tmp_path, dest, make):
    err = refused(write(tmp_path, "u", make()), dest)
    assert err.status == 400


# ---------------------------------------------------------------- validate(): fake child via subprocess.run


def completed(stdout="", stderr="", rc=0):
    return subprocess.CompletedProcess(args=[], returncode=rc, stdout=stdout, stderr=stderr)


SIG = {"inputs": {"x": {"dtype": "float32", "shape": [None, 4]}},
       "outputs": {"y": {"dtype": "float32", "shape": [None, 1]}}}


def test_validate_returns_the_signature_of_an_ok_child(monkeypatch, tmp_path):
    calls = []

    def fake_run(cmd, **kw):
        calls.append((cmd, kw))
        noise = "2026-01-01 W tensorflow: oneDNN custom operations are on\n"
        return completed(stdout=noise + json.dumps({"ok": True, **SIG}) + "\n")

    monkeypatch.setattr(archive.subprocess, "run", fake_run)
    assert validate(str(tmp_path), timeout=12) == SIG
    (cmd, kw), = calls
    assert cmd[0] == sys.executable and cmd[1] == "-c" and cmd[3] == str(tmp_path)
    assert "tf.saved_model.load(sys.argv[1])" in cmd[2]
    assert kw["timeout"] == 12 and kw["capture_output"] and kw["text"]
    assert kw["env"]["CUDA_VISIBLE_DEVICES"] == ""  # never grabs a GPU from the notebooks


def test_validate_refuses_a_model_without_serving_signature(monkeypatch, tmp_path):
    out = json.dumps({"ok": False, "error": "no serving_default signature (found: ['train'])"})
    monkeypatch.setattr(archive.subprocess, "run", lambda cmd, **kw: completed(stdout=out))
    with pytest.raises(StoreError) as e:
        validate(str(tmp_path))
    assert e.value.status == 400
    assert "no serving_default signature (found: ['train'])" in str(e.value)
    assert "export it with a serving signature" in str(e.value)


@pytest.mark.parametrize(
    "result",
    [
        completed(stderr="Traceback ...\nOSError: SavedModel file does not exist at: /x\n", rc=1),
        completed(stdout="", stderr="", rc=-9),  # killed (out of memory)
        completed(stdout="no json here\n", stderr="weird\n", rc=0),
    ],
    ids=["traceback", "killed", "no-json"],
)
def test_validate_refuses_a_crashing_child(monkeypatch, tmp_path, result):
    monkeypatch.setattr(archive.subprocess, "run", lambda cmd, **kw: result)
    with pytest.raises(StoreError, match="refused: not a loadable SavedModel") as e:
        validate(str(tmp_path))
    assert e.value.status == 400
    last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
    assert str(e.value).endswith(last)


def test_validate_truncates_long_child_errors(monkeypatch, tmp_path):
    monkeypatch.setattr(archive.subprocess, "run", lambda cmd, **kw: completed(stderr="E" * 5000, rc=1))
    with pytest.raises(StoreError) as e:
        validate(str(tmp_path))
    assert len(str(e.value)) < 400


def test_validate_timeout_is_a_refusal(monkeypatch, tmp_path):
    def hang(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(archive.subprocess, "run", hang)
    with pytest.raises(StoreError, match="refused: the SavedModel did not load within 7 s"):
        validate(str(tmp_path), timeout=7)


# ---------------------------------------------------------------- validate(): the real CHECK script, fake TensorFlow

FAKE_TF = textwrap.dedent(
    """
    import os, sys, time

    class _DType:
        def __init__(self, name): self.name = name

    class _Shape:
        def __init__(self, dims): self.rank = None if dims is None else len(dims); self._d = dims
        def as_list(self): return list(self._d)

    class _Spec:
        def __init__(self, dtype, dims): self.dtype = _DType(dtype); self.shape = _Shape(dims)

    class _Fn:
        structured_input_signature = ((), {"x": _Spec("float32", [None, 4]), "ids": _Spec("int64", None)})
        structured_outputs = {"y": _Spec("float32", [None, 1])}

    class _Loaded:
        def __init__(self, sigs): self.signatures = sigs

    class saved_model:
        @staticmethod
        def load(path):
            assert os.environ.get("CUDA_VISIBLE_DEVICES") == ""
            with open(os.path.join(path, "saved_model.pb")) as f:
                mode = f.read().strip()
            if mode == "ok":
                return _Loaded({"serving_default": _Fn()})
            if mode == "nosig":
                return _Loaded({"train": _Fn()})
            if mode == "hang":
                time.sleep(30)
            raise OSError("SavedModel file does not exist at: " + path)
    """
)


@pytest.fixture
def fake_tf(tmp_path, monkeypatch):
    lib = tmp_path / "fake-tf"
    (lib / "tensorflow").mkdir(parents=True)
    (lib / "tensorflow" / "__init__.py").write_text(FAKE_TF)
    monkeypatch.setenv("PYTHONPATH", str(lib))

    def model(mode: str) -> str:
        d = tmp_path / f"sm-{mode}"
        d.mkdir()
        (d / "saved_model.pb").write_text(mode)
        return str(d)

    return model


def test_check_script_reports_the_serving_signature(fake_tf):
    assert validate(fake_tf("ok"), timeout=60) == {
        "inputs": {"x": {"dtype": "float32", "shape": [None, 4]}, "ids": {"dtype": "int64", "shape": None}},
        "outputs": {"y": {"dtype": "float32", "shape": [None, 1]}},
    }


def test_check_script_refuses_without_serving_default(fake_tf):
    with pytest.raises(StoreError, match=r"no serving_default signature \(found: \['train'\]\): export it"):
        validate(fake_tf("nosig"), timeout=60)


def test_check_script_load_error_is_not_a_loadable_savedmodel(fake_tf):
    with pytest.raises(StoreError, match="not a loadable SavedModel: OSError: SavedModel file does not exist"):
        validate(fake_tf("broken"), timeout=60)


def test_check_script_hang_is_killed_at_the_timeout(fake_tf):
    import time

    t0 = time.monotonic()
    with pytest.raises(StoreError, match="did not load within 1 s"):
        validate(fake_tf("hang"), timeout=0.6)
    assert time.monotonic() - t0 < 10
