"""hub.naming.safe_name: Docker-safe, injective, bounded, and stable across versions
(a changed name would orphan users' home volumes)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.naming import DEFAULT_MAX_LENGTH, safe_name

# Docker's rule for container and volume names.
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
HASHED = re.compile(r"[a-z0-9-]*_[0-9a-f]{10}")

EXAMPLES = [
    ("alice", "alice"),
    ("bob42", "bob42"),
    ("Alice", "-41lice"),
    ("jane.doe", "jane-2edoe"),
    ("jane.doe@example.org", "jane-2edoe-40example-2eorg"),
    ("a@b", "a-40b"),
    ("zoë", "zo-c3-ab"),
    ("日本", "-e6-97-a5-e6-9c-ac"),
    ("-", "-2d"),
    ("_", "-5f"),
    ("a-2d", "a-2d2d"),
    ("a b", "a-20b"),
    ("{username}", "-7busername-7d"),
    ("", ""),
]


@pytest.mark.parametrize(("raw", "expected"), EXAMPLES)
def test_examples(raw, expected):
    assert safe_name(raw) == expected


def test_capitals_are_escaped_differently_from_lowercase():
    assert safe_name("Alice") != safe_name("alice")
    assert safe_name("ALICE") != safe_name("alice")


def test_escape_character_itself_is_escaped_so_names_cannot_collide():
    # "a-2e" (literal) and "a." must not share a container.
    assert safe_name("a-2e") != safe_name("a.")
    assert safe_name("a_") != safe_name("a-5f")


def test_long_name_is_truncated_with_a_hash():
    raw = "a-very-long-user-name-from-an-identity-provider-that-goes-on@example.org"
    assert len(raw) > 60
    name = safe_name(raw)
    assert len(name) == DEFAULT_MAX_LENGTH
    assert HASHED.fullmatch(name)
    # Two long names sharing the kept prefix still differ (by the hash).
    other = raw.replace("example.org", "example.com")
    assert safe_name(other) != name
    assert safe_name(other)[:29] == name[:29]


# Stability: these exact values name existing containers and home volumes; a
# change to the escaping or to the hash would lose users' data on upgrade.
STABLE = [
    ("x" * 80, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxx_d929cdeea7"),
    ("Jane.Doe@example.org", "-4aane-2e-44oe-40example-2eorg"),
]


@pytest.mark.parametrize(("raw", "expected"), STABLE)
def test_names_are_stable_across_versions(raw, expected):
    assert safe_name(raw) == expected


def test_name_of_exactly_max_length_is_not_hashed():
    raw = "a" * DEFAULT_MAX_LENGTH
    assert safe_name(raw) == raw
    assert "_" in safe_name(raw + "a")


def test_truncation_counts_escaped_length_not_raw_length():
    raw = "." * 20  # 20 characters, 60 once escaped
    name = safe_name(raw)
    assert len(name) == DEFAULT_MAX_LENGTH
    assert HASHED.fullmatch(name)


@pytest.mark.parametrize("raw", [r for r, _ in EXAMPLES] + ["x" * 100, "Ω" * 30])
def test_examples_are_valid_docker_names_after_the_prefix(raw):
    name = safe_name(raw)
    assert len(name) <= DEFAULT_MAX_LENGTH
    assert DOCKER_NAME.fullmatch("mlhub-nb-" + name)
    assert DOCKER_NAME.fullmatch("mlhub-home-" + name)


# ---------------------------------------------------------------- properties

any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_text, unique=True, max_size=30))
def test_injective(names):
    escaped = [safe_name(n) for n in names]
    assert len(set(escaped)) == len(names)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_text, unique=True, max_size=30), st.integers(min_value=16, max_value=60))
def test_injective_with_truncation(names, max_length):
    # Short limits force most names through the truncate-and-hash path.
    escaped = [safe_name(n, max_length) for n in names]
    assert len(set(escaped)) == len(names)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_deterministic(raw):
    assert safe_name(raw) == safe_name(raw)
    assert safe_name(raw) == safe_name("".join(list(raw)))  # an equal copy


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=16, max_value=128))
def test_length_bound_and_docker_charset(raw, max_length):
    name = safe_name(raw, max_length)
    assert len(name) <= max_length
    assert re.fullmatch(r"[a-z0-9_-]*", name)
    assert DOCKER_NAME.fullmatch("mlhub-nb-" + name)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_unhashed_names_contain_no_underscore_and_no_double_dash(raw):
    # '_' marks a hashed name only; '--' never occurs, so it can separate the
    # user from the server in "{prefix}-{user}--{server}".
    assert "_" not in safe_name(raw, max_length=10**9)
    name = safe_name(raw)
    assert "--" not in name
    assert not name.endswith("-")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(any_text, any_text.filter(bool)), unique=True, max_size=20))
def test_user_and_server_pairs_give_distinct_container_names(pairs):
    # DockerSpawner's named-server template: "{prefix}-{username}--{servername}".
    names = [f"mlhub-nb-{safe_name(u)}--{safe_name(s)}" for u, s in pairs]
    assert len(set(names)) == len(pairs)
    # ...and none of them equals a default server's name.
    defaults = {f"mlhub-nb-{safe_name(u)}" for u, _ in pairs}
    assert not defaults & set(names)


@pytest.mark.parametrize("max_length", [0, 5, 15])
def test_too_small_max_length_is_refused(max_length):
    with pytest.raises(ValueError, match="at least 16"):
        safe_name("a" * 100, max_length)
