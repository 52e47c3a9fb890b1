"""Access rules of the web app, and the multi-domain retrieval filter they rely on."""

from __future__ import annotations

import pytest

from assistant.access import Access, Visitor, parse_auth, shown_name
from assistant.errors import StrataError
from assistant.settings import Settings

ANNE = Visitor(user=None, session="anne-session")
BEN = Visitor(user=None, session="ben-session")


def access(**settings) -> Access:
    return Access(Settings(**settings))


def test_auth_is_parsed_and_validated():
    assert parse_auth("alice:wonder:land, bob:builder") == [("alice", "wonder:land"),
                                                            ("bob", "builder")]
    assert parse_auth(None) is None
    with pytest.raises(ValueError, match="user:pass"):
        Settings(auth="alice")
    assert "wonder" not in repr(Settings(auth="alice:wonder"))  # kept out of logs


def test_admins_alone_may_write_when_listed():
    open_app = access()
    assert open_app.can_write(ANNE)
    guarded = access(admins="alice, carol")
    assert guarded.can_write(Visitor("alice", "s1")) and guarded.is_admin(Visitor("carol", "s"))
    with pytest.raises(StrataError, match="only admins may upload documents .*'bob'"):
        guarded.require_write(Visitor("bob", "s2"), "upload documents")
    with pytest.raises(StrataError, match="you are not logged in"):
        guarded.require_write(ANNE, "delete documents")


def test_private_domains_are_per_session_or_per_user_and_names_are_prefixed():
    shared = access()
    assert shared.domain_of(ANNE) is None and shared.stored_name(ANNE, "a.md") == "a.md"
    private = access(private_uploads=True)
    anne, ben = private.domain_of(ANNE), private.domain_of(BEN)
    assert anne != ben and anne.startswith("session-")
    assert private.domain_of(Visitor("alice", "x")) == private.domain_of(Visitor("alice", "y"))
    stored = private.stored_name(ANNE, "notes.md")
    assert stored != "notes.md" and shown_name(stored) == "notes.md"
    assert shown_name("session-notes.md") == "session-notes.md"  # only our own prefix goes


def test_private_retrieval_sees_shared_domains_and_its_own_only(knowledge_store, knowledge_ingestor,
                                                                tmp_path):
    private = access(private_uploads=True)
    docs = {"shared.md": ("# Otters\n\nOtters swim in the Wexe river.", "demo"),
            private.stored_name(ANNE, "a.md"): ("# Otters\n\nAnne's otters eat trout.",
                                                private.domain_of(ANNE)),
            private.stored_name(BEN, "b.md"): ("# Otters\n\nBen's otters sleep all day.",
                                               private.domain_of(BEN))}
    for name, (text, domain) in docs.items():
        path = tmp_path / name
        path.write_text(text)
        assert knowledge_ingestor.ingest([path], domain=domain)[0].ok
    domains = private.retrieval_domains(ANNE, knowledge_store)
    assert sorted(domains) == sorted(["demo", private.domain_of(ANNE)])
    hits = knowledge_store.search("otters", k=10, domains=domains)
    assert {shown_name(h.source) for h in hits} == {"shared.md", "a.md"}
    assert knowledge_store.search("otters", k=10, domains=[]) == []
    assert {h.source for h in knowledge_store.search("otters", k=10, domain="demo",
                                                     domains=domains)} == {"shared.md"}
    visible = private.visible(ANNE, knowledge_store.list_documents())
    assert {shown_name(d.name) for d in visible} == {"shared.md", "a.md"}


def test_deleting_needs_ownership_or_admin(knowledge_store, knowledge_ingestor, tmp_path):
    private = access(private_uploads=True, admins="", auth=None)
    path = tmp_path / "shared.md"
    path.write_text("# Shared\n\nEveryone reads this.")
    knowledge_ingestor.ingest([path], domain="demo")
    mine = tmp_path / private.stored_name(ANNE, "notes.md")
    mine.write_text("# Notes\n\nAnne's notes.")
    knowledge_ingestor.ingest([mine], domain=private.domain_of(ANNE))
    assert private.resolve_delete(ANNE, "notes.md", knowledge_store) == mine.name
    with pytest.raises(StrataError, match="no document named 'notes.md' among yours"):
        private.resolve_delete(BEN, "notes.md", knowledge_store)
    with pytest.raises(StrataError, match="only an admin may delete it"):
        private.resolve_delete(BEN, "shared.md", knowledge_store)
    admin = access(private_uploads=True, admins="root")
    assert admin.resolve_delete(Visitor("root", "s"), "shared.md", knowledge_store) == "shared.md"


def test_adapters_table_says_an_evaluated_adapters_recall_briefly():
    from assistant.ui.adapters import eval_score

    assert eval_score({}) == "-"
    assert eval_score({"eval": {"adapter_recall": 0.4125, "prompt_recall": 0.2167}}) == (
        "fact recall 0.41 (prompt mode 0.22)")
    assert eval_score({"eval": {"accuracy": 0.5}}) == "accuracy 0.50"
