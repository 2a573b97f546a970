"""What a user may ask for when starting a server, and the spawn form.

A server is started with ``user_options`` = ``{"environment": KEY, "gpus": N,
"memory": "8G"}`` (all optional), from the spawn form or straight from the
REST API. Either way :func:`parse_user_options` checks them against the
configured environments and the user's quota before anything is created; the
REST API can send anything, so the form is never trusted.

Quotas hang on hub groups (group properties, editable in the admin page or
with ``PUT /hub/api/groups/NAME/properties``):

    {"gpu_quota": 2, "mem_quota": "32G"}

A user in several groups gets the largest of each; a user in none gets the
defaults from settings.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Iterable, Mapping

from .gpus.inventory import GPU
from .gpus.ledger import Ledger
from .settings import env_key, parse_size

GPU_QUOTA_KEY = "gpu_quota"
MEM_QUOTA_KEY = "mem_quota"
STANDARD_MEMORY = [2 * 1024**3 * 2**i for i in range(7)]  # 2G .. 128G


class OptionsError(ValueError):
    """A request the user can fix; the message says how."""


@dataclass(frozen=True)
class Environment:
    key: str
    label: str
    image: str


@dataclass(frozen=True)
class Quota:
    gpus: int
    mem: int


@dataclass(frozen=True)
class ServerOptions:
    environment: Environment
    gpus: int
    mem: int


slug = env_key


def fmt_bytes(n: int) -> str:
    for unit, size in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    if n >= 1024**3:
        return f"{n / 1024**3:.1f}G"
    return f"{n // 1024**2}M"


def _gpu_quota(value) -> int | None:
    """A group's gpu_quota property, or None when absent or not a count >= 0."""
    if value is None or isinstance(value, bool):
        return None
    try:
        g = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return g if g >= 0 and str(value).strip() == str(g) else None


def _mem_quota(value) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(str(value))
    except ValueError:
        return None


def quota_for(groups: Iterable[tuple[str, Mapping]], default: Quota) -> Quota:
    """The user's quota from their groups' properties (largest wins), else the default."""
    gpus = mems = None
    for _name, props in groups:
        props = props or {}
        g = _gpu_quota(props.get(GPU_QUOTA_KEY))  # each key on its own: a bad one
        m = _mem_quota(props.get(MEM_QUOTA_KEY))  # never hides the other
        if g is not None:
            gpus = g if gpus is None else max(gpus, g)
        if m is not None:
            mems = m if mems is None else max(mems, m)
    return Quota(default.gpus if gpus is None else gpus, default.mem if mems is None else mems)


def memory_choices(default_mem: int, quota_mem: int) -> list[int]:
    return sorted({m for m in STANDARD_MEMORY if m <= quota_mem} | {min(default_mem, quota_mem)})


def parse_user_options(
    raw: Mapping, environments: list[Environment], quota: Quota, default_mem: int, total_gpus: int
) -> ServerOptions:
    """Validate ``user_options``; raise OptionsError with what to change."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - {"environment", "gpus", "memory"})
    if unknown:
        raise OptionsError(
            f"Unknown server option(s): {', '.join(unknown)}. "
            "Allowed: environment, gpus, memory."
        )
    by_key = {e.key: e for e in environments}
    env_key = raw.get("environment") or environments[0].key
    if not isinstance(env_key, str) or env_key not in by_key:
        raise OptionsError(
            f"Unknown environment {env_key!r}; choose one of: {', '.join(by_key)}."
        )
    try:
        if isinstance(raw.get("gpus", 0), bool):
            raise TypeError
        gpus = int(raw.get("gpus", 0))
        if str(raw.get("gpus", 0)).strip() != str(gpus):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise OptionsError(f"gpus must be a whole number, got {raw.get('gpus')!r}.") from None
    if gpus < 0:
        raise OptionsError("gpus cannot be negative.")
    if gpus > quota.gpus:
        raise OptionsError(
            f"You asked for {gpus} GPU(s); your quota is {quota.gpus}. "
            "Ask an admin to raise your group's gpu_quota."
        )
    if gpus > total_gpus:
        raise OptionsError(
            f"You asked for {gpus} GPU(s); this host has {total_gpus}."
            + (" Start a CPU-only server (0 GPUs)." if total_gpus == 0 else "")
        )
    if raw.get("memory") in (None, ""):
        mem = min(default_mem, quota.mem)
    else:
        try:
            mem = parse_size(str(raw["memory"]))
        except ValueError as e:
            raise OptionsError(f"memory: expected {e}.") from None
    if mem > quota.mem:
        raise OptionsError(
            f"You asked for {fmt_bytes(mem)} of memory; your quota is {fmt_bytes(quota.mem)}."
        )
    return ServerOptions(by_key[env_key], gpus, mem)


def options_from_form(formdata: Mapping[str, list]) -> dict:
    """The spawn form's fields -> user_options (validated later, like the REST API's)."""
    out = {}
    for key in ("environment", "gpus", "memory"):
        values = formdata.get(key)
        if values:
            out[key] = values[0]
    return out


def render_form(
    environments: list[Environment],
    inventory: list[GPU],
    ledger: Ledger,
    quota: Quota,
    default_mem: int,
) -> str:
    """HTML of the spawn form, with live free GPU counts and who holds the rest."""
    e = html.escape
    env_opts = "".join(
        f'<option value="{e(env.key)}">{e(env.label)}</option>' for env in environments
    )
    free = ledger.free_ids()
    total = len(inventory)
    max_gpus = min(quota.gpus, total)
    gpu_opts = ['<option value="0" selected>None (CPU only)</option>']
    for n in range(1, max_gpus + 1):
        note = "" if n <= len(free) else f" (only {len(free)} free now)"
        gpu_opts.append(f'<option value="{n}">{n} GPU{"s" if n > 1 else ""}{e(note)}</option>')
    holders = ledger.holders()
    rows = []
    by_id = {g.id: g for g in inventory}
    for gid in ledger.gpu_ids:
        hs = holders.get(gid) or []
        who = ", ".join(h.user + (f"/{h.server}" if h.server else "") for h in hs) or "free"
        rows.append(f"<li>{e(by_id[gid].label())}: {e(who)}</li>")
    gpu_block = (
        f"""
  <div class="mb-3">
    <label for="mlhub-gpus" class="form-label">GPUs
      <span class="badge text-bg-{'success' if free else 'secondary'}" id="mlhub-free-gpus">{len(free)} of {total} free</span>
    </label>
    <select class="form-select" id="mlhub-gpus" name="gpus">{''.join(gpu_opts)}</select>
    <div class="form-text">Your quota: {quota.gpus} GPU(s). A GPU is yours alone while your server runs.</div>
    <ul class="small text-muted mt-1" id="mlhub-gpu-holders">{''.join(rows)}</ul>
  </div>"""
        if total
        else """
  <div class="mb-3"><p class="form-text" id="mlhub-free-gpus">This host has no GPUs: servers run on CPUs.</p>
    <input type="hidden" name="gpus" value="0"></div>"""
    )
    mem_default = min(default_mem, quota.mem)
    mem_opts = "".join(
        f'<option value="{fmt_bytes(m)}"{" selected" if m == mem_default else ""}>{fmt_bytes(m)}B</option>'
        for m in memory_choices(default_mem, quota.mem)
    )
    return f"""
<div id="mlhub-spawn-form">
  <div class="mb-3">
    <label for="mlhub-environment" class="form-label">Environment</label>
    <select class="form-select" id="mlhub-environment" name="environment">{env_opts}</select>
  </div>{gpu_block}
  <div class="mb-3">
    <label for="mlhub-memory" class="form-label">Memory</label>
    <select class="form-select" id="mlhub-memory" name="memory">{mem_opts}</select>
    <div class="form-text">Your quota: {fmt_bytes(quota.mem)}B.</div>
  </div>
</div>"""
