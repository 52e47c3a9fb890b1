"""Telemetry of a served app, read as operators read it.

The app (web app and /v1 on one port, a tiny model) runs with an API key, text not kept
(``ASSISTANT_LEDGER_STORE_TEXT=false``) and ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a
real OTLP/HTTP receiver on 127.0.0.1. ``GET /metrics`` is parsed with prometheus_client's
own parser: it needs the key, and its counters move with an answer given through /v1;
that answer's trace reaches the receiver with its attributes and without its text.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.e2e

parser = pytest.importorskip("prometheus_client.parser")

KEY = "sk-strata-metrics"
SECRET = "quokkazanzibar"
QUESTION = f"When does the Kestle Top car park open for {SECRET}?"


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def served(tiny_app_factory, receiver):
    """The app, its telemetry configured by the standard variable as in a deployment."""
    before = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    try:
        services, url = tiny_app_factory(api_keys=KEY, ledger_store_text=False)
        assert services.telemetry.exporting  # built now, from the variable
    finally:
        if before is None:
            os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT")
        else:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = before
    yield services, url
    services.telemetry.close()


def scrape(url, key=KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    reply = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in parser.text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, reply.text


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_api_key(served):
    _, url = served
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        reply = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
        assert reply.status_code == 401
        assert reply.json()["error"]["type"] == "authentication_error"
        assert "strata_answers_total" not in reply.text
    assert scrape(url)[0] is not None


def test_an_answer_moves_the_counters_and_sends_its_trace_without_text(served, receiver):
    services, url = served
    before, _ = scrape(url)
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=120,
                       headers={"Authorization": f"Bearer {KEY}"},
                       json={"model": "strata-prompt", "max_tokens": 6, "temperature": 0,
                             "messages": [{"role": "user", "content": QUESTION}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    mode, usage = body["strata"]["mode"], body["usage"]
    after, text = scrape(url)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    outcome = [o for o in ("answered", "quoted", "no_context")
               if moved("strata_answers_total", mode=mode, outcome=o) == 1]
    assert len(outcome) == 1
    assert moved("strata_tokens_total", mode=mode, type="output") == usage["completion_tokens"]
    assert moved("strata_tokens_total", mode=mode, type="input") >= usage["prompt_tokens"]
    assert moved("strata_answer_seconds_count", mode=mode) == 1
    assert moved("strata_time_to_first_token_seconds_count", mode=mode) == 1
    assert moved("strata_cost_usd_total", mode=mode) > 0
    assert value(after, "strata_queue_depth") == 0
    assert SECRET not in text

    services.telemetry.flush()
    spans = receiver.wait_for("strata.answer")
    [root] = [s for s in spans if s.name == "strata.answer"]
    a = root.attributes
    assert a["strata.mode"] == mode and a["strata.outcome"] == outcome[0]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert a["strata.cost_usd"] == pytest.approx(body["strata"]["cost_usd"])
    assert {"strata.retrieval", "strata.routing"} <= {s.name for s in spans}
    raw = b"".join(receiver.bodies)
    content = body["choices"][0]["message"]["content"]
    for secret in [SECRET, "Kestle"] + ([content] if len(content) > 3 else []):
        assert secret.encode() not in raw, secret
