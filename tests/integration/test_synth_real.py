"""`assistant synth` on real demo documents with the real embedder and store: both files come
out in the documented formats and load with the trainer's and the evaluation's readers.

Three of the demo domain's documents (prose, an HTML table and a CSV) keep it short.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.evaluation.run import load_questions
from assistant.retrieval.store import KnowledgeStore
from assistant.services import Services
from assistant.settings import Settings
from assistant.text import contains
from assistant.training.data import load_examples
from assistant.training.from_domain import synthesize_domain

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "harrowgate-water"
DOCS = ("tariffs-and-fees.md", "contact-and-offices.html", "tariff-schedule.csv")


@pytest.fixture(scope="module")
def synthesized(retrieval_embedder, tmp_path_factory):
    source = ROOT / "knowledge" / DOMAIN / "docs"
    if not source.is_dir():
        pytest.skip("demo domain not present")
    root = tmp_path_factory.mktemp("synth")
    docs = root / "knowledge" / DOMAIN / "docs"
    docs.mkdir(parents=True)
    for name in DOCS:
        shutil.copy(source / name, docs / name)
    settings = Settings(data_dir=root / "data", knowledge_dir=root / "knowledge")
    store = KnowledgeStore(settings, retrieval_embedder)
    services = Services(settings, embedder=retrieval_embedder, store=store)
    report = synthesize_domain(services, DOMAIN, root / "out", eval_share=1.0)  # ingests first
    return root / "out", report


def test_synth_writes_training_pairs_the_trainer_reads(synthesized):
    out, report = synthesized
    examples = load_examples(out / "train.jsonl")
    assert len(examples) == report["train_pairs"] >= 20
    assert all(e.must_contain and all(contains(e.answer, m) for m in e.must_contain)
               for e in examples)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert {r["source"] for r in rows} <= set(DOCS)
    assert len({r["fact_id"] for r in rows}) == report["facts_kept"]


def test_synth_writes_held_out_questions_the_evaluation_reads(synthesized):
    out, report = synthesized
    questions = load_questions(out / "test.jsonl")
    in_scope = [q for q in questions if not q.out_of_scope]
    assert len(in_scope) == report["test_questions"] > 0
    assert sum(q.out_of_scope for q in questions) == report["out_of_scope_questions"] > 0
    trained = {e.question.lower() for e in load_examples(out / "train.jsonl")}
    assert not any(q.question.lower() in trained for q in in_scope)
    assert report["held_out_overlap"]["mean"] < 1.0
    assert (out / "report.md").read_text().startswith(f"# Synthesized questions for `{DOMAIN}`")


MANUAL = """# Lending rules

The library was founded in 1952 by the parish council.
The head librarian is Marguerite Oakhollow.
A lost library card costs £4.50 to replace.
Members may borrow up to 12 books at a time.
"""


def test_model_rewordings_from_the_bundled_model_are_checked_and_added(
        retrieval_embedder, real_base, tmp_path):
    """The real bundled model rewords the rule questions; what it writes is parsed and
    checked, and only what passes lands in train.jsonl, marked in the report."""
    from assistant.training.paraphrase import verdict

    docs = tmp_path / "knowledge" / "library" / "docs"
    docs.mkdir(parents=True)
    (docs / "lending.md").write_text(MANUAL, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", knowledge_dir=tmp_path / "knowledge")
    store = KnowledgeStore(settings, retrieval_embedder)
    services = Services(settings, embedder=retrieval_embedder, store=store, base=real_base)
    report = synthesize_domain(services, "library", tmp_path / "out", phrasings=2,  # ingests
                               eval_share=0.0, model_rewordings=2, progress_bar=False)
    assert "reworded by smollm2-135m" in report["generator"]
    judged = report["model_pairs"] + sum(
        n for reason, n in report["dropped_by_reason"].items()
        if reason.startswith("model rewording:"))
    assert judged > 0  # the model answered, and every line it wrote was judged
    examples = load_examples(tmp_path / "out" / "train.jsonl")
    assert len(examples) == report["train_pairs"]
    for fact in report["kept"]:
        rules = fact["train"][:len(fact["train"]) - fact["model_made"]]
        for question in fact["train"][len(rules):]:
            assert any(verdict(question, r, fact["must_contain"], rules) == "kept" for r in rules)
