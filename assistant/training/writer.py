"""The learned question writer: a LoRA adapter that writes the question a person would ask
about a fact sentence (the doc2query idea, Nogueira et al. 2019).

Why: rules can only reuse a document's own words, and an adapter trained on such questions
recalls its facts when asked in those words and seldom when asked the way people ask
(docs/evaluation.md, "From documents to a verdict"). People's questions about *other*
documents carry how people ask ("Can you tell me when the co-op was set up?"); a small
adapter trained to turn a sentence into such a question carries that over to new documents.

Its training pairs come from hand-written question files: each pair's ``source`` document
and ``must_contain`` strings locate the sentence that states its fact; the writer's input is
that sentence with its section heading, its target the person's question. `assistant synth
--writer learned` samples several questions per fact and keeps those that pass the checks
(``verdict``, then the retrieval check in ``synth``). Judged leave one domain out: a figure
for a domain comes from a writer that never saw that domain's pairs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.text import contains
from assistant.training.facts import Sentence, passage_sentences
from assistant.training.paraphrase import MAX_WORDS, MIN_WORDS, asks
from assistant.training.rewording import WH_START, content_words, overlap

NAME = "question-writer"  # the bundled writer's folder under the adapters directory
SYSTEM_PROMPT = ("Write one question a customer would ask that the sentence answers, in "
                 "your own words. Do not answer it.")
COPY_OVERLAP = 0.8  # a question holding this share of the sentence's content words copies it
# what a question may ask for, by the kind of the fact (facts.KIND_ORDER); others: any
ASKS_FOR = {"person": {"person", "open"}, "date": {"time", "open"}, "year": {"time", "open"},
            "amount": {"amount", "open", "count"}, "duration": {"duration", "time", "open"},
            "phone": {"open"}, "email": {"open", "place"}}

# messages of one request -> the writer's reply; several requests are written together
Write = Callable[[Sequence[list[dict[str, str]]]], list[str]]


def writer_input(heading: str, sentence: str) -> str:
    """What the writer reads: the sentence, with its section heading when it has one. One
    line: the training data loader collapses whitespace, so this is what the writer was
    trained on, and synth must ask in the same form."""
    return f"Section: {heading} Sentence: {sentence}" if heading else f"Sentence: {sentence}"


def messages_for(heading: str, sentence: str) -> list[dict[str, str]]:
    """One request in the exact format the writer was trained on (``assistant train
    --system-prompt SYSTEM_PROMPT`` on ``training_rows``)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": writer_input(heading, sentence)}]


def first_question(reply: str) -> str:
    """The reply's first line, spaces collapsed (the writer is trained to write one)."""
    line = next((ln for ln in reply.splitlines() if ln.strip()), "")
    return " ".join(re.sub(r"^\s*(?:question\s*:|[-*\u2022]|\d+[.)])\s*", "", line, flags=re.I)
                    .split())


def verdict(candidate: str, sentence: str, kind: str, must_contain: Sequence[str],
            known: Sequence[str]) -> str:
    """"kept", or the first check a written question fails: a question of a sensible length,
    no give-away of the fact, asks for the fact's kind, not a copy of the sentence or of a
    question the fact already has."""
    if not (candidate.endswith("?") or WH_START.match(candidate)):
        return "not a question"
    if not MIN_WORDS <= len(candidate.split()) <= MAX_WORDS:
        return f"not {MIN_WORDS} to {MAX_WORDS} words long"
    if any(contains(candidate, m) for m in must_contain):
        return "gives the fact away"
    allowed = ASKS_FOR.get(kind)
    if allowed is not None and asks(candidate) not in allowed:
        return f"asks for a {asks(candidate)}, not the fact's {kind}"
    mine = content_words(candidate)
    if mine and len(mine & content_words(sentence)) / len(mine) >= COPY_OVERLAP \
            and len(mine) >= 3:
        return "copies the sentence"
    norm = " ".join(candidate.lower().rstrip("?").split())
    if any(norm == " ".join(k.lower().rstrip("?").split()) for k in known):
        return "copies a question the fact has"
    return "kept"


# --- training data from hand-written pairs ----------------------------------------------
@dataclass(frozen=True)
class Located:
    """A document sentence as the writer reads it: its heading and text."""

    heading: str
    text: str


def row_text(sentence: Sentence, column: str, value: str | None = None) -> str:
    """A table row's cell as a sentence: the row, the column and the value (the cell's
    whole text unless ``value`` names the part asked for)."""
    value = value or sentence.fields[column]
    column = re.sub(r"\s+(?:gbp|usd|eur)$", "", column)  # "amount gbp": the value says "£"
    return f"The {column} for {sentence.label} is {value}."


def document_sentences(docs: Path, chunk_size: int, chunk_overlap: int
                       ) -> dict[str, list[Sentence]]:
    """Every sentence (and table row) of each document, by file name, read as ingest reads."""
    from assistant.retrieval.loaders import SUPPORTED, load_chunks

    out: dict[str, list[Sentence]] = {}
    for path in sorted(p for p in docs.iterdir() if p.suffix.lower() in SUPPORTED):
        sentences = out.setdefault(path.name, [])
        for chunk in load_chunks(path, chunk_size, chunk_overlap):
            section = str(chunk.metadata.get("section") or "")
            sentences.extend(passage_sentences(chunk.page_content, section))
    return out


def locate(sentences: Sequence[Sentence], must_contain: Sequence[str], answer: str
           ) -> Located | None:
    """The sentence (or table cell) stating a pair's fact: it holds every ``must_contain``
    string; among several, the one sharing most words with the pair's answer."""
    options: list[Located] = []
    for s in sentences:
        if s.fields:
            options += [Located(s.heading, row_text(s, col)) for col, value in s.fields.items()
                        if must_contain and contains(value, must_contain[0])]
        elif all(contains(s.text, m) for m in must_contain):
            options.append(Located(s.heading, s.text))
    if not options or not must_contain:
        return None
    return max(options, key=lambda o: overlap(answer, o.text))


def training_rows(domains: Sequence[Path], chunk_size: int, chunk_overlap: int
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Writer pairs from each domain's hand-written questions (qa/train.jsonl and
    qa/test.jsonl, in-scope rows): input = the located sentence, answer = the question."""
    rows: list[dict[str, Any]] = []
    counts: dict[str, Any] = {}
    for domain in domains:
        sentences = document_sentences(domain / "docs", chunk_size, chunk_overlap)
        found = missed = 0
        for file in ("train.jsonl", "test.jsonl"):
            path = domain / "qa" / file
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                pair = json.loads(line) if line.strip() else {}
                if not pair or pair.get("out_of_scope") or not pair.get("source"):
                    continue
                where = locate(sentences.get(pair["source"], []), pair.get("must_contain", []),
                               pair.get("answer", ""))
                if where is None:
                    missed += 1
                    continue
                found += 1
                rows.append({"question": writer_input(where.heading, where.text),
                             "answer": " ".join(pair["question"].split()),
                             "fact_id": f"{domain.name}:{pair.get('fact_id') or where.text}"})
        counts[domain.name] = {"pairs": found, "not_located": missed}
    return rows, counts


def write_training_file(domains: Sequence[Path], out: Path, chunk_size: int,
                        chunk_overlap: int) -> dict[str, Any]:
    """Write the writer's training file; returns what went in (for the card and the log)."""
    rows, counts = training_rows(domains, chunk_size, chunk_overlap)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    return {"file": str(out), "rows": len(rows), "domains": counts}
