"""Local secrets in FRAUD_HOME/secrets: created once and atomically (two first starts racing get one key), the file
0600 in a 0700 folder, and an existing file that others may read refused with the fix in the message."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from fraud.core.settings import Settings
from fraud.core.storage import UnsafeSecretFile
from fraud.serving.api import api_token

WORKERS = 4
ROUNDS = 150


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _racer(homes, barrier, results) -> None:
    """One first start per round: wait for the others, then ask for the card-token key of that round's home."""
    for home in iter(homes.get, None):
        barrier.wait()
        try:
            results.put((home, Settings(mode="local", home=home).token_key().decode()))
        except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
            results.put((home, f"error: {error!r}"))


def test_first_starts_racing_get_one_key(tmp_path):
    context = multiprocessing.get_context("fork")  # workers start in milliseconds; each round is a fresh home
    homes, results = [context.Queue() for _ in range(WORKERS)], context.Queue()
    barrier = context.Barrier(WORKERS)
    workers = [context.Process(target=_racer, args=(homes[i], barrier, results)) for i in range(WORKERS)]
    for worker in workers:
        worker.start()
    try:
        differing = []
        for round_ in range(ROUNDS):
            home = str(tmp_path / f"home-{round_}")
            for queue in homes:
                queue.put(home)
            keys = {results.get(timeout=30)[1] for _ in range(WORKERS)}
            stored = (Path(home) / "secrets" / "card_token_key").read_text().strip()
            if keys != {stored}:
                differing.append((round_, keys, stored))
        assert differing == [], f"{len(differing)} of {ROUNDS} rounds: {differing[:3]}"
    finally:
        for queue in homes:
            queue.put(None)
        for worker in workers:
            worker.join(timeout=30)
    leftovers = [p.name for p in tmp_path.glob("home-*/secrets/*") if p.name != "card_token_key"]
    assert leftovers == []  # no temporary file left behind


def test_a_new_key_is_0600_in_a_0700_folder(tmp_path):
    settings = Settings(mode="local", home=tmp_path / "home")
    key = settings.token_key()
    secrets_dir = tmp_path / "home" / "secrets"
    assert _mode(secrets_dir / "card_token_key") == 0o600 and _mode(secrets_dir) == 0o700
    assert _mode(tmp_path / "home") == 0o700  # FRAUD_HOME made by the platform is private too
    assert settings.token_key() == key and len(key) == 64  # read back, not made again
    settings.review_signing_key("session")
    _, path = api_token(settings)
    assert _mode(secrets_dir / "review_key") == 0o600 and _mode(path) == 0o600


@pytest.mark.parametrize("name", ["card_token_key", "review_key", "api_token"])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o602], ids=oct)
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path, name, mode):
    settings = Settings(mode="local", home=tmp_path)
    path = tmp_path / "secrets" / name
    path.parent.mkdir()
    path.write_text("0" * 64)
    path.chmod(mode)
    read = {
        "card_token_key": settings.token_key,
        "review_key": lambda: settings.review_signing_key("session"),
        "api_token": lambda: api_token(settings),
    }[name]
    with pytest.raises(UnsafeSecretFile) as refused:
        read()
    assert str(path) in str(refused.value) and f"chmod 600 {path}" in str(refused.value)
    path.chmod(0o600)
    read()  # the fix the message names works
