"""The answer modes and what each one does: the one vocabulary of routing, answering,
evaluation, the UI and the API.

A ``Mode`` is a ``str``, so ``Mode.PROMPT == "prompt"`` and it serialises as the plain
name in JSON, the ledger and command lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from assistant.errors import StrataError


class Mode(StrEnum):
    AUTO = "auto"  # the router picks one of the others per question
    PROMPT = "prompt"  # system prompt + passages retrieved from the documents
    ADAPTER = "adapter"  # the domain LoRA adapter, no retrieval
    LAYERED = "layered"  # adapter + retrieved passages
    BASE = "base"  # the bare base model

    @property
    def retrieves(self) -> bool:
        """Shows the model passages from the knowledge base."""
        return self in (Mode.PROMPT, Mode.LAYERED)

    @property
    def uses_adapter(self) -> bool:
        """Answers with a domain adapter switched on."""
        return self in (Mode.ADAPTER, Mode.LAYERED)

    @property
    def checked(self) -> bool:
        """Its answer is checked against the context it was shown (grounding.py)."""
        return self.retrieves

    @property
    def label(self) -> str:
        """The name people read in the app and the reports."""
        return LABELS[self]

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        """``value`` as a Mode, or a StrataError naming the choices."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise StrataError(
                f"unknown mode {value!r}; choose one of {', '.join(ALL)}") from None


LABELS = {
    Mode.AUTO: "Auto", Mode.PROMPT: "Prompt+RAG", Mode.ADAPTER: "Adapter",
    Mode.LAYERED: "Layered", Mode.BASE: "Base",
}
ALL: tuple[str, ...] = tuple(m.value for m in Mode)  # as command-line choices
ROUTED = (Mode.PROMPT, Mode.ADAPTER, Mode.LAYERED, Mode.BASE)  # what auto chooses among
REPORT_ORDER = (Mode.BASE, Mode.PROMPT, Mode.ADAPTER, Mode.LAYERED, Mode.AUTO)


def parse_list(modes: str | Iterable[str]) -> list[Mode]:
    """'base,prompt' or a list -> modes in the given order, without repeats."""
    items = modes.split(",") if isinstance(modes, str) else list(modes)
    chosen: list[Mode] = []
    for item in items:
        mode = Mode.parse(item)
        if mode not in chosen:
            chosen.append(mode)
    if not chosen:
        raise StrataError(f"no modes given; choose from {', '.join(ALL)}")
    return chosen
