"""One answer's shapes: the question's check, the sources it cites, what the model is given
(``Prepared``), the finished ``Answer`` and the one function that turns it into its ledger
row. ``pipeline.py`` produces them; the API, the web app, the CLI and the evaluation read
them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from assistant.answering import prompts
from assistant.answering.modes import Mode
from assistant.errors import StrataError
from assistant.ledger.store import AnswerRecord
from assistant.text import has_surrogates

if TYPE_CHECKING:
    from assistant.models.base_models import LoadedModel
    from assistant.retrieval.store import Hit

MAX_QUESTION_CHARS = 4000
SNIPPET_CHARS = 240


@dataclass
class Source:
    """A passage shown to the model, as the answer cites it ([number])."""

    number: int
    name: str
    section: str
    page: int | None
    score: float
    snippet: str
    chunk_id: str


Ranking = Literal["likelihood", "embedding"]  # context sentences: re-ranked by likelihood, or not


class Served(TypedDict, total=False):
    """How an answer was served, filled as it is recorded (a dict, so the answer's JSON keeps
    its ``extra`` object): the backend and profile of its ledger row, and how the context
    sentences were ranked (None: no context)."""

    backend: str | None
    profile: str | None
    ranking: Ranking | None


@dataclass
class Answer:
    question: str
    text: str
    requested_mode: str
    mode: Mode  # as routed (never AUTO)
    adapter: str | None
    reason: str
    scores: dict[str, float]
    sources: list[Source]
    prompt_tokens: int
    completion_tokens: int
    router_ms: float
    retrieval_ms: float
    ttft_ms: float
    total_ms: float
    tokens_per_s: float
    cost_usd: float
    finish_reason: str
    ledger_id: str | None = None
    grounding: str | None = None  # prompt/layered mode's answer check (see grounding.py)
    rerank_tokens: int = 0  # read by the sentence re-ranker (rerank.py), priced like prompt tokens
    token_cost_usd: float = 0.0  # cost_usd split as costs.estimate priced it
    compute_cost_usd: float = 0.0
    generated: str | None = None  # the model's own text, when quotes replaced it
    standalone_query: str | None = None  # what a follow-up was searched and routed with
    history_turns: int = 0  # earlier turns of the conversation the model read
    extra: Served = field(default_factory=Served)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prepared:
    """What one answer's model call is given: messages, and in prompt/layered mode the
    sources shown, the context sentences chosen, the whole sentence ranking and the
    passages it came from (a quote may cite one the model was not shown)."""

    messages: list[dict[str, str]]
    sources: list[Source] = field(default_factory=list)
    lines: list[prompts.ContextLine] = field(default_factory=list)
    ranked: list[prompts.ContextLine] = field(default_factory=list)
    context: str = ""  # ``lines`` as the model read them (prompts.format_context)
    rerank_tokens: int = 0  # read by the re-ranker (rerank.py) before the answer began
    hits: list[Hit] = field(default_factory=list)
    history_turns: int = 0  # earlier conversation turns among ``messages``


# Answer fields the ledger row names otherwise; the other fields both have share their name.
RECORD_NAMES = {"text": "answer", "mode": "chosen_mode", "scores": "router_scores"}
# Kept as the row began: the question as stored (refused ones are cut), the mode as asked.
AS_STARTED = ("question", "requested_mode")


def ledger_record(answer: Answer, started: AnswerRecord, base: LoadedModel,
                  hardware: str | None = None, quantization: str | None = None
                  ) -> AnswerRecord:
    """The ledger row of a finished ``answer``: the row ``started`` with it (question as
    stored, session, requested mode, backend, profile; its id and time) completed from
    the answer's fields, the passages it read and the model that wrote it. The one place
    an answer becomes its row (a failed answer's row is ``started`` and its error)."""
    columns = {f.name for f in fields(AnswerRecord)}
    values: dict[str, Any] = {}
    for f in fields(Answer):
        column = RECORD_NAMES.get(f.name, f.name)
        if column in columns and column not in AS_STARTED:
            values[column] = getattr(answer, f.name)
    record = replace(started, **values)
    record.retrieved = [{"id": s.chunk_id, "score": s.score} for s in answer.sources]
    # the weights the engine ran (llama.cpp: the GGUF's type), else the base model's
    record.base_model, record.quantization = base.name, quantization or base.quant
    record.ranking = answer.extra.get("ranking")
    record.hardware = hardware or record.hardware
    return record


def check_question(question: object) -> str:
    """The question, stripped, or a StrataError saying why it is refused (the one check of
    a question: an answer's stream makes it first, so a refusal has its ledger row)."""
    if not isinstance(question, str) or not question.strip():
        raise StrataError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise StrataError(f"the question is too long "
                          f"({len(question)} > {MAX_QUESTION_CHARS} characters)")
    if has_surrogates(question):
        raise StrataError("the question holds a lone UTF-16 surrogate (such as \\ud800): "
                          "not text")
    return question.strip()


def source_of(number: int, hit: Hit) -> Source:
    """Passage ``number`` of the context, as the answer cites it."""
    snippet = hit.text if len(hit.text) <= SNIPPET_CHARS else hit.text[:SNIPPET_CHARS] + "..."
    return Source(number=number, name=hit.source, section=hit.section, page=hit.page,
                  score=hit.score, snippet=snippet, chunk_id=hit.id)
