"""Uploads leave Gradio's cache when refused, and what a killed server left goes when the
next one starts (issue 28, item 8): a real served app, real logins, plain HTTP."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from assistant.ui.files import upload_folder
from tests.e2e.test_file_privacy import Browser, CallError, file_data

pytestmark = pytest.mark.e2e

PAIRS = "".join(f'{{"question": "Who sells permits? ({n})", "answer": "The lodge"}}\n'
                for n in range(2))


@pytest.fixture(scope="module")
def logins(tiny_app_factory):
    return tiny_app_factory(auth="alice:alicepw,bob:bobpw", admins="alice")


@pytest.mark.parametrize("user, password, why", [
    ("bob", "bobpw", "only admins may train adapters"),  # refused: not an admin
    ("alice", "alicepw", "at least 8 are needed"),  # refused: too few pairs
])
def test_a_refused_training_upload_leaves_the_cache(logins, user, password, why):
    visitor = Browser(logins[1], user, password)
    try:
        path = visitor.upload("permits.jsonl", PAIRS.encode())
        assert Path(path).is_file()
        with pytest.raises(CallError, match=why):
            visitor.call("train_adapter", "permits", file_data(path), 1, False)
        assert not Path(path).exists()
    finally:
        visitor.close()


def test_uploads_a_killed_server_left_go_when_the_next_one_starts(tiny_app_factory):
    cache = upload_folder()
    stale = cache / secrets.token_hex(8) / "cut-off.docx"  # as Gradio names an upload
    fresh = cache / secrets.token_hex(8) / "pending.md"  # another app's, in flight
    for file in (stale, fresh):
        file.parent.mkdir(parents=True)
        file.write_bytes(b"an upload whose handler never ran")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    try:
        tiny_app_factory()
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not stale.exists() and not stale.parent.exists()
        assert fresh.is_file()
    finally:
        shutil.rmtree(stale.parent, ignore_errors=True)
        shutil.rmtree(fresh.parent, ignore_errors=True)
