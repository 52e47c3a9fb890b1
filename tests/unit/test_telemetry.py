"""Each answer as an OpenTelemetry trace, sent to a real OTLP/HTTP receiver, and counted
for Prometheus.

The pipeline runs on the tiny model with the hashing embedder; the exporter is the one the
standard variables configure (``OTEL_EXPORTER_OTLP_ENDPOINT``), the receiver a real HTTP
server on 127.0.0.1 that decodes the protobuf it gets (tests/otlp_receiver.py).
"""

from __future__ import annotations

import threading

import pytest

from assistant.ledger.telemetry import Telemetry, exporter_from_env, provider_from_env
from assistant.models.generation import SamplingParams
from tests.otlp_receiver import OtlpReceiver

FEES = ("# Fees\n\n## Connection\n\nThe new connection fee is 148.50 pounds. "
        "Applications take 17 working days.\n")
PARAMS = SamplingParams(max_new_tokens=6, repetition_penalty=1.0)
SECRET = "zanzibarquokka"  # a word of the question that must not travel without store_text
QUESTION = f"What is the new connection fee for {SECRET}?"
STEPS = {"strata.routing", "strata.retrieval", "strata.rerank", "strata.grounding"}


@pytest.fixture
def receiver():
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def built():
    """Services the test made; their exporters are shut down at its end."""
    made = []
    yield made
    for services in made:
        services.telemetry.close()


def traced_services(tmp_path, tiny_base, adapters_dir, endpoint, store_text, built):
    from assistant.services import Services
    from assistant.settings import Settings
    from tests.retrieval_helpers import HashEmbedder

    settings = Settings(data_dir=tmp_path / "data", adapters_dir=adapters_dir,
                        base_model=tiny_base.name, profile="small-reader",
                        ledger_store_text=store_text)
    telemetry = Telemetry.from_settings(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    services = Services(settings, base=tiny_base, embedder=HashEmbedder(), telemetry=telemetry)
    doc = tmp_path / "fees.md"
    doc.write_text(FEES)
    assert services.ingestor.ingest([doc], domain="water")[0].ok
    built.append(services)
    return services


def by_name(spans):
    found = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def test_an_answer_is_one_trace_with_a_span_per_step(tmp_path, tiny_base, adapters_dir,
                                                     receiver, built):
    services = traced_services(tmp_path, tiny_base, adapters_dir, receiver.endpoint, True, built)
    answer = services.pipeline.ask(QUESTION, mode="layered", adapter="alpha", params=PARAMS)
    services.telemetry.flush()
    spans = by_name(receiver.wait_for("strata.answer"))
    assert receiver.paths == ["/v1/traces"] * len(receiver.paths)
    [root] = spans["strata.answer"]
    [model_call] = spans[f"chat {tiny_base.name}"]
    assert set(spans) >= STEPS
    children = [model_call] + [spans[name][0] for name in STEPS]
    assert {c.trace_id for c in children} == {root.trace_id}
    assert {c.parent_id for c in children} == {root.span_id} and not root.parent_id
    assert root.service == "strata"
    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == tiny_base.name
    assert a["gen_ai.usage.input_tokens"] == answer.prompt_tokens + answer.rerank_tokens
    assert a["gen_ai.usage.output_tokens"] == answer.completion_tokens > 0
    assert a["strata.mode"] == "layered" and a["strata.adapter"] == "alpha"
    assert a["strata.cost_usd"] == pytest.approx(answer.cost_usd) and a["strata.cost_usd"] > 0
    assert a["strata.outcome"] in ("answered", "quoted")
    assert a["strata.question"] == QUESTION  # text kept: a bounded snippet
    assert a["strata.answer"] == answer.text[:200]
    call = model_call.attributes
    assert call["gen_ai.operation.name"] == "chat" and call["strata.adapter"] == "alpha"
    assert call["gen_ai.usage.input_tokens"] == answer.prompt_tokens
    assert call["gen_ai.usage.output_tokens"] == answer.completion_tokens
    assert spans["strata.retrieval"][0].attributes["strata.hits"] > 0
    assert spans["strata.rerank"][0].attributes["strata.rerank_tokens"] == answer.rerank_tokens
    assert a["strata.grounding"] == spans["strata.grounding"][0].attributes["strata.grounding"]


def test_without_store_text_no_question_or_answer_text_leaves(tmp_path, tiny_base,
                                                             adapters_dir, receiver, built):
    services = traced_services(tmp_path, tiny_base, adapters_dir, receiver.endpoint, False, built)
    answers = [services.pipeline.ask(QUESTION, mode=mode, params=PARAMS)
               for mode in ("prompt", "base")]
    with pytest.raises(Exception, match="too long"):  # an error message quoting nothing
        services.pipeline.ask(SECRET * 400, mode="prompt", params=PARAMS)
    services.telemetry.flush()
    spans = receiver.wait_for("strata.answer", count=3)
    roots = [s for s in spans if s.name == "strata.answer"]
    assert [r.attributes["strata.mode"] for r in roots] == ["prompt", "base", "prompt"]
    assert roots[0].attributes["strata.outcome"] in ("answered", "quoted")
    assert roots[1].attributes["strata.outcome"] == "answered"
    assert roots[1].attributes["gen_ai.usage.output_tokens"] == answers[1].completion_tokens
    assert roots[2].attributes["strata.outcome"] == "refused"
    assert roots[2].status == 2 and roots[2].status_message == "StrataError"
    raw = b"".join(receiver.bodies)
    texts = [SECRET, "connection fee"] + [a.text for a in answers if len(a.text) > 3]
    for text in texts:
        assert text.encode() not in raw, text
    for span in spans:
        assert "strata.question" not in span.attributes
        assert "strata.answer" not in span.attributes


def test_the_metrics_count_answers_tokens_and_errors(tmp_path, tiny_base, adapters_dir,
                                                    built):
    services = traced_services(tmp_path, tiny_base, adapters_dir, "", True, built)
    assert not services.telemetry.exporting
    answer = services.pipeline.ask(QUESTION, mode="base", params=PARAMS)
    with pytest.raises(Exception, match="empty"):
        services.pipeline.ask("  ", params=PARAMS)
    value = services.telemetry.metrics.registry.get_sample_value
    assert value("strata_answers_total", {"mode": "base", "outcome": "answered"}) == 1
    assert value("strata_answers_total", {"mode": "auto", "outcome": "refused"}) == 1
    assert value("strata_answer_errors_total", {"mode": "auto", "kind": "StrataError"}) == 1
    assert value("strata_tokens_total", {"mode": "base", "type": "output"}) == \
        answer.completion_tokens
    assert value("strata_answer_seconds_count", {"mode": "base"}) == 1
    assert value("strata_time_to_first_token_seconds_count", {"mode": "base"}) == 1
    assert value("strata_cost_usd_total", {"mode": "base"}) == pytest.approx(answer.cost_usd)
    assert value("strata_queue_depth") == 0
    text = services.telemetry.exposition().decode()
    assert "strata_answers_total" in text and QUESTION not in text


def test_nothing_is_exported_and_no_thread_starts_by_default(tmp_path):
    from assistant.settings import Settings

    before = set(threading.enumerate())
    telemetry = Telemetry.from_settings(Settings(data_dir=tmp_path), {})
    assert telemetry.provider is None and not telemetry.exporting
    trace = telemetry.answer("auto", "m", "local")
    for each in (trace, telemetry.untraced):  # an answer's, and a step run on its own
        with each.span("routing") as step:
            step.set("strata.hits", 1)
    assert set(threading.enumerate()) == before
    assert provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                              "OTEL_SDK_DISABLED": "true"}) is None
    assert provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                              "OTEL_TRACES_EXPORTER": "none"}) is None


def test_the_exporter_follows_the_standard_variables():
    http = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert type(http).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
    assert http._endpoint == "http://collector:4318/v1/traces"
    own = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://other:9/traces"})
    assert own._endpoint == "http://other:9/traces"
    grpc = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert type(grpc).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    for exporter in (http, own, grpc):
        exporter.shutdown()
