"""Strata on a real vLLM server (the openai backend): every mode answers and leaves a ledger
row naming the backend, adapter mode answers as the local backend does, an adapter trained
while the server runs is usable through it, and an adapter it cannot have fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from assistant.errors import AdapterError
from assistant.models.generation import SamplingParams
from tests.scale.conftest import DEMO, ROOT

pytestmark = pytest.mark.scale

SHORT = SamplingParams(max_new_tokens=24)
# Questions the demo adapter was trained on, with the fact each answer holds.
KNOWN = [("How much is the new connection fee?", "148.50"),
         ("When was Harrowgate Valley Water Cooperative founded?", "1987")]
MODES = ["prompt", "adapter", "layered", "base", "auto"]


def services_for(tmp_path, embedder, parts=None, **settings):
    from assistant.services import Services
    from assistant.settings import Settings

    return Services(Settings(_env_file=None, data_dir=tmp_path / "data", **settings),
                    embedder=embedder, **(parts or {}))


@pytest.fixture(scope="module")
def served(vllm_server, retrieval_embedder, tmp_path_factory):
    """Strata on the vLLM server, the demo domain's fee document in its knowledge base."""
    services = services_for(tmp_path_factory.mktemp("strata-openai"), retrieval_embedder,
                            backend="openai", backend_url=vllm_server.url,
                            adapters_dir=vllm_server.adapters_dir)
    fees = ROOT / "knowledge" / DEMO / "docs" / "tariffs-and-fees.md"
    assert services.ingestor.ingest([fees], domain=DEMO)[0].ok
    return services


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_answers_through_vllm_with_a_ledger_row_naming_it(served, mode):
    before = len(served.ledger.rows())
    answer = served.pipeline.ask("How much is the new connection fee?", mode=mode,
                                 adapter=DEMO if mode == "adapter" else None, params=SHORT)
    assert answer.text and answer.completion_tokens > 0 and answer.ttft_ms > 0
    rows = served.ledger.rows()
    assert len(rows) == before + 1
    row = rows[-1]
    assert row["error"] is None and row["backend"] == "openai"
    assert (row["base_model"], row["quantization"]) == ("smollm2-135m", "served")
    assert row["profile"] == "small-reader"
    if row["chosen_mode"] in ("prompt", "layered"):  # server scoring is off by default
        assert row["ranking"] == "embedding" and answer.rerank_tokens == 0
    assert served.base.model is None  # no model was loaded in this process


def test_sentences_are_re_ranked_by_the_servers_prompt_logprobs_when_turned_on(
        served, vllm_server, retrieval_embedder, tmp_path):
    scoring = services_for(tmp_path, retrieval_embedder, backend="openai",
                           backend_url=vllm_server.url, adapters_dir=vllm_server.adapters_dir,
                           backend_prompt_logprobs=True,
                           parts={"store": served.store})  # the knowledge base ingested above
    answer = scoring.pipeline.ask("How much is the new connection fee?", mode="prompt",
                                  params=SHORT)
    assert answer.rerank_tokens > 0 and answer.extra["ranking"] == "likelihood"
    assert scoring.ledger.rows()[-1]["ranking"] == "likelihood"


def test_adapter_mode_answers_as_the_local_backend_does(served, retrieval_embedder, tmp_path,
                                                        vllm_server):
    # bf16 locally: the weights vLLM serves (NF4 would round them differently)
    local = services_for(tmp_path, retrieval_embedder, quant="bf16", backend="local",
                         adapters_dir=vllm_server.adapters_dir)
    for question, fact in KNOWN:
        remote = served.pipeline.ask(question, mode="adapter", adapter=DEMO, params=SHORT)
        here = local.pipeline.ask(question, mode="adapter", adapter=DEMO, params=SHORT)
        assert remote.text == here.text, question
        assert fact in remote.text
    assert local.ledger.rows()[-1]["backend"] == "local"


def test_an_adapter_trained_while_the_server_runs_is_usable_through_it(
        served, vllm_server, tmp_path):
    data = tmp_path / "pairs.jsonl"
    lines = (ROOT / "knowledge" / DEMO / "qa" / "train.jsonl").read_text().splitlines()
    data.write_text("\n".join(lines[:16]) + "\n")
    env = {"ASSISTANT_ADAPTERS_DIR": str(vllm_server.adapters_dir),
           "ASSISTANT_DATA_DIR": str(tmp_path / "train-data"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "train", "--name", "fresh", "--data", str(data),
         "--max-steps", "2", "--epochs", "1", "--no-progress", "--json"],
        cwd=ROOT, env={**_environ(), **env}, capture_output=True, text=True, timeout=600,
        check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = served.pipeline.ask("How much is the new connection fee?", mode="adapter",
                                 adapter="fresh", params=SHORT)
    assert answer.adapter == "fresh" and answer.text
    models = httpx.get(f"{vllm_server.url}/models").json()["data"]
    assert "fresh" in {m["id"] for m in models}
    assert served.ledger.rows()[-1]["adapter"] == "fresh"


def test_an_unknown_adapter_gets_the_clear_error(served):
    with pytest.raises(AdapterError, match="unknown adapter 'missing'"):
        served.pipeline.ask("How much is the new connection fee?", mode="adapter",
                            adapter="missing", params=SHORT)


def test_an_adapter_the_server_refuses_fails_naming_it_and_the_server(served, vllm_server):
    folder = vllm_server.adapters_dir / "too-wide"
    folder.mkdir()
    for name in ("adapter_model.safetensors", "card.json"):
        (folder / name).write_bytes((vllm_server.adapters_dir / DEMO / name).read_bytes())
    config = json.loads((vllm_server.adapters_dir / DEMO / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "r": 64}))
    with pytest.raises(AdapterError) as err:
        served.pipeline.ask("How much is the new connection fee?", mode="adapter",
                            adapter="too-wide", params=SHORT)
    assert "'too-wide'" in str(err.value) and vllm_server.url in str(err.value)
    assert "max_lora_rank" in str(err.value)  # the server's own reason
    row = served.ledger.rows()[-1]
    assert row["adapter"] == "too-wide" and "too-wide" in row["error"]


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
