"""The bundled base model as a question writer, against the rules of `assistant synth`.

    python -m research.synth_questions REPORT.json [--n 10] [--out FILE]

Takes ``n`` fact sentences kept by `assistant synth` (spread over its report), asks the base
model greedily to write one question each sentence answers, and judges each reply by the
checks synthesized pairs pass: a question (ends with "?"), not a copy of the prompt or the
sentence, not giving the fact away, at least two content words, and retrieving the fact's
passage in the knowledge base's top k (the domain's own search). Prints one JSON object;
with ``--out`` writes it too. Why: the generator of `assistant synth` was chosen by this
measurement, so anyone can rerun it (another base model: ASSISTANT_BASE_MODEL).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

PROMPT = "Write one question that this sentence answers.\n\nSentence: {sentence}\n\nQuestion:"


def judge(reply: str, fact: dict[str, Any], retrieved: bool) -> str:
    """'usable', or the first check the reply fails."""
    from assistant.text import contains
    from assistant.training.rewording import content_words, overlap

    question = reply.strip().split("\n")[0].strip()
    if not question.endswith("?"):
        return "not a question"
    if overlap(question, fact["answer"]) > 0.8 or "sentence" in question.lower():
        return "copies the sentence or the prompt"
    if any(contains(question, m) for m in fact["must_contain"]):
        return "gives the fact away"
    if len(content_words(question)) < 2:
        return "too vague"
    return "usable" if retrieved else "does not retrieve the fact's passage"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.json written by `assistant synth`")
    parser.add_argument("--n", type=int, default=10, help="sentences to try (10)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    from assistant.services import Services
    from assistant.settings import get_settings
    from assistant.training.from_domain import store_search

    report = json.loads(args.report.read_text())
    kept = [f for f in report["kept"] if len(f["answer"].split()) >= 6]
    facts = kept[:: max(1, len(kept) // args.n)][: args.n]
    services = Services(get_settings())
    params = services.generator.defaults.with_(max_new_tokens=40, temperature=0.0)
    rows = []
    for fact in facts:
        messages = [{"role": "user", "content": PROMPT.format(sentence=fact["answer"])}]
        reply = services.generator.generate(messages, params).text
        rows.append({"sentence": fact["answer"], "reply": reply.strip(),
                     "fact_id": fact["fact_id"]})
    search = store_search(services, report["domain"])
    passages = {f["fact_id"]: set(search([f["answer"]])[0]) for f in facts}
    found = search([r["reply"].split("\n")[0] or "?" for r in rows])
    for row, fact, ids in zip(rows, facts, found, strict=True):
        row["verdict"] = judge(row["reply"], fact, bool(passages[fact["fact_id"]] & set(ids)))
    usable = sum(r["verdict"] == "usable" for r in rows)
    result = {"model": services.settings.base_model, "prompt": PROMPT, "decoding": "greedy",
              "tried": len(rows), "usable": usable,
              "text": f"The bundled base model ({services.settings.base_model}), asked greedily "
                      f"to write one question for each of {len(rows)} fact sentences, wrote "
                      f"{usable} usable one(s) by the checks synthesized pairs pass "
                      f"(`python -m research.synth_questions`).",
              "rows": rows,
              "command": shlex.join(["python", "-m", "research.synth_questions",
                                     *(sys.argv[1:] if argv is None else argv)])}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
