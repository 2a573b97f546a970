"""The models volume: models, their versions, owners and labels, and the
models.config that TF Serving reads.

Layout (the volume is mounted at ``root`` here and at /models in TF Serving):

    models.config                 generated; TF Serving re-reads it periodically
    <model>/<version>/            one SavedModel per version (saved_model.pb, variables/)
    <model>/mlhub.json            owner, group, labels and their history, version info
    .staging/                     uploads being validated (never served)

Every write of mlhub.json and models.config is atomic (temporary file, fsync,
rename), so TF Serving never reads half a config and a crash never leaves one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
LABEL_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
META = "mlhub.json"
CONFIG = "models.config"


class StoreError(ValueError):
    """A request that cannot be done as asked; the message says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise StoreError(
            f"invalid model name {name!r}: use lowercase letters, digits, '-' and '_' "
            "(at most 63, starting with a letter or digit)"
        )
    return name


def check_label(label: str) -> str:
    if not LABEL_RE.fullmatch(label or ""):
        raise StoreError(f"invalid label {label!r}: lowercase letters, digits, '-', '_', e.g. stable")
    return label


def atomic_write(path: str, text: str) -> None:
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class Model:
    name: str
    owner: str
    group: str | None = None
    labels: dict[str, int] = field(default_factory=dict)
    label_history: dict[str, list[int]] = field(default_factory=dict)
    versions: dict[int, dict] = field(default_factory=dict)  # version -> info
    created: float = 0.0
    last_version: int = 0  # highest number ever given: numbers are never reused

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "owner": self.owner,
            "group": self.group,
            "labels": self.labels,
            "label_history": self.label_history,
            "versions": {str(v): info for v, info in sorted(self.versions.items())},
            "created": self.created,
            "last_version": self.last_version,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Model":
        return cls(
            name=data["name"],
            owner=data["owner"],
            group=data.get("group"),
            labels={k: int(v) for k, v in (data.get("labels") or {}).items()},
            label_history={k: [int(x) for x in v] for k, v in (data.get("label_history") or {}).items()},
            versions={int(v): info for v, info in (data.get("versions") or {}).items()},
            created=data.get("created", 0.0),
            last_version=int(data.get("last_version", 0)),
        )


class Store:
    """Models on the volume at ``root``; ``serving_root`` is where TF Serving sees it."""

    def __init__(self, root: str, serving_root: str = "/models"):
        self.root = root
        self.serving_root = serving_root.rstrip("/")
        os.makedirs(self.staging, exist_ok=True)
        if not os.path.exists(self.config_path):
            self.write_config()

    @property
    def staging(self) -> str:
        return os.path.join(self.root, ".staging")

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, CONFIG)

    def model_dir(self, name: str) -> str:
        return os.path.join(self.root, check_name(name))

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        out = []
        for entry in sorted(os.listdir(self.root)):
            if NAME_RE.fullmatch(entry) and os.path.isfile(os.path.join(self.root, entry, META)):
                out.append(entry)
        return out

    def get(self, name: str) -> Model | None:
        path = os.path.join(self.model_dir(name), META)
        try:
            with open(path) as f:
                return Model.from_json(json.load(f))
        except FileNotFoundError:
            return None

    def require(self, name: str) -> Model:
        model = self.get(name)
        if model is None:
            raise StoreError(f"no model named {name!r}", status=404)
        return model

    def all(self) -> list[Model]:
        return [m for m in (self.get(n) for n in self.names()) if m is not None]

    # ------------------------------------------------------------------ writing
    def save(self, model: Model) -> None:
        os.makedirs(self.model_dir(model.name), exist_ok=True)
        atomic_write(
            os.path.join(self.model_dir(model.name), META),
            json.dumps(model.to_json(), indent=2, sort_keys=True),
        )

    def add_version(
        self, name: str, savedmodel_dir: str, publisher: str, info: dict, group: str | None = None
    ) -> tuple[Model, int]:
        """Move a validated SavedModel into place as the next version of ``name``."""
        model = self.get(name) or Model(name=name, owner=publisher, group=group, created=time.time())
        if group and not model.group and model.owner == publisher:
            model.group = group
        version = max(max(model.versions, default=0), model.last_version) + 1
        while os.path.exists(os.path.join(self.model_dir(name), str(version))):
            version += 1  # a directory left by hand: never overwrite it
        os.makedirs(self.model_dir(name), exist_ok=True)
        os.replace(savedmodel_dir, os.path.join(self.model_dir(name), str(version)))
        model.last_version = version
        model.versions[version] = dict(info, published_by=publisher, published_at=time.time())
        self.save(model)
        self.write_config()
        return model, version

    def set_label(self, name: str, label: str, version: int) -> Model:
        model = self.require(name)
        check_label(label)
        if version not in model.versions:
            raise StoreError(f"{name} has no version {version} (versions: {sorted(model.versions)})", 404)
        if model.labels.get(label) != version:
            model.labels[label] = version
            model.label_history.setdefault(label, []).append(version)
        self.save(model)
        self.write_config()
        return model

    def rollback(self, name: str, label: str) -> Model:
        """Point ``label`` back at the version it pointed at before its current one
        (or, if its version was deleted, at the last one it pointed at that still exists)."""
        model = self.require(name)
        history = model.label_history.get(check_label(label), [])
        current = model.labels.get(label)
        while history and history[-1] == current:
            history = history[:-1]
        if not history:
            raise StoreError(f"label {label!r} of {name} has no earlier version to roll back to", 409)
        model.labels[label] = history[-1]
        model.label_history[label] = history
        self.save(model)
        self.write_config()
        return model

    def delete_label(self, name: str, label: str) -> Model:
        model = self.require(name)
        model.labels.pop(label, None)
        model.label_history.pop(label, None)
        self.save(model)
        self.write_config()
        return model

    def delete_version(self, name: str, version: int) -> Model:
        model = self.require(name)
        if version not in model.versions:
            raise StoreError(f"{name} has no version {version}", 404)
        del model.versions[version]
        for label in [k for k, v in model.labels.items() if v == version]:
            del model.labels[label]
        for label, hist in model.label_history.items():
            kept: list[int] = []
            for v in hist:  # drop the version, and the repeats that leaves side by side
                if v != version and (not kept or kept[-1] != v):
                    kept.append(v)
            model.label_history[label] = kept
        self.save(model)
        self.write_config()  # TF Serving unloads it before the files go
        shutil.rmtree(os.path.join(self.model_dir(name), str(version)), ignore_errors=True)
        return model

    def delete_model(self, name: str) -> None:
        self.require(name)
        # First drop it from models.config (hide its metadata), then move the files:
        # TF Serving must never see a configured base path that is gone (it would
        # stop updating every model until the path came back).
        meta = os.path.join(self.model_dir(name), META)
        os.replace(meta, meta + ".deleted")
        self.write_config()
        trash = os.path.join(self.staging, f"deleted-{name}-{time.time_ns()}")
        os.replace(self.model_dir(name), trash)
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ TF Serving config
    def render_config(self) -> str:
        """ModelServerConfig in protobuf text format: every model with versions,
        exactly its published versions, and its labels."""
        lines = ["model_config_list {"]
        for model in self.all():
            if not model.versions:
                continue
            versions = " ".join(f"versions: {v}" for v in sorted(model.versions))
            lines += [
                "  config {",
                f'    name: "{model.name}"',
                f'    base_path: "{self.serving_root}/{model.name}"',
                '    model_platform: "tensorflow"',
                f"    model_version_policy {{ specific {{ {versions} }} }}",
            ]
            for label, version in sorted(model.labels.items()):
                lines.append(f'    version_labels {{ key: "{label}" value: {version} }}')
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        atomic_write(self.config_path, self.render_config())
