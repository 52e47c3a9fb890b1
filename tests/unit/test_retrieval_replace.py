"""A changed file's replace is atomic as search sees it, and a crash mid-replace is
finished or rolled back when the store next opens: a document never has two versions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from assistant.retrieval import generations as gen
from assistant.retrieval.store import KnowledgeStore

ROOT = Path(__file__).resolve().parents[2]
OLD = "\n\n".join(f"Paragraph {i}: the sluice gate opens at dawn." for i in range(40))
NEW = "\n\n".join(f"Section {i}: beehives are checked every Sunday." for i in range(40))


class Crash(BaseException):
    """Like a kill: no ``except Exception`` clean-up runs."""


def _crash_on(store, monkeypatch, method: str, call: int = 1) -> None:
    real, calls = getattr(store.collection, method), []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Crash(method)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "_max_batch", lambda: 5)
    monkeypatch.setattr(store.collection, method, dying)


def _texts(store, query: str) -> list[str]:
    return [h.text for h in store.search(query, k=200, score_threshold=0.0)]


def _versions(store, name: str) -> set[str]:
    """Which versions of the file search finds: 'old', 'new' or both."""
    texts = _texts(store, "sluice gate dawn beehives Sunday")
    return {"old" for t in texts if "sluice" in t} | {"new" for t in texts if "beehives" in t}


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "gates.txt"
    path.write_text(OLD)
    return path


def test_an_interrupted_replace_leaves_the_old_version_whole(
    knowledge_ingestor, knowledge_store, knowledge_settings, fake_embedder, doc, monkeypatch
):
    first = knowledge_ingestor.ingest([doc])[0]
    doc.write_text(NEW)
    _crash_on(knowledge_store, monkeypatch, "add", call=2)  # one batch of the new one is in
    with pytest.raises(Crash):
        knowledge_ingestor.ingest([doc])
    assert knowledge_store.document("gates.txt").chunks == first.chunks
    assert _versions(knowledge_store, "gates.txt") == {"old"}
    assert len([t for t in _texts(knowledge_store, "sluice gate") if "sluice" in t]) == first.chunks

    reopened = KnowledgeStore(knowledge_settings, fake_embedder)  # the restart
    assert reopened.count() == first.chunks and _versions(reopened, "gates.txt") == {"old"}


@pytest.mark.parametrize("method", ["delete", "update"])  # before / after the old chunks go
def test_a_replace_that_died_in_its_commit_is_finished_on_restart(
    knowledge_ingestor, knowledge_store, knowledge_settings, fake_embedder, doc, monkeypatch,
    method,
):
    knowledge_ingestor.ingest([doc])
    doc.write_text(NEW)
    _crash_on(knowledge_store, monkeypatch, method)
    with pytest.raises(Crash):
        knowledge_ingestor.ingest([doc])
    assert "new" not in _versions(knowledge_store, "gates.txt")  # never half of the new one

    reopened = KnowledgeStore(knowledge_settings, fake_embedder)
    info = reopened.document("gates.txt")
    assert _versions(reopened, "gates.txt") == {"new"} and reopened.count() == info.chunks
    assert reopened.recover() == 0  # nothing left to do


def test_searches_during_a_replace_see_one_whole_version(
    knowledge_ingestor, knowledge_store, doc, monkeypatch
):
    assert knowledge_ingestor.ingest([doc])[0].status == "ingested"
    doc.write_text(NEW)
    real_add = knowledge_store.collection.add
    started = threading.Event()

    def slow_add(**kwargs):
        started.set()
        threading.Event().wait(0.05)
        return real_add(**kwargs)

    monkeypatch.setattr(knowledge_store, "_max_batch", lambda: 3)
    monkeypatch.setattr(knowledge_store.collection, "add", slow_add)
    writer = threading.Thread(target=knowledge_ingestor.ingest, args=([doc],))
    writer.start()
    started.wait(5)
    seen = []
    while writer.is_alive():
        seen.append(frozenset(_versions(knowledge_store, "gates.txt")))
        assert knowledge_store.document("gates.txt") is not None  # never gone in between
    writer.join()
    assert set(seen) <= {frozenset({"old"}), frozenset({"new"})}
    assert frozenset({"old"}) in seen and _versions(knowledge_store, "gates.txt") == {"new"}


def test_a_live_writers_pending_chunks_are_left_alone(knowledge_store, knowledge_settings,
                                                      fake_embedder):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for name, pid in (("live.md", live.pid), ("dead.md", _dead_pid())):
            marks = gen.pending_marks(gen.new_generation(), 2, "add")
            marks[gen.WRITER] = f"{marks[gen.WRITER].rpartition(':')[0]}:{pid}"
            knowledge_store.collection.add(
                ids=[f"{name}-0"], embeddings=[fake_embedder.embed_query(name)],
                documents=[name], metadatas=[{"source": name, **marks}],
            )  # one of its two chunks: incomplete
        reopened = KnowledgeStore(knowledge_settings, fake_embedder)
        assert reopened.collection.get(ids=["live.md-0"])["ids"] == ["live.md-0"]
        assert reopened.collection.get(ids=["dead.md-0"])["ids"] == []
        assert reopened.list_documents() == []  # pending chunks are never listed
    finally:
        live.kill()
        live.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


KILLED_MID_REPLACE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from assistant.retrieval.ingest import Ingestor
    from assistant.retrieval.store import KnowledgeStore
    from assistant.settings import Settings
    from tests.retrieval_helpers import HashEmbedder

    data, doc = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings(data_dir=data, chunk_size=300, chunk_overlap=30)
    store = KnowledgeStore(settings, HashEmbedder())
    ingestor = Ingestor(store, settings)
    assert ingestor.ingest([doc])[0].status == "ingested"
    doc.write_text(sys.argv[3])
    real, calls = store.collection.add, []

    def add(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(**kwargs)

    store._max_batch = lambda: 5
    store.collection.add = add
    ingestor.ingest([doc])
    """
)


def test_kill_9_during_a_replace_leaves_exactly_one_version(tmp_path, fake_embedder, doc):
    from assistant.settings import Settings

    data = tmp_path / "killed-data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MID_REPLACE, str(data), str(doc), NEW],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    store = KnowledgeStore(Settings(data_dir=data, chunk_size=300, chunk_overlap=30),
                           fake_embedder)
    info = store.document("gates.txt")
    assert store.count() == info.chunks and _versions(store, "gates.txt") == {"old"}
