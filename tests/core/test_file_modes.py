"""What the platform writes under FRAUD_HOME is its owner's only: a planted write per place (object store, raw zone
included; outbox mail; the demo's log; the `fraud evaluate` home; the Dagster instance's folder) lands 0600 in
0700 folders, FRAUD_HOME itself 0700, whatever the umask (here 0: everything would be world-writable otherwise)."""

from __future__ import annotations

import os
import stat
from email.message import EmailMessage
from pathlib import Path

import pytest

from fraud.core.settings import Settings
from fraud.core.storage import object_store

CARD = "4111111111111111"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def open_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def _private_tree(home: Path, written: Path) -> None:
    """`written` is 0600 and every folder from FRAUD_HOME down to it 0700."""
    assert _mode(written) == 0o600, f"{written}: {_mode(written):04o}"
    folder = written.parent
    while True:
        assert _mode(folder) == 0o700, f"{folder}: {_mode(folder):04o}"
        if folder == home:
            break
        folder = folder.parent


@pytest.mark.parametrize("bucket", ["fraud-raw", "fraud-processed", "fraud-models", "fraud-reports"])
def test_object_store_files_0600_folders_0700(tmp_path, open_umask, bucket):
    home = tmp_path / "home"
    settings = Settings(mode="local", home=home)
    store = object_store(settings, getattr(settings, bucket.removeprefix("fraud-") + "_bucket"))
    store.put_bytes("quarantine/dt=2026-11-01/batch.json", f'{{"cc_num": "{CARD}"}}'.encode())
    _private_tree(home, settings.store_root / bucket / "quarantine" / "dt=2026-11-01" / "batch.json")


def test_an_existing_bucket_folder_open_to_others_is_closed(tmp_path, open_umask):
    settings = Settings(mode="local", home=tmp_path)
    (settings.store_root / settings.raw_bucket).mkdir(parents=True, mode=0o755)
    object_store(settings, settings.raw_bucket)
    assert _mode(settings.store_root / settings.raw_bucket) == 0o700


def test_outbox_mail_0600(tmp_path, open_umask):
    from fraud.outreach.mailers import mailer_for

    home = tmp_path / "home"
    settings = Settings(mode="local", home=home, mail_channel="outbox")
    message = EmailMessage()
    message["X-Fraud-Alert"], message["Message-ID"] = "alert-1", "<alert-1@example.com>"
    message.set_content(f"card ending {CARD[-4:]}")
    mailer_for(settings).send(message)
    _private_tree(home, settings.outbox_dir / "alert-1.eml")


def test_demo_log_0600(tmp_path, open_umask):
    from fraud.app.demo import output_to

    home = tmp_path / "home"
    log = home / "logs" / "demo-test.log"
    with output_to(log) as terminal:
        os.write(1, b"a library's line\n")
        terminal.flush()
    assert b"a library's line" in log.read_bytes()
    _private_tree(home, log)


def test_evaluate_home_and_what_it_writes_are_private(open_umask):
    import shutil

    from fraud.app.evaluate import evaluation_home, throwaway_settings

    home = evaluation_home()
    try:
        settings = throwaway_settings(home, Settings())
        object_store(settings, settings.raw_bucket).put_bytes("transactions/b.jsonl", CARD.encode())
        _private_tree(home, settings.store_root / settings.raw_bucket / "transactions" / "b.jsonl")
    finally:
        shutil.rmtree(home)
