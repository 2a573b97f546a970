"""Safe unpacking of uploaded SavedModel archives, and their validation.

An upload is hostile until proven otherwise: only regular files and
directories are extracted, names must stay inside the target (no absolute
paths, no '..', no links, no devices), and the number of files and their total
size are capped. Then the SavedModel is loaded by TensorFlow in a separate
process (a crash or a hang there cannot take the service down) and must have a
``serving_default`` signature before it may be served.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import tarfile
import zipfile
import zlib

from .store import StoreError

MAX_FILES = 10_000


def _safe_name(name: str) -> str:
    norm = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or norm.startswith("../") or norm == ".." or ":" in norm.split("/")[0]:
        raise StoreError(f"refused: archive member {name!r} points outside the archive")
    return "" if norm == "." else norm


def extract(archive_path: str, dest: str, max_bytes: int) -> None:
    """Extract a .tar(.gz) or .zip into ``dest`` (an empty directory) safely."""
    try:
        if tarfile.is_tarfile(archive_path):
            return _extract_tar(archive_path, dest, max_bytes)
        if zipfile.is_zipfile(archive_path):
            return _extract_zip(archive_path, dest, max_bytes)
    except StoreError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
        raise StoreError(f"refused: the archive is damaged or incomplete ({e.__class__.__name__}: {e})") from None
    else:
        raise StoreError(
            "refused: the upload is not a .tar.gz, .tar or .zip archive of a SavedModel "
            "directory (publish with mlhub_models.publish(model, name), or tar -czf)"
        )


def _check_totals(count: int, total: int, max_bytes: int) -> None:
    if count > MAX_FILES:
        raise StoreError(f"refused: the archive has more than {MAX_FILES} files")
    if total > max_bytes:
        raise StoreError(
            f"refused: the archive unpacks to more than {max_bytes // 1024**2} MiB "
            "(MLHUB_MODELS_MAX_UPLOAD)", status=413
        )


def _extract_tar(path: str, dest: str, max_bytes: int) -> None:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        total = 0
        for m in members:
            _safe_name(m.name)
            if not (m.isfile() or m.isdir()):
                raise StoreError(f"refused: archive member {m.name!r} is a link or a special file")
            total += m.size
        _check_totals(len(members), total, max_bytes)
        for m in members:
            rel = _safe_name(m.name)
            if not rel:
                continue
            target = os.path.join(dest, rel)
            if m.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            src = tar.extractfile(m)
            with open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)


def _extract_zip(path: str, dest: str, max_bytes: int) -> None:
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        for info in infos:
            _safe_name(info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode not in (0o100000, 0o040000):
                raise StoreError(f"refused: archive member {info.filename!r} is a link or a special file")
        _check_totals(len(infos), sum(i.file_size for i in infos), max_bytes)
        for info in infos:
            rel = _safe_name(info.filename)
            if not rel:
                continue
            target = os.path.join(dest, rel)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            written = 0
            with z.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:  # lying headers (zip bomb)
                        raise StoreError("refused: the archive unpacks to more than allowed", 413)
                    out.write(chunk)


def find_savedmodel(root: str) -> str:
    """The directory holding saved_model.pb: ``root`` or its only subdirectory."""
    if os.path.isfile(os.path.join(root, "saved_model.pb")):
        return root
    entries = [e for e in os.listdir(root) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isfile(os.path.join(root, entries[0], "saved_model.pb")):
        return os.path.join(root, entries[0])
    raise StoreError(
        "refused: no saved_model.pb in the archive; it must hold one SavedModel directory "
        "(Keras: model.export(path); TensorFlow: tf.saved_model.save(obj, path))"
    )


CHECK = r"""
import json, sys
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
sigs = getattr(m, "signatures", {}) or {}
if "serving_default" not in sigs:
    print(json.dumps({"ok": False, "error": "no serving_default signature (found: %s)" % sorted(sigs)}))
    sys.exit(0)
f = sigs["serving_default"]
spec = lambda s: {"dtype": s.dtype.name, "shape": None if s.shape.rank is None else [d for d in s.shape.as_list()]}
inputs = {k: spec(v) for k, v in f.structured_input_signature[1].items()}
outputs = {k: spec(v) for k, v in f.structured_outputs.items()}
print(json.dumps({"ok": True, "inputs": inputs, "outputs": outputs}))
"""


def validate(savedmodel_dir: str, timeout: float = 300) -> dict:
    """Load the SavedModel in a child process; return its signature or raise StoreError."""
    try:
        r = subprocess.run(
            [sys.executable, "-c", CHECK, savedmodel_dir],
            capture_output=True, text=True, timeout=timeout,
            env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"),
        )
    except subprocess.TimeoutExpired:
        raise StoreError(f"refused: the SavedModel did not load within {timeout:.0f} s") from None
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode != 0 or not lines:
        err = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise StoreError(f"refused: not a loadable SavedModel: {err[:300]}")
    result = json.loads(lines[-1])
    if not result.get("ok"):
        raise StoreError(f"refused: {result['error']}: export it with a serving signature")
    return {"inputs": result["inputs"], "outputs": result["outputs"]}
