"""Adapters -> "Train from documents" through gradio_client against the served app: pairs
made from an ingested domain, one edited, a short training on them, the evaluation on the
held-out questions and its verdict. Tiny random model (it scores about 0: only that every
step leaves its files and rows, and the verdict's table arrives, is checked)."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.e2e

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

DOMAIN = "kestle-lodge"
LODGE = """# Kestle Lodge handbook

## Permits

A day fishing permit costs 12 pounds and a season permit costs 95 pounds.
Permits are sold by the warden, Agnes Thornbury, at the lodge office.

## Opening

The lodge opens at 07:30 and closes at 18:00 from April to September.
Boats must be booked 3 days ahead by calling 01632 960 481.

## Rules

Anglers may keep 2 trout per day. Night fishing is forbidden after 22:00.
"""


@pytest.fixture(scope="module")
def lodge_app(tiny_app_factory, e2e_tiny_dir, tmp_path_factory):
    """An app over the tiny model (trainable: base_model names its folder) with a second
    domain ingested; training capped at two steps."""
    services, url = tiny_app_factory(
        base_model=str(e2e_tiny_dir / "base"), train_batch_size=4, train_rank=4,
        train_alpha=8, train_max_steps=2, train_min_examples=2)
    doc = tmp_path_factory.mktemp("lodge") / "lodge-handbook.md"
    doc.write_text(LODGE)
    assert services.ingestor.ingest([doc], domain=DOMAIN)[0].chunks
    return services, url


def test_from_documents_to_a_verdict_through_the_api(lodge_app):
    services, url = lodge_app
    client = Client(url, verbose=False)
    folder = services.settings.data_dir / "synth" / DOMAIN
    status, table, name = client.predict(DOMAIN, api_name="/documents_pairs")
    assert "No pairs" in status and name == DOMAIN

    started = time.perf_counter()
    status, table = client.predict(DOMAIN, 3, api_name="/generate_pairs")
    print(f"generated in {time.perf_counter() - started:.1f} s: {status}")
    assert "training pairs" in status and table["data"], status
    for name in ("train.jsonl", "test.jsonl", "report.json", "report.md"):
        assert (folder / name).is_file(), name
    assert not (folder.parent / f".{DOMAIN}.staging").exists()

    rows = table["data"]
    line = int(rows[0][0])
    rows[0][1] = "Edited: what does a day permit cost at the lodge?"
    started = time.perf_counter()
    status, curve = client.predict(DOMAIN, "lodge", 2, False, {"headers": table["headers"],
                                   "data": rows}, True, api_name="/train_from_documents")
    print(f"trained in {time.perf_counter() - started:.1f} s")
    assert "Saved 1 edited" in status and "Trained **lodge**" in status, status
    reading = [json.loads(line) for line in (folder / "reading.jsonl").read_text().splitlines()]
    assert reading and all(r["context"] for r in reading)  # an adapter that reads: the
    assert any("Edited: what does a day permit" in r["question"] for r in reading)  # edits too
    assert curve["type"] == "matplotlib"
    lines = (folder / "train.jsonl").read_text().splitlines()
    assert json.loads(lines[line - 1])["question"] == rows[0][1]
    assert services.adapters.info("lodge").ok

    started = time.perf_counter()
    status, verdict, *plots = client.predict(DOMAIN, "lodge", 8, 0,
                                             api_name="/evaluate_from_documents")
    print(f"evaluated in {time.perf_counter() - started:.1f} s")
    assert status.startswith("Evaluated **lodge**"), status
    for mode in ("prompt", "adapter", "layered"):
        assert f"| {mode} |" in verdict
    assert "| mode | answers | fact recall" in verdict and "Break-even:" in verdict
    assert all(p["type"] == "matplotlib" for p in plots) and len(plots) == 3
    out = folder / "eval-lodge"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adapter"] == "lodge" and summary["modes"] == ["prompt", "adapter", "layered"]
    for name in ("results.csv", "report.md", "accuracy_vs_cost.png", "latency.png",
                 "tokens.png"):
        assert (out / name).is_file(), name
    assert client.predict(api_name="/cancel_pairs") == "No generation is running."
    assert client.predict(api_name="/cancel_evaluation") == "No evaluation is running."


def test_a_domain_without_documents_is_refused(lodge_app):
    client = Client(lodge_app[1], verbose=False)
    with pytest.raises(AppError, match="no documents in domain 'nowhere'"):
        client.predict("nowhere", 3, api_name="/generate_pairs")
    with pytest.raises(AppError, match="Generate the pairs first"):
        client.predict("demo-water", "x", 8, 0, api_name="/evaluate_from_documents")
