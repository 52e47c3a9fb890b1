"""Compare QLoRA recipes by what they teach: train one, score it on held-out questions.

    python -m research.training_recipes NAME [--domain D | --data FILE] [--facts N] [key=value ...]
    python -m research.training_recipes seed --facts 50 targets=q_proj,v_proj epochs=5
    python -m research.training_recipes plain-15 --domain nimbus-thermostat epochs=15 val_fraction=0

Trains recipe NAME (TrainConfig fields as key=value over the ASSISTANT_TRAIN_* defaults)
on the domain's training file, optionally cut to its first N facts (all phrasings of each),
into a scratch adapters folder; then answers the held-out questions of those facts in
adapter mode (greedy, through the normal pipeline) and records fact recall, training time
and size in research/results/training_recipes.json (one entry per NAME, replaced on re-run).
With ``--domain D`` the files are ``knowledge/D/qa/{train,test}.jsonl`` and the entry is
keyed ``NAME@D``: a recipe run on several domains gets a row in the across-domains table
(the defaults must hold on a domain they were not chosen on). The tables of
docs/training.md are rendered from that file by ``python -m bench.readme``.
Not part of ``make bench``: each recipe takes minutes of the machine's two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "research" / "results" / "training_recipes.json"
DEMO_DOMAIN = "harrowgate-water"
DOMAIN = ROOT / "knowledge" / DEMO_DOMAIN / "qa"


def parse_overrides(pairs: list[str]) -> dict:
    from assistant.training.loop import TrainConfig

    kinds = {f.name: f.type for f in TrainConfig.__dataclass_fields__.values()}
    values = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in kinds:
            raise SystemExit(f"{pair!r}: expected key=value with key one of {sorted(kinds)}")
        kind = str(kinds[key])
        values[key] = int(raw) if kind.startswith("int") else (
            float(raw) if kind.startswith("float") else raw)
    return values


def first_facts(data: Path, facts: int, out: Path, phrasings: int = 0) -> tuple[Path, set[str]]:
    """The training rows of the first ``facts`` fact ids (file order), at most the first
    ``phrasings`` rows of each (0: all of them)."""
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    keep: list[str] = []
    for row in rows:
        if row["fact_id"] not in keep:
            keep.append(row["fact_id"])
    chosen = set(keep[:facts] if facts else keep)
    taken: dict[str, int] = {}
    lines = []
    for row in rows:
        fact = row["fact_id"]
        if fact in chosen and (not phrasings or taken.get(fact, 0) < phrasings):
            taken[fact] = taken.get(fact, 0) + 1
            lines.append(json.dumps(row) + "\n")
    out.write_text("".join(lines))
    return out, chosen


def _within(small: str, big: str) -> bool:
    """``small`` as a whole token of ``big``: "Penrith-Crane" in "Aldous Penrith-Crane", but
    "23" not in "23.50"."""
    return bool(re.search(rf"(?<![\w.]){re.escape(small)}(?![\w]|[.,]\d)", big, re.I))


def states_fact(pair: dict, fact: dict) -> bool:
    """Does a synthesized pair state a hand-written fact (a training or held-out row)? Same
    source document, an answer holding every one of the fact's strings, and a string of its
    own that matches one of them as a whole token (so "23" does not take a pair about
    £23.50). The one test of "the same fact" that every same-facts figure uses."""
    from assistant.text import contains

    strings = fact["must_contain"]
    return pair.get("source") == fact.get("source") \
        and all(contains(pair["answer"], s) for s in strings) \
        and any(_within(a, b) or _within(b, a) for a in pair["must_contain"] for b in strings)


def synthesized_for(data: Path, facts: set[str], synthesized: Path, out: Path) -> Path:
    """The synthesized pairs (``assistant synth``) that state the chosen hand-written facts
    (``states_fact``), relabelled with their fact ids. Why: the same facts, trained from
    rule-made wordings instead of hand-written ones, scored on the same held-out questions,
    say what the wordings cost."""
    from assistant.jsonl import read_objects

    hand = {r["fact_id"]: r for _, r in read_objects(data) if r["fact_id"] in facts}
    lines = []
    for _, pair in read_objects(synthesized):
        for fact, row in hand.items():
            if states_fact(pair, row):
                lines.append(json.dumps({**pair, "fact_id": fact}) + "\n")
                break
    out.write_text("".join(lines))
    return out


def crossed(hand: Path, synthesized: Path, keep: str, out: Path) -> Path:
    """Hand-written questions with the synthesized answers of their facts (``keep`` =
    "questions"), or synthesized questions with the hand-written answers ("answers"); only
    facts both files state, answers taken in turn. Why: splits the gap between the two files
    into what the questions cost and what the answers cost."""
    from assistant.jsonl import read_objects

    mine = [r for _, r in read_objects(hand)]
    theirs = [r for _, r in read_objects(synthesized)]
    both = {r["fact_id"] for r in mine} & {r["fact_id"] for r in theirs}
    questions, answers = (mine, theirs) if keep == "questions" else (theirs, mine)
    must: dict[str, list[str]] = {}
    for r in mine:
        must.setdefault(r["fact_id"], r["must_contain"])  # the fact's first row, as before
    pool: dict[str, list[str]] = {}
    for row in answers:
        if row["fact_id"] in both:
            pool.setdefault(row["fact_id"], []).append(row["answer"])
    taken: dict[str, int] = {}
    lines = []
    for row in questions:
        fact = row["fact_id"]
        if fact in both:
            index = taken.get(fact, 0)
            taken[fact] = index + 1
            answer = pool[fact][index % len(pool[fact])]
            lines.append(json.dumps({**row, "answer": answer, "must_contain": must[fact]}) + "\n")
    out.write_text("".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="recipe name (key in the results file)")
    parser.add_argument("overrides", nargs="*", help="TrainConfig fields, e.g. epochs=5 rank=8")
    parser.add_argument("--domain", help="a folder of knowledge/ (its qa/train.jsonl and "
                        "qa/test.jsonl); the entry is keyed NAME@DOMAIN")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"training pairs (default: {DOMAIN / 'train.jsonl'})")
    parser.add_argument("--questions", type=Path, default=None,
                        help=f"held-out questions (default: {DOMAIN / 'test.jsonl'})")
    parser.add_argument("--facts", type=int, default=0, help="train on the first N facts only")
    parser.add_argument("--phrasings", type=int, default=3,
                        help="at most N phrasings per fact (0: all; the table's runs used 3)")
    parser.add_argument("--synthesized", type=Path, default=None,
                        help="train on this `assistant synth` file's pairs for the chosen facts "
                        "instead of the hand-written ones (all of them; --phrasings applies to "
                        "the hand-written file only)")
    parser.add_argument("--keep-from-hand", choices=("questions", "answers"), default=None,
                        help="with --synthesized: train on the hand-written questions with the "
                        "synthesized answers, or the other way round")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help=f"the JSON file the entry goes to (default: {RESULTS})")
    args = parser.parse_intermixed_args(argv)  # options may come before the key=value pairs
    qa = ROOT / "knowledge" / (args.domain or DEMO_DOMAIN) / "qa"
    args.data = args.data or qa / "train.jsonl"
    args.questions = args.questions or qa / "test.jsonl"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from assistant.commands.train import served_precision
    from assistant.evaluation.run import answer_all, load_questions
    from assistant.models.generation import SamplingParams
    from assistant.services import Services
    from assistant.settings import get_settings
    from assistant.training.loop import TrainConfig, train_adapter

    overrides = parse_overrides(args.overrides)
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        data, facts = first_facts(args.data, args.facts, scratch / "train.jsonl",
                                  args.phrasings)
        if args.synthesized:
            synth = synthesized_for(args.data, facts, args.synthesized, scratch / "synth.jsonl")
            data = crossed(data, synth, args.keep_from_hand, scratch / "crossed.jsonl") \
                if args.keep_from_hand else synth
        settings = get_settings().model_copy(update={
            "adapters_dir": scratch / "adapters", "data_dir": scratch / "data"})
        # on the weights that will answer, as `assistant train` does (older entries: NF4)
        config = TrainConfig.from_settings(settings, quant=served_precision(settings),
                                           **overrides)
        load = os.getloadavg()[0]
        result = train_adapter(args.name, data, config, settings, progress_bar=True)
        card = result.card
        questions = [q for q in load_questions(args.questions)
                     if q.fact_id in facts and not q.out_of_scope]
        services = Services(settings)
        params = SamplingParams(max_new_tokens=48, temperature=0.0)
        rows = answer_all(services, questions, ["adapter"], args.name, params, "recipes")
    recall = sum(r.get("recall") or 0.0 for r in rows) / len(rows)  # failed answers: 0
    entry = {
        "name": args.name, "domain": args.domain or DEMO_DOMAIN, "overrides": overrides,
        "synthesized": str(args.synthesized) if args.synthesized else None,
        "keep_from_hand": args.keep_from_hand,
        "hyperparameters": card["hyperparameters"],
        "facts": len(facts), "pairs": card["data"]["examples"],
        "train_pairs": card["data"]["train_examples"], "steps": card["steps"],
        "epochs_run": card["epochs_run"], "best_epoch": card["best_epoch"],
        "train_seconds": round(card["seconds"], 1),
        "adapter_mb": round(card["adapter_bytes"] / 2**20, 2),
        "engine": services.engine.engine, "held_out_questions": len(rows),
        "held_out_recall": round(recall, 3),
        "prompt_tokens": round(sum(r["prompt_tokens"] or 0 for r in rows) / len(rows), 1),
        "load_average_1m_at_start": round(load, 2), "date": time.strftime("%Y-%m-%d"),
        "command": "python -m research.training_recipes " + " ".join(argv or sys.argv[1:]),
    }
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    results[f"{args.name}@{args.domain}" if args.domain else args.name] = entry
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(entry, indent=2))
    return 0


def across_domains(results: dict) -> str:
    """Recipes run on more than one domain: held-out recall per domain and the mean, best
    mean first (how the training defaults are chosen); "" when there are none."""
    by_recipe: dict[str, dict[str, dict]] = {}
    for e in results.values():
        if "domain" in e:
            by_recipe.setdefault(e["name"], {})[e["domain"]] = e
    by_recipe = {name: runs for name, runs in by_recipe.items() if len(runs) > 1}
    if not by_recipe:
        return ""
    domains = sorted({d for runs in by_recipe.values() for d in runs})

    def mean(runs: dict) -> float:
        return sum(e["held_out_recall"] for e in runs.values()) / len(runs)

    rows = ["| recipe | overrides of the defaults of the time | as run: epochs, validation share | "
            + " | ".join(f"{d}: recall (epochs run, training, load at start)" for d in domains)
            + " | mean recall |", "|---|---|---|" + "---|" * (len(domains) + 1)]
    for name, runs in sorted(by_recipe.items(), key=lambda item: -mean(item[1])):
        first = next(iter(runs.values()))
        overrides = " ".join(f"{k}={v}" for k, v in first["overrides"].items()) or "none"
        h = first["hyperparameters"]
        as_run = f"{h['epochs']}, {h.get('val_fraction', '?')}"
        cells = [(f"**{runs[d]['held_out_recall']:.2f}** ({runs[d]['held_out_questions']} q; "
                  f"{runs[d]['epochs_run']} of {runs[d]['hyperparameters']['epochs']}, "
                  f"{runs[d]['train_seconds'] / 60:.1f} min, "
                  f"{runs[d].get('load_average_1m_at_start', '?')})") if d in runs else "-"
                 for d in domains]
        rows.append(f"| `{name}` | {overrides} | {as_run} | " + " | ".join(cells)
                    + f" | **{mean(runs):.2f}** |")
    return "\n".join(rows) + "\n"


def wordings_markdown(results: dict) -> str:
    """The same facts trained from different files (``--synthesized``): which file, pairs per
    fact, training time and held-out recall on the hand-written questions, best first."""
    rows = ["| run | training pairs from | facts / pairs | pairs per fact | epochs | training "
            "| held-out recall |", "|---|---|---|---|---|---|---|"]
    for e in sorted(results.values(), key=lambda e: -e["held_out_recall"]):
        keep, file = e.get("keep_from_hand"), e.get("synthesized")
        if keep == "questions":
            source = f"hand-written questions, the answers of `{file}`"
        elif keep == "answers":
            source = f"the questions of `{file}`, hand-written answers"
        elif file:
            source = f"`{file}`"
        else:
            source = (f"hand-written (`knowledge/{e.get('domain', DEMO_DOMAIN)}/qa/train.jsonl`, "
                      "first phrasings)")
        rows.append(
            f"| `{e['name']}` | {source} | {e['facts']} / {e['pairs']} | "
            f"{e['pairs'] / e['facts']:.1f} | {e['epochs_run']} | "
            f"{e['train_seconds'] / 60:.1f} min | **{e['held_out_recall']:.2f}** "
            f"({e['held_out_questions']} q) |")
    commands = "\n".join(f"    {e['command']}" for e in results.values())
    sizes = sorted({e["held_out_questions"] for e in results.values()})
    noise = (f"Each recall is over {sizes[0]} questions (one answer is "
             f"{1 / sizes[0]:.2f}), from one training seed per run.\n\n"
             if len(sizes) == 1 else "")
    return "\n".join(rows) + "\n\n" + split_text(results) + noise + \
        f"Each row from one command (2 cores, {len(results)} runs):\n\n{commands}\n"


def split_text(results: dict) -> str:
    """One sentence per synthesized file crossed with the hand-written one: how far recall
    falls when only the questions, only the answers, or both come from the synthesized
    file ("" when those runs are missing)."""
    hand = next((e for e in results.values() if not e.get("synthesized")), None)
    out = ""
    for e in results.values():
        file = e.get("synthesized")
        if not hand or not file or e.get("keep_from_hand"):
            continue
        cross = {c.get("keep_from_hand"): c["held_out_recall"] for c in results.values()
                 if c.get("synthesized") == file and c.get("keep_from_hand")}
        if len(cross) < 2:
            continue
        out += (f"Same facts, same recipe, `{file}`: hand-written pairs "
                f"{hand['held_out_recall']:.2f}; hand-written answers with its questions "
                f"{cross['answers']:.2f}; hand-written questions with its answers "
                f"{cross['questions']:.2f}; its own pairs {e['held_out_recall']:.2f}.\n\n")
    return out


def markdown(results: dict) -> str:
    """The recipe tables of docs/training.md: every run, best held-out recall first, then
    the recipes run on several domains side by side."""
    rows = ["| recipe | domain | targets | r / alpha | lr | NEFTune | epochs run | facts / pairs "
            "| training | adapter | held-out recall |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in sorted(results.values(), key=lambda e: -e["held_out_recall"]):
        h = e["hyperparameters"]
        rows.append(
            f"| `{e['name']}` | {e.get('domain', DEMO_DOMAIN)} | {h['targets']} | "
            f"{h['rank']} / {h['alpha']} | {h['lr']:g} | "
            f"{h.get('neftune_alpha') or '-'} | "
            f"{e['epochs_run']} of {h['epochs']} | {e['facts']} / {e['pairs']} | "
            f"{e['train_seconds'] / 60:.1f} min | {e['adapter_mb']:.1f} MB | "
            f"**{e['held_out_recall']:.2f}** ({e['held_out_questions']} q) |")
    commands = "\n".join(f"    {e['command']}" for e in results.values())
    table = "\n".join(rows) + f"\n\nEach row comes from one command (2 cores, measured on " \
        f"{max(e['date'] for e in results.values())}):\n\n{commands}\n"
    both = across_domains(results)
    if both:
        table += ("\nThe recipes run on both demo domains, side by side (the same runs as "
                  "above):\n\n" + both)
    return table


if __name__ == "__main__":
    sys.exit(main())
