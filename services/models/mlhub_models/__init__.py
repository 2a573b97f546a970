"""Publish models from a notebook to the ML hub's model service, in one call.

    from mlhub_models import publish, predict, models
    publish(model, "fraud-detector", label="stable")    # Keras model or SavedModel dir
    predict("fraud-detector", [[0.1, 0.2, 0.3, 0.4]], label="stable")

It authenticates with the notebook's own hub token ($JUPYTERHUB_API_TOKEN),
whose scopes reach this service and nothing more, at $MLHUB_MODELS_URL (set
by the hub in every notebook container).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time

import requests

# the service's own name rules (a stdlib-only module of this same package), checked
# here too so that a name is never sent as a path that means something else
from mlhub_models_service.store import LABEL_RE, NAME_RE

__all__ = ["publish", "predict", "models", "model", "set_label", "rollback", "delete", "ModelServiceError"]


class ModelServiceError(RuntimeError):
    """The service refused or failed; the message is the service's explanation."""


WAIT_S = 120


def _name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ModelServiceError(
            f"invalid model name {name!r}: lowercase letters, digits, '-' and '_' "
            "(at most 63), starting with a letter or digit, e.g. fraud-detector"
        )
    return name


def _label(label: str) -> str:
    if not isinstance(label, str) or not LABEL_RE.fullmatch(label):
        raise ModelServiceError(f"invalid label {label!r}: lowercase letters, digits, '-', '_', e.g. stable")
    return label


def _wait_served(name: str, where: str, version: int) -> None:
    """Wait (up to WAIT_S seconds) until TF Serving answers for ``where``
    (/versions/N or /labels/L) with ``version``: it re-reads its config every few seconds."""
    timeout = WAIT_S
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        r = requests.get(f"{_url()}/v1/models/{name}{where}/metadata", headers=_headers(), timeout=30)
        if r.status_code == 200:
            served = str((r.json().get("model_spec") or {}).get("version", ""))
            if served == str(version):
                return
            last = f"serves version {served}"
        else:
            last = f"{r.status_code}: {r.text[:200]}"
        if time.monotonic() > deadline:
            raise ModelServiceError(
                f"{name}{where}: TF Serving has not served version {version} within {timeout:.0f} s "
                f"(last answer: {last}); see the models page for its state"
            )
        time.sleep(0.5)


def _url() -> str:
    url = os.environ.get("MLHUB_MODELS_URL")
    if not url:
        raise ModelServiceError("MLHUB_MODELS_URL is not set: run this in a notebook started by the hub")
    return url.rstrip("/")


def _headers() -> dict:
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not token and os.environ.get("JUPYTERHUB_API_TOKEN_FILE"):
        with open(os.environ["JUPYTERHUB_API_TOKEN_FILE"]) as f:
            token = f.read().strip()
    if not token:
        raise ModelServiceError("JUPYTERHUB_API_TOKEN is not set: run this in a notebook started by the hub")
    return {"Authorization": f"token {token}"}


def _call(method: str, path: str, **kw):
    r = requests.request(method, _url() + path, headers={**_headers(), **kw.pop("headers", {})}, timeout=kw.pop("timeout", 300), **kw)
    if r.status_code >= 400:
        try:
            msg = r.json().get("error", r.text)
        except ValueError:
            msg = r.text
        raise ModelServiceError(f"{method} {path}: {r.status_code}: {msg}")
    return r.json() if r.content else None


def _export(model, path: str) -> None:
    if hasattr(model, "export"):  # Keras 3: a SavedModel with a serving_default signature
        try:
            model.export(path, verbose=False)
        except TypeError:  # older Keras without `verbose`
            model.export(path)
    else:
        import tensorflow as tf

        tf.saved_model.save(model, path)


def publish(
    model, name: str, *, label: str | None = None, group: str | None = None, wait: bool = True
) -> dict:
    """Publish ``model`` (a Keras model, a tf.Module, or a SavedModel directory) as the
    next version of ``name``; return {"name", "version", "labels", "signature"}.
    With ``wait`` (the default) it returns once TF Serving serves the new version."""
    _name(name)
    if label:
        _label(label)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(model, (str, os.PathLike)):
            src = os.fspath(model)
        else:
            src = os.path.join(tmp, "savedmodel")
            _export(model, src)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(src, arcname="savedmodel")
        params = {k: v for k, v in (("label", label), ("group", group)) if v}
        out = _call(
            "POST", f"/api/models/{name}/versions", data=buf.getvalue(), params=params,
            headers={"Content-Type": "application/gzip"},
        )
    if wait:
        _wait_served(name, f"/versions/{out['version']}", out["version"])
        if label:
            _wait_served(name, f"/labels/{label}", out["version"])
    return out


def models() -> list[dict]:
    return _call("GET", "/api/models")["models"]


def model(name: str) -> dict:
    return _call("GET", f"/api/models/{_name(name)}")


def set_label(name: str, label: str, version: int, *, wait: bool = True) -> dict:
    """Point ``label`` at ``version``; with ``wait``, return once TF Serving serves it."""
    out = _call("PUT", f"/api/models/{_name(name)}/labels/{_label(label)}", json={"version": version})
    if wait:
        _wait_served(name, f"/labels/{label}", version)
    return out


def rollback(name: str, label: str = "stable", *, wait: bool = True) -> dict:
    """Move ``label`` back to its previous version; with ``wait``, until it is served."""
    out = _call("POST", f"/api/models/{_name(name)}/rollback", json={"label": _label(label)})
    if wait:
        _wait_served(name, f"/labels/{label}", out["labels"][label])
    return out


def delete(name: str, version: int | None = None) -> None:
    _call("DELETE", f"/api/models/{_name(name)}" + (f"/versions/{int(version)}" if version else ""))


def predict(name: str, instances, *, version: int | None = None, label: str | None = None):
    """Predictions from TF Serving through the hub (row format)."""
    _name(name)
    where = f"/versions/{int(version)}" if version else f"/labels/{_label(label)}" if label else ""
    data = instances.tolist() if hasattr(instances, "tolist") else instances
    return _call("POST", f"/v1/models/{name}{where}:predict", json={"instances": data})["predictions"]
