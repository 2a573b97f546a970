"""hub.secrets: generated once, mode 0600, atomically, never replaced."""

from __future__ import annotations

import multiprocessing
import os
import re
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import hub.secrets as hub_secrets
from hub.secrets import HUB_SECRETS, ensure, ensure_all, main


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(directory) -> list[str]:
    """Temporary files a writer forgot (names start with '.')."""
    return [n for n in os.listdir(directory) if n.startswith(".")]


def test_ensure_creates_a_private_file(tmp_path):
    value = ensure(str(tmp_path), "cookie_secret")
    path = tmp_path / "cookie_secret"
    assert mode(path) == 0o600
    assert path.read_text() == value + "\n"
    assert re.fullmatch(r"[0-9a-f]{64}", value)  # 32 random bytes, hex
    assert leftovers(tmp_path) == []


def test_ensure_creates_a_missing_directory_private(tmp_path):
    directory = tmp_path / "a" / "secrets"
    ensure(str(directory), "proxy_token")
    assert (directory / "proxy_token").is_file()
    assert mode(directory) & 0o077 == 0  # not readable by group or others


def test_second_call_returns_the_same_value_and_keeps_the_file(tmp_path):
    first = ensure(str(tmp_path), "proxy_token")
    before = os.stat(tmp_path / "proxy_token")
    second = ensure(str(tmp_path), "proxy_token")
    after = os.stat(tmp_path / "proxy_token")
    assert first == second
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_existing_secret_is_never_replaced(tmp_path):
    (tmp_path / "admin_password").write_text("chosen-by-the-admin\n")
    assert ensure(str(tmp_path), "admin_password") == "chosen-by-the-admin"
    assert (tmp_path / "admin_password").read_text() == "chosen-by-the-admin\n"


def test_lost_race_keeps_the_winners_value(tmp_path, monkeypatch):
    # Another process links its file between our existence check and our link:
    # we must return its value, leave its file alone and clean up our temp file.
    target = str(tmp_path / "cookie_secret")
    real_exists = os.path.exists

    def exists(path):
        if path == target:
            with open(target, "x") as f:  # the other process wins right now
                f.write("winner\n")
            os.chmod(target, 0o600)
            monkeypatch.setattr(hub_secrets.os.path, "exists", real_exists)
            return False
        return real_exists(path)

    monkeypatch.setattr(hub_secrets.os.path, "exists", exists)
    assert ensure(str(tmp_path), "cookie_secret") == "winner"
    assert (tmp_path / "cookie_secret").read_text() == "winner\n"
    assert leftovers(tmp_path) == []


def test_unknown_secret_is_refused(tmp_path):
    with pytest.raises(KeyError, match="unknown secret 'db_password'"):
        ensure(str(tmp_path), "db_password")
    assert list(tmp_path.iterdir()) == []


def test_ensure_all_creates_every_secret(tmp_path):
    ensure_all(str(tmp_path))
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(HUB_SECRETS)
    values = [(tmp_path / n).read_text().strip() for n in names]
    assert all(values) and len(set(values)) == len(values)
    assert all(mode(tmp_path / n) == 0o600 for n in names)


def test_ensure_all_keeps_existing_secrets(tmp_path):
    ensure_all(str(tmp_path))
    before = {n: (tmp_path / n).read_text() for n in HUB_SECRETS}
    ensure_all(str(tmp_path))
    assert {n: (tmp_path / n).read_text() for n in HUB_SECRETS} == before


def test_admin_password_is_long_enough_for_the_authenticator(tmp_path):
    # NativeAuthenticator is configured with minimum_password_length 8.
    assert len(ensure(str(tmp_path), "admin_password")) >= 16


def test_concurrent_threads_agree_on_one_value(tmp_path):
    n = 16
    barrier = threading.Barrier(n)

    def worker(_):
        barrier.wait()
        return ensure(str(tmp_path), "proxy_token")

    with ThreadPoolExecutor(n) as pool:
        values = set(pool.map(worker, range(n)))
    assert len(values) == 1
    assert values == {(tmp_path / "proxy_token").read_text().strip()}
    assert leftovers(tmp_path) == []


def _process_worker(directory, barrier, queue):
    barrier.wait()
    queue.put(ensure(directory, "cookie_secret"))


def test_concurrent_processes_agree_on_one_value(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_process_worker, args=(str(tmp_path), barrier, queue)) for _ in range(n)
    ]
    for p in procs:
        p.start()
    values = {queue.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(values) == 1
    assert values == {(tmp_path / "cookie_secret").read_text().strip()}
    assert leftovers(tmp_path) == []


def test_empty_secret_file_is_a_clear_error(tmp_path):
    (tmp_path / "proxy_token").write_text("\n")
    with pytest.raises(ValueError) as info:
        ensure(str(tmp_path), "proxy_token")
    message = str(info.value)
    assert str(tmp_path / "proxy_token") in message
    assert "empty" in message and "delete it" in message
    assert (tmp_path / "proxy_token").read_text() == "\n"  # not silently replaced


def test_main_creates_all_and_returns_0(tmp_path, capsys):
    assert main([str(tmp_path / "s")]) == 0
    assert sorted(os.listdir(tmp_path / "s")) == sorted(HUB_SECRETS)
    out = capsys.readouterr().out
    assert "secrets ready" in out
    # Never log the secrets themselves.
    for name in HUB_SECRETS:
        assert (tmp_path / "s" / name).read_text().strip() not in out


def test_main_uses_mlhub_secrets_dir_without_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("MLHUB_SECRETS_DIR", str(tmp_path / "env-dir"))
    monkeypatch.setattr("sys.argv", ["mlhub-secrets"])
    assert main() == 0
    assert sorted(os.listdir(tmp_path / "env-dir")) == sorted(HUB_SECRETS)


def test_main_reports_an_unwritable_directory_and_returns_1(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main([str(blocker / "secrets")]) == 1
    err = capsys.readouterr().err
    assert "cannot write secrets" in err
    assert str(blocker / "secrets") in err


def test_only_creates_just_the_named_service_secrets(tmp_path):
    assert main(["--only", "models_api_token,models_cookie_secret", str(tmp_path / "svc")]) == 0
    assert sorted(os.listdir(tmp_path / "svc")) == ["models_api_token", "models_cookie_secret"]
    assert main(["--only", "nope", str(tmp_path / "svc")]) == 2
