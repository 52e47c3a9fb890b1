"""`assistant synth --writer learned` as a user runs it: the command, the real bundled model
with the bundled question writer (adapters/question-writer) on the default engine, the real
embedder and store.

One short demo document keeps it to a minute. Checked: the training questions are the
writer's (the report says so and counts them), they pass the checks (no give-away, they find
their fact's passage), and the held-out and validation questions come from the rules, so the
evaluation does not grade in the training questions' generator's words."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.text import contains
from assistant.training.data import load_examples

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "adapters" / "question-writer"


def test_the_learned_writer_writes_checked_training_questions(tmp_path):
    assert (WRITER / "adapter_model.safetensors").is_file(), "bundled writer missing"
    docs = tmp_path / "knowledge" / "harrowgate-water" / "docs"
    docs.mkdir(parents=True)
    shutil.copy(ROOT / "knowledge" / "harrowgate-water" / "docs" / "tariffs-and-fees.md", docs)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
           "ASSISTANT_KNOWLEDGE_DIR": str(tmp_path / "knowledge"),
           "ASSISTANT_ADAPTERS_DIR": str(ROOT / "adapters")}
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "synth", "--domain", "harrowgate-water",
         "--samples", "3", "--eval-share", "0.5", "--out", str(out), "--json"],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["writer"] == "learned" and summary["model_pairs"] > 0
    report = json.loads((out / "report.json").read_text())
    kept = report["kept"]
    written = [q for fact in kept for q in fact["train"][:fact.get("model_made", 0)]]
    assert written, "the writer's questions are in training"
    for fact in kept:
        for question in fact["train"]:
            assert not any(contains(question, m) for m in fact["must_contain"])
        if fact.get("test"):
            assert fact["test"].lower() not in {q.lower() for q in fact["train"]}
    examples = load_examples(out / "train.jsonl", min_examples=2)
    assert any(e.validation for e in examples) and any(not e.validation for e in examples)
