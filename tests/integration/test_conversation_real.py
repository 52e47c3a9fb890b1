"""A demo follow-up answered right only with the conversation it continues (real model).

"Who can get it?" names nothing: alone it is searched as it stands and finds whatever
"get" matches; after "What discount does the Fenmoor Assist tariff give?" it is searched
with that question and answered from the tariff's eligibility rule. Prompt mode, greedy,
as `assistant eval --conversations` asks it (conversation c02 of the demo file).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.retrieval.ingest import ensure_demo_knowledge
from assistant.services import Services
from assistant.settings import Settings
from assistant.text import contains

pytestmark = pytest.mark.integration
CONVERSATIONS = Path("knowledge/harrowgate-water/qa/conversations.jsonl")
CONVERSATION = "c02"


@pytest.fixture(scope="module")
def services(tmp_path_factory, real_base, retrieval_embedder):
    root = tmp_path_factory.mktemp("conversation")
    # the local engine, on the NF4 model handed in: these greedy answers are its own
    services = Services(Settings(data_dir=root / "data", adapters_dir=root / "adapters",
                                 backend="local"),
                        base=real_base, embedder=retrieval_embedder)
    ensure_demo_knowledge(services.settings, services.store)
    return services


def test_a_follow_up_is_answered_right_only_with_its_history(services):
    rows = [json.loads(line) for line in CONVERSATIONS.read_text().splitlines()]
    first, follow_up = next(r for r in rows if r["id"] == CONVERSATION)["turns"][:2]
    params = services.generator.defaults.with_(max_new_tokens=64, temperature=0.0)
    ask = services.pipeline.ask

    opening = ask(first["question"], mode="prompt", params=params)
    assert all(contains(opening.text, fact) for fact in first["must_contain"]), opening.text
    history = [{"role": "user", "content": first["question"]},
               {"role": "assistant", "content": opening.text}]
    with_history = ask(follow_up["question"], mode="prompt", params=params, history=history)
    alone = ask(follow_up["question"], mode="prompt", params=params)

    print(f"with history: {with_history.text!r}\nalone: {alone.text!r}")
    facts = follow_up["must_contain"]
    assert all(contains(with_history.text, fact) for fact in facts)
    assert not any(contains(alone.text, fact) for fact in facts)
    assert with_history.standalone_query.startswith(first["question"])
    assert with_history.history_turns == 2 and alone.standalone_query is None
    assert any(s.name == first["source"] for s in with_history.sources)
