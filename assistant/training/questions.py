"""Questions from a fact sentence, by rule: the subject phrase comes from the sentence, the
question word from the kind of specific asked for (an amount -> "How much", a duration ->
"How long", a date -> "When", a person -> "Who", a code -> "What is the ... code").

Several forms per fact (a fronted question, the noun the value belongs to, an echo of the
sentence, the section heading), so training sees the fact asked in different words; held-out
questions are reworded further by ``assistant.training.rewording``.
"""

from __future__ import annotations

import re

from assistant.training.facts import Sentence, Target
from assistant.training.rewording import content_words


def _words(text: str) -> set[str]:
    return set(text.split())


# kind -> (question word(s) for a fronted question, the words an echo question puts in place)
WH = {
    "amount": ("How much", "how much"), "percent": ("What percentage", "what percentage"),
    "duration": ("How long", "how long"), "date": ("When", "what date"),
    "time": ("At what time", "what time"), "year": ("In which year", "which year"),
    "phone": ("What number", "what number"), "email": ("What email address", "which address"),
    "code": ("What code", "which code"), "postcode": ("What postcode", "what postcode"),
    "measure": ("How much", "how much"), "number": ("How many", "how many"),
    "person": ("Who", "who"), "name": ("What", "what"),
}
NOUN = {"amount": "amount", "percent": "percentage", "duration": "time", "date": "date",
        "time": "time", "year": "year", "phone": "phone number", "email": "email address",
        "code": "code", "postcode": "postcode", "measure": "figure", "number": "number",
        "person": "person", "name": "name"}
BE = ("is", "are", "was", "were")
MODALS = ("must", "will", "can", "should", "may", "shall", "cannot", "could", "would")
HEDGES = (r"(?:about |around |approximately |roughly |at least |at most |up to |only |just "
          r"|over |under |more than |less than |no more than |a maximum of |a minimum of )*")
PREPS = ("by", "on", "in", "at", "within", "for", "every", "after", "to", "from", "until",
         "of", "before")
VERB_BASES = _words("""accept add agree aim allow apply approve arrange ask attend become begin bill
buy calculate call cancel carry charge check choose close collect come complete connect contact
contain cost cover credit deliver deposit earn employ end exceed expect expire fit get give grant
have hold include install issue keep last lead leave limit list make manage measure meet need
offer open operate owe own pay post provide publish reach read receive record refund register
reimburse reply report represent require respond return review run send serve set show sign
start stay submit supply take test use visit vote wait work qualify match contribute renew
remain rise increase reduce store fund accrue allocate award cap run reach join lose win gain
produce process support publish answer handle print inspect replace repair sample treat serve
deduct entitle bring host schedule book count weigh last mean""")
IRREGULAR = {"became": "become", "began": "begin", "bought": "buy", "came": "come",
             "got": "get", "gave": "give", "had": "have", "held": "hold", "kept": "keep",
             "led": "lead", "left": "leave", "made": "make", "met": "meet", "paid": "pay",
             "ran": "run", "sent": "send", "took": "take", "won": "win", "lost": "lose",
             "meant": "mean", "brought": "bring", "has": "have", "does": "do"}
PERSPECTIVE = {"we": "you", "our": "your", "us": "you", "ours": "yours", "your": "my",
               "yours": "mine", "ourselves": "yourselves"}
_SUBJECT_NEXT = _words("are were have had can will must should may do did need want would could "
                    "cannot believe think use live")
_OBJECT_BEFORE = _words("to for with give tell send pay contact ask let help helps charge at "
                        "by from call notify inform offer email text write remind")
_CLAUSE_START = _words("and if when that so because where once unless before after while "
                    "until")


def questions_for(sentence: Sentence, target: Target, column: str = "") -> list[str]:
    """Candidate questions for one fact, best first, without repeats."""
    if column:
        found = row_questions(sentence, target, column)
    else:
        clause, start = main_clause(sentence.text, target)
        makers = (role, noun_of, copula, passive, verb_phrase)
        found = [q for make in makers for q in make(clause, start, target)]
        found.append(echo(clause, start, target))
        found += heading_questions(sentence.heading, target)
    seen, out = set(), []
    for question in found:
        question = tidy(question)
        key = question.lower()
        if question and key not in seen and len(question.split()) <= 32 \
                and len(content_words(question)) >= 2:
            seen.add(key)
            out.append(question)
    return out


def main_clause(text: str, target: Target) -> tuple[str, int]:
    """The part of the sentence holding the target, without a leading condition ("If the
    bill is unpaid, ...") or a timeline year ("1994 – ..."), and where the target starts in it."""
    text = text.rstrip(".!? ")
    start = target.start
    year = re.match(r"^(\d{4}) [–-] ", text)
    if year and target.start > 0:
        return text[year.end():], start - year.end()
    if year:  # "1994 – Gallow Beck Treatment Works is commissioned": ask for the year
        rest = text[year.end():]
        return f"{rest} in {year.group(1)}", len(rest) + 4
    lead = re.match(r"^(?:If|When|Where|Once|After|Before|Unless|Because|Although|While|As)\b"
                    r"[^,]{3,120}, ", text)
    if lead and target.start >= lead.end():
        return text[lead.end():], start - lead.end()
    title = re.match(r"^((?:[A-Z][\w-]* ){0,4}[A-Z][\w-]*) [–-] ", text)
    if title and start == title.end():  # "Finance Director – Priya Achterberg, ...": a role
        return text, start
    for sep in ("; ", " – ", " - ", ", and ", ", but "):
        cut = text.rfind(sep, 0, start)
        if cut != -1:
            return text[cut + len(sep):], start - cut - len(sep)
    second = re.match(rf"^(.{{3,80}}?) (?:{'|'.join(BE)}) .{{3,120}}? and ((?:{'|'.join(BE)}) )",
                      text[:start])
    if second:  # "The meeting was held in X and was chaired by Y": the second predicate
        subject = second.group(1)
        return f"{subject} {text[second.start(2):]}", start - second.start(2) + len(subject) + 1
    return text, start


def _span(clause: str, start: int, target: Target) -> tuple[str, str, str]:
    """(before, the target, after) inside the clause; a currency sign, a title (Dr) or an
    article just before the target count as part of it."""
    end = start + len(target.text)
    before = clause[:start]
    if before.endswith(("£", "$", "€")):
        before = before[:-1]
    before = re.sub(r"\b(?:Dr|Mr|Mrs|Ms|Prof)\.? $", "", before)
    if target.kind == "date":
        before = re.sub(r"\b(?:the|a|an) $", "", before, flags=re.I)
    return before, clause[start:end], clause[end:]


_DANGLING = {"the", "a", "an", "and", "or", "of", "your", "our", "its", "their", "to", "with",
             "under", "as", "through", "into", "onto", "about", "between", "via", "per", "than",
             "over", "below", "above", "least", "most", "more", "less", "up"}


def _clean_middle(middle: str) -> str | None:
    """The words between verb and target, or None when they end mid-phrase ("... and the")
    or join a second verb ("... and was chaired"): such a question would not parse."""
    words = middle.split()
    if words and words[-1].lower() in _DANGLING:
        return None
    if re.search(r"\b(?:and|but|or) (?:is|was|are|were|has|have)\b", middle):
        return None
    return middle.rstrip(",")


def role(clause: str, start: int, target: Target) -> list[str]:
    """"Finance Director – Priya Achterberg" and "the General Manager, Tobias Quarrendon" ->
    "Who is the finance director?"."""
    before, _, _ = _span(clause, start, target)
    match = re.search(r"(?:^|\b(?:the|our|your|its) )((?:[\w-]+ ){0,4}[\w-]+)(?: [–-] |, )$",
                      before)
    if not match or target.kind not in ("person", "name") or len(match.group(1)) < 3:
        return []
    title = match.group(1)
    if not all(w[0].isupper() for w in title.split()):  # "General Manager" keeps its capitals
        title = title[0].lower() + title[1:]
    wh = "Who" if target.kind == "person" else "What"
    return [f"{wh} is the {title}?", f"Name the {title}."]


def noun_of(clause: str, start: int, target: Target) -> list[str]:
    """"... a late payment fee of £11.40 is added" -> "How much is the late payment fee?"."""
    before, _, _ = _span(clause, start, target)
    match = re.search(rf"\b(?:a|an|the|its|our|your|their)\s+((?:[\w'-]+\s+){{0,4}}?[\w'-]+)\s+"
                      rf"of\s+{HEDGES}$", before, re.I)
    if not match or match.group(1).split()[-1].lower() in PREPS:
        return []
    noun = match.group(1)
    if target.kind in ("date", "year", "time"):
        return []  # "the winter of 1986" names a time, it is not the thing asked about
    wh = WH[target.kind][0]
    be = "are" if noun.endswith("s") and not noun.endswith("ss") else "is"
    if target.kind == "person":
        return [f"Who {be} the {noun}?", f"Name the {noun}."]
    if target.kind in ("name", "code", "postcode", "email", "phone", "number"):
        return [f"What {be} the {noun}?", f"Tell me the {noun}."]
    return [f"{wh} {be} the {noun}?", f"What {be} the {noun}?"]


def copula(clause: str, start: int, target: Target) -> list[str]:
    """"The standing charge for a metered home is £7.85" -> "How much is the standing charge
    for a metered home?"; "Fenmoor Assist is our social tariff" -> "What is your social tariff
    called?"."""
    before, _, after = _span(clause, start, target)
    match = re.match(rf"^(.{{3,120}}?)\s+({'|'.join(BE)})\s+(?:(at|on|in|by) )?{HEDGES}$", before)
    if match and len(match.group(1).split()) <= 14 and not subordinate(match.group(1)):
        subject, be, prep = match.group(1), match.group(2), match.group(3)
        wh = "Where" if prep == "at" and target.kind in ("name", "postcode") else WH[target.kind][0]
        if target.kind == "person":
            return [f"Who {be} {_lower(subject)}?", f"Tell me who {_lower(subject)} {be}."]
        return [f"{wh} {be} {_lower(subject)}?", f"Tell me {wh.lower()} {_lower(subject)} {be}."]
    rest = re.match(rf"^\s+({'|'.join(BE)})\s+((?:the|our|your|a|an)\s+[^,;()]{{3,80}}?)"
                    rf"(?:,| who | which | that |$)", after)
    if start == 0 and rest and target.kind in ("name", "person", "code"):
        thing = rest.group(2)
        return [f"What {rest.group(1)} {thing} called?", f"What is the name of {thing}?"]
    return []


def passive(clause: str, start: int, target: Target) -> list[str]:
    """"The meeting was chaired by Aldous Penrith-Crane" -> "Who was the meeting chaired by?";
    "The cooperative was founded on 14 March 1987" -> "When was the cooperative founded?"."""
    before, _, _ = _span(clause, start, target)
    match = re.match(rf"^(.{{3,100}}?)\s+({'|'.join(BE)})\s+(?:normally |usually |always |also "
                     rf"|then |only |automatically )?(\w+(?:ed|en|wn|ld|lt|nt|id|ft))\b(.{{0,80}}?)"
                     rf"\s*\b({'|'.join(PREPS)})?\s+{HEDGES}$", before)
    if not match or len(match.group(1).split()) > 14 or subordinate(match.group(1)):
        return []
    subject, be, part, middle, prep = match.groups()
    middle = _clean_middle(middle)
    if middle is None:
        return []
    subject = _lower(subject)
    if prep == "by" and target.kind in ("person", "name"):
        return [f"Who {be} {subject} {part}{middle} by?", f"By whom {be} {subject} {part}{middle}?"]
    wh = wh_with(target, prep)
    return [f"{wh} {be} {subject} {part}{middle}?"] if wh else []


def verb_phrase(clause: str, start: int, target: Target) -> list[str]:
    """A modal or a plain verb: "We aim to reply within three working days" -> "How soon do
    you aim to reply?"; "The Cooperative employs 63 people" -> "How many people does the
    Cooperative employ?"."""
    before, _, after = _span(clause, start, target)
    found = _split_verb(before.split())
    if not found:
        return []
    subject, do, base, tail = found
    rest = re.sub(rf"\s*{HEDGES}$", "", " ".join(tail) + " ").strip()
    prep = rest.split()[-1].lower() if rest and rest.split()[-1].lower() in PREPS else None
    middle = _clean_middle(" " + rest[: len(rest) - len(prep)].strip() if prep else " " + rest)
    if middle is None or re.search(rf"\b(?:{'|'.join(BE + MODALS)})\b", middle):
        return []  # a second verb: the word taken for the verb was a noun ("the standing charge")
    wh = wh_with(target, prep)
    noun = re.match(r"^'?s?\s*((?:[a-z-]+\s){0,2}[a-z-]+)", after)
    noun_words = noun.group(1).split() if noun else []
    noun_words = noun_words[: next((i for i, w in enumerate(noun_words) if w in PREPS), 3)]
    if target.kind == "number" and noun_words and not prep:
        wh = f"How many {' '.join(noun_words)}"
    elif target.kind == "duration" and noun_words and noun_words[0] in ("notice", "delay"):
        wh = f"How much {noun_words[0]}"
    if not wh:
        return []
    return [f"{wh} {do} {_lower(' '.join(subject))} {base}{middle.rstrip()}?"]


def _split_verb(words: list[str]) -> tuple[list[str], str, str, list[str]] | None:
    """(subject, do/modal, verb's base form, the words after it) of the clause before the
    target, or None when no verb of the lexicon follows a plausible subject."""
    for i in range(1, min(len(words), 11)):
        word = words[i].lower()
        subject = words[:i]
        if any(w.endswith((":", ",", ";")) for w in subject) or subordinate(" ".join(subject)):
            return None
        if word in MODALS and i + 1 < len(words) and verb_base(words[i + 1]):
            return subject, word, words[i + 1].lower(), words[i + 2:]
        if word in BE:
            return None  # a passive or a copula: their own rules ask those
        base = verb_base(word)
        if base is None:
            continue
        plural = subject[-1].lower() in ("we", "you", "they", "i") or any(
            w.endswith("s") and not w.endswith("ss") for w in subject[:2])
        if word == base and not plural:
            continue  # "the standing charge": a noun after a singular subject
        if word.endswith("ed") and any(verb_base(w) and not w.endswith("ed")
                                       for w in words[i + 1:i + 6]):
            continue  # "customers accepted onto X receive ...": a participle, the verb follows
        return subject, _do_form(" ".join(subject), word), base, words[i + 1:]
    return None


def subordinate(subject: str) -> bool:
    """A "subject" that opens with if/when/to...: the sentence has a clause in front."""
    return subject.split()[0].lower() in (
        "if", "when", "where", "once", "after", "before", "unless", "because", "to", "for", "in",
        "as", "while", "across", "at", "on", "during", "by", "from", "with", "under", "since",
        "throughout", "rather", "although", "though", "whether", "within", "over")


def verb_base(word: str) -> str | None:
    """The base form of a finite verb from the lexicon ("employs" -> "employ"), else None."""
    low = word.lower()
    if low in IRREGULAR:
        return IRREGULAR[low]
    endings = (("ies", "y"), ("es", ""), ("s", ""), ("ied", "y"), ("ed", ""), ("d", ""), ("", ""))
    for suffix, repl in endings:
        if low.endswith(suffix) and (stem := low[: len(low) - len(suffix)] + repl) in VERB_BASES:
            return stem
    return None


def _do_form(subject: str, verb: str) -> str:
    low = verb.lower()
    if low in IRREGULAR and low not in ("has", "does") or low.endswith("ed"):
        return "did"
    return "does" if low.endswith("s") and not low.endswith("ss") else "do"


def wh_with(target: Target, prep: str | None) -> str:
    """The question words for a target behind a preposition ("within 3 days" -> "How soon")."""
    kind = target.kind
    if kind == "duration":
        return {"within": "How soon", "in": "How soon", "every": "How often",
                "for": "For how long", None: "How long", "after": "How long after",
                "before": "How long before"}.get(prep, "")
    if kind in ("date", "year", "time") and prep in (None, "on", "in", "at", "from", "until", "by",
                                                      "before", "after"):
        return WH[kind][0] if prep in (None, "on", "in", "at") else f"{prep.capitalize()} when"
    if prep in (None, "of", "for", "to", "at"):
        return WH[kind][0]
    return ""


def heading_questions(heading: str, target: Target) -> list[str]:
    """The section heading as the topic: "Late payment fee" -> "What is the amount for the late
    payment fee?" (only short headings; a document title is too broad)."""
    heading = re.sub(r"^\d+(?:\.\d+)*\.?\s+", "", heading)
    heading = heading.capitalize() if heading.isupper() else heading
    if not heading or not 1 <= len(heading.split()) <= 6:
        return []
    topic = _lower(heading)
    return [f"What is the {NOUN[target.kind]} for {topic}?", f"{heading}: {WH[target.kind][1]}?"]


def echo(clause: str, start: int, target: Target) -> str:
    """The clause with the target replaced by its question words: "We aim to reply within how
    long?" (possible for every fact but a name in an aside, so nearly every fact has one)."""
    before, _, after = _span(clause, start, target)
    words = WH[target.kind][1]
    if target.kind == "duration":
        unit = target.text.split(" ", 1)[-1]
        words = f"how many {unit if unit.endswith('s') else unit + 's'}"
    after = re.sub(r"^\s*(?:per cent|percent|%)", "", after)
    if len(before.split()) + len(after.split()) > 22:  # drop asides, then what follows
        before = re.sub(r", [^,]{3,90}, ", " ", before)
        cut = re.search(r"[,;] | and (?:the|a|an|you|we)\b", after)
        after = after[:cut.start()] if cut else after
    words_before = before.split()
    if len(words_before) > 18:  # still long: the words nearest the question word
        before = " ".join(words_before[-18:]) + " "
    if re.match(r"^\s*,", after) and before.rstrip().endswith((",", "–", "-")):
        return ""  # "the General Manager, who, who has led ...": a gap in an aside asks nothing
    return f"{before}{words}{after}?"


def row_questions(sentence: Sentence, target: Target, column: str) -> list[str]:
    """A table cell: "What is the zone code of Orrin Vale?" and two more wordings."""
    label = sentence.label
    return [f"What is the {column} of {label}?", f"For {label}, what is the {column}?",
            f"Tell me the {column} for {label}.", f"{label}: which {column}?"]


def perspective(text: str) -> str:
    """The customer asks: "we"/"our" (the organisation) -> "you"/"your", "you" -> "I"/"me"."""
    words = text.split(" ")
    out = []
    for index, word in enumerate(words):
        core = re.sub(r"\W+$", "", word)
        tail = word[len(core):]
        low = core.lower()
        if core.isupper() and len(core) > 1:
            out.append(word)
            continue
        if low == "you":
            nxt = re.sub(r"\W+$", "", words[index + 1]).lower() if index + 1 < len(words) else ""
            prev = words[index - 1].lower() if index else ""
            after_verb = prev in _OBJECT_BEFORE or (bool(verb_base(prev)) and index > 0)
            subject = nxt in _SUBJECT_NEXT or bool(verb_base(nxt)) or prev in _CLAUSE_START
            new = "I" if subject and not after_verb and not tail else "me"
        else:
            new = PERSPECTIVE.get(low, core)
        if core and core[0].isupper() and new != core:
            new = new[0].upper() + new[1:]
        out.append(new + tail)
    text = " ".join(out)
    return re.sub(r"\bI are\b", "I am", re.sub(r"\bI were\b", "I was", text))


def tidy(question: str) -> str:
    """One space, a capital first letter, one question mark, the customer's perspective."""
    question = " ".join(perspective(question).split())
    question = re.sub(r"\s+([?,.;:])", r"\1", question).replace("??", "?")
    question = re.sub(r",\?$", "?", question)
    return question[:1].upper() + question[1:] if question else ""


def _lower(phrase: str) -> str:
    """A subject phrase inside a question: "The board" -> "the board"; names keep capitals."""
    first, _, rest = phrase.partition(" ")
    if first in ("The", "A", "An", "Our", "Your", "Each", "Every", "All", "This", "These", "Its",
                 "Their", "Any", "We", "Customers", "Members") or (
                     first.istitle() and rest and rest[0].islower()):
        return f"{first.lower()} {rest}".strip() if first not in ("We",) else f"we {rest}".strip()
    return phrase
