"""The shared services behind the CLI, the UI and the API, built lazily from one Settings.

Like private-gpt's components: each heavy part is created on first use and then reused,
so `assistant adapters` never loads a model and the app loads it once. This module only
builds and wires: every component receives what it uses through its constructor, and a
caller (a test, a benchmark) may hand in ready-made parts instead:
``Services(settings, base=tiny_model, embedder=HashEmbedder())``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.answering.pipeline import Pipeline
    from assistant.answering.rerank import Scorer
    from assistant.answering.routing import Router
    from assistant.backends.base import Backend
    from assistant.backends.engine import EngineChoice
    from assistant.backends.llamacpp import LlamaCppBackend
    from assistant.ledger.conversations import Conversations
    from assistant.ledger.store import Ledger
    from assistant.ledger.telemetry import Telemetry
    from assistant.ledger.votes import Votes
    from assistant.models.adapters import AdapterManager
    from assistant.models.base_models import LoadedModel
    from assistant.models.generation import Generator
    from assistant.retrieval.embeddings import SentenceEmbedder
    from assistant.retrieval.ingest import Ingestor
    from assistant.retrieval.store import KnowledgeStore
    from assistant.training.jobs import TrainingJobs

log = logging.getLogger(__name__)
PARTS = ("base", "adapters", "generator", "backend", "reranker", "ledger", "embedder", "store",
         "ingestor", "router", "pipeline", "training", "conversations", "votes", "telemetry")


class Services:
    """Lazily built components, each built exactly once even when threads race."""

    def __init__(self, settings: Settings, **parts: Any) -> None:
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise TypeError(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
        self.settings = settings
        self._lock = threading.RLock()  # re-entrant: building one part may build another
        self._parts: dict[str, Any] = dict(parts)
        self._chosen: EngineChoice | None = None  # the settings' engine, decided once
        self._engine: EngineChoice | None = None  # set when the backend is built

    def _once(self, name: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._parts:
                self._parts[name] = build()
            return self._parts[name]

    @property
    def base(self) -> LoadedModel:
        def build() -> LoadedModel:
            from assistant.models.base_models import load_base_model

            s = self.settings
            if s.backend == "openai":  # the server holds the model: a name, no weights
                from assistant.backends.openai import served_base

                return served_base(s)
            from assistant.backends.engine import local_quant

            quant = local_quant(s)  # the GGUF's values under the default engine, else NF4
            if self._llamacpp_answers():  # torch weights only when something needs them
                from assistant.models.base_models import deferred

                return deferred(s.base_model, s.cache_dir, quant, s.threads)
            return load_base_model(s.base_model, s.cache_dir, quant, s.threads)

        return self._once("base", build)

    def _llamacpp_answers(self) -> bool:
        """Whether llama.cpp is (or is about to be) the engine that answers."""
        choice = self._engine if self._engine is not None else self._choice()
        return choice.engine == "llamacpp"

    def _choice(self) -> EngineChoice:
        """The engine the settings choose before llama.cpp opens (backends/engine.py),
        decided once: the base model loads for it and the backend is built from it. A base
        handed in ready-made must be the model whose GGUF llama.cpp reads."""
        with self._lock:
            if self._chosen is None:
                from assistant.backends import engine

                handed = self._parts.get("base")
                self._chosen = engine.choose(self.settings, handed.name if handed else None)
            return self._chosen

    @property
    def adapters(self) -> AdapterManager:
        def build() -> AdapterManager:
            from assistant.models.adapters import AdapterManager

            s = self.settings
            return AdapterManager(s.adapters_dir, self.base, s.max_resident_adapters)

        return self._once("adapters", build)

    @property
    def generator(self) -> Generator:
        def build() -> Generator:
            from assistant.models.generation import Generator, SamplingParams

            s = self.settings
            return Generator(self.adapters, SamplingParams.from_settings(s), s.max_batch,
                             s.max_queue, s.decode_threads)

        return self._once("generator", build)

    @property
    def backend(self) -> Backend:
        """What writes the answers: llama.cpp by default, else the local generator, or an
        OpenAI-compatible server (backends/engine.py chooses; ``engine`` says why)."""

        def build() -> Backend:
            from assistant.backends import engine

            choice = self._choice()
            backend: Backend | None = None
            if choice.engine == "openai":
                from assistant.backends.openai import from_settings

                backend = from_settings(self.settings, self.adapters)
            elif choice.engine == "llamacpp":
                from assistant.backends.llamacpp import from_settings as llamacpp

                try:
                    built = llamacpp(self.settings, self.adapters)
                    built.busy_elsewhere = self._training_running  # re-ranking's cores
                    backend = built
                except Exception as exc:  # noqa: BLE001 - auto falls back and says why
                    choice = engine.fall_back(choice, exc)
            if backend is None:
                from assistant.backends.local import LocalBackend

                backend = LocalBackend(self.generator)
            self._engine = choice
            (log.warning if choice.fallback else log.info)("engine: %s", choice.line())
            return backend

        return self._once("backend", build)

    def _training_running(self) -> bool:
        """Whether an adapter trains in this process now (its threads hold the cores)."""
        jobs = self._parts.get("training")
        return jobs is not None and jobs.status().running

    @property
    def engine(self) -> EngineChoice:
        """Which engine answers and why (builds the backend: the choice is made there)."""
        from assistant.backends.engine import EngineChoice

        backend = self.backend
        if self._engine is None:  # a backend handed in ready-made
            return EngineChoice(backend.name, self.settings.backend,  # type: ignore[arg-type]
                                "handed in ready-made")
        return self._engine

    @property
    def reranker(self) -> Scorer:
        """Question likelihood for sentence re-ranking, from the engine that answers: a
        server's prompt log-probabilities, llama.cpp's logits, else the local model."""

        def build() -> Scorer:
            from assistant.models.likelihood import QuestionLikelihood

            scorer = self.backend.scorer
            return scorer if scorer is not None else QuestionLikelihood(self.adapters)

        return self._once("reranker", build)

    @property
    def ledger(self) -> Ledger:
        """The answer ledger (SQLite in data_dir, or database_url's PostgreSQL); cheap, no
        model is loaded."""

        def build() -> Ledger:
            from assistant.ledger.store import Ledger, location

            s = self.settings
            return Ledger(location(s), store_text=s.ledger_store_text)

        return self._once("ledger", build)

    @property
    def conversations(self) -> Conversations:
        """Saved conversations per owner, in the ledger's SQLite file."""

        def build() -> Conversations:
            from assistant.ledger.conversations import Conversations

            return Conversations(self.ledger)

        return self._once("conversations", build)

    @property
    def votes(self) -> Votes:
        """Likes, dislikes and arena battles, against the ledger's answer rows."""

        def build() -> Votes:
            from assistant.ledger.votes import Votes

            return Votes(self.ledger)

        return self._once("votes", build)

    @property
    def embedder(self) -> SentenceEmbedder:
        """The sentence embedder, shared by the store and the router (one query embedding)."""

        def build() -> SentenceEmbedder:
            from assistant.retrieval.embeddings import SentenceEmbedder

            return SentenceEmbedder(self.settings.embedding_model)

        return self._once("embedder", build)

    @property
    def store(self) -> KnowledgeStore:
        """The knowledge base (Chroma); the embedding model loads on first embed, not here."""

        def build() -> KnowledgeStore:
            from assistant.retrieval.store import KnowledgeStore

            return KnowledgeStore(self.settings, self.embedder)

        return self._once("store", build)

    @property
    def ingestor(self) -> Ingestor:
        """Puts files into the store by the ingestion rules (checks, limits, one result each)."""

        def build() -> Ingestor:
            from assistant.retrieval.ingest import Ingestor

            return Ingestor(self.store, self.settings)

        return self._once("ingestor", build)

    @property
    def router(self) -> Router:
        def build() -> Router:
            from assistant.answering.routing import Router, Thresholds

            s = self.settings
            defaults = Thresholds(s.router_adapter_threshold, s.router_retrieval_threshold)
            return Router(
                s.adapters_dir,
                self.embedder.embed_documents,
                Thresholds.load(s.data_dir / "router.json", defaults),
                usable=lambda name: self.adapters.info(name).ok,
            )

        return self._once("router", build)

    @property
    def pipeline(self) -> Pipeline:
        def build() -> Pipeline:
            from assistant.answering.pipeline import Pipeline

            return Pipeline(self.settings, base=self.base, adapters=self.adapters,
                            backend=self.backend,
                            embedder=self.embedder,
                            store=self.store, router=self.router, reranker=self.reranker,
                            ledger=self.ledger, telemetry=self.telemetry)

        return self._once("pipeline", build)

    @property
    def telemetry(self) -> Telemetry:
        """Each answer's trace (exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT or
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set) and the counters of GET /metrics; cheap."""

        def build() -> Telemetry:
            from assistant.ledger.telemetry import Telemetry

            return Telemetry.from_settings(self.settings)

        return self._once("telemetry", build)

    @property
    def training(self) -> TrainingJobs:
        def build() -> TrainingJobs:
            from assistant.backends.engine import training_precision
            from assistant.training.jobs import TrainingJobs

            s = self.settings  # training stays local, on the weights that serve the adapter
            choice = self.engine
            quant = training_precision(s, choice)
            if choice.engine == "local":
                quant = self.base.quant  # what the local base really loaded as (NF4 or not)
            return TrainingJobs(s, quant, ledger=self.ledger)

        return self._once("training", build)

    def load_adapter(self, name: str) -> float:
        """Load an adapter now where answers are written: registered with the generation
        server for the openai backend (there is no local model to load it onto), onto
        llama.cpp's model when it answers, else onto the local base model. Seconds it took
        (0: it already was)."""
        if self.settings.backend != "openai":
            llamacpp = self._llamacpp_backend()
            return llamacpp.loras.load(name) if llamacpp else self.adapters.load(name)
        from assistant.backends.openai import OpenAIBackend

        backend = self.backend
        if not isinstance(backend, OpenAIBackend) or backend.adapters is None:
            raise TypeError(f"backend=openai needs an OpenAIBackend, not {backend!r}")
        started = time.perf_counter()
        backend.adapters.ensure(name)
        return round(time.perf_counter() - started, 4)

    def unload_adapter(self, name: str) -> bool:
        """Unload an adapter from where answers are written (llama.cpp's model, else the
        local base model); False when it was not loaded."""
        llamacpp = self._llamacpp_backend(build=False)
        return llamacpp.loras.unload(name) if llamacpp else self.adapters.unload(name)

    def loaded_adapters(self) -> set[str]:
        """The adapters loaded where answers are written (the Adapters tab's column)."""
        llamacpp = self._llamacpp_backend(build=False)
        return set(llamacpp.loras.names if llamacpp else self.adapters.resident)

    def _llamacpp_backend(self, build: bool = True) -> LlamaCppBackend | None:
        """The llama.cpp backend when it answers, else None; ``build=False``: only one
        already built (none built: nothing is loaded on it)."""
        from assistant.backends.llamacpp import LlamaCppBackend

        backend = self.backend if build else self._parts.get("backend")
        return backend if isinstance(backend, LlamaCppBackend) else None

    # --- stopping (assistant serve on SIGTERM / SIGINT) ----------------------------------
    def stop(self) -> None:
        """Stop working for visitors: refuse new answers, end those in flight (ledger rows
        say cancelled), ask a training run to stop at its next step. Quick and safe from a
        signal handler; touches only parts already built."""
        pipeline, training = self._parts.get("pipeline"), self._parts.get("training")
        if pipeline is not None:
            ended = pipeline.stop()
            if ended:
                log.info("stopping: ended %d answer(s) in flight", ended)
        if training is not None:
            training.interrupt()

    def close(self, training_wait_s: float = 3.0) -> None:
        """After ``stop``: give an interrupted training run up to ``training_wait_s`` to
        reach the end of its step, then close the stores."""
        training = self._parts.get("training")
        if training is not None:
            training.wait(training_wait_s)
        for name in ("telemetry", "store", "ledger"):  # the last spans go out first
            part = self._parts.get(name)
            if part is not None:
                try:
                    part.close()
                except Exception:  # noqa: BLE001 - close the others; say which one failed
                    log.exception("could not close the %s", name)
