"""`assistant synth`: fact sentences, questions by rule, and every check that drops a pair.

A small fixture document stands in for a domain; a keyword search stands in for the
knowledge base, so these run in milliseconds without a model.
"""

from __future__ import annotations

import re

import pytest

from assistant.evaluation.run import load_questions
from assistant.training.data import load_examples
from assistant.training.facts import (
    Sentence,
    common_names,
    find_targets,
    is_rule,
    passage_sentences,
    row_targets,
)
from assistant.training.questions import questions_for
from assistant.training.rewording import overlap, restates, reword, shorten, vary
from assistant.training.synth import (
    Fact,
    Options,
    Passage,
    check_answers,
    check_retrieval,
    choose_phrasings,
    clause_answer,
    drop_shared_questions,
    extract_facts,
    held_out_rows,
    synthesize,
    train_rows,
    training_candidates,
)
from assistant.training.synth_report import write_outputs

FEES = "\n".join([
    "Fees and charges", "", "Late payment fee",
    "If a bill is still unpaid 10 days after the reminder, a late payment fee of £11.40 is "
    "added to the account.",
    "The standing charge for a metered home is £7.85 per month.",
    "Customers must keep their meter accessible at all times.", "", "History",
    "The Cooperative was founded on 14 March 1987.",
    "The founding meeting was chaired by Aldous Penrith-Crane.",
    "The Cooperative employs 63 people.", "",
])
SERVICE = "\n".join([
    "Service", "", "We aim to reply to all emails within three working days.",
    "To apply for a new connection, fill in Form WC-12 and send it to the connections team.",
    "Emergencies: call 0800 414 9127 at any time.", "",
])
TABLE = "\n".join([
    "Tariff schedule", "",
    "tariff code: T-DOM-01; customer class: Domestic metered; charge type: Standing charge; "
    "amount gbp: 7.85; unit: per month",
    "tariff code: T-DOM-02; customer class: Domestic metered; charge type: Volumetric charge; "
    "amount gbp: 2.136; unit: per cubic metre", "",
])
PASSAGES = [
    Passage("p1", FEES, "fees.md", "Fees and charges"),
    Passage("p2", SERVICE, "service.md", "Service"),
    Passage("p3", TABLE, "tariffs.csv", "Tariff schedule"),
]


def keyword_search(passages=PASSAGES, k=1):
    """The passages sharing the most words with each question, best first (top k)."""
    def words(text):
        return set(re.findall(r"[a-z0-9]+", text.lower()))

    def search(questions):
        return [[p.id for p in sorted(passages, key=lambda p: -len(words(q) & words(p.text)))[:k]]
                for q in questions]

    return search


def targets(text):
    return [(t.kind, t.must) for t in find_targets(text)]


# --- fact sentences ------------------------------------------------------------------------
def test_sentences_keep_the_heading_above_them():
    sentences = passage_sentences(FEES, "Fees and charges")
    late = next(s for s in sentences if "late payment fee of" in s.text)
    assert late.heading == "Late payment fee"
    assert next(s for s in sentences if "founded" in s.text).heading == "History"
    assert not any(s.text in ("Late payment fee", "History") for s in sentences)


@pytest.mark.parametrize("text, expected", [
    ("The standing charge is £7.85 per month.", [("amount", "7.85")]),
    ("Households get a discount of 37% on charges.", [("percent", "37")]),
    ("We aim to reply within three working days.", [("duration", "three working days")]),
    ("The Cooperative was founded on 14 March 1987.", [("date", "14 March 1987")]),
    ("Fill in Form WC-12 to apply.", [("code", "WC-12")]),
    ("Call 0800 414 9127 at any time.", [("phone", "0800 414 9127")]),
    ("The office opens at 08:30 on weekdays.", [("time", "08:30")]),
    ("The meeting was chaired by Aldous Penrith-Crane.", [("person", "Penrith-Crane")]),
    ("Write to enquiries@example.coop with questions.", [("email", "enquiries@example.coop")]),
    ("Comfort mode aims for 21 °C by default.", [("measure", "21")]),
    ("The report arrives on the 2nd day of each month.", [("date", "2nd")]),
])
def test_specifics_are_found_with_their_kind_and_check_string(text, expected):
    assert targets(text) == expected


def test_a_sentence_without_a_specific_is_no_fact_but_a_rule_is_named():
    assert targets("Customers must keep their meter accessible at all times.") == []
    assert is_rule("Customers must keep their meter accessible at all times.")
    assert not is_rule("The board meets in the evening.")


def test_names_found_all_over_the_domain_are_no_target():
    docs = ["Harrowgate Water runs the valley. Ask Harrowgate Water.",
            "At Harrowgate Water we test water.", "Harrowgate Water opens daily."]
    common = common_names(docs)
    assert "Harrowgate Water" in common
    assert find_targets("The chair of Harrowgate Water is Ingrid Vasquez-Holm.", common)[0].must \
        == "Vasquez-Holm"


def test_a_table_row_becomes_a_fact_per_column_with_a_specific():
    row = next(s for s in passage_sentences(TABLE, "Tariff schedule") if s.fields)
    cells = {column: t.must for column, t in row_targets(row, frozenset())}
    assert cells["tariff code"] == "T-DOM-01" and cells["amount gbp"] == "7.85"
    assert row.label == "Domestic metered standing charge"
    facts = extract_facts([Passage("p1", TABLE, "tariffs.csv", "Tariff schedule")], Options(), [])
    assert "The amount for Domestic metered standing charge is 7.85." in {f.answer for f in facts}


# --- questions -------------------------------------------------------------------------------
def ask(text, must, heading=""):
    target = next(t for t in find_targets(text) if t.must == must)
    return questions_for(Sentence(text, heading), target)


@pytest.mark.parametrize("text, must, expected", [
    ("If a bill is unpaid, a late payment fee of £11.40 is added.", "11.40",
     "How much is the late payment fee?"),
    ("The standing charge for a metered home is £7.85 per month.", "7.85",
     "How much is the standing charge for a metered home?"),
    ("The Cooperative was founded on 14 March 1987.", "14 March 1987",
     "When was the Cooperative founded?"),
    ("The founding meeting was chaired by Aldous Penrith-Crane.", "Penrith-Crane",
     "Who was the founding meeting chaired by?"),
    ("The Cooperative employs 63 people.", "63", "How many people does the Cooperative employ?"),
    ("We aim to reply to all emails within three working days.", "three working days",
     "How soon do you aim to reply to all emails?"),
    ("Finance Director – Priya Achterberg, responsible for billing and the annual accounts.",
     "Achterberg", "Who is the Finance Director?"),
    ("The vice-chair is Rhodri Fennimore, and the company secretary is Lucan Thorne.", "Thorne",
     "Who is the company secretary?"),
    ("The founding meeting was held in the barn at Skelby and was chaired by Aldous "
     "Penrith-Crane.", "Penrith-Crane", "Who was the founding meeting chaired by?"),
])
def test_the_question_word_follows_the_kind_and_the_subject_comes_from_the_sentence(
        text, must, expected):
    assert expected in ask(text, must)


def test_every_fact_gets_an_echo_question_and_the_heading_gives_another():
    found = ask("Emergencies: call 0800 414 9127 at any time.", "0800 414 9127", "Service")
    assert any("what number" in q for q in found)
    assert "What is the phone number for Service?" in found
    assert len(found) == len({q.lower() for q in found})  # no repeats


def test_a_name_in_an_aside_gets_no_echo_and_a_long_echo_is_cut_to_its_clause():
    found = ask("Running the Cooperative is delegated to the General Manager, Tobias Quarrendon, "
                "who has led the staff since 2016.", "Quarrendon")
    assert found == ["Who is the General Manager?", "Name the General Manager."]
    echo = ask("Rather than drill dozens of separate private boreholes, 23 farming households in "
               "the upper valley formed the Cooperative.", "23")
    assert training_candidates(echo) == [
        "How many farming households in the upper valley formed the Cooperative?"]
    assert shorten("In 2019 the network which had grown for years and reached the towns of the "
                   "north and the south reached how much of new mains and the?", keep=10) \
        .split()[-1] not in ("the?", "and?")


def test_questions_are_asked_from_the_customers_side():
    found = ask("We aim to reply to all emails within three working days.", "three working days")
    assert len(found) == 2  # found at all: the check below passes on an empty list
    assert all(not re.search(r"\bwe\b", q, re.I) for q in found)


def test_a_reworded_question_differs_and_overlap_measures_how_much():
    question = "How much is the late payment fee?"
    new = reword(question)
    assert new.lower() != question.lower()
    assert 0 < overlap(new, question) < 1
    assert overlap(question, question) == 1.0


def test_a_request_is_reworded_without_a_second_request_around_it():
    assert reword("Tell me the tariff code for Domestic metered.") == \
        "Please give me the tariff code for Domestic metered."


def test_a_reworded_question_names_its_price_once_and_no_synonym_changes_the_unit():
    assert vary("How much is the price of a membership share?") == \
        "What is the price of a membership share?"
    assert "twelve months" not in vary("In which year was the Cooperative founded?")


def test_a_variant_asks_in_other_words_and_restating_is_measured_on_content_words():
    answer = "The late payment fee is £11.40."
    assert restates("How much is the late payment fee?", answer)
    new = vary("How much is the late payment fee?")
    assert new == "What is the price of the late payment charge?"
    assert not restates(new, answer)


# --- checks that drop ---------------------------------------------------------------------
def fact(fact_id, answer, must, questions, passages=("p1",)):
    return Fact(fact_id, "fees.md", set(passages), answer, [must], "amount", list(questions))


@pytest.mark.parametrize("text, must, expected", [
    ("The current chair of the board is Ingrid Vasquez-Holm, who was first elected in 2014.",
     "Vasquez-Holm", "The current chair of the board is Ingrid Vasquez-Holm."),
    ("Fenmoor Assist is our social tariff for households who would otherwise struggle.",
     "Assist", "Fenmoor Assist is our social tariff for households."),
    ("1987 – The Cooperative is founded by 23 farming households.", "1987",
     "1987 – The Cooperative is founded by 23 farming households."),
    ("During any interruption longer than 8 hours, we deliver bottled water to the door.",
     "8 hours", "During any interruption longer than 8 hours, we deliver bottled water to the "
     "door."),
    ("Customers on Fenmoor Assist get 37% off both the standing and the volumetric charge.",
     "37", "Customers on Fenmoor Assist get 37% off both the standing and the volumetric "
     "charge."),
])
def test_training_answers_end_with_the_clause_that_states_the_fact(text, must, expected):
    target = next(t for t in find_targets(text) if t.must == must)
    assert clause_answer(text, target) == expected


def test_training_rows_answer_with_the_clause_and_held_out_rows_keep_the_sentence():
    text = "The current chair of the board is Ingrid Vasquez-Holm, who was elected in 2014."
    synthesis = synthesize([Passage("p1", text, "about.md")], lambda qs: [["p1"] for _ in qs],
                           Options(eval_share=1.0))
    (row, *_), held = train_rows(synthesis), held_out_rows(synthesis)
    assert row["answer"] == "The current chair of the board is Ingrid Vasquez-Holm."
    assert held[0]["answer"] == text


def test_a_fact_whose_answer_lacks_its_string_is_dropped():
    drops = []
    kept = check_answers([fact("a", "The fee is £11.40.", "11.40", ["How much is the fee?"]),
                          fact("b", "The fee is £1140.", "11.40", ["How much is it?"])], drops)
    assert [f.fact_id for f in kept] == ["a"]
    assert "does not contain '11.40'" in drops[0]["reason"]


def test_a_fact_with_no_question_is_dropped():
    drops = []
    assert check_answers([fact("a", "The fee is £11.40.", "11.40", [])], drops) == []
    assert drops[0]["reason"] == "no question could be made from the sentence"


def test_a_question_two_facts_share_is_dropped_from_both():
    drops = []
    facts = [fact("a", "Fee A is £1.", "1", ["What is the fee?", "How much is fee A?"]),
             fact("b", "Fee B is £2.", "2", ["What is the fee?", "How much is fee B?"])]
    drop_shared_questions(facts, drops)
    assert facts[0].candidates == ["How much is fee A?"]
    assert facts[1].candidates == ["How much is fee B?"]
    assert {d["reason"] for d in drops} == {"same question as another fact (ambiguous)"}


def test_a_question_that_misses_the_passage_is_dropped():
    drops = []
    facts = [fact("a", "The late fee is £11.40.", "11.40",
                  ["How much is the late payment fee?", "What does the Cooperative employ?"])]
    check_retrieval(facts, lambda qs: [["p1"] if "late" in q else ["p2"] for q in qs], drops)
    assert facts[0].candidates == ["How much is the late payment fee?"]
    assert drops[0]["reason"] == "question does not retrieve the fact's passage in the top k"


def test_a_fact_left_without_questions_is_dropped():
    drops = []
    kept = choose_phrasings([fact("a", "The fee is £1.", "1", [])], Options(), keyword_search(),
                            drops)
    assert kept == [] and drops[0]["reason"] == "no question retrieves its passage"


def test_training_asks_in_own_words_first_and_the_echo_only_when_nothing_else_remains():
    echo = "A late payment fee of how much is added?"
    both = fact("a", "A late payment fee of £11.40 is added.", "11.40",
                [echo, "How much is the late payment fee?"])
    only = fact("b", "Fenmoor Central has the code HV-A.", "HV-A",
                ["Fenmoor Central has which code?"], passages=("p2",))
    kept = choose_phrasings([both, only], Options(phrasings=3, eval_share=0.0),
                            lambda qs: [["p1", "p2"] for _ in qs], [])
    assert echo not in kept[0].train
    assert kept[0].train[0] == "What is the price of the late payment charge?"  # restates least
    assert "How much is the late payment fee?" in kept[0].train
    assert kept[1].train[0] == "Fenmoor Central has which code?"


def test_a_held_out_fact_keeps_one_question_back_from_training():
    asked = ["How much is the late payment fee?", "What is the fee added to a late bill?"]
    f = fact("a", "A late payment fee of £11.40 is added to a late bill.", "11.40", asked)
    kept = choose_phrasings([f], Options(phrasings=6, eval_share=1.0),
                            lambda qs: [["p1"] for _ in qs], [])
    assert asked[1] not in kept[0].train and asked[0] in kept[0].train
    assert kept[0].test and "added to a late" in kept[0].test.lower()


def test_duplicate_sentences_of_overlapping_chunks_make_one_fact():
    twice = [PASSAGES[0], Passage("p1b", FEES, "fees.md", "Fees and charges")]
    facts = extract_facts(twice, Options(), [])
    keys = [(f.answer, tuple(f.must_contain)) for f in facts]
    assert len(keys) == len(set(keys))
    late = next(f for f in facts if "11.40" in f.must_contain)
    assert late.passages == {"p1", "p1b"}


@pytest.mark.parametrize("phrasings", [1, 3, 6])
def test_held_out_questions_never_equal_a_training_phrasing(phrasings):
    result = synthesize(PASSAGES, keyword_search(), Options(phrasings=phrasings, eval_share=1.0))
    assert result.facts
    for f in result.facts:
        assert f.test is None or f.test.lower() not in {t.lower() for t in f.train}
        assert len(f.train) <= phrasings
    assert any(f.test for f in result.facts)


def test_synth_writes_files_the_trainer_and_the_evaluation_read(tmp_path):
    options = Options(phrasings=3, eval_share=1.0, out_of_scope=4)
    result = synthesize(PASSAGES, keyword_search(), options)
    report = write_outputs(result, options, "demo", tmp_path)
    examples = load_examples(tmp_path / "train.jsonl", min_examples=2)
    assert len(examples) == report["train_pairs"] == len(train_rows(result))
    assert all(any(m in e.answer for m in e.must_contain) for e in examples)
    questions = load_questions(tmp_path / "test.jsonl")
    assert len(questions) == len(held_out_rows(result))
    assert sum(q.out_of_scope for q in questions) == 4
    assert all(q.must_contain == () for q in questions if q.out_of_scope)
    text = (tmp_path / "report.md").read_text()
    assert "Dropped, by reason" in text and "held-out overlap" in text
    assert report["held_out_overlap"]["mean"] is not None


def test_the_synth_command_is_registered_and_checks_its_arguments(capsys):
    from assistant.cli import main

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "--eval-share" in capsys.readouterr().out
    assert main(["synth", "--domain", "x", "--phrasings", "0"]) == 2
    assert main(["synth", "--domain", "x", "--eval-share", "1.5"]) == 2


def test_eval_domain_uses_the_synthesized_held_out_set_and_says_so(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from assistant.commands import evaluate
    from assistant.training import from_domain

    services = SimpleNamespace(settings=SimpleNamespace(data_dir=tmp_path))
    folder = from_domain.default_dir(tmp_path, "demo")
    made = []
    monkeypatch.setattr(from_domain, "synthesize_domain",
                        lambda s, domain, out: made.append(domain) or out.mkdir(parents=True)
                        or (out / "test.jsonl").write_text("{}\n"))
    path, note = evaluate.synthesized_questions(services, "demo")
    assert path == folder / "test.jsonl" and made == ["demo"]  # synth ran: the file was missing
    assert "synthesized from the documents of domain `demo`" in note and str(path) in note
    path, note = evaluate.synthesized_questions(services, "demo")
    assert made == ["demo"] and "made for this run" not in note  # reused, not made again


def test_synth_reads_every_chunk_of_one_domain_from_the_store(knowledge_ingestor, tmp_path):
    from types import SimpleNamespace

    from assistant.training.from_domain import domain_passages

    for name, domain, text in (("fees.md", "water", FEES), ("service.md", "water", SERVICE),
                               ("other.md", "power", "# Power\n\nThe tariff is £9.99.\n")):
        (tmp_path / name).write_text(text)
        assert knowledge_ingestor.ingest([tmp_path / name], domain=domain)[0].ok
    store = knowledge_ingestor.store
    chunks = store.chunks(domain="water")
    assert {c.source for c in chunks} == {"fees.md", "service.md"}
    assert [(c.source, c.chunk) for c in chunks] == sorted((c.source, c.chunk) for c in chunks)
    passages = domain_passages(SimpleNamespace(store=store), "water")
    assert [p.id for p in passages] == [c.id for c in chunks]
    assert "£11.40" in " ".join(p.text for p in passages)


def test_a_domain_without_facts_is_refused_pointing_to_a_report_that_exists(
        knowledge_ingestor, knowledge_settings, tmp_path):
    from types import SimpleNamespace

    from assistant.errors import StrataError
    from assistant.training.from_domain import synthesize_domain

    (tmp_path / "notes.md").write_text("# Notes\n\nWe like clean water and kind people.\n")
    assert knowledge_ingestor.ingest([tmp_path / "notes.md"], domain="prose")[0].ok
    store = knowledge_ingestor.store
    services = SimpleNamespace(settings=knowledge_settings, store=store,
                               embedder=store.embedder)
    with pytest.raises(StrataError, match="no fact sentences found") as refused:
        synthesize_domain(services, "prose", tmp_path / "out")
    assert str(tmp_path / "out" / "report.md") in str(refused.value)
    assert "Dropped, by reason" in (tmp_path / "out" / "report.md").read_text()
