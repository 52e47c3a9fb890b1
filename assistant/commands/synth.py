"""`assistant synth`: training pairs and held-out questions from a domain's own documents."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.settings import get_settings
from assistant.training.writer import NAME as WRITER

if TYPE_CHECKING:
    from assistant.services import Services
    from assistant.training.synth import Passage


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="make training pairs and held-out questions from a domain's documents",
        description="Find the sentences of domain D that state a fact (a number, a name, a "
        "date, a code), have the training questions written by the learned question writer "
        "(an adapter trained on people's questions about other documents; --writer rules: by "
        "rule; --writer model: rules plus --model-rewordings by the configured model), and "
        "keep the pairs whose answer holds the fact and whose question finds the fact's "
        "passage in the knowledge base. Held-out questions are always made by rule, so they "
        "are not in the training questions' generator's words. "
        "Writes train.jsonl (for `assistant train`), test.jsonl (held-out questions, worded "
        "differently, plus out-of-scope ones, for `assistant eval`) and report.json/report.md "
        "(what was kept and dropped, and why). The demo documents are ingested first when the "
        "knowledge base is empty.",
    )
    p.add_argument("--domain", required=True,
                   help="the documents' domain (see `assistant docs list`)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: ASSISTANT_DATA_DIR/synth/DOMAIN)")
    p.add_argument("--writer", choices=("learned", "rules", "model"), default="learned",
                   help="who writes the training questions (default learned: the bundled "
                   "question-writer adapter, through the configured backend)")
    p.add_argument("--writer-adapter", default=None, metavar="NAME",
                   help="the writer adapter to use (default: question-writer; "
                   "`make writer` retrains it from the bundled question files)")
    p.add_argument("--samples", type=int, default=6,
                   help="questions the learned writer is asked for per fact, before the "
                   "checks (6)")
    p.add_argument("--phrasings", type=int, default=3,
                   help="training questions kept per fact (3)")
    p.add_argument("--eval-share", type=float, default=0.5, metavar="S",
                   help="share of facts that get a held-out question (0-1; 0.5)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the held-out choice and the model's sampling")
    p.add_argument("--model-rewordings", type=int, default=0, metavar="N",
                   help="up to N more training questions per fact, written by the configured "
                   "model (ASSISTANT_BACKEND / ASSISTANT_BASE_MODEL: point it at the largest "
                   "model you have) and kept only when they pass the checks (0: rules only)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature of the learned writer and of the model's "
                   "rewordings (0.8)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the report's counts)")
    p.set_defaults(handler=run)


def default_dir(data_dir: Path, domain: str) -> Path:
    """Where synthesized files for ``domain`` live unless --out says otherwise."""
    return Path(data_dir) / "synth" / domain


def run(args: argparse.Namespace) -> int:
    from assistant.cli import emit
    from assistant.errors import StrataError
    from assistant.services import Services

    if args.phrasings < 1:
        raise StrataError(f"--phrasings must be at least 1, not {args.phrasings}")
    if not 0.0 <= args.eval_share <= 1.0:
        raise StrataError(f"--eval-share must be between 0 and 1, not {args.eval_share}")
    if args.model_rewordings < 0:
        raise StrataError(f"--model-rewordings must be 0 or more, not {args.model_rewordings}")
    if args.samples < 1:
        raise StrataError(f"--samples must be at least 1, not {args.samples}")
    if args.writer == "model" and not args.model_rewordings:
        args.model_rewordings = 4
    services = Services(get_settings())
    out = args.out or default_dir(services.settings.data_dir, args.domain)
    report = synthesize_domain(services, args.domain, out, phrasings=args.phrasings,
                               eval_share=args.eval_share, seed=args.seed,
                               model_rewordings=args.model_rewordings,
                               temperature=args.temperature, writer=args.writer,
                               writer_adapter=args.writer_adapter, samples=args.samples)
    summary = {k: v for k, v in report.items() if k not in ("kept", "dropped")}
    emit(summary, args.json, _render)
    return 0


def synthesize_domain(services: Services, domain: str, out_dir: Path, phrasings: int = 3,
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
        extra["generator"] = (f"learned question writer {writer_adapter or WRITER} (backend "
                              f"{services.settings.backend}, temperature {temperature}, "
                              f"{samples} samples per fact; assistant/training/writer.py); "
                              "held-out and validation questions by rule")
    if ask is not None:
        s = services.settings
        extra["generator"] = ("rules (assistant/training/facts.py, questions.py, rewording.py), "
                              f"training questions also reworded by {s.base_model} "
                              f"(backend {s.backend}, temperature {temperature}; "
                              "assistant/training/paraphrase.py)")
    report = write_outputs(synthesis, options, domain, out_dir, extra=extra)
    if not synthesis.facts:  # the report says what was dropped and why
        raise StrataError(f"no fact sentences found in domain {domain!r}: see the drops in "
                          f"{Path(out_dir) / 'report.md'}")
    return report


def learned_writer(services: Services, writer: str, adapter: str | None, temperature: float,
                   seed: int, progress_bar: bool) -> tuple[Any, str]:
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


def backend_write(services: Services, adapter: str, temperature: float, seed: int,
                  progress_bar: bool) -> Any:
    """Requests to the configured backend with ``adapter``, sampled (each with its own
    seed), sent in waves of the batch size so the engine decodes them together."""
    from tqdm.auto import tqdm

    from assistant.models.sampling import SamplingParams

    backend = services.backend
    params = SamplingParams.from_settings(services.settings).with_(
        max_new_tokens=40, temperature=temperature, top_p=0.95)
    wave = max(1, services.settings.max_batch)

    def write(requests: Any) -> list[str]:
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


def model_ask(services: Services, temperature: float, seed: int, progress_bar: bool) -> Any:
    """The Ask the rewording step uses: the configured backend (a remote server when there
    is one; never a second, local model), one request per question (sampled, each request
    with its own seed), with a progress bar."""
    from tqdm.auto import tqdm

    from assistant.models.generation import SamplingParams
    from assistant.training.paraphrase import messages_for

    generator = services.backend
    params = SamplingParams.from_settings(services.settings).with_(max_new_tokens=72,
                                                                   temperature=temperature)

    def ask(questions: list[str]) -> list[str]:
        replies = []
        for i, question in enumerate(tqdm(questions, desc="model rewordings", unit="question",
                                          disable=not progress_bar)):
            reply = generator.generate(messages_for(question), params.with_(seed=seed + i))
            replies.append(reply.text)
        return replies

    return ask


def domain_passages(services: Services, domain: str) -> list[Passage]:
    """Every chunk of the domain, in document and chunk order."""
    from assistant.training.synth import Passage

    if not domain.strip():  # refused as unknown: store.chunks("") reads every domain
        return []
    chunks = services.store.chunks(domain=domain)
    passages = [Passage(c.id, c.text, c.source, c.section) for c in chunks]
    return sorted(passages, key=lambda p: p.source)


def store_search(services: Services, domain: str) -> Any:
    """The Search the checks use: the knowledge base's own search (dense + keyword, the
    app's top k) limited to the domain, the questions embedded in one batch."""
    store, k = services.store, services.settings.retrieval_top_k

    def search(questions: list[str]) -> list[list[str]]:
        vectors = services.embedder.embed_documents(list(questions))
        return [[h.id for h in store.search(q, k=k, domain=domain, query_embedding=v)]
                for q, v in zip(questions, vectors, strict=True)]

    return search


def _render(summary: dict[str, Any]) -> str:
    o = summary["held_out_overlap"]
    lines = [
        f"{summary['facts_kept']} facts kept of {summary['facts_found']} found in "
        f"{summary['passages']} passages of {summary['domain']}",
        f"  {summary['train_pairs']} training pairs, {summary['test_questions']} held-out "
        f"questions + {summary['out_of_scope_questions']} out of scope",
        f"  held-out overlap with training phrasings: mean {o['mean']}, max {o['max']}",
        "  dropped: " + ", ".join(f"{r} ({n})" for r, n in summary["dropped_by_reason"].items()),
    ]
    lines += [f"{name}: {path}" for name, path in summary["files"].items()]
    return "\n".join(lines)
