"""Which engine answers (ASSISTANT_BACKEND=auto, the default: llama.cpp where it can, else
the local generator), and that a fallback is said: in the log, in `assistant models`, in
the evaluation's summary and report. llama.cpp itself is the integration tier's
(tests/integration/test_engine.py); here it is made unimportable, as on a host without
the compiled wheel."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from assistant.backends import engine
from assistant.errors import StrataError
from assistant.evaluation import report
from assistant.settings import Settings


@pytest.fixture
def no_llama_cpp(monkeypatch):
    """A host where llama-cpp-python was never built: importing it fails."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


def test_auto_is_the_default_and_falls_back_when_llama_cpp_is_not_installed(no_llama_cpp):
    settings = Settings(_env_file=None)
    assert settings.backend == "auto"
    choice = engine.choose(settings)
    assert choice.engine == "local" and choice.fallback
    assert "llama-cpp-python is not installed" in choice.reason
    assert "make llamacpp" in choice.reason  # and how to get it
    assert "fallback" in choice.line()


def test_a_base_model_without_gguf_or_another_loaded_base_is_answered_locally():
    hub = engine.choose(Settings(_env_file=None, base_model="someone/hf-model"))
    assert hub.engine == "local" and "has no GGUF" in hub.reason and "smollm2-135m" in hub.reason
    other = engine.choose(Settings(_env_file=None), base_name="tiny-llama")
    assert other.engine == "local" and "'tiny-llama' is not 'smollm2-135m'" in other.reason


def test_a_named_engine_is_taken_as_asked_and_never_falls_back(no_llama_cpp):
    for name in ("local", "llamacpp", "openai"):
        choice = engine.choose(Settings(_env_file=None, backend=name))
        assert choice.engine == name and not choice.fallback
    asked = engine.choose(Settings(_env_file=None, backend="llamacpp"))
    with pytest.raises(StrataError, match="disagree"):
        engine.fall_back(asked, StrataError("logits disagree"))
    auto = engine.EngineChoice("llamacpp", "auto", "the default engine")
    fell = engine.fall_back(auto, StrataError("logits disagree"))
    assert fell.engine == "local" and fell.fallback and "logits disagree" in fell.reason


def test_services_answer_locally_and_log_why_when_llama_cpp_is_missing(
        no_llama_cpp, tmp_path, tiny_base, caplog):
    from dataclasses import replace

    from assistant.services import Services

    # the bundled model's name on a tiny stand-in: llama.cpp would be chosen if it imported
    base = replace(tiny_base, name="smollm2-135m")
    services = Services(Settings(_env_file=None, data_dir=tmp_path / "data",
                                 adapters_dir=tmp_path / "adapters", max_new_tokens=3),
                        base=base)
    with caplog.at_level(logging.WARNING, logger="assistant.services"):
        backend = services.backend
    assert backend.name == "local" and services.engine.fallback
    assert "local generator (fallback: llama-cpp-python is not installed" in caplog.text
    assert backend.generate([{"role": "user", "content": "hi"}]).usage.completion_tokens > 0
    assert services.training.quant == base.quant  # adapters train on what serves them


def test_adapters_train_on_the_weights_that_will_serve_them():
    settings = Settings(_env_file=None, quant="nf4")
    served = {name: engine.training_precision(settings, engine.EngineChoice(name, "auto", "-"))
              for name in ("llamacpp", "local", "openai")}
    assert served == {"llamacpp": "fp32", "local": "nf4", "openai": "fp32"}


def test_the_torch_base_loads_the_gguf_values_under_the_default_engine(no_llama_cpp,
                                                                        monkeypatch):
    """A fallback then serves the adapters trained for llama.cpp on the weights they learnt;
    the local engine asked for by name keeps QLoRA's NF4, and ASSISTANT_QUANT wins."""
    from assistant.backends.base import describe_settings
    from assistant.commands.train import served_precision

    for name in ("ASSISTANT_QUANT", "ASSISTANT_BACKEND", "ASSISTANT_BASE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    default = Settings(_env_file=None)
    assert engine.local_quant(default) == "fp32" and default.quant == "nf4"
    assert served_precision(default) == "fp32"  # no llama.cpp here: the fallback trains
    assert describe_settings(default)["local_quant"] == "fp32"
    assert engine.local_quant(Settings(_env_file=None, backend="local")) == "nf4"
    assert engine.local_quant(Settings(_env_file=None, quant="nf4")) == "nf4"
    assert engine.local_quant(default.model_copy(update={"quant": "bf16"})) == "bf16"
    # a base without a GGUF can never be served by llama.cpp: QLoRA's NF4 as before
    assert engine.local_quant(Settings(_env_file=None, base_model="/some/folder")) == "nf4"


def test_assistant_train_trains_on_the_precision_of_the_engine_that_serves(
        no_llama_cpp, caplog):
    from assistant.commands.train import served_precision

    with caplog.at_level(logging.INFO, logger="assistant.commands.train"):
        assert served_precision(Settings(_env_file=None, quant="bf16")) == "bf16"
    assert "training on bf16 weights: answers come from the local generator" in caplog.text
    # llama.cpp named: it will serve (or nothing will), so no need to open it to train
    assert served_precision(Settings(_env_file=None, backend="llamacpp")) == "fp32"


def test_services_fail_when_llama_cpp_is_asked_for_by_name_and_missing(no_llama_cpp,
                                                                        tmp_path, tiny_base):
    from dataclasses import replace

    from assistant.services import Services

    services = Services(Settings(_env_file=None, backend="llamacpp",
                                 data_dir=tmp_path / "data", adapters_dir=tmp_path / "adapters"),
                        base=replace(tiny_base, name="smollm2-135m"))
    with pytest.raises(StrataError, match="llama-cpp-python is not installed"):
        services.backend  # noqa: B018


def test_assistant_models_says_which_engine_answers_and_why(no_llama_cpp, monkeypatch, capsys):
    from assistant.cli import main
    from assistant.settings import get_settings

    monkeypatch.delenv("ASSISTANT_BACKEND", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["models", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["engine"]["engine"] == "local" and result["engine"]["fallback"]
        assert main(["models"]) == 0
        text = capsys.readouterr().out
        assert "Engine: local, a fallback from llama.cpp: llama-cpp-python is not installed" \
            in text
    finally:
        get_settings.cache_clear()


SUMMARY = {"n_questions": 2, "questions_file": "q.jsonl", "n_out_of_scope": 0, "n_in_scope": 2,
           "base_model": "smollm2-135m", "quant": "nf4", "adapter": None, "modes": ["base"],
           "decoding": "greedy (temperature 0)", "max_new_tokens": 8,
           "date": "2026-12-06T00:00:00+00:00", "seconds": 1.0, "session_id": "s",
           "per_mode": {}, "break_even": {"text": "-"}}


def test_the_report_says_which_engine_answered_and_old_summaries_read_as_before():
    old = report.readme_markdown(SUMMARY).splitlines()[0]
    assert "answered by" not in old
    for name, words in (("llamacpp", "answered by llama.cpp"),
                        ("local", "answered by the local torch generator")):
        first = report.readme_markdown({**SUMMARY, "engine": name}).splitlines()[0]
        assert words in first and f"(engine `{name}`)" in first
        assert first.replace(report.engine_note({"engine": name}), "") == old


def test_an_evaluation_records_its_engine(tmp_path, tiny_base, adapters_dir):
    from assistant.evaluation.run import evaluate
    from tests.tiny_models import tiny_services

    services = tiny_services(tmp_path, tiny_base, adapters_dir, "# Fees\n\nA permit is 12.\n")
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "How much is a permit?", "answer": "12",
                                     "must_contain": ["12"]}) + "\n")
    summary = evaluate(services, questions, tmp_path / "out", modes="base", max_new_tokens=2,
                       update_card=False, show_bar=False)
    assert summary["engine"] == "local"  # the tiny model has no GGUF: the local generator
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["engine"] == "local"
    assert "(engine `local`)" in (tmp_path / "out" / "report.md").read_text()
