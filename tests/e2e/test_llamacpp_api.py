"""The app on the llama.cpp backend, called through Strata's /v1 API by the openai client.

The bundled model's GGUF answers in llama.cpp, the committed demo adapter converted to a
llama.cpp LoRA; the server runs on 127.0.0.1 on a free port and is stopped at the end,
also when a test fails. The hashing embedder keeps retrieval fast; it is not under test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.services import Services
from assistant.settings import Settings
from tests.e2e.conftest import demo_knowledge, serve_app
from tests.retrieval_helpers import HashEmbedder

pytestmark = pytest.mark.e2e
openai = pytest.importorskip("openai")
DEMO = Path(__file__).resolve().parents[2] / "adapters" / "harrowgate-water"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from assistant.models.base_models import load_base_model

    root = tmp_path_factory.mktemp("llamacpp-app")
    shutil.copytree(DEMO, root / "adapters" / "harrowgate-water")
    settings = Settings(data_dir=root / "data", adapters_dir=root / "adapters",
                        knowledge_dir=demo_knowledge(root / "knowledge"), backend="llamacpp",
                        max_new_tokens=32)
    base = load_base_model("smollm2-135m", Settings().cache_dir, "nf4")
    services = Services(settings, base=base, embedder=HashEmbedder())
    server, url = serve_app(services)
    yield services, url + "/v1"
    server.close()


def test_adapter_mode_answers_through_llama_cpp_and_the_ledger_names_it(served):
    services, url = served
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
    assert "harrowgate-water" in {m.id for m in client.models.list()}
    reply = client.chat.completions.create(
        model="harrowgate-water",
        messages=[{"role": "user", "content": "When was the cooperative founded?"}])
    assert "1987" in reply.choices[0].message.content
    assert reply.model_extra["strata"]["mode"] == "adapter"
    streamed = "".join(
        chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
            model="strata-base", stream=True,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        if chunk.choices)
    assert "Paris" in streamed
    rows = services.ledger.rows()
    assert [r["backend"] for r in rows[-2:]] == ["llamacpp", "llamacpp"]
    assert rows[-2]["adapter"] == "harrowgate-water"
