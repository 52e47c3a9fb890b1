"""Fakes for the web app's handlers: a pipeline that streams scripted words and records a
real ledger row per answer, over a real (temporary) ledger; requests as Gradio gives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from assistant.access import Access
from assistant.answering.answer import Answer
from assistant.ledger.store import AnswerRecord, Ledger
from assistant.services import Services
from assistant.settings import Settings
from assistant.ui.common import Context


def request(session: str = "page-1", user: str | None = None) -> Any:
    return SimpleNamespace(username=user, session_hash=session)


@dataclass
class FakeStream:
    """One answer: its words one by one; a ledger row when finished or closed early."""

    pipeline: FakePipeline
    question: str
    mode: str
    adapter: str | None
    history: list[dict]
    session_id: str | None = None  # the ledger's session: whose answer it is
    answer: Answer | None = None

    def __iter__(self):
        record = AnswerRecord(question=self.question, requested_mode=self.mode,
                              chosen_mode=self.mode, adapter=self.adapter,
                              session_id=self.session_id)
        try:
            for word in self.pipeline.words:
                yield word + " "
        except GeneratorExit:
            record.error = "cancelled by the reader"
            self.pipeline.cancelled.append(self.pipeline.ledger.record(record))
            raise
        record.answer = " ".join(self.pipeline.words)
        self.answer = Answer(
            question=self.question, text=record.answer, requested_mode=self.mode,
            mode=self.mode, adapter=self.adapter, reason="forced", scores={}, sources=[],
            prompt_tokens=3, completion_tokens=len(self.pipeline.words), router_ms=0.0,
            retrieval_ms=0.0, ttft_ms=1.0, total_ms=2.0, tokens_per_s=1.0, cost_usd=0.0,
            finish_reason="stop", history_turns=len(self.history))
        self.answer.ledger_id = self.pipeline.ledger.record(record)


@dataclass
class FakePipeline:
    ledger: Any
    words: list[str] = field(default_factory=lambda: ["It", "opens", "at", "07:30."])
    calls: list[dict] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def stream(self, question: str, mode: str = "auto", adapter: str | None = None,
               session_id: str | None = None, domains: Any = None,
               history: Any = ()) -> FakeStream:
        self.calls.append({"question": question, "mode": mode, "adapter": adapter,
                           "history": list(history)})
        return FakeStream(self, question, mode, adapter, list(history), session_id)


class FakeAdapters:
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def list(self) -> list[Any]:
        return [SimpleNamespace(name=n, ok=True) for n in self.names]


def context(tmp_path, store_text: bool = True, adapters: list[str] | None = None) -> Context:
    """A Context over a real ledger in ``tmp_path`` and the fake pipeline."""
    settings = Settings(data_dir=tmp_path / "data", adapters_dir=tmp_path / "adapters",
                        ledger_store_text=store_text)
    ledger = Ledger(settings.data_dir / "ledger.db", store_text=store_text)
    services = Services(settings, ledger=ledger, pipeline=FakePipeline(ledger),
                        store=SimpleNamespace(domains=lambda: []),
                        adapters=FakeAdapters(adapters or []))
    return Context(services, Access(settings))
