"""Fact sentences in a domain's passages: the sentence, and the specific a question can ask for.

Used by ``assistant.training.synth`` to make training pairs and held-out questions from the
user's own documents. A fact is one sentence (or one table row written out as a sentence)
plus one *target*: the string that carries the fact (an amount, a duration, a date, a code,
a name...) and becomes the pair's ``must_contain``. Detection is by rule, not by a model:
the bundled 135M model writes few usable questions (see ``assistant.training.synth``), and
rules state plainly why a sentence was or was not taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.text import normalise

MONTHS = ("January|February|March|April|May|June|July|August|September|October|November"
          "|December")
DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
NUMBER_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen"
                "|twenty|thirty|forty|fifty|sixty|ninety|hundred")
TIME_UNITS = (r"(?:working |business |calendar |clear )?(?:days?|weeks?|months?|years?|hours?"
              r"|minutes?|seconds?)")
_NUM = r"\d[\d,]*(?:\.\d+)?"

# (kind, pattern, group holding the must_contain string). Earlier patterns win overlaps.
PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), 0),
    ("phone", re.compile(r"(?<!\d)0\d{3,4} \d{3} ?\d{3,4}(?!\d)"), 0),
    ("code", re.compile(r"(?<!\w)\d{2}-\d{2}-\d{2}(?!\w)"), 0),  # sort codes
    ("amount", re.compile(rf"[£$€]\s?({_NUM})"), 1),
    ("percent", re.compile(rf"({_NUM})\s?(?:%|per ?cent\b)"), 1),
    ("time", re.compile(r"(?<![\d.:])([01]?\d|2[0-3]):[0-5]\d(?![\d:])"), 0),
    ("date", re.compile(rf"\b(?:first|second|third|fourth|last) (?:{DAYS})(?: (?:of|in) "
                        rf"(?:each month|(?:{MONTHS})))?"), 0),
    ("date", re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)? (?:{MONTHS})(?: \d{{4}})?\b"), 0),
    ("date", re.compile(rf"\b(?:{MONTHS}) \d{{4}}\b"), 0),
    ("duration", re.compile(rf"\b(?:{_NUM}|{NUMBER_WORDS}) {TIME_UNITS}\b(?!-)", re.I), 0),
    ("postcode", re.compile(r"\b[A-Z]{1,2}\d{1,2}[A-Z]? \d[A-Z]{2}\b"), 0),
    ("code", re.compile(r"\b[A-Z]{1,4}\d?-[A-Z0-9]{1,6}(?:-[A-Z0-9]{1,4})?\b"), 0),
    ("measure", re.compile(rf"({_NUM}) ?(?:bar|litres?|liters?|mg/L|m³|m3|cubic metres?|km"
                           r"|kilometres?|metres?|kg|kW|mm|cm|miles?|GB|MB)\b"), 1),
    ("measure", re.compile(rf"({_NUM}) ?(?:°C|°F|degrees)"), 1),
    ("date", re.compile(r"\b\d{1,2}(?:st|nd|rd|th)\b"), 0),  # "the 2nd day of each month"
    ("year", re.compile(r"\b(?:19|20)\d{2}\b"), 0),
    ("number", re.compile(rf"(?<![\w.,-]){_NUM}(?![\w-])"), 0),
]
_NAME = re.compile(r"\b[A-Z][a-z]*[A-Z]?[a-z]+(?:[-'][A-Z][a-z]+)*"
                   r"(?: (?:of |and |de |van )?[A-Z][a-z]*[A-Z]?[a-z]+(?:[-'][A-Z][a-z]+)*)*")
PERSON_TITLES = ("Dr", "Mr", "Mrs", "Ms", "Miss", "Prof", "Professor", "Sir", "Dame")
ROLE_WORDS = {"general", "manager", "director", "secretary", "officer", "chair", "meeting",
              "annual", "quality", "customer", "relations", "finance", "operations", "day",
              "training", "staff", "report", "head", "senior", "chief", "executive", "assistant",
              "department", "policy", "procedure", "appendix", "table", "note", "notes"}
PERSON_CUES = re.compile(r"\b(chair|chaired|manager|director|secretary|officer|led by|managed by"
                         r"|head of|headed|ombudsman is|president|founder|appointed|who |"
                         r"responsible|contact person|lead|coordinator|advisor|adviser)", re.I)
PLACE_WORDS = {"laboratories", "council", "works", "reservoir", "yard", "lane", "road", "street",
               "register", "exchange", "ombudsman", "cooperative", "ltd", "limited", "office",
               "hall", "house", "centre", "center", "park", "bridge", "hill", "station", "bank",
               "group", "team", "board", "portal", "plan", "scheme", "fund", "service", "services",
               "company", "inc", "building", "floor", "wing", "room", "campus", "clinic", "school"}
NOT_NAMES = set(MONTHS.split("|")) | set(DAYS.split("|")) | {
    "I", "If", "The", "This", "These", "That", "Those", "There", "We", "You", "Our", "Your",
    "It", "For", "In", "On", "At", "When", "Where", "Each", "Every", "All", "Any", "Some",
    "Please", "Note", "See", "A", "An", "To", "From", "After", "Before", "By", "With", "No",
    "Yes", "Stage", "Phase", "Form", "Section", "Unit", "Part", "Monday", "VAT"}
MAX_WORDS = 60  # longer sentences make poor answers and are usually lists run together
RULE_WORDS = re.compile(r"\b(must|never|not allowed|only|may not|cannot|prohibited)\b", re.I)
_ABBREV = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Prof|St|No|e\.g|i\.e|etc|approx|vs)\.$")


@dataclass(frozen=True)
class Target:
    """The specific a question asks for: its text as written, the ``must_contain`` string
    (the smallest robust part of it: ``148.50`` of ``£148.50``) and its kind."""

    text: str
    must: str
    kind: str
    start: int
    end: int


@dataclass
class Sentence:
    """One candidate sentence with where it came from. ``label``/``field`` are set for a
    table row written out as a sentence: the row's name and the column asked about."""

    text: str
    heading: str = ""
    label: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def clean(text: str) -> str:
    """Markdown emphasis, list markers and code ticks dropped; spaces collapsed."""
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", text)
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return " ".join(text.split())


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph: split after . ! ? before a capital, not after Dr. or e.g."""
    parts, start = [], 0
    for match in re.finditer(r"[.!?](?=\s+[A-Z0-9\"'(£$€])", paragraph):
        if _ABBREV.search(paragraph[start:match.end()]):
            continue
        parts.append(paragraph[start:match.end()].strip())
        start = match.end()
    parts.append(paragraph[start:].strip())
    return [p for p in parts if p]


def is_heading(line: str) -> bool:
    """A short line with no closing punctuation: a section title inside a chunk."""
    words = line.split()
    return 0 < len(words) <= 9 and not re.search(r"[.!?:;|]$", line) and "|" not in line \
        and ": " not in line


def passage_sentences(text: str, section: str = "") -> list[Sentence]:
    """Sentences, table rows and records of one passage, each with the heading above it."""
    lines = [line.strip() for line in text.splitlines()]
    heading = section.split(" > ")[-1] if section else ""
    out: list[Sentence] = []
    header: list[str] = []
    for index, line in enumerate(lines):
        if not line or (index == 0 and section and line == section):
            header = [] if not line else header
            continue
        if _record(line):
            out.append(_record_sentence(line, heading))
        elif "|" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                continue
            if not header:
                header = cells
                continue
            out.append(_row_sentence(header, cells, heading))
        elif is_heading(clean(line)):
            heading, header = clean(line), []
        else:
            header = []
            out.extend(Sentence(clean(s), heading) for s in split_sentences(line))
    return out


def _record(line: str) -> bool:
    """A CSV row as the loader writes it: ``key: value; key: value``."""
    return line.count(": ") >= 3 and line.count("; ") >= 2 and "|" not in line


def _record_sentence(line: str, heading: str) -> Sentence:
    fields: dict[str, str] = {}
    key = ""
    for part in line.split("; "):
        name, sep, value = part.partition(": ")
        if sep and re.fullmatch(r"[a-z][a-z0-9 _]{0,40}", name):
            key = name
            fields[key] = value.strip()
        elif key:  # a value that itself held "; " (a list of places)
            fields[key] += "; " + part.strip()
    return _fields_sentence(fields, heading)


def _row_sentence(header: list[str], cells: list[str], heading: str) -> Sentence:
    fields = {h.lower(): c for h, c in zip(header, cells, strict=True) if h and c}
    return _fields_sentence(fields, heading)


def _fields_sentence(fields: dict[str, str], heading: str) -> Sentence:
    """A row as one sentence: the label (its first text fields), then field: value pairs."""
    texts = [v for v in fields.values()
             if not re.search(r"\d", v) and not re.fullmatch(r"[A-Z0-9-]+", v)]
    label = texts[0] if texts else next(iter(fields.values()), "")
    if len(texts) > 1 and len(label.split()) < 3 and len(texts[1].split()) <= 3:
        label = f"{label} {texts[1].lower()}"
    body = "; ".join(f"{k}: {v}" for k, v in fields.items())
    return Sentence(f"{label}: {body}.", heading, label, dict(fields))


def find_targets(text: str, common: frozenset[str] = frozenset()) -> list[Target]:
    """Every specific in ``text`` (numbers, dates, codes, names), non-overlapping, in order.

    ``common`` holds names found all over the domain (the organisation, its town): they
    identify nothing, so they are no target.
    """
    taken: list[Target] = []
    for kind, pattern, group in PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t.end and end > t.start for t in taken):
                continue
            must = match.group(group).strip().rstrip(".,")
            if kind == "number" and _weak_number(text, start, must):
                continue
            taken.append(Target(match.group(0), must, kind, start, end))
    for name in _names(text, common):
        if not any(name.start < t.end and name.end > t.start for t in taken):
            taken.append(name)
    return sorted(taken, key=lambda t: t.start)


def _weak_number(text: str, start: int, number: str) -> bool:
    """Numbers that name a part of the document (section 3, stage 2, form 4), not a fact."""
    before = text[max(0, start - 9):start].lower()
    return bool(re.search(r"(section|stage|phase|step|part|page|form|unit|no\.?) $", before))


def _names(text: str, common: frozenset[str]) -> list[Target]:
    found = []
    for match in _NAME.finditer(text):
        words = match.group(0).split()
        while words and words[0] in NOT_NAMES:
            words = words[1:]
        while words and (words[-1] in ("of", "and", "de", "van") or words[-1] in NOT_NAMES):
            words = words[:-1]
        name = " ".join(words)
        if not name or name in common or len(name) < 3:
            continue
        start = match.start() + match.group(0).index(name)
        opening = start == 0 or re.search(r"(?:[:–(]|\. ) ?$", text[:start]) is not None
        if opening and len(words) == 1 and not _camel(name):
            continue  # one capitalised word opening the sentence: just a sentence start
        if all(w in common or _word(w) in PLACE_WORDS | ROLE_WORDS for w in words):
            continue
        person = not any(w in common for w in words) and is_person(text, start, words)
        kind = "person" if person else "name"
        must = words[-1] if kind == "person" else name
        found.append(Target(name, must, kind, start, start + len(name)))
    return found


def _word(word: str) -> str:
    return re.sub(r"'s?$", "", word.lower())


def _camel(word: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][a-z]+[A-Z][a-z]+", word))


def is_person(text: str, start: int, words: list[str]) -> bool:
    """A person's name: after a title (Dr), or two or three capitalised words (no place,
    role or brand word among them) in a sentence that speaks of a role (chair, manager)."""
    before = text[:start].split()[-1:] if start else []
    if before and before[0].rstrip(".") in PERSON_TITLES:
        return True
    if not 2 <= len(words) <= 3 or any(_camel(w) for w in words):
        return False
    if any(_word(w) in PLACE_WORDS | ROLE_WORDS for w in words):
        return False
    return PERSON_CUES.search(text) is not None


def common_names(texts: list[str], share: float = 0.5) -> frozenset[str]:
    """Names (and their words) in more than ``share`` of the documents: the organisation's
    own name and its town are everywhere and identify no fact."""
    counts: dict[str, int] = {}
    for text in texts:
        seen = {t.text for t in _names(text, frozenset())}
        seen |= {w for name in list(seen) for w in name.split()}
        for name in seen:
            counts[name] = counts.get(name, 0) + 1
    limit = max(2, share * len(texts))
    return frozenset(n for n, c in counts.items() if c > limit)


def row_targets(sentence: Sentence, common: frozenset[str]) -> list[tuple[str, Target]]:
    """(column, target) for a table row: each column other than the row's label whose value
    states a specific, the whole value as the target when it is short."""
    out = []
    for column, value in sentence.fields.items():
        if value == sentence.label or value.lower() in sentence.label.lower():
            continue
        found = find_targets(value, common)
        if not found:
            continue
        first = found[0]
        short = len(value.split()) <= 4 and not re.search(r"[;,]", value)
        if short and first.kind not in ("amount", "percent", "measure"):
            first = Target(value, first.must if first.kind == "person" else value, first.kind,
                           0, len(value))
        out.append((column, first))
    return out


def is_rule(text: str) -> bool:
    """A sentence that states a rule (must, never, only...) but no specific to check."""
    return bool(RULE_WORDS.search(text))


def sentence_key(text: str) -> str:
    """Equal for the same sentence seen twice (chunks overlap; a fact repeated)."""
    return re.sub(r"[^a-z0-9]+", " ", normalise(text)).strip()
