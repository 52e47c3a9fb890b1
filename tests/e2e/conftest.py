"""Fixtures for end-to-end tests: the real Gradio app served on a free local port.

``serve_app(services)`` serves ``build_app`` and the /v1 API in this process (a uvicorn
thread) and gives its URL. API tests use services over a tiny random model and the hashing
embedder (seconds); the browser test uses the real bundled model and embedder.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from assistant.services import Services
from assistant.settings import Settings
from tests.retrieval_helpers import HashEmbedder
from tests.tiny_models import save_tiny_adapter, tiny_llama, tiny_loaded, tiny_tokenizer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
DEMO_DOC = """# Reservoir rules

## Opening hours

The Kestle Top reservoir car park opens at 07:30 and closes at dusk.

## Fishing

Fishing permits cost 12 pounds a day and are sold at the lodge.
"""
DEMO_QA = [{"question": "When does the Kestle Top car park open?", "answer": "07:30"},
           {"question": "How much is a fishing permit?", "answer": "12 pounds"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_app(services: Services):
    """Prepare, build and serve the app with its /v1 API without blocking; returns
    (server, url); ``server.close()`` stops it."""
    from assistant.api.app import create_api
    from assistant.server import launch, prepare
    from assistant.ui.app import build_app

    prepare(services)
    demo = build_app(services)
    server = launch(demo, services.settings, host="127.0.0.1", port=free_port(),
                    api=create_api(services), block=False)
    return server, server.url


@pytest.fixture(scope="session")
def e2e_tiny_dir(tmp_path_factory):
    """A saved tiny Llama with one adapter, 'alpha', that knows about reservoirs."""
    root = tmp_path_factory.mktemp("e2e-tiny")
    base = root / "base"
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapters = root / "adapters"
    save_tiny_adapter(base, adapters, "alpha", seed=1)
    (adapters / "alpha" / "profile.json").write_text(json.dumps(
        {"name": "alpha", "description": "reservoir car park fishing permits",
         "examples": ["when does the car park open", "how much is a fishing permit"]}))
    return root


def demo_knowledge(folder: Path) -> Path:
    """A one-document demo domain with a qa/test.jsonl, like knowledge/harrowgate-water."""
    docs = folder / "demo-water" / "docs"
    docs.mkdir(parents=True)
    (docs / "reservoir-rules.md").write_text(DEMO_DOC)
    qa = folder / "demo-water" / "qa"
    qa.mkdir()
    (qa / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in DEMO_QA))
    return folder


@pytest.fixture(scope="module")
def tiny_app_factory(e2e_tiny_dir, tmp_path_factory):
    """Start apps over the tiny model with extra settings; all closed at module end."""
    started = []

    def start(**overrides):
        root = tmp_path_factory.mktemp("e2e-app")
        adapters = root / "adapters"
        shutil.copytree(e2e_tiny_dir / "adapters", adapters)
        settings = Settings(
            data_dir=root / "data", adapters_dir=adapters,
            knowledge_dir=demo_knowledge(root / "knowledge"),
            base_model=overrides.pop("base_model", "tiny-llama"),
            max_new_tokens=8, repetition_penalty=1.0, chunk_size=300, chunk_overlap=30,
            score_threshold=0.0, router_retrieval_threshold=0.3,
            router_adapter_threshold=0.5,
            # the tiny model stands in for the bundled reader: its answer settings (profile)
            profile=overrides.pop("profile", "small-reader"), **overrides,
        )
        services = Services(settings, base=tiny_loaded(e2e_tiny_dir / "base"),
                            embedder=HashEmbedder())
        demo, url = serve_app(services)
        started.append(demo)
        return services, url

    yield start
    for demo in started:
        demo.close()
