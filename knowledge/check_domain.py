"""Check a Strata knowledge domain folder before ingesting it or training on it.

    python -m knowledge.check_domain knowledge/harrowgate-water
    python -m knowledge.check_domain knowledge/my-domain --min-docs 1 --min-words 0 \\
        --formats md --min-facts 5 --min-test-facts 5 --min-out-of-scope 1 \\
        --min-domain-routes 2 --min-general-routes 2 --profile-examples 3

Checks what knowledge/README.md asks of a domain: the documents (file names, formats, HTML
nesting, CSV widths, Markdown headings), the question files (fields, every ``must_contain``
string in its source document and its own answer, phrasings per fact, no test question equal
to a training one, test facts covered by training), the labelled routes and the router
profile. The size thresholds are arguments; their defaults are what the bundled demo domain
is built to. Prints a report; exit status 1 when there are errors. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

DECLINE = "The documents do not say."
QA_FIELDS = ("question", "answer", "must_contain", "source", "fact_id")
FORMATS = ("md", "txt", "html", "csv")
_STOP = {"the", "a", "an", "of", "is", "what", "to", "for", "do", "i", "my", "in", "how", "does",
         "are", "and", "on", "it", "at", "be", "by", "which", "when", "can", "much", "get", "who",
         "s"}


@dataclass
class Limits:
    """The thresholds a domain must meet (defaults: what the demo domain is built to)."""

    min_docs: int = 9
    min_words: int = 6500
    formats: tuple[str, ...] = FORMATS  # each must have at least one document
    min_facts: int = 60  # distinct fact_ids in train.jsonl
    min_test_facts: int = 60  # distinct in-scope fact_ids in test.jsonl
    min_out_of_scope: int = 8
    min_phrasings: int = 3  # training phrasings per fact
    max_must_contain: int = 2
    min_domain_routes: int = 24
    min_general_routes: int = 16
    profile_examples: int = 12  # at least this many example questions in profile.json
    overlap_warning: float = 0.5  # Jaccard of a test question with its fact's training phrasing


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what was found, for the printout

    @property
    def ok(self) -> bool:
        return not self.errors


# --- documents --------------------------------------------------------------------------------
class _Strip(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link", "area", "base",
                                "col", "embed", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags[tag] += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
            return
        self.problems.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _html_text(name: str, raw: str, report: Report) -> str:
    parser = _Strip()
    parser.feed(raw)
    parser.close()
    report.errors += [f"{name}: HTML nesting problem: {p}" for p in parser.problems]
    if parser.stack:
        report.errors.append(f"{name}: unclosed HTML tags {parser.stack}")
    report.errors += [f"{name}: no <{t}> element" for t in ("h1", "h2", "p", "table")
                      if not parser.tags[t]]
    return html.unescape(" ".join(parser.parts))


def doc_text(path: Path, report: Report) -> str:
    """The document's text (HTML tags stripped), recording any format problem in ``report``."""
    raw = path.read_text(encoding="utf-8")
    name = path.name
    if name.endswith(".html"):
        return _html_text(name, raw, report)
    if name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(raw)))
        if len(rows) < 2:
            report.errors.append(f"{name}: CSV needs a header row and data rows")
        for i, row in enumerate(rows[1:], 2):
            if len(row) != len(rows[0]):
                report.errors.append(
                    f"{name}: line {i} has {len(row)} fields, header has {len(rows[0])}")
    if name.endswith(".md"):
        for mark in ("# ", "## "):
            if not re.search(rf"^{mark}", raw, re.MULTILINE):
                report.errors.append(f"{name}: no '{mark}' heading")
    return raw


def check_documents(domain: Path, limits: Limits, report: Report) -> dict[str, str]:
    """Every document's text by file name."""
    docs = domain / "docs"
    if not docs.is_dir():
        report.errors.append(f"missing docs dir {docs}")
        return {}
    texts = {}
    for path in sorted(p for p in docs.iterdir() if p.is_file()):
        if not re.fullmatch(r"[a-z0-9-]+\.(md|txt|html|csv)", path.name):
            report.errors.append(
                f"bad doc filename {path.name!r} (lowercase, hyphens, .md/.txt/.html/.csv)")
        texts[path.name] = doc_text(path, report)
    counts = Counter(Path(n).suffix.lstrip(".") for n in texts)
    report.errors += [f"no .{ext} document" for ext in limits.formats if not counts[ext]]
    words = {name: len(text.split()) for name, text in texts.items()}
    total = sum(words.values())
    if len(texts) < limits.min_docs:
        report.errors.append(f"only {len(texts)} documents (need >= {limits.min_docs})")
    if total < limits.min_words:
        report.errors.append(f"docs total {total} words (need >= {limits.min_words})")
    report.lines += ["documents:", *[f"  {words[n]:6d}  {n}" for n in sorted(words)],
                     f"  {total:6d}  TOTAL ({len(texts)} files)"]
    return texts


# --- question files ---------------------------------------------------------------------------
def load_jsonl(path: Path, required: tuple[str, ...], report: Report) -> list[dict]:
    """The objects of a JSONL file, each with its line number in ``_line``."""
    if not path.is_file():
        report.errors.append(f"missing file {path}")
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{n}"
        if not line.strip():
            report.errors.append(f"{where}: blank line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.errors.append(f"{where}: invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict):
            report.errors.append(f"{where}: not an object")
            continue
        report.errors += [f"{where}: missing field '{k}'" for k in required if k not in obj]
        obj["_line"] = n
        rows.append(obj)
    return rows


def norm_q(question: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", re.sub(r"\s+", " ", question.lower())).strip()


def _tokens(question: str) -> set[str]:
    return {t for t in re.findall(r"[a-z0-9]+", question.lower()) if t not in _STOP}


def _check_row(row: dict, where: str, texts: dict[str, str], limits: Limits) -> list[str]:
    """The errors of one question line."""
    errors = [f"{where}: empty {k}" for k in ("question", "answer")
              if not isinstance(row.get(k), str) or not row[k].strip()]
    mc = row.get("must_contain")
    if not isinstance(mc, list) or not all(isinstance(s, str) and s.strip() for s in mc):
        return errors + [f"{where}: must_contain must be a list of non-empty strings"]
    if row.get("out_of_scope") is True:
        if mc:
            errors.append(f"{where}: out_of_scope question must have empty must_contain")
        if row.get("answer") != DECLINE:
            errors.append(f"{where}: out_of_scope answer must be '{DECLINE}'")
        return errors
    if not 1 <= len(mc) <= limits.max_must_contain:
        errors.append(f"{where}: must_contain should have 1-{limits.max_must_contain} strings, "
                      f"has {len(mc)}")
    source = row.get("source")
    if source not in texts:
        return errors + [f"{where}: source {source!r} is not a document in docs/"]
    answer = str(row.get("answer", "")).lower()
    for s in mc:
        if s.lower() not in texts[source].lower():
            errors.append(f"{where}: must_contain {s!r} not found in {source}")
        if s.lower() not in answer:
            errors.append(f"{where}: must_contain {s!r} not in its own answer")
    return errors


def _check_phrasings(train: list[dict], limits: Limits, report: Report) -> None:
    per_fact = defaultdict(list)
    for row in train:
        per_fact[row.get("fact_id")].append(row)
    for fid, rows in per_fact.items():
        if len(rows) < limits.min_phrasings:
            report.errors.append(
                f"train fact {fid}: only {len(rows)} phrasings (need {limits.min_phrasings})")
        questions = [norm_q(r["question"]) for r in rows if isinstance(r.get("question"), str)]
        if len(set(questions)) != len(questions):
            report.errors.append(f"train fact {fid}: duplicate phrasings")
        # answers may be worded differently per phrasing, but state the same fact
        if (len({json.dumps(r.get("must_contain")) for r in rows}) != 1
                or len({r.get("source") for r in rows}) != 1):
            report.errors.append(f"train fact {fid}: must_contain/source differ between phrasings")


def _check_overlap(train: list[dict], test: list[dict], limits: Limits, report: Report) -> None:
    """Test questions must differ from training ones; near copies are warned about."""
    counts = Counter(norm_q(r["question"]) for r in train if isinstance(r.get("question"), str))
    report.errors += [f"train question repeated {c} times: {q!r}" for q, c in counts.items()
                      if c > 1]
    phrasings = defaultdict(list)
    for row in train:
        if isinstance(row.get("question"), str):
            phrasings[row.get("fact_id")].append(_tokens(row["question"]))
    overlaps = []
    for row in test:
        if not isinstance(row.get("question"), str):
            continue
        if norm_q(row["question"]) in counts:
            report.errors.append(f"test.jsonl:{row['_line']}: question identical to a train "
                                 f"question: {row['question']!r}")
        if row.get("out_of_scope"):
            continue
        mine = _tokens(row["question"])
        best = max((len(mine & t) / len(mine | t) for t in phrasings[row.get("fact_id")]
                    if mine | t), default=0.0)
        overlaps.append(best)
        if best >= limits.overlap_warning:
            report.warnings.append(f"test question for {row.get('fact_id')} has Jaccard "
                                   f"{best:.2f} with a train phrasing: {row['question']!r}")
    if overlaps:
        report.lines.append(f"max test/train Jaccard overlap (same fact): {max(overlaps):.2f}; "
                            f"mean {sum(overlaps) / len(overlaps):.2f}")


def check_questions(domain: Path, texts: dict[str, str], limits: Limits, report: Report) -> None:
    train = load_jsonl(domain / "qa" / "train.jsonl", QA_FIELDS, report)
    test = load_jsonl(domain / "qa" / "test.jsonl", QA_FIELDS, report)
    for rows, name in ((train, "train.jsonl"), (test, "test.jsonl")):
        for row in rows:
            report.errors += _check_row(row, f"{name}:{row['_line']}", texts, limits)
    train_ids = {r.get("fact_id") for r in train}
    test_ids = {r.get("fact_id") for r in test if r.get("out_of_scope") is not True}
    out_of_scope = sum(r.get("out_of_scope") is True for r in test)
    for found, need, what in ((len(train_ids), limits.min_facts, "train has {} distinct fact_ids"),
                              (len(test_ids), limits.min_test_facts,
                               "test has {} distinct in-scope fact_ids"),
                              (out_of_scope, limits.min_out_of_scope,
                               "test has {} out_of_scope questions")):
        if found < need:
            report.errors.append(what.format(found) + f" (need >= {need})")
    if test_ids - train_ids:
        missing = sorted(map(str, test_ids - train_ids))
        report.errors.append(f"test fact_ids not in train: {missing}")
    report.lines += [f"train.jsonl: {len(train)} lines, {len(train_ids)} distinct fact_ids",
                     (f"test.jsonl: {len(test)} lines, {len(test_ids)} in-scope fact_ids, "
                      f"{out_of_scope} out-of-scope")]
    _check_phrasings(train, limits, report)
    _check_overlap(train, test, limits, report)


# --- routes and profile -----------------------------------------------------------------------
def check_routes(domain: Path, limits: Limits, report: Report) -> None:
    routes = load_jsonl(domain / "qa" / "routes.jsonl", ("question", "route"), report)
    counts = Counter(r.get("route") for r in routes)
    unknown = set(counts) - {"domain", "general"}
    if unknown:
        report.errors.append(f"routes.jsonl: unknown routes {sorted(map(str, unknown))}")
    if counts["domain"] < limits.min_domain_routes or counts["general"] < limits.min_general_routes:
        report.errors.append(
            f"routes.jsonl: need >= {limits.min_domain_routes} domain and >= "
            f"{limits.min_general_routes} general questions, got {dict(counts)}")
    report.lines.append(f"routes.jsonl: {len(routes)} lines {dict(counts)}")


def check_profile(domain: Path, limits: Limits, report: Report) -> None:
    path = domain / "profile.json"
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        report.errors.append(f"profile.json: {exc}")
        return
    if not isinstance(profile, dict):
        report.errors.append("profile.json: not an object")
        return
    if profile.get("name") != domain.name:
        report.errors.append(f"profile.json: name {profile.get('name')!r} != directory name")
    if not isinstance(profile.get("description"), str) or not profile["description"].strip():
        report.errors.append("profile.json: missing description")
    examples = profile.get("examples")
    if (not isinstance(examples, list) or len(examples) < limits.profile_examples
            or not all(isinstance(e, str) and e for e in examples)):
        report.errors.append(
            f"profile.json: examples must be a list of >= {limits.profile_examples} strings")


def check(domain: Path, limits: Limits | None = None) -> Report:
    """Every check of ``domain`` (a folder as knowledge/README.md describes) against ``limits``."""
    limits, report = limits or Limits(), Report()
    report.lines.append(f"domain: {domain}")
    domain = Path(domain).resolve()  # its name must be the profile's, even for "."
    texts = check_documents(domain, limits, report)
    check_questions(domain, texts, limits, report)
    check_routes(domain, limits, report)
    check_profile(domain, limits, report)
    return report


# --- command line -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m knowledge.check_domain", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("domain", type=Path, nargs="?",
                        default=Path(__file__).resolve().parent / "harrowgate-water",
                        help="the domain folder (default: the bundled demo domain)")
    defaults = Limits()
    for name, value in vars(defaults).items():
        if name == "formats":
            parser.add_argument("--formats", default=",".join(value),
                                help="comma list of formats that need at least one document "
                                     "(default: %(default)s)")
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                            metavar="N", help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    domain = args.pop("domain")
    args["formats"] = tuple(f.strip().lstrip(".") for f in args["formats"].split(",") if f.strip())
    report = check(domain, Limits(**args))
    print("\n".join(report.lines))
    for line in [*(f"WARNING: {w}" for w in report.warnings),
                 *(f"ERROR: {e}" for e in report.errors)]:
        print(line)
    print("RESULT:", "OK" if report.ok else f"{len(report.errors)} error(s)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
