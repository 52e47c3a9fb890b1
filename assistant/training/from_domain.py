"""Training pairs and held-out questions from a domain's own documents, as `assistant synth`
(its argparse front end, commands/synth.py), `assistant eval --domain D` and the web app's
"Train from documents" call it: the domain's chunks from the knowledge base, the checks
against the store's own search, the questions written by the learned writer, by rule or
reworded by the configured backend; files and report written by ``synth_report``.

It reads the app's components through ``DomainServices`` (what it needs of
``assistant.services.Services``, which sits above training/).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from assistant.training.writer import NAME as WRITER

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from assistant.models.adapters import AdapterManager
    from assistant.models.backend import Backend
    from assistant.retrieval.store import KnowledgeStore
    from assistant.settings import Settings
    from assistant.training.paraphrase import Ask
    from assistant.training.synth import Passage, Search
    from assistant.training.writer import Write


class DomainServices(Protocol):
    """The parts of ``assistant.services.Services`` the synthesis uses."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> KnowledgeStore: ...

    @property
    def embedder(self) -> Embeddings: ...

    @property
    def adapters(self) -> AdapterManager: ...

    @property
    def backend(self) -> Backend: ...


def default_dir(data_dir: Path, domain: str) -> Path:
    """Where synthesized files for ``domain`` live unless --out says otherwise."""
    return Path(data_dir) / "synth" / domain


def synthesize_domain(services: DomainServices, domain: str, out_dir: Path, phrasings: int = 3,
                      eval_share: float = 0.5, seed: int = 0, model_rewordings: int = 0,
                      temperature: float = 0.8, progress_bar: bool = True,
                      writer: str = "rules", writer_adapter: str | None = None,
                      samples: int = 6) -> dict[str, Any]:
    """Read the domain's chunks, synthesize, check against the store's search, write files.
    Also used by `assistant eval --domain D` when no synthesized test set exists yet."""
    from assistant.errors import StrataError
    from assistant.retrieval.ingest import ensure_demo_knowledge
    from assistant.training.synth import Options, synthesize
    from assistant.training.synth_report import write_outputs

    ensure_demo_knowledge(services.settings, services.store)
    passages = domain_passages(services, domain)
    if not passages:
        known = ", ".join(services.store.domains()) or "none"
        raise StrataError(f"no documents in domain {domain!r} (domains: {known}); "
                          "add some with `assistant ingest PATH --domain D`")
    write, writer = learned_writer(services, writer, writer_adapter, temperature, seed,
                                   progress_bar)
    options = Options(phrasings=phrasings, eval_share=eval_share, seed=seed,
                      model_rewordings=model_rewordings, writer=writer, samples=samples)
    ask = model_ask(services, temperature, seed, progress_bar) if model_rewordings else None
    synthesis = synthesize(passages, store_search(services, domain), options, ask, write)
    extra: dict[str, Any] = {"top_k": services.settings.retrieval_top_k, "writer": writer}
    if write is not None:
        extra["generator"] = (f"learned question writer {writer_adapter or WRITER} (engine "
                              f"{services.backend.name}, temperature {temperature}, "
                              f"{samples} samples per fact; assistant/training/writer.py); "
                              "held-out and validation questions by rule")
    if ask is not None:
        s = services.settings
        extra["generator"] = ("rules (assistant/training/facts.py, questions.py, rewording.py), "
                              f"training questions also reworded by {s.base_model} "
                              f"(engine {services.backend.name}, temperature {temperature}; "
                              "assistant/training/paraphrase.py)")
    report = write_outputs(synthesis, options, domain, out_dir, extra=extra)
    if not synthesis.facts:  # the report says what was dropped and why
        raise StrataError(f"no fact sentences found in domain {domain!r}: see the drops in "
                          f"{Path(out_dir) / 'report.md'}")
    return report


def learned_writer(services: DomainServices, writer: str, adapter: str | None, temperature: float,
                   seed: int, progress_bar: bool) -> tuple[Write | None, str]:
    """The Write for ``--writer learned`` and the writer actually used: without a writer
    adapter, the rules write (said in the log and the report)."""
    import logging

    from assistant.errors import StrataError

    if writer != "learned":
        return None, writer
    name = adapter or WRITER
    try:
        services.adapters.check(name)
    except StrataError as exc:
        if adapter:
            raise
        logging.getLogger(__name__).warning(
            "no question-writer adapter (%s); the rules write the training questions "
            "(`make writer` trains it)", exc)
        return None, "rules"
    return backend_write(services, name, temperature, seed, progress_bar), "learned"


def backend_write(services: DomainServices, adapter: str, temperature: float, seed: int,
                  progress_bar: bool) -> Write:
    """Requests to the configured backend with ``adapter``, sampled (each with its own
    seed), sent in waves of the batch size so the engine decodes them together."""
    from tqdm.auto import tqdm

    from assistant.models.sampling import SamplingParams

    backend = services.backend
    params = SamplingParams.from_settings(services.settings).with_(
        max_new_tokens=40, temperature=temperature, top_p=0.95)
    wave = max(1, services.settings.max_batch)

    def write(requests: Sequence[list[dict[str, str]]]) -> list[str]:
        replies: list[str] = []
        with tqdm(total=len(requests), desc="written questions", unit="question",
                  disable=not progress_bar) as bar:
            for start in range(0, len(requests), wave):
                streams = [backend.stream(list(messages), params.with_(seed=seed + start + i),
                                          adapter=adapter)
                           for i, messages in enumerate(requests[start:start + wave])]
                for stream in streams:
                    replies.append(stream.wait().text)
                    bar.update(1)
        return replies

    return write


def model_ask(services: DomainServices, temperature: float, seed: int,
              progress_bar: bool) -> Ask:
    """The Ask the rewording step uses: the configured backend (a remote server when there
    is one; never a second, local model), one request per question (sampled, each request
    with its own seed), with a progress bar."""
    from tqdm.auto import tqdm

    from assistant.models.generation import SamplingParams
    from assistant.training.paraphrase import messages_for

    backend = services.backend
    params = SamplingParams.from_settings(services.settings).with_(max_new_tokens=72,
                                                                   temperature=temperature)

    def ask(questions: Sequence[str]) -> list[str]:
        replies = []
        for i, question in enumerate(tqdm(questions, desc="model rewordings", unit="question",
                                          disable=not progress_bar)):
            reply = backend.generate(messages_for(question), params.with_(seed=seed + i))
            replies.append(reply.text)
        return replies

    return ask


def domain_passages(services: DomainServices, domain: str) -> list[Passage]:
    """Every chunk of the domain, in document and chunk order."""
    from assistant.training.synth import Passage

    if not domain.strip():  # refused as unknown: store.chunks("") reads every domain
        return []
    chunks = services.store.chunks(domain=domain)
    passages = [Passage(c.id, c.text, c.source, c.section) for c in chunks]
    return sorted(passages, key=lambda p: p.source)


def store_search(services: DomainServices, domain: str) -> Search:
    """The Search the checks use: the knowledge base's own search (dense + keyword, the
    app's top k) limited to the domain, the questions embedded in one batch."""
    store, k = services.store, services.settings.retrieval_top_k

    def search(questions: Sequence[str]) -> list[list[str]]:
        vectors = services.embedder.embed_documents(list(questions))
        return [[h.id for h in store.search(q, k=k, domain=domain, query_embedding=v)]
                for q, v in zip(questions, vectors, strict=True)]

    return search
