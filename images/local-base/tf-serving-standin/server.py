"""STAND-IN FOR TENSORFLOW SERVING. THIS IS NOT TENSORFLOW SERVING.

Hosts and CI runs without a container registry cannot pull the official
``tensorflow/serving`` image, and TensorFlow Serving's C++ binary is not on PyPI.
This program stands in for ``tensorflow_model_server`` there: it reads the same
``models.config`` (a text-format ``ModelServerConfig``) from the same ``/models``
volume, loads the same SavedModel version directories with TensorFlow's Python API,
and answers TensorFlow Serving's REST API (2.x):

  GET  /v1/models/NAME[/versions/N | /labels/L]            model status
  GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   signature defs
  POST /v1/models/NAME[/versions/N | /labels/L]:predict    row ("instances") or
                                                           columnar ("inputs") format

It takes TF Serving's command-line flags (``--model_config_file``,
``--model_config_file_poll_wait_seconds``, ``--rest_api_port``,
``--allow_version_labels_for_unavailable_models``, ``--file_system_poll_wait_seconds``,
``--max_num_load_retries``, ``--load_retry_interval_micros``, ``--model_name``,
``--model_base_path``, ...) with TF Serving's defaults, and accepts and ignores the
ones it does not implement (``--port``: no gRPC; ``--enable_batching``; ...).

What it copies from TF Serving 2.x (read from its sources) on purpose, so that CI
sees what production will see:
  * the config is parsed with TF Serving's own protobuf definitions
    (``tensorflow_serving.config.model_server_config_pb2`` from the
    ``tensorflow-serving-api`` package) and ``google.protobuf.text_format``;
  * version policies ``latest`` (default, ``num_versions`` >= 1), ``all``,
    ``specific``; a version directory is a child of ``base_path`` whose name parses
    as an integer; the file system is re-polled every
    ``--file_system_poll_wait_seconds`` (default 1);
  * ``--model_config_file_poll_wait_seconds`` defaults to 0: the config file is then
    read once at startup and never again (set it to re-read the file);
  * availability-preserving version transitions: a version that is no longer aspired
    is unloaded once an aspired version is available (or none is aspired);
  * a version that fails to load is retried ``--max_num_load_retries`` times (default
    5) ``--load_retry_interval_micros`` apart (default 60 s), staying LOADING
    meanwhile, then reaches END with the error as its status; it is not retried while
    it stays aspired; other versions and models are not affected;
  * AT STARTUP the REST port opens only once every model of the initial config has a
    version AVAILABLE; if one reaches END instead, the server exits (status 255) with
    "N servable(s) did not become available" -- exactly as TF Serving does. A model
    with no version directory blocks startup (TF Serving waits forever too);
  * on a config reload, models new to the config are awaited in the background
    (requests keep being answered); a version label may point to a version that is
    not AVAILABLE only with ``--allow_version_labels_for_unavailable_models`` and only
    if the label is new or keeps its version; otherwise the whole new config is
    rejected (and retried at the next poll);
  * a configured base path that does not exist makes the file-system poll fail for
    ALL models (no version changes anywhere) until it exists;
  * errors are ``{"error": "..."}`` with TF Serving's status-to-HTTP mapping: unknown
    model/version (NotFound) -> 404; unknown label, bad input, bad signature
    (InvalidArgument) -> 400.

What it does not do: gRPC (port 8500), classify/regress, batching, model warmup,
Prometheus metrics, request logging, TFLite, custom platforms, ``--rest_api_timeout_in_ms``.
Numbers are TensorFlow's own (the SavedModel's serving signature), so predictions match
TF Serving's up to the last float32 digit written.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_VERSION = "2.21.0-standin"
BANNER = (
    "THIS IS A STAND-IN FOR TENSORFLOW SERVING (tensorflow/serving), NOT TENSORFLOW SERVING: "
    "a Python program that serves TF Serving's REST API with TensorFlow "
    "(images/local-base/tf-serving-standin/server.py). No gRPC, no batching, no "
    "classify/regress. Use the official image in production."
)

LOG = logging.getLogger("tf-serving-standin")

# ----------------------------------------------------------------------------- status

# tensorflow/core/protobuf/error_codes.proto
ERROR_CODES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}

# tensorflow_serving/model_servers/http_server.cc ToHTTPStatusCode
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
    "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class StatusError(Exception):
    """A TensorFlow-style error status: a canonical code name and a message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def invalid(msg: str) -> StatusError:
    return StatusError("INVALID_ARGUMENT", msg)


def not_found(msg: str) -> StatusError:
    return StatusError("NOT_FOUND", msg)


# ----------------------------------------------------------------------------- flags


@dataclasses.dataclass
class Options:
    # Implemented (TF Serving's defaults).
    rest_api_port: int = 0
    rest_api_enable_cors_support: bool = False
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    file_system_poll_wait_seconds: int = 1
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    num_load_threads: int = 0
    num_initial_load_threads: int = 4 * (os.cpu_count() or 1)
    allow_version_labels_for_unavailable_models: bool = False
    saved_model_tags: str = "serve"
    version: bool = False
    # Stand-in only.
    standin_self_check: bool = False


# Flags of tensorflow_model_server that are accepted and have no effect here.
IGNORED_FLAGS = {
    "port": int, "grpc_socket_path": str, "rest_api_num_threads": int,
    "rest_api_timeout_in_ms": int, "enable_batching": bool, "batching_parameters_file": str,
    "num_unload_threads": int, "flush_filesystem_caches": bool,
    "tensorflow_session_parallelism": int, "tensorflow_intra_op_parallelism": int,
    "tensorflow_inter_op_parallelism": int, "tensorflow_session_config_file": str,
    "use_alts_credentials": bool, "ssl_config_file": str, "platform_config_file": str,
    "per_process_gpu_memory_fraction": float, "grpc_channel_arguments": str,
    "grpc_max_threads": int, "enable_model_warmup": bool,
    "num_request_iterations_for_warmup": int, "monitoring_config_file": str,
    "enable_signature_method_name_check": bool, "xla_cpu_compilation_enabled": bool,
    "enable_profiler": bool, "prefer_tflite_model": bool, "num_tflite_pools": int,
    "num_tflite_interpreters_per_pool": int, "thread_pool_factory_config_file": str,
    "mixed_precision": str, "skip_initialize_tpu": bool,
    "enable_grpc_healthcheck_service": bool, "remove_unused_fields_from_bundle_metagraph": bool,
    "enable_serialization_as_tensor_content": bool, "tfrt_use_mlrt": bool,
    "force_allow_any_version_labels_for_unavailable_models": bool,
}


def _parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(f"Illegal value '{value}' for boolean flag --{name}")


def parse_flags(argv: list[str]) -> tuple[Options, list[str], list[str]]:
    """TF-style flags (``--name=value``, ``--name value``, bare ``--bool``).

    Returns the options, the ignored TF Serving flags given and the unknown flags."""
    opts = Options()
    types = {f.name: type(f.default) for f in dataclasses.fields(Options)}
    ignored: list[str] = []
    unknown: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            unknown.append(arg)
            continue
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        kind = types.get(name) or IGNORED_FLAGS.get(name)
        if kind is None:
            unknown.append(arg)
            continue
        if not eq:
            if kind is bool:
                value = "true"
            elif i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
            else:
                raise ValueError(f"Flag --{name} needs a value")
        if name in types:
            if kind is bool:
                setattr(opts, name, _parse_bool(name, value))
            elif kind is int:
                setattr(opts, name, int(value))
            else:
                setattr(opts, name, value)
        else:
            if kind is bool:
                _parse_bool(name, value)
            elif kind in (int, float):
                kind(value)
            ignored.append(f"--{name}={value}")
    return opts, ignored, unknown


# ----------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class ModelCfg:
    """What the stand-in uses of one ``ModelConfig``."""

    name: str
    base_path: str
    platform: str = "tensorflow"
    policy: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    labels: tuple[tuple[str, int], ...] = ()

    @property
    def label_map(self) -> dict[str, int]:
        return dict(self.labels)


def _protos():
    """TF Serving's own protobuf modules (pip package tensorflow-serving-api)."""
    from google.protobuf import json_format, text_format
    from tensorflow_serving.config import model_server_config_pb2

    return model_server_config_pb2, text_format, json_format


def parse_model_server_config(text: str, path: str = "models.config") -> list[ModelCfg] | None:
    """Parse a text-format ModelServerConfig with TF Serving's protobuf definitions.
    None for an empty config (TF Serving takes no action on one)."""
    pb2, text_format, _ = _protos()
    cfg = pb2.ModelServerConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as e:
        raise invalid(f"Invalid protobuf file: '{path}': {e}") from None
    which = cfg.WhichOneof("config")
    if which is None:
        return None
    if which != "model_config_list":
        raise invalid(f"{path}: {which} is not supported (only model_config_list)")
    out = []
    for m in cfg.model_config_list.config:
        platform = m.model_platform
        if m.model_type:  # deprecated ModelType enum; 1 = TENSORFLOW
            if platform:
                raise invalid(
                    "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                    f"ModelServerConfig::model_platform, model name is {m.name}")
            if m.model_type != 1:
                raise invalid(f"ModelServerConfig::model_type choice {m.model_type} not supported.")
            platform = "tensorflow"
        pol = m.model_version_policy
        choice = pol.WhichOneof("policy_choice") or "latest"
        out.append(ModelCfg(
            name=m.name,
            base_path=m.base_path,
            platform=platform,
            policy=choice,
            num_versions=max(pol.latest.num_versions, 1) if choice == "latest" else 1,
            versions=tuple(pol.specific.versions) if choice == "specific" else (),
            labels=tuple(sorted(m.version_labels.items())),
        ))
    return out


def validate_config(models: list[ModelCfg]) -> None:
    """ServerCore's checks (ValidateModelConfigList, GetPlatform, routes)."""
    seen = set()
    for m in models:
        if m.name in seen:
            raise invalid(f"Illegal to list model {m.name} multiple times in config list")
        seen.add(m.name)
        if not m.platform:
            raise invalid(
                "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                f"ModelServerConfig::model_platform, model name is {m.name}")
        if m.platform != "tensorflow":
            raise invalid(f"Model {m.name} requests unsupported platform {m.platform}")
        if not (m.base_path.startswith("/") or "://" in m.base_path):
            raise invalid(
                f"Expected model {m.name} to have an absolute path or URI; "
                f"got base_path()={m.base_path}")


_VERSION_RE = re.compile(r"\s*[+-]?\d+\s*")


def parse_version_dir(child: str) -> int | None:
    """absl::SimpleAtoi on a child of base_path: the version number, or None."""
    if not _VERSION_RE.fullmatch(child):
        return None
    v = int(child)
    return v if -(2**63) <= v < 2**63 else None


def aspired_versions(m: ModelCfg, warn=None) -> dict[int, str]:
    """Versions (-> directory) the model's policy selects on disk now.

    Raises StatusError if base_path does not exist (the whole poll then fails)."""
    if "://" in m.base_path:
        raise not_found(f"Could not find base path {m.base_path} for servable {m.name} "
                        "with error UNIMPLEMENTED: the stand-in reads local paths only")
    if not os.path.exists(m.base_path):
        raise not_found(f"Could not find base path {m.base_path} for servable {m.name} with "
                        f"error NOT_FOUND: {m.base_path} not found")
    try:
        children = sorted(os.listdir(m.base_path))
    except OSError as e:
        raise StatusError("PERMISSION_DENIED" if e.errno == 13 else "UNKNOWN",
                          f"Could not list {m.base_path}: {e}") from None
    by_version: dict[int, str] = {}
    for child in children:
        v = parse_version_dir(child)
        if v is None:
            continue
        if v in by_version and warn:
            warn(f"Duplicate version directories detected. Version {v} will be loaded from "
                 f"{child}, {by_version[v]} will be ignored.")
        by_version[v] = child
    if m.policy == "all":
        chosen = dict(by_version)
    elif m.policy == "specific":
        chosen = {v: by_version[v] for v in m.versions if v in by_version}
        for v in m.versions:
            if v not in by_version and warn:
                warn(f"Version {v} of servable {m.name}, which was requested to be served as a "
                     "'specific' version in the servable's version policy, was not found in "
                     "the file system")
        if not m.versions and warn:
            warn(f"No specific versions requested for servable {m.name}.")
    else:
        chosen = {v: by_version[v] for v in sorted(by_version, reverse=True)[: m.num_versions]}
    return {v: os.path.join(m.base_path, d) for v, d in chosen.items()}


# ----------------------------------------------------------------------------- the core

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass
class VersionState:
    state: str
    error_code: str = "OK"
    error_message: str = ""
    since: float = dataclasses.field(default_factory=time.monotonic)


def sid(name: str, version: int) -> str:
    return f"{{name: {name} version: {version}}}"


class Core:
    """Models, versions and their states: TF Serving's ServerCore + AspiredVersionsManager
    (availability-preserving policy) + ServableStateMonitor, in a few hundred lines."""

    def __init__(self, opts: Options, loader=None):
        self.opts = opts
        self.loader = loader or load_tf_servable
        self.tags = tuple(t for t in opts.saved_model_tags.split(",") if t)
        self._cv = threading.Condition(threading.RLock())
        self._config: list[ModelCfg] | None = None  # the config in effect
        self._labels: dict[str, dict[str, int]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}  # the monitor: never forgets
        self._aspired: dict[str, dict[int, str]] = {}  # model -> version -> path
        self._servables: dict[tuple[str, int], object] = {}  # AVAILABLE ones only
        self._failed: set[tuple[str, int]] = set()  # failed while aspired: not retried
        self._load_limit = max(1, opts.num_initial_load_threads)
        self._loads_running = 0
        workers = max(1, opts.num_initial_load_threads, opts.num_load_threads)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
        self._stop = threading.Event()
        self._poll_now = threading.Event()
        self._last_warning: dict[str, float] = {}

    # -- logging that does not repeat itself every second
    def _warn_throttled(self, msg: str, every: float = 60.0) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(msg, -1e9) >= every:
            self._last_warning[msg] = now
            LOG.warning(msg)

    # -- config ------------------------------------------------------------------
    @property
    def config(self) -> list[ModelCfg] | None:
        with self._cv:
            return self._config

    def apply_config(self, models: list[ModelCfg] | None, wait: bool = True) -> None:
        """ServerCore::ReloadConfig. Raises StatusError (config rejected, or models
        new to the config did not become available)."""
        if models is None:
            LOG.info("Taking no action for empty config.")
            return
        validate_config(models)
        with self._cv:
            first = self._config is None
            old_names = {m.name for m in self._config or []}
            new_labels = self._check_labels(models)
            since = time.monotonic()
            self._config = list(models)
            self._labels = new_labels
            names = {m.name for m in models}
            for gone in old_names - names:  # un-aspire deleted models now
                self._aspired[gone] = {}
            LOG.info("Adding/updating models.")
        self.poll_file_system()
        awaited = sorted(names if first else names - old_names)
        if wait and awaited:
            self.wait_until_available(awaited, since, "servable(s)" if first else "model(s)")
        self._load_limit = max(1, self.opts.num_load_threads)
        LOG.info("Finished adding/updating models")

    def _check_labels(self, models: list[ModelCfg]) -> dict[str, dict[str, int]]:
        """ServerCore::UpdateModelVersionLabelMap."""
        new_map: dict[str, dict[str, int]] = {}
        for m in models:
            states = self._states.get(m.name, {})
            for label, version in m.labels:
                allow = False
                if self.opts.allow_version_labels_for_unavailable_models:
                    existing = self._labels.get(m.name, {}).get(label)
                    allow = existing is None or existing == version
                st = states.get(version)
                if not allow and (st is None or st.state != AVAILABLE):
                    raise StatusError(
                        "FAILED_PRECONDITION",
                        f"Request to assign label to version {version} of model {m.name}, "
                        "which is not currently available for inference")
                new_map.setdefault(m.name, {})[label] = version
        return new_map

    def wait_until_available(self, names: list[str], since: float, what: str) -> None:
        """ServableStateMonitor::WaitUntilServablesReachState(Latest(name), AVAILABLE)."""
        reached: dict[str, tuple[int, VersionState]] = {}
        next_note = time.monotonic() + 10
        with self._cv:
            while not self._stop.is_set():
                for name in names:
                    if name in reached:
                        continue
                    for v, st in sorted(self._states.get(name, {}).items(), reverse=True):
                        if st.since >= since and st.state in (AVAILABLE, END):
                            reached[name] = (v, dataclasses.replace(st))
                            break
                if len(reached) == len(names):
                    break
                if time.monotonic() >= next_note:
                    waiting = [n for n in names if n not in reached]
                    LOG.info("Waiting for %s to become available: %s", what, ", ".join(waiting))
                    next_note = time.monotonic() + 30
                self._cv.wait(timeout=1.0)
        bad = [(n, v, st) for n, (v, st) in sorted(reached.items()) if st.state != AVAILABLE]
        if bad:
            parts = "".join(
                "{" + sid(n, v) + (f" due to error: {st.error_code}: {st.error_message}"
                                   if st.error_code != "OK" else "") + "}, "
                for n, v, st in bad)
            raise StatusError("UNKNOWN", f"{len(bad)} {what} did not become available: {{{parts}}}")

    # -- the file-system source --------------------------------------------------
    def poll_file_system(self) -> None:
        """FileSystemStoragePathSource: aspired versions of every configured model.
        One missing base path fails the whole poll (as in TF Serving)."""
        with self._cv:
            config = self._config
            models = list(config or [])
        found: dict[str, dict[int, str]] = {}
        try:
            for m in models:
                found[m.name] = aspired_versions(m, warn=self._warn_throttled)
                if not found[m.name]:
                    self._warn_throttled(
                        f"No versions of servable {m.name} found under base path "
                        f"{m.base_path}. Did you forget to name your leaf directory as a "
                        "number (eg. '/1/')?")
        except StatusError as e:
            self._warn_throttled("FileSystemStoragePathSource encountered a filesystem access "
                                 f"error: {e.message}")
            return
        with self._cv:
            if self._config is not config:
                return  # config changed meanwhile; the next poll sees the new one
            for name, versions in found.items():
                self._aspired[name] = versions
            self._manage()

    def run_file_system_poller(self) -> None:
        wait = self.opts.file_system_poll_wait_seconds
        while not self._stop.is_set():
            self._poll_now.wait(timeout=wait if wait > 0 else None)
            self._poll_now.clear()
            if self._stop.is_set():
                return
            try:
                self.poll_file_system()
            except Exception:  # noqa: BLE001 - keep polling whatever happens
                LOG.exception("file-system poll failed")

    def run_config_poller(self, path: str) -> None:
        """Server::PollFilesystemAndReloadConfig every --model_config_file_poll_wait_seconds."""
        while not self._stop.wait(self.opts.model_config_file_poll_wait_seconds):
            try:
                models = read_config_file(path)
            except StatusError as e:
                LOG.error("Failed to read ModelServerConfig file: %s", e.message)
                continue
            except Exception:  # noqa: BLE001 - keep polling whatever happens
                LOG.exception("Failed to read ModelServerConfig file %s", path)
                continue
            if models is None or models == self.config:
                continue  # TF Serving: "Taking no action for empty config."
            LOG.info("Config file %s changed: reloading", path)
            try:
                self.apply_config(models)
            except StatusError as e:
                LOG.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", e)
            except Exception:  # noqa: BLE001
                LOG.exception("PollFilesystemAndReloadConfig failed")

    def stop(self) -> None:
        self._stop.set()
        self._poll_now.set()
        with self._cv:
            self._cv.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the manager -------------------------------------------------------------
    def _set(self, name: str, version: int, state: str, code: str = "OK", msg: str = "") -> None:
        self._states.setdefault(name, {})[version] = VersionState(state, code, msg)
        self._cv.notify_all()

    def _manage(self) -> None:
        """AvailabilityPreservingPolicy, applied until nothing is left to do."""
        with self._cv:
            for name in sorted(set(self._aspired) | set(self._states)):
                aspired = self._aspired.get(name, {})
                states = self._states.get(name, {})
                self._failed = {(n, v) for (n, v) in self._failed if n != name or v in aspired}
                while True:
                    serving_unaspired = sorted(
                        v for v, st in states.items() if st.state == AVAILABLE and v not in aspired)
                    aspired_serving = any(
                        states.get(v) is not None and states[v].state == AVAILABLE for v in aspired)
                    if serving_unaspired and (
                            not aspired or aspired_serving or len(serving_unaspired) > 1):
                        self._unload(name, serving_unaspired[0])
                        continue
                    break
                for v in sorted(aspired, reverse=True):
                    st = states.get(v)
                    if (name, v) in self._failed:
                        continue
                    if st is None or st.state == END:
                        self._set(name, v, START)
                        self._pool.submit(self._load, name, v, aspired[v])

    def _unload(self, name: str, version: int) -> None:
        LOG.info("Unloading servable version %s", sid(name, version))
        self._set(name, version, UNLOADING)
        self._servables.pop((name, version), None)  # in-flight requests keep their reference
        self._set(name, version, END)
        LOG.info("Done unloading servable version %s", sid(name, version))

    def _still_aspired(self, name: str, version: int) -> bool:
        return version in self._aspired.get(name, {})

    def _load(self, name: str, version: int, path: str) -> None:
        with self._cv:
            while self._loads_running >= self._load_limit and not self._stop.is_set():
                self._cv.wait(timeout=1.0)
            if self._stop.is_set():
                return
            if not self._still_aspired(name, version):
                self._set(name, version, END)
                self._manage()
                return
            self._loads_running += 1
            self._set(name, version, LOADING)
        desc = f"Loading servable: {sid(name, version)}"
        LOG.info("Loading servable version %s from %s", sid(name, version), path)
        servable, error, tries = None, None, 0
        try:
            while True:
                if tries > 0:
                    LOG.info("Retrying of %s retry: %d", desc, tries)
                t0 = time.monotonic()
                try:
                    servable = self.loader(name, version, path, self.tags)
                    error = None
                except StatusError as e:
                    error = e
                except Exception as e:  # noqa: BLE001 - any failure is a load failure
                    error = StatusError("UNKNOWN", f"{type(e).__name__}: {e}")
                tries += 1
                if error is None:
                    break
                LOG.error("%s failed: %s", desc, error)
                with self._cv:
                    cancelled = not self._still_aspired(name, version)
                if cancelled:
                    LOG.info("Retrying of %s was cancelled.", desc)
                    break
                if tries >= self.opts.max_num_load_retries + 1:
                    if self.opts.max_num_load_retries > 0:
                        LOG.info("Retrying of %s exhausted max_num_retries: %d",
                                 desc, self.opts.max_num_load_retries)
                    break
                interval = self.opts.load_retry_interval_micros / 1e6
                if interval > 0 and self._stop.wait(interval):
                    return
        finally:
            with self._cv:
                self._loads_running -= 1
                self._cv.notify_all()
        with self._cv:
            if error is None:
                self._servables[(name, version)] = servable
                self._set(name, version, AVAILABLE)
                LOG.info("Successfully loaded servable version %s (%.1f s)",
                         sid(name, version), time.monotonic() - t0)
            else:
                self._failed.add((name, version))
                self._set(name, version, END, error.code, error.message)
            self._manage()

    # -- requests ----------------------------------------------------------------
    def resolve(self, name: str, version: int | None, label: str | None):
        """ServerCore::ServableRequestFromModelSpec + GetServableHandle."""
        with self._cv:
            if label is not None:
                version = self._labels.get(name, {}).get(label)
                if version is None:
                    raise invalid(f"Unrecognized servable version label: {label}")
            if version is not None:
                s = self._servables.get((name, version))
                if s is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {version})")
                return version, s
            versions = [v for (n, v) in self._servables if n == name]
            if not versions:
                raise not_found(f"Servable not found for request: Latest({name})")
            return max(versions), self._servables[(name, max(versions))]

    def model_status(self, name: str, version: int | None) -> dict:
        """GetModelStatusImpl (a label in the request is ignored there too)."""
        with self._cv:
            states = self._states.get(name, {})
            if version is not None:
                if version not in states:
                    raise not_found(f"Could not find version {version} of model {name}")
                items = [(version, states[version])]
            else:
                if not states:
                    raise not_found(f"Could not find any versions of model {name}")
                items = sorted(states.items(), reverse=True)
            return {"model_version_status": [
                {"version": str(v), "state": st.state,
                 "status": {"error_code": st.error_code, "error_message": st.error_message}}
                for v, st in items]}


def read_config_file(path: str) -> list[ModelCfg]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise not_found(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise invalid(f"Invalid protobuf file: '{path}': {e}") from None
    return parse_model_server_config(text, path)


# ----------------------------------------------------------------------------- JSON <-> tensors
# tensorflow_serving/util/json_tensor.cc, in plain Python (nested lists); TensorFlow
# turns the lists into tensors.


def _is_b64(v) -> bool:
    return isinstance(v, dict) and len(v) == 1 and "b64" in v


def _debug(v) -> str:
    s = json.dumps(v)
    return s if len(s) < 200 else s[:200] + "..."


def parse_predict_request(body: bytes, input_names_for) -> tuple[str, str, dict]:
    """-> (format 'row'|'columnar', signature_name, {input name: nested value}).

    ``input_names_for(signature_name)`` gives the signature's input names (raises
    StatusError for an unknown signature). Row format values get the batch as their
    first dimension."""
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_debug(doc)} Is not object")
    sig = doc.get("signature_name", "")
    if not isinstance(sig, str):
        raise invalid(f"JSON Value: {_debug(sig)} Expecting 'signature_name' to be a string")
    names = sorted(input_names_for(sig))
    if not names:
        raise invalid(f"Failed to get input map for signature: {sig or 'DEFAULT'}")
    has_inst, has_inputs = "instances" in doc, "inputs" in doc
    if has_inst and has_inputs:
        raise invalid(f"JSON Value: {_debug(doc)} Not formatted correctly expecting only one of "
                      "'inputs' or 'instances' keys to exist ")
    if has_inst:
        inst = doc["instances"]
        if not isinstance(inst, list):
            raise invalid(f"JSON Value: {_debug(doc)} Expecting 'instances' to be an list/array")
        if not inst:
            raise invalid(f"JSON Value: {_debug(doc)} No values in 'instances' array")
        objects = isinstance(inst[0], dict) and not _is_b64(inst[0])
        if not objects and len(names) > 1:
            raise invalid("instances is a plain list, but expecting list of objects as multiple "
                          "input tensors required as per tensorinfo_map")
        out: dict[str, list] = {n: [] for n in names} if objects else {names[0]: []}
        for i, elem in enumerate(inst):
            is_obj = isinstance(elem, dict) and not _is_b64(elem)
            if objects:
                if not is_obj:
                    raise invalid(f"Expecting object but got list at item {i} of input list")
                if set(elem) != set(names):
                    raise invalid(f"Failed to process element: {i} of 'instances' list. JSON "
                                  f"object: {_debug(elem)} keys must be equal to: "
                                  f"{','.join(names)}")
                for n in names:
                    out[n].append(elem[n])
            else:
                if is_obj:
                    raise invalid(f"Expecting value/list but got object at item {i} of input list")
                out[names[0]].append(elem)
        for n, vals in out.items():
            shapes = {_shape(v) for v in vals}
            if len(shapes) > 1:
                raise invalid(f"Failed to process element of 'instances' list for input {n}: "
                              f"the instances have different shapes {sorted(shapes)}")
        return "row", sig, out
    if has_inputs:
        val = doc["inputs"]
        if not isinstance(val, dict) or _is_b64(val):
            if len(names) > 1:
                raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                              "input tensors required as per tensorinfo_map")
            return "columnar", sig, {names[0]: val}
        out = {}
        for n in names:
            if n not in val:
                raise invalid(f"Missing named input: {n} in 'inputs' object.")
            out[n] = val[n]
        return "columnar", sig, out
    raise invalid("Missing 'inputs' or 'instances' key")


def _shape(v) -> tuple:
    shape = []
    while isinstance(v, list):
        shape.append(len(v))
        if not v:
            break
        v = v[0]
    return tuple(shape)


def format_predict_response(fmt: str, outputs: dict) -> dict:
    """``outputs``: {name: nested lists / scalar}, already JSON-ready."""
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt == "columnar":
        if len(names) == 1:
            return {"outputs": outputs[names[0]]}
        return {"outputs": {n: outputs[n] for n in names}}
    batch = -1
    for n in names:
        v = outputs[n]
        if not isinstance(v, list):
            raise invalid(f"Tensor name: {n} has no shape information ")
        if batch >= 0 and len(v) != batch:
            raise invalid(f"Tensor name: {n} has inconsistent batch size: {len(v)} "
                          f"expecting: {batch}")
        batch = len(v)
    if len(names) == 1:
        return {"predictions": outputs[names[0]]}
    return {"predictions": [{n: outputs[n][i] for n in names} for i in range(batch)]}


def decode_b64_strings(v):
    """String inputs: {"b64": ...} objects become bytes, other strings UTF-8 bytes."""
    if isinstance(v, list):
        return [decode_b64_strings(x) for x in v]
    if _is_b64(v):
        try:
            return base64.b64decode(v["b64"], validate=True)
        except (ValueError, TypeError):
            raise invalid("Unable to base64 decode") from None
    if isinstance(v, str):
        return v.encode("utf-8")
    return v


def reject_b64(v):
    if isinstance(v, list):
        for x in v:
            reject_b64(x)
    elif isinstance(v, dict):
        raise invalid(f"JSON Value: {_debug(v)} Type: Object is not of expected type: number"
                      if not _is_b64(v) else
                      "base64 ('b64') values are only valid for string (DT_STRING) inputs")


# ----------------------------------------------------------------------------- TensorFlow


class TFServable:
    """One loaded SavedModel version."""

    def __init__(self, name, version, path, obj, meta_graph):
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        self.name, self.version, self.path, self.obj = name, version, path, obj
        sigmap = get_model_metadata_pb2.SignatureDefMap()
        for k, sd in meta_graph.signature_def.items():
            sigmap.signature_def[k].CopyFrom(sd)
        self.signature_def_json = json_format.MessageToDict(
            sigmap, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        self.inputs = {k: {n: ti.dtype for n, ti in sd.inputs.items()}
                       for k, sd in meta_graph.signature_def.items()}

    def input_names(self, sig: str) -> list[str]:
        sig = sig or "serving_default"
        if sig not in self.inputs:
            raise invalid(f'Serving signature name: "{sig}" not found in signature def')
        return list(self.inputs[sig])

    def predict(self, sig: str, values: dict) -> dict:
        import tensorflow as tf

        sig = sig or "serving_default"
        self.input_names(sig)
        try:
            fn = self.obj.signatures[sig]
        except KeyError:
            raise invalid(f'Serving signature name: "{sig}" not found in signature def') from None
        tensors = {}
        for n, v in values.items():
            dtype = tf.dtypes.as_dtype(self.inputs[sig][n])
            if dtype == tf.string:
                v = decode_b64_strings(v)
            else:
                reject_b64(v)
            try:
                tensors[n] = tf.constant(v, dtype=dtype)
            except (TypeError, ValueError) as e:
                raise invalid(f"Input {n} ({dtype.name}): {e}") from None
        try:
            result = fn(**tensors)
        except tf.errors.OpError as e:
            raise StatusError(ERROR_CODES.get(e.error_code, "UNKNOWN"), e.message) from None
        except (TypeError, ValueError) as e:
            raise invalid(str(e)) from None
        return {k: tensor_to_json(k, t.numpy()) for k, t in result.items()}


def tensor_to_json(name: str, arr):
    import numpy as np

    if arr.dtype.kind in "SO" or arr.dtype == np.object_:
        as_b64 = name.endswith("_bytes")

        def conv(b):
            if not isinstance(b, bytes):
                b = str(b).encode()
            if as_b64:
                return {"b64": base64.b64encode(b).decode("ascii")}
            return b.decode("utf-8", errors="replace")
        return _map_nested(arr.tolist(), conv)
    if arr.dtype in (np.float32, np.float16):
        # TF Serving writes float32 with the fewest digits that round-trip, not the
        # float64 expansion of the float32 value.
        def f32(x):
            return float(str(np.float32(x))) if math.isfinite(x) else x
        return _map_nested(arr.tolist(), f32)
    if arr.dtype.kind == "c":
        raise invalid(f"Failed to write JSON value for tensor type: {arr.dtype}")
    return arr.tolist()


def _map_nested(v, fn):
    if isinstance(v, list):
        return [_map_nested(x, fn) for x in v]
    return fn(v)


def load_tf_servable(name: str, version: int, path: str, tags: tuple[str, ...]) -> TFServable:
    """Load one SavedModel version dir, with TF Serving-like error statuses."""
    import tensorflow as tf
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    try:
        if os.path.exists(pb):
            with open(pb, "rb") as f:
                data = f.read()
            try:
                sm.ParseFromString(data)
            except message.DecodeError:
                raise StatusError("DATA_LOSS", f"Can't parse {pb} as binary proto") from None
        elif os.path.exists(pbtxt):
            with open(pbtxt, encoding="utf-8") as f:
                try:
                    text_format.Parse(f.read(), sm)
                except text_format.ParseError:
                    raise StatusError("DATA_LOSS", f"Can't parse {pbtxt} as text proto") from None
        else:
            raise not_found(
                "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
                f"{path}. Check that the directory exists and that you have the right "
                "permissions for accessing it.")
    except OSError as e:
        raise StatusError("PERMISSION_DENIED" if e.errno == 13 else "UNKNOWN",
                          f"{e.filename}: {e.strerror}") from None
    meta = next((m for m in sm.meta_graphs if set(m.meta_info_def.tags) == set(tags)), None)
    if meta is None:
        raise not_found(
            f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. "
            "To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
            "`saved_model_cli`")
    try:
        obj = tf.saved_model.load(path, tags=list(tags))
    except tf.errors.OpError as e:
        raise StatusError(ERROR_CODES.get(e.error_code, "UNKNOWN"), e.message) from None
    return TFServable(name, version, path, obj, meta)


# ----------------------------------------------------------------------------- HTTP

PREDICT_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE)
STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE)


def parse_model_path(method: str, path: str):
    """-> (name, version, label, action) where action is predict/classify/regress,
    metadata or status; None if the path does not match (Malformed request)."""
    if method == "POST":
        m = PREDICT_RE.fullmatch(path)
        if not m:
            return None
        name, ver, label, action = m.groups()
        action = action.lower()
    elif method == "GET":
        m = STATUS_RE.fullmatch(path)
        if not m:
            return None
        name, ver, label, sub = m.groups()
        action = "metadata" if sub else "status"
    else:
        return None
    name = urllib.parse.unquote(name or "")
    label = urllib.parse.unquote(label) if label else None
    version = None
    if ver:
        version = int(ver)
        if version >= 2**63:
            raise invalid(f"Failed to convert version: {ver} to numeric.")
    return name, version, label, action


class RestApi:
    """HttpRestApiHandler: path -> (HTTP status, JSON body)."""

    def __init__(self, core: Core):
        self.core = core

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        try:
            return 200, self._dispatch(method, path, body)
        except StatusError as e:
            return e.http_status, {"error": e.message}
        except Exception as e:  # noqa: BLE001 - answer, log, keep serving
            LOG.exception("request %s %s failed", method, path)
            return 500, {"error": f"{type(e).__name__}: {e}"}

    def _dispatch(self, method: str, path: str, body: bytes) -> dict:
        parsed = parse_model_path(method, path)
        if parsed is None:
            raise invalid(f"Malformed request: {method} {path}")
        name, version, label, action = parsed
        if action in ("status", "metadata") and not name:
            raise invalid("Missing model name in request.")
        if action == "status":
            return self.core.model_status(name, version)
        if action == "metadata":
            v, s = self.core.resolve(name, version, label)
            return {"model_spec": {"name": name, "signature_name": "", "version": str(v)},
                    "metadata": {"signature_def": s.signature_def_json}}
        if action in ("classify", "regress"):
            raise StatusError("UNIMPLEMENTED", f"{action} is not implemented by this stand-in "
                              "for TensorFlow Serving (predict is)")
        v, s = self.core.resolve(name, version, label)
        fmt, sig, values = parse_predict_request(body, s.input_names)
        return format_predict_response(fmt, s.predict(sig, values))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TF-Serving-STANDIN/" + STANDIN_VERSION
    api: RestApi
    cors = False

    def _reply(self, code: int, payload: dict | None) -> None:
        data = b"" if payload is None else (json.dumps(payload, indent=1) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, GET")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path = urllib.parse.urlsplit(self.path).path
        if not re.match(r"/v1/", path, re.IGNORECASE):
            self._reply(404, {"error": f"Not found: {path} (the REST API is under /v1/)"})
            return
        code, payload = self.api.handle(method, path, body)
        self._reply(code, payload)

    def do_GET(self):  # noqa: N802
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_PUT(self):  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")

    def do_OPTIONS(self):  # noqa: N802
        if self.cors:
            self._reply(200, None)
        else:
            self._serve("OPTIONS")

    def log_message(self, fmt, *args):  # requests are not logged (nor are they by TF Serving)
        LOG.debug("%s - %s", self.address_string(), fmt % args)


def make_http_server(core: Core, port: int, host: str = "0.0.0.0", cors: bool = False):
    handler = type("BoundHandler", (Handler,), {"api": RestApi(core), "cors": cors})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


# ----------------------------------------------------------------------------- main


def self_check() -> int:
    """Used at image build time: the protobuf modules and TensorFlow import."""
    _protos()
    from tensorflow_serving.apis import get_model_metadata_pb2  # noqa: F401
    import tensorflow as tf

    cfg = parse_model_server_config(
        'model_config_list { config { name: "x" base_path: "/models/x" '
        'model_platform: "tensorflow" model_version_policy { specific { versions: 1 } } '
        'version_labels { key: "stable" value: 1 } } }')
    assert cfg[0].versions == (1,) and cfg[0].label_map == {"stable": 1}, cfg
    print(f"self-check ok: TensorFlow {tf.__version__}, config parsed by "
          "tensorflow_serving.config.model_server_config_pb2")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d: %(levelname).1s tf-serving-STANDIN] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S")
    try:
        opts, ignored, unknown = parse_flags(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        print(f"tensorflow_model_server (STAND-IN): {e}", file=sys.stderr)
        return 1
    if opts.version:
        import tensorflow as tf

        print(f"TensorFlow ModelServer: {STANDIN_VERSION} (STAND-IN, not TensorFlow Serving)\n"
              f"TensorFlow Library: {tf.__version__}")
        return 0
    if opts.standin_self_check:
        return self_check()

    LOG.warning(BANNER)
    for flag in ignored:
        LOG.info("accepted and ignored (not implemented by the stand-in): %s", flag)
    for flag in unknown:
        LOG.warning("ignoring unknown flag %s (TF Serving would refuse to start)", flag)

    try:
        if opts.model_config_file:
            models = read_config_file(opts.model_config_file)
        elif opts.model_base_path:
            LOG.info("Building single TensorFlow model file config:  model_name: %s "
                     "model_base_path: %s", opts.model_name, opts.model_base_path)
            models = [ModelCfg(name=opts.model_name, base_path=opts.model_base_path)]
        else:
            raise invalid("Both server_options.model_base_path and "
                          "server_options.model_config_file are empty!")
    except StatusError as e:
        print(f"Failed to start server. Error: {e}", flush=True)
        return 255

    import tensorflow as tf  # noqa: F401 - fail early, before anything is started

    core = Core(opts)
    threading.Thread(target=core.run_file_system_poller, name="fs-poll", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: (core.stop(), os._exit(0)))
    try:
        core.apply_config(models)
    except StatusError as e:
        LOG.error("Failed to start server. Error: %s", e)
        print(f"Failed to start server. Error: {e}", flush=True)
        core.stop()
        return 255
    if opts.model_config_file and opts.model_config_file_poll_wait_seconds > 0:
        threading.Thread(target=core.run_config_poller, args=(opts.model_config_file,),
                         name="config-poll", daemon=True).start()
    LOG.info("gRPC is NOT served by this stand-in (TF Serving would listen on --port)")
    if opts.rest_api_port <= 0:
        LOG.warning("--rest_api_port is 0: the REST API is not exported, so this stand-in "
                    "answers nothing")
        core._stop.wait()
        return 0
    server = make_http_server(core, opts.rest_api_port, cors=opts.rest_api_enable_cors_support)
    LOG.info("Exporting HTTP/REST API at:localhost:%d ...", opts.rest_api_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        core.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
