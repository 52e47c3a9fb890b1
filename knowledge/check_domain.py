#!/usr/bin/env python3
"""Checker for a Strata knowledge domain (standard library only).

Usage: python3 knowledge/check_domain.py [domain_dir]   (exit 1 on errors)
"""
import csv
import html
import io
import json
import os
import re
import sys
from collections import Counter, defaultdict
from html.parser import HTMLParser

DOMAIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "harrowgate-water")
DOCS = os.path.join(DOMAIN, "docs")
QA = os.path.join(DOMAIN, "qa")

errors = []
warnings = []


def err(msg):
    errors.append(msg)


class _Strip(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.stack = []
        self.problems = []
        self.tags = Counter()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.parts.append(data)


def doc_text(path):
    raw = open(path, encoding="utf-8").read()
    if path.endswith(".html"):
        p = _Strip()
        p.feed(raw)
        p.close()
        for prob in p.problems:
            err(f"{os.path.basename(path)}: HTML nesting problem: {prob}")
        if p.stack:
            err(f"{os.path.basename(path)}: unclosed HTML tags {p.stack}")
        for t in ("h1", "h2", "p", "table"):
            if not p.tags[t]:
                err(f"{os.path.basename(path)}: no <{t}> element")
        return html.unescape(" ".join(p.parts))
    if path.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(raw)))
        if len(rows) < 2:
            err(f"{os.path.basename(path)}: CSV needs a header row and data rows")
        else:
            width = len(rows[0])
            for i, r in enumerate(rows[1:], 2):
                if len(r) != width:
                    err(f"{os.path.basename(path)}: line {i} has {len(r)} fields, header has {width}")
    return raw


def load_jsonl(path, required):
    rows = []
    if not os.path.exists(path):
        err(f"missing file {path}")
        return rows
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                err(f"{os.path.basename(path)}:{n}: blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                err(f"{os.path.basename(path)}:{n}: invalid JSON ({e})")
                continue
            if not isinstance(obj, dict):
                err(f"{os.path.basename(path)}:{n}: not an object")
                continue
            for k in required:
                if k not in obj:
                    err(f"{os.path.basename(path)}:{n}: missing field '{k}'")
            obj["_line"] = n
            rows.append(obj)
    return rows


def norm_q(q):
    return re.sub(r"[^a-z0-9 ]", "", re.sub(r"\s+", " ", q.lower())).strip()


def tokens(q):
    stop = {"the", "a", "an", "of", "is", "what", "to", "for", "do", "i", "my", "in", "how", "does", "are", "and", "on",
            "it", "at", "be", "by", "which", "when", "can", "much", "get", "who", "s"}
    return {t for t in re.findall(r"[a-z0-9]+", q.lower()) if t not in stop}


# ---------------------------------------------------------------- documents
texts = {}
word_counts = {}
if not os.path.isdir(DOCS):
    err(f"missing docs dir {DOCS}")
else:
    for name in sorted(os.listdir(DOCS)):
        path = os.path.join(DOCS, name)
        if not os.path.isfile(path):
            continue
        if name != name.lower() or not re.fullmatch(r"[a-z0-9-]+\.(md|txt|html|csv)", name):
            err(f"bad doc filename {name!r} (lowercase, hyphens, .md/.txt/.html/.csv)")
        texts[name] = doc_text(path)
        word_counts[name] = len(texts[name].split())
exts = Counter(os.path.splitext(n)[1] for n in texts)
for e in (".md", ".txt", ".html", ".csv"):
    if not exts[e]:
        err(f"no {e} document")
if len(texts) < 9:
    err(f"only {len(texts)} documents (need >= 9)")
total_words = sum(word_counts.values())
if total_words < 6500:
    err(f"docs total {total_words} words (need >= 6500)")
for name, t in texts.items():
    if name.endswith(".md") and not re.search(r"^# ", t, re.M):
        err(f"{name}: no '# ' heading")
    if name.endswith(".md") and not re.search(r"^## ", t, re.M):
        err(f"{name}: no '## ' heading")

# ---------------------------------------------------------------- QA files
REQ = ("question", "answer", "must_contain", "source", "fact_id")
train = load_jsonl(os.path.join(QA, "train.jsonl"), REQ)
test = load_jsonl(os.path.join(QA, "test.jsonl"), REQ)


def check_qa(rows, fname):
    for r in rows:
        where = f"{fname}:{r['_line']}"
        oos = r.get("out_of_scope") is True
        mc = r.get("must_contain")
        if not isinstance(r.get("question"), str) or not r.get("question", "").strip():
            err(f"{where}: empty question")
        if not isinstance(r.get("answer"), str) or not r.get("answer", "").strip():
            err(f"{where}: empty answer")
        if not isinstance(mc, list) or not all(isinstance(s, str) and s.strip() for s in (mc or [])):
            err(f"{where}: must_contain must be a list of non-empty strings")
            continue
        if oos:
            if mc:
                err(f"{where}: out_of_scope question must have empty must_contain")
            if r.get("answer") != "The documents do not say.":
                err(f"{where}: out_of_scope answer must be 'The documents do not say.'")
            continue
        if not (1 <= len(mc) <= 2):
            err(f"{where}: must_contain should have 1-2 strings, has {len(mc)}")
        src = r.get("source")
        if src not in texts:
            err(f"{where}: source {src!r} is not a document in docs/")
            continue
        low = texts[src].lower()
        for s in mc:
            if s.lower() not in low:
                err(f"{where}: must_contain {s!r} not found in {src}")
            if s.lower() not in r["answer"].lower():
                err(f"{where}: must_contain {s!r} not in its own answer")


check_qa(train, "train.jsonl")
check_qa(test, "test.jsonl")

train_ids = {r.get("fact_id") for r in train}
test_ids = {r.get("fact_id") for r in test if r.get("out_of_scope") is not True}
oos_rows = [r for r in test if r.get("out_of_scope") is True]
if len(train_ids) < 60:
    err(f"train has {len(train_ids)} distinct fact_ids (need >= 60)")
if len(test_ids) < 60:
    err(f"test has {len(test_ids)} distinct in-scope fact_ids (need >= 60)")
if len(oos_rows) < 8:
    err(f"test has {len(oos_rows)} out_of_scope questions (need >= 8)")
if test_ids - train_ids:
    err(f"test fact_ids not in train: {sorted(test_ids - train_ids)}")

per_fact = defaultdict(list)
for r in train:
    per_fact[r.get("fact_id")].append(r)
for fid, rows in per_fact.items():
    if len(rows) < 3:
        err(f"train fact {fid}: only {len(rows)} phrasings (need 3)")
    if len({norm_q(r["question"]) for r in rows}) != len(rows):
        err(f"train fact {fid}: duplicate phrasings")
    # answers may be worded differently per phrasing (it helps an adapter generalise), but
    # they state the same fact: same must_contain strings, same source document
    if len({json.dumps(r["must_contain"]) for r in rows}) != 1 or len({r["source"] for r in rows}) != 1:
        err(f"train fact {fid}: must_contain/source differ between phrasings")

train_q = {norm_q(r["question"]) for r in train if isinstance(r.get("question"), str)}
all_train_q = Counter(norm_q(r["question"]) for r in train if isinstance(r.get("question"), str))
for q, c in all_train_q.items():
    if c > 1:
        err(f"train question repeated {c} times: {q!r}")
for r in test:
    if isinstance(r.get("question"), str) and norm_q(r["question"]) in train_q:
        err(f"test.jsonl:{r['_line']}: question identical to a train question: {r['question']!r}")

# informational: lexical overlap between each test question and its own fact's train phrasings
overlaps = []
for r in test:
    if r.get("out_of_scope"):
        continue
    tq = tokens(r["question"])
    best = 0.0
    for tr in per_fact.get(r["fact_id"], []):
        a = tokens(tr["question"])
        if tq | a:
            best = max(best, len(tq & a) / len(tq | a))
    overlaps.append((best, r["fact_id"], r["question"]))
overlaps.sort(reverse=True)
for best, fid, q in overlaps:
    if best >= 0.5:
        warnings.append(f"test question for {fid} has Jaccard {best:.2f} with a train phrasing: {q!r}")

# ---------------------------------------------------------------- routes + profile
routes = load_jsonl(os.path.join(QA, "routes.jsonl"), ("question", "route"))
rc = Counter(r.get("route") for r in routes)
if set(rc) - {"domain", "general"}:
    err(f"routes.jsonl: unknown routes {set(rc) - {'domain', 'general'}}")
if len(routes) != 40 or rc["domain"] != 24 or rc["general"] != 16:
    err(f"routes.jsonl: expected 40 lines (24 domain / 16 general), got {len(routes)} ({dict(rc)})")

prof_path = os.path.join(DOMAIN, "profile.json")
try:
    prof = json.load(open(prof_path, encoding="utf-8"))
    if prof.get("name") != os.path.basename(DOMAIN.rstrip("/")):
        err(f"profile.json: name {prof.get('name')!r} != directory name")
    if not isinstance(prof.get("description"), str) or not prof["description"].strip():
        err("profile.json: missing description")
    ex = prof.get("examples")
    if not isinstance(ex, list) or len(ex) != 12 or not all(isinstance(e, str) and e for e in ex):
        err("profile.json: examples must be a list of 12 strings")
except (OSError, json.JSONDecodeError) as e:
    err(f"profile.json: {e}")

# ---------------------------------------------------------------- report
print(f"domain: {DOMAIN}")
print("documents:")
for name in sorted(word_counts):
    print(f"  {word_counts[name]:6d}  {name}")
print(f"  {total_words:6d}  TOTAL ({len(texts)} files)")
print(f"train.jsonl: {len(train)} lines, {len(train_ids)} distinct fact_ids")
print(f"test.jsonl: {len(test)} lines, {len(test_ids)} in-scope fact_ids, {len(oos_rows)} out-of-scope")
print(f"routes.jsonl: {len(routes)} lines {dict(rc)}")
if overlaps:
    print(f"max test/train Jaccard overlap (same fact): {overlaps[0][0]:.2f}; "
          f"mean {sum(o[0] for o in overlaps) / len(overlaps):.2f}")
for w in warnings:
    print("WARNING:", w)
for e in errors:
    print("ERROR:", e)
print("RESULT:", "OK" if not errors else f"{len(errors)} error(s)")
sys.exit(1 if errors else 0)
