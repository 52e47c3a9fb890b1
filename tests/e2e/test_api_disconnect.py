"""A client that leaves a streamed completion ends its answer in every mode (issue 28,
item 7): also in prompt mode, whose answer the API holds back until the answer check has
read it. A real uvicorn server on a free local port and a real HTTP client; the pipeline
is the API tests' fake, whose answer comes one piece at a time, slowly enough to leave.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest

from assistant.api.app import create_api
from assistant.server import Server
from assistant.settings import Settings
from tests.e2e.conftest import free_port
from tests.unit.test_api import FakePipeline, _parent

pytestmark = pytest.mark.e2e


class Slow:
    """``n`` pieces, one every ``delay`` seconds, counted as they are made."""

    def __init__(self, n: int, delay: float) -> None:
        self.n, self.delay, self.made = n, delay, 0

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.delay)
            self.made += 1
            yield f"w{i} "


@pytest.mark.parametrize("model", ["strata-prompt", "strata-base"])
def test_leaving_after_the_first_chunk_cancels_the_answer(tmp_path, model):
    pipeline = FakePipeline()  # its answer check is on: prompt mode is held back
    slow = pipeline.script["pieces"] = Slow(300, 0.02)  # 6 s in all
    services = SimpleNamespace(settings=Settings(data_dir=tmp_path), pipeline=pipeline)
    server = Server(_parent(create_api(services)), "127.0.0.1", free_port()).start()
    try:
        body = {"model": model, "stream": True,
                "messages": [{"role": "user", "content": "What is the fee?"}]}
        with httpx.stream("POST", f"{server.api_url}/chat/completions", json=body,
                          timeout=30) as response:
            assert response.status_code == 200
            assert next(response.iter_lines()).startswith("data: ")  # the role chunk
        deadline = time.monotonic() + 5
        while not pipeline.cancelled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipeline.cancelled == 1, "the answer ran on after its reader left"
        assert slow.made < slow.n / 2
    finally:
        server.close()
