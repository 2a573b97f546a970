"""Break-it: a REST client's user_options (or an admin's group property) with a
long digit string makes parse_size overflow (float -> inf -> int), which escapes
as OverflowError instead of OptionsError: the spawn fails with an unhandled
error (500), and a group with such a mem_quota breaks every member's spawn form
and spawn instead of being ignored like other bad property values."""

from __future__ import annotations

import pytest

from hub.options import Environment, OptionsError, Quota, parse_user_options, quota_for

ENVS = [Environment("tf", "TF", "img")]
G = 1024**3


@pytest.mark.parametrize("memory", ["9" * 400, 10**400])
def test_huge_memory_is_an_options_error(memory):
    with pytest.raises(OptionsError):
        parse_user_options({"memory": memory}, ENVS, Quota(1, 8 * G), 4 * G, 2)


def test_huge_group_mem_quota_is_ignored_like_other_bad_values():
    assert quota_for([("g", {"mem_quota": "9" * 400})], Quota(1, 8 * G)) == Quota(1, 8 * G)
