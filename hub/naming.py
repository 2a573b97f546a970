"""Docker-safe names for users and servers.

Docker container and volume names allow ``[a-zA-Z0-9][a-zA-Z0-9_.-]``. Hub
usernames can hold anything (``Jane.Doe@example.org``, ``Zoë``), so they are
escaped: letters ``a-z`` and digits stay, every other character becomes ``-``
plus the hex of its UTF-8 bytes (``.`` -> ``-2e``, ``@`` -> ``-40``, ``ë`` ->
``-c3-ab``, ``-`` -> ``-2d``, capitals too, ``A`` -> ``-41``). Because ``-``
itself is always escaped the mapping is one-to-one: two users never share a
container or a volume.

Names longer than ``max_length`` are cut and end in ``_`` plus 10 hex digits
of the SHA-256 of the original (``_`` never occurs otherwise), so they stay
unique and short (the hub reaches containers by IP, so names need not be DNS
labels; they only have to be valid Docker names).
"""

from __future__ import annotations

import hashlib
import string

SAFE = frozenset(string.ascii_lowercase + string.digits)
DEFAULT_MAX_LENGTH = 40


def safe_name(raw: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Escape ``raw`` into a Docker-safe, injective name of at most ``max_length``."""
    if max_length < 16:
        raise ValueError("max_length must be at least 16 (room for a hash suffix)")
    out = []
    for ch in raw:
        if ch in SAFE:
            out.append(ch)
        else:
            out.extend(f"-{b:02x}" for b in ch.encode("utf-8"))
    escaped = "".join(out)
    if len(escaped) <= max_length:
        return escaped
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:10]
    return escaped[: max_length - len(digest) - 1] + "_" + digest
