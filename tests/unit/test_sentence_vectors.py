"""Prompt mode's sentence vectors: embedded at ingestion, looked up per question, the same
ranking as embedding them then; old stores fall back and heal; deletes take them along."""

from __future__ import annotations

from assistant.answering import prompts
from assistant.retrieval.sentences import SentenceVectors, passage_sentences, ranked_texts

FEES = ("# Fees\n\n## Connections\n\nThe connection fee is £148.50 per property. "
        "Apply 17 days ahead.\n\nLate payment\n\nThe late fee is £12.\n")
LEAKS = "# Leaks\n\nReport a burst main on 0800 555 0199. Leaks on your side are yours to fix.\n"
QUESTION = "How much is the connection fee?"


class Counting:
    """Wraps an embedder's ``embed_documents`` to count the texts it embeds."""

    def __init__(self, embedder):
        self.embedder, self.texts = embedder, 0

    def __call__(self, texts):
        self.texts += len(texts)
        return self.embedder.embed_documents(texts)


def ingest(tmp_path, ingestor, **files):
    paths = []
    for name, text in files.items():
        path = tmp_path / name.replace("_", ".")
        path.write_text(text)
        paths.append(path)
    return ingestor.ingest(paths, domain="water")


def ranked(store, embed, stored):
    hits = store.search(QUESTION, k=4)
    vector = store.embedder.embed_query(QUESTION)
    return [(line.text, round(line.score, 5))
            for line in prompts.rank_sentences(QUESTION, hits, vector, embed, stored)]


def test_ingested_sentences_need_no_embedding_at_question_time(
        tmp_path, knowledge_store, knowledge_ingestor):
    ingest(tmp_path, knowledge_ingestor, fees_md=FEES, leaks_md=LEAKS)
    embed = Counting(knowledge_store.embedder)
    from_table = ranked(knowledge_store, embed, knowledge_store.sentences)
    assert embed.texts == 0 and from_table
    assert from_table == ranked(knowledge_store, embed, None)  # the same ranking as before
    assert from_table[0][0] == "The connection fee is £148.50 per property."


def test_an_old_store_embeds_missing_sentences_once_and_keeps_them(
        tmp_path, knowledge_store, knowledge_ingestor):
    ingest(tmp_path, knowledge_ingestor, fees_md=FEES)
    knowledge_store.sentences.forget("fees.md")  # as a store ingested before the table
    embed = Counting(knowledge_store.embedder)
    first = ranked(knowledge_store, embed, knowledge_store.sentences)
    assert embed.texts > 0
    embedded = embed.texts
    assert ranked(knowledge_store, embed, knowledge_store.sentences) == first
    assert embed.texts == embedded  # stored the first time


def test_deleting_or_replacing_a_document_takes_its_vectors_along(
        tmp_path, knowledge_store, knowledge_ingestor):
    ingest(tmp_path, knowledge_ingestor, fees_md=FEES)
    table = knowledge_store.sentences
    old = _all_ranked(knowledge_store)
    assert any("£148.50" in t for t in table.lookup(old))
    ingest(tmp_path, knowledge_ingestor, fees_md=FEES.replace("£148.50", "£150.00"))
    new = _all_ranked(knowledge_store)
    assert set(table.lookup(new)) == set(new)
    assert not table.lookup([t for t in old if "£148.50" in t])  # replaced, not kept
    assert _rows(table) == len(new)
    knowledge_store.delete_document("fees.md")
    assert _rows(table) == 0


def test_a_vector_is_found_only_for_the_same_model_and_text(tmp_path):
    table = SentenceVectors(tmp_path / "v.db", "model-a")
    table.replace("a.md", ["Fees: The fee is £12."], [[1.0, 0.0]])
    assert list(table.lookup(["Fees: The fee is £12."])) == ["Fees: The fee is £12."]
    assert not table.lookup(["Fees: The fee is £13."])
    assert not SentenceVectors(tmp_path / "v.db", "model-b").lookup(["Fees: The fee is £12."])


def test_sentences_keep_their_heading_in_the_ranked_text_and_skip_headings():
    sentences = passage_sentences("Fees\n\nLate payment\n\nThe **late** fee is £12.", "Fees")
    assert [(s.position, s.text, s.ranked) for s in sentences] == [
        (1, "The late fee is £12.", "Fees: Late payment: The late fee is £12.")]


def _all_ranked(store):
    return ranked_texts((h.text, h.section) for h in store.chunks())


def _rows(table) -> int:
    return table._connect().execute("SELECT count(*) FROM sentence_vectors").fetchone()[0]
