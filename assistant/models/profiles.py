"""Answer settings that follow the base model: one profile per model.

Prompt mode's context budget, sentence re-ranking and answer check were tuned on the
bundled 135M reader, which answers best from a few sentences and often makes up a
specific (see settings.py for each figure). A larger model, served by vLLM or a hosted API,
reads a long context well and should answer in its own words: it gets a larger budget,
no re-ranking pass and no answer check. A setting given explicitly (environment, .env or
``Settings(...)``) overrides the profile's value, and the profile's name then says so,
so a ledger row always tells which answer settings produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError

if TYPE_CHECKING:
    from assistant.settings import Settings

# The four answer settings a profile holds, by their names in settings.py.
FIELDS = ("max_context_tokens", "rerank_candidates", "quote_sentences", "agree_sentences")


@dataclass(frozen=True)
class Profile:
    """How prompt and layered mode read and check for one kind of model."""

    name: str
    max_context_tokens: int  # tokens of retrieved sentences shown to the model
    rerank_candidates: int  # best sentences re-ranked by question likelihood; 0 = off
    quote_sentences: int  # the answer check's quote length; 0 = the check is off
    agree_sentences: int  # the answer's specifics must be in these best sentences; 0 = off

    @property
    def reranks(self) -> bool:
        return self.rerank_candidates > 0

    @property
    def checks(self) -> bool:
        return self.quote_sentences > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reranks": self.reranks, "checks": self.checks}


# The bundled small readers: exactly settings.py's defaults, which were measured on them
# (tests/unit/test_profiles.py keeps the two equal).
SMALL_READER = Profile("small-reader", max_context_tokens=80, rerank_candidates=6,
                       quote_sentences=2, agree_sentences=1)
# Any other model: a context that holds the retrieved passages' best sentences (a quarter
# of the default 4 chunks), the model's own words, no extra scoring pass per answer.
LONG_CONTEXT = Profile("long-context", max_context_tokens=1024, rerank_candidates=0,
                       quote_sentences=0, agree_sentences=0)

PROFILES = {p.name: p for p in (SMALL_READER, LONG_CONTEXT)}
# Models whose profile is not LONG_CONTEXT, by registry (or served) name. Gemma 3 270M is
# as small a reader as SmolLM2 and kept today's settings.
BY_MODEL = {"smollm2-135m": SMALL_READER, "gemma3-270m": SMALL_READER}


def profile_for_model(model: str) -> Profile:
    """The built-in profile of a model name (a registry name, a path or a served name)."""
    key = model.rstrip("/").rsplit("/", 1)[-1].lower()
    return BY_MODEL.get(model) or BY_MODEL.get(key) or LONG_CONTEXT


def resolve(settings: Settings, model: str | None = None) -> Profile:
    """The profile for ``model`` (default: the model that answers, see ``answering_model``),
    or the one named by the ``profile`` setting, with any answer setting given explicitly
    laid over it; the name lists the overrides (``small-reader+quote_sentences=0``)."""
    chosen = settings.profile or ""
    if chosen and chosen not in PROFILES:
        raise StrataError(f"unknown profile {chosen!r}; choose one of {', '.join(PROFILES)}")
    base = PROFILES[chosen] if chosen else profile_for_model(model or answering_model(settings))
    explicit = {f: getattr(settings, f) for f in FIELDS if f in settings.model_fields_set}
    changed = {f: v for f, v in explicit.items() if getattr(base, f) != v}
    if not changed:
        return base
    label = "+".join([base.name] + [f"{f}={v}" for f, v in sorted(changed.items())])
    return replace(base, name=label, **changed)


def answering_model(settings: Settings) -> str:
    """The model that writes the answers: the served one with the openai backend."""
    if settings.backend == "openai" and settings.backend_model:
        return settings.backend_model
    return settings.base_model
