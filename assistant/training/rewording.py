"""Held-out wordings of a question, and how much two wordings share.

Why: a held-out question that repeats a training phrasing measures recall of a memorised
string, not of the fact. A reworded question (other question words, everyday synonyms, a
framing training never uses) asks in other words; ``overlap`` says how far that went, and the
synth report prints it. The knowledge base's search still has to find the fact's passage for
a reworded question to be kept (``assistant.training.synth``), which guards against a synonym
that changed the meaning.
"""

from __future__ import annotations

import re


def _words(text: str) -> set[str]:
    return set(text.split())


OPENERS = [  # question words -> others with the same meaning (first match only)
    (r"^How much is (the )?", "What is the cost of the "), (r"^How much does", "What amount does"),
    (r"^How long", "How much time"), (r"^How many (\w+)", r"What number of \1"),
    (r"^When (is|was|are|were|does|do|did)", r"On what date \1"),
    (r"^Who (is|was)", r"Which person \1"),
    (r"^What is the name of", "What do they call"), (r"^How soon", "How quickly"),
    (r"^How often", "At what interval"), (r"^What percentage", "What share"),
    (r"^In which year", "What year"), (r"^What code", "Which reference"),
    (r"^What is the (\w+) (for|of) ", r"Which \1 applies to "), (r"^Tell me the ", "Give me the "),
    (r"^What (is|are) the ", r"Which \1 the "),
]
WORDS = {  # everyday synonyms; domain terms (charge, fee) are left alone: they differ in meaning
    "customers": "clients", "customer": "client", "receive": "get", "provide": "give",
    "maximum": "largest", "minimum": "smallest", "annual": "yearly", "apply": "ask",
    "require": "need", "required": "needed", "contact": "reach", "purchase": "buying",
    "permitted": "allowed", "employees": "staff", "company": "firm", "home": "house",
    "property": "premises", "properties": "premises", "begin": "start", "begins": "starts",
    "complete": "finish", "completed": "finished", "attend": "come out", "report": "tell about",
    "submit": "send in", "within": "inside", "approximately": "roughly", "each": "every",
    "additional": "extra", "information": "details", "obtain": "get", "request": "ask for",
    "assist": "help", "ensure": "make sure", "notify": "tell", "commence": "start",
    "held": "hosted", "located": "based", "issued": "sent", "usually": "normally",
    "documents": "papers", "replace": "swap", "repair": "fix", "member": "member-owner",
    "amount": "sum", "number": "figure", "time": "period", "date": "day",
}
STRONG_WORDS = {  # more synonyms for the strong rewording; the retrieval check still applies.
    # None changes what is asked: "year" -> "twelve months" made "What twelve months was ...",
    # "day" -> "working day" and "new" -> "fresh" changed the fact, so such swaps are left out
    "bill": "invoice", "bills": "invoices", "fee": "charge", "fees": "charges", "cost": "price",
    "costs": "prices", "pay": "hand over", "paid": "settled", "office": "premises",
    "telephone": "phone", "phone": "telephone", "email": "e-mail", "start": "kick off",
    "starts": "kicks off", "send": "post", "sent": "posted", "use": "make use of",
    "used": "made use of", "get": "obtain", "people": "persons", "staff": "employees",
    "team": "group", "meeting": "gathering", "form": "paperwork", "application": "request",
    "apply": "put in a request", "allowed": "permitted", "average": "typical",
    "measured": "recorded", "reply": "response", "response": "answer", "contact": "get hold of",
    "help": "support", "free": "at no cost", "largest": "biggest", "smallest": "lowest",
    "maximum": "upper limit", "minimum": "floor", "rate": "tariff", "discount": "reduction",
    "rebate": "refund", "grant": "subsidy", "leak": "escape of water", "repair": "mend",
    "repairs": "fixes", "closed": "shut", "area": "district", "house": "dwelling",
    "home": "household", "homes": "households",
}
FRAMES = ["Could you tell me {q}", "I'd like to know: {q}", "Quick question: {q}",
          "Do you happen to know {q}", "Please remind me, {q}"]
ECHO_FRAMES = ["Quick question: {q}", "I'd like to know: {q}", "Remind me: {q}"]  # "X is how much?"
WH_START = re.compile(r"^(?:how|what|which|who|whom|when|where|why|in which|at what|on what|"
                       r"for how|by whom|name|tell|give)\b", re.I)


_LOWER_FIRST = _words("what how which who whom when where why tell give name the a an is are "
                      "do does did for in on at by after before within if to")


def reword(question: str, seed: int = 0, strong: bool = False) -> str:
    """A held-out wording: other question words, everyday synonyms (more of them when
    ``strong``), a long question cut to the words around its question word, and a framing
    training never uses."""
    out = _in_other_words(question, {**WORDS, **STRONG_WORDS} if strong else WORDS)
    out = shorten(out.strip())
    first = out.split(" ", 1)[0]
    if first.lower() in _LOWER_FIRST:  # "What is ..." -> "could you tell me what is ..."
        out = first.lower() + out[len(first):]
    if re.match(r"^(?:tell|give|name)\b", out):  # already a request: "Please give me ..."
        text = f"Please {out}"
    else:
        frames = FRAMES if WH_START.match(out) else ECHO_FRAMES
        text = frames[seed % len(frames)].format(q=out)
    return " ".join(text.replace("the the ", "the ").split())


def vary(question: str) -> str:
    """A training variant of a question: other question words and synonyms (the strong
    table), no framing (framings stay held-out only). Why: an answer that holds every content
    word of its question teaches an adapter to restate the question rather than recall the
    fact; a second wording in other words asks for the fact, not for the sentence."""
    out = _in_other_words(question, {**WORDS, **STRONG_WORDS})
    return " ".join(out.replace("the the ", "the ").split())


def _in_other_words(question: str, table: dict[str, str]) -> str:
    """The first matching opener swapped for another with the same meaning, then the
    synonyms of ``table``: what held-out and training wordings share."""
    out = question
    for pattern, repl in OPENERS:
        new = re.sub(pattern, repl, out, count=1)
        if new != out:
            out = new
            break
    out = " ".join(_swap(w, table) for w in out.split())
    # "How much is the price of X" -> "What is the cost of the price of X": one is enough
    return re.sub(r"\b(?:cost|price) of the ((?:cost|price|fee|charge)s? of)\b", r"\1", out)


def _swap(word: str, table: dict[str, str]) -> str:
    core = re.sub(r"\W+$", "", word)
    repl = table.get(core.lower())
    if not repl or not core.islower():
        return word
    return repl + word[len(core):]


_QUESTION_WORDS = ("how", "what", "which", "who", "when", "where")
_LOOSE_END = _words("the a an and or of to in on at by for with as your my our its their under "
                    "through into about than")


def shorten(question: str, keep: int = 14) -> str:
    """A long echo question cut to the clause around its question word ("Rather than drill
    boreholes, how many households formed the Cooperative?" -> "How many households formed
    the Cooperative?"); when that clause is still longer than 16 words (or ``keep``), the
    ``keep`` words around the question word, without a dangling "and" or "the" at the end."""
    words = question.rstrip("?").split()
    if len(words) <= keep:
        return question
    at = next((i for i, w in enumerate(words) if w.lower() in _QUESTION_WORDS), 0)
    start = max((i + 1 for i, w in enumerate(words[:at]) if w.endswith((",", ";"))), default=0)
    end = next((i + 1 for i, w in enumerate(words[at:], at) if w.endswith((",", ";"))),
               len(words))
    clause = words[start:end]
    if len(clause) > max(keep, 16):
        first = max(0, min(at - keep // 2, len(words) - keep))
        clause = words[first:first + keep]
    while len(clause) > 3 and clause[-1].lower().strip(",;") in _LOOSE_END:
        clause = clause[:-1]
    text = " ".join(clause).rstrip(",;")
    return text[:1].upper() + text[1:] + "?"


_STOP = _words("a an the of to in on for by at is are was were be do does did i my you your we our "
            "what which who when how much many long it its this that and or with from as can "
            "could would will me please tell know quick question happen remind there i'd like "
            "give")  # the held-out framings' own words: they must not lower the overlap


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning (question words and articles left out)."""
    return {w for w in re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower()) if w not in _STOP}


def overlap(a: str, b: str) -> float:
    """Share of content words two questions have in common (Jaccard, 0 to 1)."""
    x, y = content_words(a), content_words(b)
    return len(x & y) / len(x | y) if x | y else 1.0


RESTATES = 0.8  # an answer holding this share of its question's content words restates it


def restates(question: str, answer: str) -> bool:
    """True when the answer holds most of the question's content words: trained on such a
    pair, an adapter learns to copy the question back instead of recalling the fact."""
    words = content_words(question)
    return bool(words) and len(words & content_words(answer)) / len(words) >= RESTATES
