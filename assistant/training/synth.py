"""Training pairs and held-out questions made from a domain's own documents (`assistant synth`).

Why: adapter mode needs question/answer pairs and the evaluation needs held-out questions
with the facts each answer must contain; hardly any user has those. This finds the sentences
that state a fact (``assistant.training.facts``), asks for each fact in several words, and
keeps only pairs that pass checks a user would
otherwise make by hand: the answer holds the fact's strings (``assistant.text.contains``,
the test the evaluation scores with), the question finds the fact's passage in the top k of
the knowledge base's own search, no question is repeated or shared by two facts, and a
held-out question never equals a training phrasing (its word overlap with them is reported).

Who writes the training questions (``Options.writer``): by default the learned question
writer (``assistant.training.writer``, a LoRA adapter trained on people's hand-written
questions about other documents; ``choose_written``), because rules can only reuse a
document's own words and an adapter trained on them missed people's wordings. The rules
(``choose_phrasings``) write when no writer adapter is installed, and they always write the
held-out and validation questions, so the evaluation never grades a model in its training
questions' generator's words. A model may add rewordings of the rule questions on top
(``add_model_rewordings``, each checked by ``assistant.training.paraphrase``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.text import contains
from assistant.training.facts import (
    MAX_WORDS,
    Sentence,
    Target,
    common_names,
    find_targets,
    is_rule,
    passage_sentences,
    row_targets,
    sentence_key,
)
from assistant.training.paraphrase import Ask, parse, verdict
from assistant.training.questions import questions_for, subordinate
from assistant.training.rewording import WH_START, overlap, restates, reword, shorten, vary
from assistant.training.writer import Write, first_question, messages_for, row_text
from assistant.training.writer import verdict as writer_verdict

# questions -> for each, the ids of the passages the knowledge base returns in its top k
Search = Callable[[Sequence[str]], list[list[str]]]
KIND_ORDER = ("amount", "percent", "duration", "date", "time", "phone", "email", "code",
              "postcode", "person", "name", "measure", "number", "year")
WEAK_KINDS = ("year", "number")  # asked for only when the sentence states nothing else
OUT_OF_SCOPE = [  # general questions no domain document answers
    "What is the capital of Peru?", "Who wrote the novel Pride and Prejudice?",
    "How many legs does a spider have?", "What is the boiling point of water at sea level?",
    "Who painted the Mona Lisa?", "What is the largest planet in the solar system?",
    "How do I make a sourdough starter?", "What is the chemical symbol for gold?",
]
OOS_TOPICS = [  # domain-flavoured questions, kept only when no passage mentions the topic
    ("solar panels", "What is the policy on rooftop solar panels?"),
    ("students", "Is there a discount for students?"),
    ("salary", "What salary does the chief executive earn?"),
    ("revenue", "What was the total revenue last year?"),
    ("cryptocurrency", "Can I pay with cryptocurrency?"),
    ("parking permit", "How do I get a parking permit for visitors?"),
]


@dataclass(frozen=True)
class Passage:
    """One chunk of the knowledge base: what the retrieval check looks for."""

    id: str
    text: str
    source: str
    section: str = ""


@dataclass
class Fact:
    """A sentence and the specific it states; its phrasings and held-out question."""

    fact_id: str
    source: str
    passages: set[str]
    answer: str
    must_contain: list[str]
    kind: str
    candidates: list[str]
    train: list[str] = field(default_factory=list)
    test: str | None = None
    test_overlap: float | None = None
    model_made: int = 0  # how many of ``train`` a model wrote (the last ones)
    reply: str = ""  # the training answer: the sentence up to the end of the fact's clause
    heading: str = ""  # the section heading above the sentence (the learned writer reads it)
    validation: str | None = None  # a rule-made question for early stopping (learned writer)

    @property
    def training_answer(self) -> str:
        return self.reply or self.answer


@dataclass
class Options:
    """How much to make: phrasings per fact, share of facts with a held-out question."""

    phrasings: int = 3
    eval_share: float = 0.5
    seed: int = 0
    per_sentence: int = 2  # facts taken from one sentence (its first specifics by kind)
    out_of_scope: int = 6
    model_rewordings: int = 0  # extra training questions per fact written by a model
    writer: str = "rules"  # who writes the training questions: rules, or the learned writer
    samples: int = 6  # questions the learned writer is asked for per fact (before checks)
    val_share: float = 0.15  # facts whose rule question validates (learned writer only)


@dataclass
class Synthesis:
    facts: list[Fact]
    dropped: list[dict[str, Any]]
    out_of_scope: list[str]
    counts: dict[str, int]


def drop(drops: list[dict[str, Any]], what: str, reason: str, text: str, **extra: Any) -> None:
    drops.append({"what": what, "reason": reason, "text": text[:300], **extra})


# --- facts ------------------------------------------------------------------------------
def extract_facts(passages: Sequence[Passage], options: Options,
                  drops: list[dict[str, Any]]) -> list[Fact]:
    """Every fact sentence of the passages, once (chunks overlap), with candidate questions."""
    by_source: dict[str, str] = {}
    for p in passages:
        by_source[p.source] = by_source.get(p.source, "") + "\n" + p.text
    common = common_names(list(by_source.values()))
    repeated = repeated_cells(passages)
    facts: dict[tuple[str, str], Fact] = {}
    seen_sentences: set[str] = set()
    for passage in passages:
        for sentence in passage_sentences(passage.text, passage.section):
            key = sentence_key(sentence.text)
            if key in seen_sentences:
                for fact in facts.values():
                    if fact.answer and sentence_key(fact.answer) == key:
                        fact.passages.add(passage.id)
                continue
            seen_sentences.add(key)
            for fact in _sentence_facts(passage, sentence, common, options, drops, repeated):
                old = facts.get((fact.must_contain[0].lower(), sentence_key(fact.answer)))
                if old is None:
                    facts[(fact.must_contain[0].lower(), sentence_key(fact.answer))] = fact
    _name_facts(list(facts.values()))
    return list(facts.values())


def repeated_cells(passages: Sequence[Passage], limit: int = 3) -> set[tuple[str, str]]:
    """(column, value) pairs found in ``limit`` or more table rows: a value most rows share
    (an effective date, a unit) tells one row from no other."""
    counts: dict[tuple[str, str], int] = {}
    for passage in passages:
        for sentence in passage_sentences(passage.text, passage.section):
            for cell in sentence.fields.items():
                counts[cell] = counts.get(cell, 0) + 1
    return {cell for cell, n in counts.items() if n >= limit}


def _sentence_facts(passage: Passage, sentence: Sentence, common: frozenset[str],
                    options: Options, drops: list[dict[str, Any]],
                    repeated: set[tuple[str, str]]) -> list[Fact]:
    if sentence.fields:
        cells = row_targets(sentence, common)
        for column, target in cells:
            if (column, sentence.fields[column]) in repeated:
                drop(drops, "fact", "the same value is in most rows of its table",
                     f"{sentence.label}: {column}: {target.text}", source=passage.source)
        return [_row_fact(passage, sentence, column, target) for column, target in cells
                if (column, sentence.fields[column]) not in repeated]
    targets = find_targets(sentence.text, common)
    if not targets:
        if is_rule(sentence.text):
            drop(drops, "sentence", "states a rule but no number, name, date or code to check",
                 sentence.text, source=passage.source)
        return []
    if len(sentence.text.split()) > MAX_WORDS:
        drop(drops, "sentence", f"longer than {MAX_WORDS} words: a poor answer", sentence.text,
             source=passage.source)
        return []
    strong = [t for t in targets if t.kind not in WEAK_KINDS] or targets[:1]
    chosen = sorted(strong, key=lambda t: KIND_ORDER.index(t.kind))[:options.per_sentence]
    out = []
    for target in sorted(chosen, key=lambda t: t.start):
        out.append(Fact("", passage.source, {passage.id}, sentence.text, [target.must],
                        target.kind, training_candidates(questions_for(sentence, target)),
                        reply=clause_answer(sentence.text, target), heading=sentence.heading))
    return out


_CLAUSE_END = re.compile(r",\s|;\s|\s[–-]\s|\s\(|\s(?:so|which|who|where|while|because|"
                         r"although|unless|except|provided)\s")


def clause_answer(text: str, target: Target) -> str:
    """The sentence cut after the clause that states the target: "The current chair of the
    board is Ingrid Vasquez-Holm, who was first elected ..." -> "The current chair of the board
    is Ingrid Vasquez-Holm." At least five words are kept (a timeline's "1987 – ..." stays
    whole), a leading "If ..., " keeps its main clause, and the sentence stays whole when no
    clause follows. Why: trained on rule-made questions cut from their answer sentence, an
    adapter learns to restate the sentence; the hand-written answers of the same facts,
    short and to the point, taught it the facts better (docs/evaluation.md, "Same facts,
    other wordings")."""
    end = target.start + len(target.text)
    lead = subordinate(text)  # "During any interruption longer than 8 hours, we ...": keep
    cut = next((m for m in _CLAUSE_END.finditer(text, end)  # the main clause after the lead
                if len(text[:m.start()].split()) >= 5
                and not (lead and not re.search(r"[,;]\s", text[:m.start()]))), None)
    if not cut:
        return text
    short = text[:cut.start()].rstrip(" ,;:–-")
    return short if short.endswith((".", "!", "?")) else short + "."


def _row_fact(passage: Passage, sentence: Sentence, column: str, target: Target) -> Fact:
    """A table cell as a fact: the answer says the row, the column and the value."""
    return Fact("", passage.source, {passage.id}, row_text(sentence, column, target.text),
                [target.must],
                target.kind, training_candidates(questions_for(sentence, target, column)),
                heading=sentence.heading)


def is_asked(question: str) -> bool:
    """A question in its own words (a question word first, or a short topic question), not
    the fact sentence with a gap in it (the echo form)."""
    return bool(WH_START.match(question)) or len(question.split()) <= 6


def training_candidates(questions: list[str]) -> list[str]:
    """The questions, the echo forms cut to the ten words around their question word."""
    out: list[str] = []
    for question in questions:
        q = question if is_asked(question) else shorten(question, keep=10)
        if q.lower() not in {o.lower() for o in out}:
            out.append(q)
    return out


def _name_facts(facts: list[Fact]) -> None:
    """Fact ids: the document's stem and a number, stable for a given document set."""
    counters: dict[str, int] = {}
    for fact in facts:
        stem = Path(fact.source).stem
        counters[stem] = counters.get(stem, 0) + 1
        fact.fact_id = f"{stem}-{counters[stem]:03d}"


# --- checks -----------------------------------------------------------------------------
def check_answers(facts: list[Fact], drops: list[dict[str, Any]]) -> list[Fact]:
    """The answer must hold the fact's strings, as the evaluation tests them."""
    kept = []
    for fact in facts:
        if any(not contains(fact.reply, m) for m in fact.must_contain):
            fact.reply = ""  # the cut lost a string: train on the whole sentence
        missing = [m for m in fact.must_contain if not contains(fact.answer, m)]
        if missing:
            drop(drops, "fact", f"answer does not contain {missing[0]!r}", fact.answer,
                 fact_id=fact.fact_id)
        elif not fact.candidates:
            drop(drops, "fact", "no question could be made from the sentence", fact.answer,
                 fact_id=fact.fact_id)
        else:
            kept.append(fact)
    return kept


def drop_shared_questions(facts: list[Fact], drops: list[dict[str, Any]]) -> None:
    """A question two facts would both answer is ambiguous: it goes from both."""
    owners: dict[str, set[str]] = {}
    for fact in facts:
        for question in fact.candidates:
            owners.setdefault(question.lower(), set()).add(fact.fact_id)
    for fact in facts:
        keep = []
        for question in fact.candidates:
            others = owners[question.lower()] - {fact.fact_id}
            if others:
                drop(drops, "pair", "same question as another fact (ambiguous)", question,
                     fact_id=fact.fact_id, other=sorted(others)[0])
            else:
                keep.append(question)
        fact.candidates = keep


def retrieved(questions: list[str], search: Search) -> dict[str, set[str]]:
    """The passage ids each question finds in the top k, all questions in one search."""
    return ({q: set(ids) for q, ids in zip(questions, search(questions), strict=True)}
            if questions else {})


def check_retrieval(facts: list[Fact], search: Search, drops: list[dict[str, Any]]) -> None:
    """Keep only questions whose fact's passage comes back in the top k."""
    questions = [q for fact in facts for q in fact.candidates]
    found = retrieved(questions, search)
    for fact in facts:
        keep = []
        for question in fact.candidates:
            if fact.passages & found.get(question, set()):
                keep.append(question)
            else:
                drop(drops, "pair", "question does not retrieve the fact's passage in the top k",
                     question, fact_id=fact.fact_id)
        fact.candidates = keep


def choose_phrasings(facts: list[Fact], options: Options, search: Search,
                     drops: list[dict[str, Any]]) -> list[Fact]:
    """Training phrasings, and one held-out question for a share of the facts.

    A held-out fact keeps one of its questions back (when it has two asked in their own
    words), so its held-out question is a rewording of a form training never saw. Training
    takes the other asked questions, each with a variant in other words (``vary``), the
    ones whose answer does not restate them first; the echo form only when nothing else
    could be asked. Why: measured on the demo domain, an adapter trained on questions whose
    answer holds nearly all their words learned to restate the question instead of
    recalling the fact."""
    rng = random.Random(options.seed)
    kept = [f for f in facts if f.candidates]
    for fact in facts:
        if not fact.candidates:
            drop(drops, "fact", "no question retrieves its passage", fact.answer,
                 fact_id=fact.fact_id)
    held = {f.fact_id for f in kept if rng.random() < options.eval_share}
    reserved: dict[str, str] = {}
    pools: dict[str, list[str]] = {}
    for fact in kept:
        asked = [q for q in fact.candidates if is_asked(q)]
        if fact.fact_id in held and len(asked) >= 2:
            reserved[fact.fact_id] = asked.pop()
        base = asked or fact.candidates[:1]
        pools[fact.fact_id] = [v for q in base for v in (q, vary(q))]
    variants = [q for pool in pools.values() for q in pool[1::2]]
    found = retrieved(variants, search)
    for fact in kept:
        pool, seen = [], set()
        for index, question in enumerate(pools[fact.fact_id]):
            is_variant = index % 2 == 1
            if question.lower() in seen or (
                    is_variant and not fact.passages & found.get(question, set())):
                continue
            seen.add(question.lower())
            pool.append(question)
        pool.sort(key=lambda q: (not is_asked(q), restates(q, fact.training_answer)))
        fact.train = pool[:options.phrasings]
    _choose_held_out(kept, held, options, search, drops, reserved)
    return kept


def add_model_rewordings(facts: list[Fact], ask: Ask, options: Options, search: Search,
                         drops: list[dict[str, Any]]) -> None:
    """Up to ``options.model_rewordings`` more training questions per fact: the model's
    rewordings of the fact's asked training questions that pass every check of
    ``assistant.training.paraphrase.verdict`` and still retrieve the fact's passage. Run after
    the held-out questions are chosen, so none of those is a model's rewording."""
    sources = [(fact, q) for fact in facts for q in fact.train if is_asked(q)]
    replies = ask([q for _, q in sources]) if sources else []
    candidates: dict[str, list[str]] = {}
    for (fact, source), reply in zip(sources, replies, strict=True):
        mine = candidates.setdefault(fact.fact_id, [])
        for text in parse(reply):
            why = verdict(text, source, fact.must_contain, fact.train + mine)
            if why == "kept" and fact.test and text.lower() == fact.test.lower():
                why = "equals the held-out question"
            if why == "kept":
                mine.append(text)
            else:
                drop(drops, "model rewording", why, text, fact_id=fact.fact_id, of=source)
    flat = [q for qs in candidates.values() for q in qs]
    found = retrieved(flat, search)
    for fact in facts:
        kept: list[str] = []
        for question in candidates.get(fact.fact_id, []):
            if not fact.passages & found.get(question, set()):
                drop(drops, "model rewording", "does not retrieve the fact's passage in the "
                     "top k", question, fact_id=fact.fact_id)
            elif len(kept) < options.model_rewordings:
                kept.append(question)
        fact.train += kept
        fact.model_made = len(kept)
        if fact.test is not None:
            fact.test_overlap = round(max(overlap(fact.test, t) for t in fact.train), 3)


def written_questions(facts: list[Fact], write: Write, options: Options,
                      drops: list[dict[str, Any]]) -> dict[str, list[str]]:
    """``options.samples`` questions per fact from the learned writer, each kept only when it
    passes ``writer.verdict`` (a question, no give-away, asks for the fact's kind, no copy)."""
    requests = [(fact, messages_for(fact.heading, fact.answer))
                for fact in facts for _ in range(options.samples)]
    replies = write([messages for _, messages in requests]) if requests else []
    out: dict[str, list[str]] = {}
    for (fact, _), reply in zip(requests, replies, strict=True):
        mine = out.setdefault(fact.fact_id, [])
        question = first_question(reply)
        why = writer_verdict(question, fact.answer, fact.kind, fact.must_contain, mine)
        if why == "kept":
            mine.append(question)
        else:
            drop(drops, "written question", why, question, fact_id=fact.fact_id)
    return out


def choose_written(facts: list[Fact], written: dict[str, list[str]], options: Options,
                   search: Search, drops: list[dict[str, Any]]) -> list[Fact]:
    """Training questions from the learned writer; held-out and validation questions from
    the rules, so neither is graded in the training questions' generator's words.

    A fact whose written questions all fail keeps the rules' asked questions (counted as
    ``rule_fallback``). Held-out facts get a reworded rule question; a share of the other
    facts lends one rule question to the validation split (never a held-out fact's)."""
    found = retrieved([q for qs in written.values() for q in qs], search)
    for fact in facts:
        ok = []
        for question in written.get(fact.fact_id, []):
            if fact.passages & found.get(question, set()):
                ok.append(question)
            else:
                drop(drops, "written question", "does not retrieve the fact's passage in the "
                     "top k", question, fact_id=fact.fact_id)
        fact.train = ok[:options.phrasings]
        fact.model_made = len(fact.train)
        if not fact.train:
            fact.train = [q for q in fact.candidates if is_asked(q)][:options.phrasings] \
                or fact.candidates[:1]
    kept = [f for f in facts if f.train]
    rng = random.Random(options.seed)
    held = {f.fact_id for f in kept if rng.random() < options.eval_share}
    _choose_held_out(kept, held, options, search, drops, {})
    spare = [f for f in kept if f.fact_id not in held and f.candidates]
    for fact in rng.sample(spare, k=min(len(spare), round(options.val_share * len(kept)))):
        trained = {t.lower() for t in fact.train}
        fact.validation = next((q for q in fact.candidates if q.lower() not in trained), None)
    return kept


def _choose_held_out(facts: list[Fact], held: set[str], options: Options, search: Search,
                     drops: list[dict[str, Any]], reserved: dict[str, str]) -> None:
    """One reworded rule question per held-out fact that still finds the fact's passage:
    the one sharing fewest words with the fact's training questions. ``reserved``: the
    question a fact kept back from training, reworded first."""
    options_by_fact = {f.fact_id: _held_out_options(f, reserved.get(f.fact_id), options.seed)
                       for f in facts if f.fact_id in held}
    found = retrieved([q for qs in options_by_fact.values() for q in qs], search)
    for fact in facts:
        if fact.fact_id not in held:
            continue
        ok = [q for q in options_by_fact[fact.fact_id] if fact.passages & found.get(q, set())]
        if not ok:
            drop(drops, "held-out", "no reworded question retrieves the fact's passage",
                 fact.answer, fact_id=fact.fact_id)
            continue
        fact.test = min(ok, key=lambda q: max(overlap(q, t) for t in fact.train))
        fact.test_overlap = round(max(overlap(fact.test, t) for t in fact.train), 3)


def _held_out_options(fact: Fact, reserved: str | None, seed: int) -> list[str]:
    """Reworded candidates (of the question kept back, when there is one) that equal no
    training phrasing (case and spaces ignored)."""
    spare = [reserved] if reserved else (
        [q for q in fact.candidates if q not in fact.train] or fact.candidates)
    trained = {" ".join(t.lower().split()) for t in fact.train}
    out = []
    for index, question in enumerate(spare):
        for strong in (False, True):
            new = reword(question, seed + index, strong)
            if " ".join(new.lower().split()) not in trained and new not in out:
                out.append(new)
    return out


def out_of_scope(passages: Sequence[Passage], options: Options) -> list[str]:
    """General questions, and domain-flavoured ones whose topic no passage mentions."""
    text = " ".join(p.text.lower() for p in passages)
    rng = random.Random(options.seed)
    domain = [q for topic, q in OOS_TOPICS if topic not in text]
    general = rng.sample(OUT_OF_SCOPE, k=min(len(OUT_OF_SCOPE), options.out_of_scope))
    mixed = domain[: options.out_of_scope // 2] + general
    return mixed[: options.out_of_scope]


# --- the whole run ----------------------------------------------------------------------
def synthesize(passages: Sequence[Passage], search: Search, options: Options | None = None,
               ask: Ask | None = None, write: Write | None = None) -> Synthesis:
    """Facts -> checked pairs and held-out questions, with every drop and its reason.
    ``ask``: a model to reword training questions (``options.model_rewordings`` per fact);
    ``write``: the learned question writer (``options.writer == "learned"``)."""
    options = options or Options()
    drops: list[dict[str, Any]] = []
    facts = extract_facts(passages, options, drops)
    found = len(facts)
    facts = check_answers(facts, drops)
    drop_shared_questions(facts, drops)
    check_retrieval(facts, search, drops)
    if options.writer == "learned" and write is not None:
        facts = choose_written(facts, written_questions(facts, write, options, drops), options,
                               search, drops)
    else:
        facts = choose_phrasings(facts, options, search, drops)
    if ask is not None and options.model_rewordings > 0:
        add_model_rewordings(facts, ask, options, search, drops)
    counts = {"passages": len(passages), "facts_found": found, "facts_kept": len(facts),
              "train_pairs": sum(len(f.train) for f in facts),
              "model_pairs": sum(f.model_made for f in facts),
              "validation_pairs": sum(f.validation is not None for f in facts),
              "test_questions": sum(f.test is not None for f in facts)}
    return Synthesis(facts, drops, out_of_scope(passages, options), counts)


def train_rows(synthesis: Synthesis) -> list[dict[str, Any]]:
    """Lines of train.jsonl, in the format `assistant train` reads."""
    rows = [{"question": q, "answer": f.training_answer, "must_contain": f.must_contain,
             "source": f.source, "fact_id": f.fact_id} for f in synthesis.facts for q in f.train]
    return rows + [{"question": f.validation, "answer": f.training_answer,
                    "must_contain": f.must_contain, "source": f.source, "fact_id": f.fact_id,
                    "split": "validation"} for f in synthesis.facts if f.validation]


def held_out_rows(synthesis: Synthesis) -> list[dict[str, Any]]:
    """Lines of test.jsonl, in the evaluation's questions format, out-of-scope ones last."""
    rows: list[dict[str, Any]] = [
        {"question": f.test, "answer": f.answer, "must_contain": f.must_contain,
         "source": f.source, "fact_id": f.fact_id}
        for f in synthesis.facts if f.test is not None]
    rows += [{"question": q, "answer": "The documents do not say.", "must_contain": [],
              "source": None, "fact_id": f"oos-{i + 1}", "out_of_scope": True}
             for i, q in enumerate(synthesis.out_of_scope)]
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
