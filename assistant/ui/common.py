"""What every tab shares: the services, the access rules, and how numbers are shown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.access import Access, Visitor, shown_name
from assistant.answering.modes import Mode
from assistant.ui.files import Exports

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from assistant.answering.answer import Answer, Source
    from assistant.retrieval.ingest import IngestResult
    from assistant.services import Services

# (label, value) pairs for gr.Radio; the values are Pipeline modes.
MODE_CHOICES = [(mode.label, mode.value) for mode in Mode]
MODE_LABELS = {mode.value: mode.label for mode in Mode}
ROUTER_PICKS = ("Router picks", "")  # adapter dropdown entry for "no adapter forced"


@dataclass
class Context:
    """Handed to every tab's ``build``: the shared services, the access rules, and the
    exports the file route may serve (each to its owner only)."""

    services: Services
    access: Access
    exports: Exports = field(default_factory=Exports)

    def visitor(self, request: gr.Request | None) -> Visitor:
        return Visitor.of(request)

    def adapter_choices(self) -> list[tuple[str, str]]:
        """Usable adapters, re-read from disk so new ones appear without a restart."""
        return [ROUTER_PICKS, *[(name, name) for name in self.usable_adapters()]]

    def usable_adapters(self) -> list[str]:
        """Names of the adapters that load (bad cards left out), re-read from disk."""
        return [info.name for info in self.services.adapters.list() if info.ok]

    def owner(self, request: gr.Request | None) -> str:
        """Who owns saved chats, votes and ledger rows (``Visitor.owner``)."""
        return self.visitor(request).owner


class Refusal(gr.Error):
    """A refusal the visitor reads (not an admin, an empty question, an unknown name):
    expected, so no traceback in the server's log; those stay for unexpected errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message, print_exception=False)


# --- numbers ----------------------------------------------------------------------
def seconds(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def megabytes(size: int) -> str:
    return f"{size / 1048576:.2f} MB" if size >= 1048576 else f"{size / 1024:.1f} KB"


# --- figures (matplotlib Figure objects: no pyplot state, nothing to close) --------------
def figure(width: float = 6.0, height: float = 3.2) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


# --- answers ----------------------------------------------------------------------
def route_line(answer: Answer) -> str:
    adapter = f" · adapter `{answer.adapter}`" if answer.adapter else ""
    checked = ""
    if answer.generated is not None:  # the answer check replaced the model's answer (grounding.py)
        why = (answer.grounding or "").removeprefix("quoted: ")
        said = " ".join(answer.generated.split())[:160]
        checked = f" · quoted instead of the model's answer ({why}): “{said}”"
    return f"**{MODE_LABELS.get(answer.mode, answer.mode)}**{adapter} — {answer.reason}{checked}"


def stats_line(answer: Answer) -> str:
    return (
        f"TTFT {seconds(answer.ttft_ms)} · total {seconds(answer.total_ms)} · "
        f"tokens {answer.prompt_tokens:,} in / {answer.completion_tokens:,} out · "
        f"{answer.tokens_per_s:.1f} tok/s · cost {usd(answer.cost_usd)}"
    )


FOOTER_START = "\n\n<small class='answer-stats'>"  # chat_turns cuts answers here
FAILED = "**Could not answer:**"
NO_WORDS = "*(stopped before the first word)*"


def message_text(message: dict) -> str | None:
    """A chat message's text: Gradio hands handlers a list of parts ({"type": "text",
    "text": ...}) while handlers build plain strings; None for anything but text."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not content:
        return None
    if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
        return None
    return "".join(str(p.get("text") or "") for p in content)


def chat_turns(history: list[dict] | None) -> list[dict[str, str]]:
    """The conversation as the pipeline reads it, and as a saved conversation holds it:
    questions and answers only (no sources panels, route/timing footers, failed or empty
    answers)."""
    turns: list[dict[str, str]] = []
    for message in history or []:
        content, role = message_text(message), message.get("role")
        if message.get("metadata") or content is None or FAILED in content or (
                content == NO_WORDS):
            continue
        content = content.split(FOOTER_START)[0]
        if role == "assistant" and not content.strip():
            continue
        if role == "user" or (role == "assistant" and turns and turns[-1]["role"] == "user"):
            turns.append({"role": role, "content": content})
    return turns


def answer_footer(answer: Answer) -> str:
    """The two lines under an answer: route + reason, then timings, tokens and cost."""
    return f"{FOOTER_START}{route_line(answer)}<br>{stats_line(answer)}</small>"


def sources_markdown(sources: list[Source]) -> str:
    lines = []
    for s in sources:
        where = " · ".join(p for p in (s.section, f"p. {s.page}" if s.page else "") if p)
        snippet = " ".join(s.snippet.split())
        lines.append(
            f"**[{s.number}] {shown_name(s.name)}** {('· ' + where) if where else ''} "
            f"· score {s.score:.2f}\n\n> {snippet}"
        )
    return "\n\n".join(lines)


def sources_title(sources: list[Source]) -> str:
    best = max(s.score for s in sources)
    return f"Sources ({len(sources)}, best score {best:.2f})"


def answer_details(answer: Answer) -> dict[str, Any]:
    """The answer as JSON for the API and the details panel (private prefixes removed)."""
    data = json.loads(json.dumps(answer.to_dict(), default=str))
    for source in data["sources"]:
        source["name"] = shown_name(source["name"])
    return data


def strategy_label(name: str) -> str:
    """'layered:alpha' -> 'Layered (alpha)': a strategy name as the tabs show it."""
    mode, _, adapter = name.partition(":")
    label = MODE_LABELS.get(mode, mode)
    return f"{label} ({adapter})" if adapter else label


def stats_row(label: str, answer: Answer | None, error: str = "") -> list[str | int]:
    """One row of the compare table."""
    if answer is None:
        return [label, "failed", "-", "-", 0, 0, "-", error]
    return [
        label, answer.mode + (f" ({answer.adapter})" if answer.adapter else ""),
        round(answer.ttft_ms), round(answer.total_ms), answer.prompt_tokens,
        answer.completion_tokens, usd(answer.cost_usd), "",
    ]


COMPARE_HEADERS = ["requested", "route", "TTFT ms", "total ms", "tokens in", "tokens out",
                   "cost", "error"]


# --- ingestion ----------------------------------------------------------------------
def ingest_outcome(result: IngestResult) -> str:
    """'ingested 12 chunks', 'duplicate (unchanged)', 'replaced: 9 chunks', 'rejected: why'."""
    if result.status == "rejected":
        return f"rejected: {result.reason.replace(result.name, shown_name(result.name))}"
    if result.status == "duplicate":
        return "duplicate: already ingested, unchanged"
    note = f" ({result.note})" if result.note else ""
    return f"{result.status} {result.chunks} chunk{'s' if result.chunks != 1 else ''}{note}"
