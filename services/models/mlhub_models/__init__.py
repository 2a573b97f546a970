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

import requests

__all__ = ["publish", "predict", "models", "model", "set_label", "rollback", "delete", "ModelServiceError"]


class ModelServiceError(RuntimeError):
    """The service refused or failed; the message is the service's explanation."""


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


def publish(model, name: str, *, label: str | None = None, group: str | None = None) -> dict:
    """Publish ``model`` (a Keras model, a tf.Module, or a SavedModel directory) as the
    next version of ``name``; return {"name", "version", "labels", "signature"}."""
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
        return _call(
            "POST", f"/api/models/{name}/versions", data=buf.getvalue(), params=params,
            headers={"Content-Type": "application/gzip"},
        )


def models() -> list[dict]:
    return _call("GET", "/api/models")["models"]


def model(name: str) -> dict:
    return _call("GET", f"/api/models/{name}")


def set_label(name: str, label: str, version: int) -> dict:
    return _call("PUT", f"/api/models/{name}/labels/{label}", json={"version": version})


def rollback(name: str, label: str = "stable") -> dict:
    return _call("POST", f"/api/models/{name}/rollback", json={"label": label})


def delete(name: str, version: int | None = None) -> None:
    _call("DELETE", f"/api/models/{name}" + (f"/versions/{version}" if version else ""))


def predict(name: str, instances, *, version: int | None = None, label: str | None = None):
    """Predictions from TF Serving through the hub (row format)."""
    where = f"/versions/{version}" if version else f"/labels/{label}" if label else ""
    data = instances.tolist() if hasattr(instances, "tolist") else instances
    return _call("POST", f"/v1/models/{name}{where}:predict", json={"instances": data})["predictions"]
