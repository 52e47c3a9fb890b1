"""Training data for `assistant train`: read and check question/answer pairs, split off a
validation set, and turn each pair into token ids with the answer as the only target.

Kept apart from training.py so the UI can validate an upload without importing torch.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import TrainingDataError
from assistant.jsonl import parse_objects, read_text
from assistant.text import find

MIN_EXAMPLES = 8  # fewer pairs cannot fill a validation split and teach anything reliably
FIELDS = ("question", "answer")
SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class Example:
    """One question/answer pair; ``fact`` groups the phrasings of one fact.

    ``must_contain`` (optional in the data) names the strings that carry the fact; when
    present, validation scores only those tokens (see ``fact_labels``). ``validation``: the
    row says ``"split": "validation"`` (synth's learned writer marks questions worded by
    another generator than training's, so early stopping measures other wordings).
    """

    question: str
    answer: str
    line: int
    fact: str
    must_contain: tuple[str, ...] = ()
    validation: bool = False
    context: str = ""  # passages as layered mode shows them (a reading adapter's pairs)


def load_examples(path: Path | str, min_examples: int = MIN_EXAMPLES) -> list[Example]:
    """Read a JSONL or CSV file of question/answer pairs, refusing it with the bad line named."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise TrainingDataError(f"{path.name}: use a .jsonl or .csv file of question/answer pairs")
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    text = read_text(path, TrainingDataError, path.name)
    if not text.strip():
        raise TrainingDataError(f"{path.name}: the file is empty")
    rows = _jsonl_rows(path.name, text) if kind == "jsonl" else _csv_rows(path.name, text)
    examples = [_example(path.name, line, row) for line, row in rows]
    if len(examples) < min_examples:
        raise TrainingDataError(
            f"{path.name}: only {len(examples)} examples; at least {min_examples} are needed"
        )
    return examples


def _jsonl_rows(name: str, text: str) -> list[tuple[int, dict[str, Any]]]:
    return parse_objects(text, lambda number: f"{name} line {number}", TrainingDataError)


def _csv_rows(name: str, text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        missing = [f for f in FIELDS if f not in header]
        if missing:
            raise TrainingDataError(
                f"{name} line 1: the header needs columns {', '.join(FIELDS)} "
                f"(missing: {', '.join(missing)})"
            )
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise TrainingDataError(
                    f"{name} line {reader.line_num}: malformed CSV row "
                    f"({len(values)} fields, the header has {len(header)})"
                )
            rows.append((reader.line_num, dict(zip(header, values))))
        return rows
    except csv.Error as exc:
        raise TrainingDataError(f"{name} line {reader.line_num}: malformed CSV ({exc})") from None


def _example(name: str, line: int, row: dict[str, Any]) -> Example:
    values = []
    for field in FIELDS:
        value = row.get(field)
        if not isinstance(value, str) or not value.strip():
            problem = "missing field" if value is None else "empty or non-text field"
            raise TrainingDataError(f"{name} line {line}: {problem} {field!r}")
        values.append(" ".join(value.split()))
    fact = str(row.get("fact_id") or "").strip() or values[1].lower()  # same answer, same fact
    split = row.get("split")
    if split not in (None, "", "train", "validation"):
        raise TrainingDataError(f"{name} line {line}: 'split' must be 'train' or 'validation', "
                                f"not {split!r}")
    context = row.get("context") or ""
    if not isinstance(context, str):
        raise TrainingDataError(f"{name} line {line}: 'context' must be text")
    return Example(values[0], values[1], line, fact, _must_contain(name, line, row, values[1]),
                   validation=split == "validation", context=context)


def _must_contain(name: str, line: int, row: dict[str, Any], answer: str) -> tuple[str, ...]:
    """The optional ``must_contain`` list; each string must appear in the answer."""
    value = row.get("must_contain")
    if value in (None, "", []):
        return ()
    if isinstance(value, str):  # one cell (CSV), strings separated by "|"
        value = value.split("|")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrainingDataError(f"{name} line {line}: 'must_contain' must be a list of strings")
    from assistant.text import contains  # the same test the evaluation scores with

    strings = tuple(" ".join(v.split()) for v in value if v.strip())
    missing = [v for v in strings if not contains(answer, v)]
    if missing:
        raise TrainingDataError(
            f"{name} line {line}: must_contain {missing[0]!r} is not in the answer")
    return strings


def fingerprint(path: Path | str) -> dict[str, Any]:
    """Name, size and sha256 of the data file, so a card says exactly what was learned."""
    path = Path(path)
    data = path.read_bytes()
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def split_validation(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Hold out ~``fraction`` of the examples, one phrasing per fact, so every fact is still
    trained on and the validation loss measures recall of a fact asked in new words.

    Facts with a single phrasing stay in training; if no fact has two, random examples are
    held out instead (then validation measures generalisation to unseen facts). Rows the
    file marks ``"split": "validation"`` are the validation set as they are.
    """
    marked = [e for e in examples if e.validation]
    if marked:
        return [e for e in examples if not e.validation], marked
    want = round(len(examples) * fraction)
    if want <= 0:
        return list(examples), []
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.fact, []).append(index)
    candidates = [ids for ids in groups.values() if len(ids) > 1]
    rng.shuffle(candidates)
    held = {rng.choice(ids) for ids in candidates[:want]}
    if not held:
        held = set(rng.sample(range(len(examples)), min(want, len(examples) - 1)))
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


def profile_examples(examples: list[Example], limit: int = 12) -> list[str]:
    """Up to ``limit`` questions for the router profile: one per fact, spread over the file."""
    firsts: dict[str, str] = {}
    for example in examples:
        firsts.setdefault(example.fact, example.question)
    questions = list(firsts.values())
    if len(questions) <= limit:
        return questions
    step = len(questions) / limit
    return [questions[int(i * step)] for i in range(limit)]


def encode_example(
    tokenizer: Any, system_prompt: str, question: str, answer: str, context: str = ""
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one pair: the prompt exactly as the Generator encodes it, then
    the answer and the end-of-turn token; labels are -100 except on the answer part."""
    messages = _messages(system_prompt, question, context)
    prompt_ids = _prompt_ids(tokenizer, messages)
    answer_ids = _with_eos(tokenizer, tokenizer(
        _answer_text(tokenizer, messages, answer), add_special_tokens=False)["input_ids"])
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def fact_labels(
    tokenizer: Any, system_prompt: str, example: Example
) -> tuple[list[int], list[int]]:
    """Like ``encode_example``, but the labels keep only the tokens of the ``must_contain``
    strings (the whole answer when it has none).

    Why: with answers worded differently per phrasing, the answer-token loss mostly measures
    wording, and it bottoms out epochs before the facts are learnt (demo domain, 6 phrasings
    per fact: early stopping then kept an adapter that had learnt few facts). The loss on the fact's
    own tokens measures what the adapter is for.
    """
    if not example.must_contain:
        return encode_example(tokenizer, system_prompt, example.question, example.answer,
                              example.context)
    messages = _messages(system_prompt, example.question, example.context)
    prompt_ids = _prompt_ids(tokenizer, messages)
    tail = _answer_text(tokenizer, messages, example.answer)
    enc = tokenizer(tail, add_special_tokens=False, return_offsets_mapping=True)
    # "23" must label "23 households", not the "23" in "2023" (the rule the eval scores by)
    spans = [span for needle in example.must_contain if (span := find(tail, needle))]
    answer_ids = _with_eos(tokenizer, enc["input_ids"])
    targets = [t if any(a < end and b > begin for begin, end in spans) else -100
               for t, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])]
    targets += [-100] * (len(answer_ids) - len(targets))  # the end-of-turn id
    if all(t == -100 for t in targets):  # nothing found (odd spacing): score the whole answer
        targets = answer_ids
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + targets


def _messages(system_prompt: str, question: str, context: str = "") -> list[dict[str, str]]:
    if context:  # a reading pair: layered mode's exact prompt
        from assistant.answering.prompts import layered_messages

        return layered_messages(question, context, system_prompt)
    messages = [{"role": "user", "content": question}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    return list(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


def _answer_text(tokenizer: Any, messages: list[dict[str, str]], answer: str) -> str:
    """The answer as the chat template writes it (spacing), without the end-of-turn."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": answer}], tokenize=False
    )
    eos = tokenizer.eos_token
    tail = full[len(prompt):] if full.startswith(prompt) else answer
    if eos and eos in tail:
        tail = tail[: tail.index(eos)]  # the template's end-of-turn is added as one id
    return tail


def _with_eos(tokenizer: Any, ids: list[int]) -> list[int]:
    """Answer ids up to and including the end-of-turn id the model must learn to emit."""
    eos_id = tokenizer.eos_token_id
    return list(ids) + ([eos_id] if eos_id is not None else [])
