"""The answer ledger: one row per answer, restarts, threads, migrations, stats, CSV, CLI."""

from __future__ import annotations

import csv
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from assistant.errors import StrataError
from assistant.ledger.db import connect, is_file, to_iso
from assistant.ledger.metrics import percentile
from assistant.ledger.migrations import MIGRATIONS, applied, migrate
from assistant.ledger.store import ANSWER_COLUMNS, AnswerRecord, Ledger, parse_since


@pytest.fixture
def ledger(ledger_at):
    led = Ledger(ledger_at)  # SQLite, and PostgreSQL in the scale tier
    yield led
    led.close()


def rec(**kw) -> AnswerRecord:
    base = {"question": "q?", "answer": "a.", "chosen_mode": "prompt", "prompt_tokens": 10,
            "completion_tokens": 5, "total_ms": 100.0}
    return AnswerRecord(**{**base, **kw})


def test_one_row_per_record_including_failures(ledger):
    ok_id = ledger.record(rec(router_scores={"prompt": 0.7},
                              retrieved=[{"id": "d1", "score": 0.9}]))
    err_id = ledger.record(rec(answer=None, error="ModelNotAvailable: weights missing"))
    rows = ledger.rows()
    assert [r["id"] for r in rows] == [ok_id, err_id]
    assert rows[0]["router_scores"] == {"prompt": 0.7}
    assert rows[0]["retrieved"] == [{"id": "d1", "score": 0.9}]
    assert rows[1]["error"] == "ModelNotAvailable: weights missing"
    assert rows[1]["answer"] is None
    assert set(rows[0]) == set(ANSWER_COLUMNS)


def test_rows_survive_reopening(ledger_at):
    first = Ledger(ledger_at)
    ids = [first.record(rec(question=f"q{i}")) for i in range(3)]
    first.record_training("law", seconds=60, cost_usd=0.5)
    first.close()
    again = Ledger(ledger_at)
    assert [r["id"] for r in again.rows()] == ids
    assert again.training_cost("law") == 0.5
    assert again.schema_version() == len(MIGRATIONS)
    again.close()


def test_concurrent_writers_from_threads_and_two_connections(ledger_at):
    """8 threads x 25 records over two Ledger objects (as the app and a CLI process would)."""
    ledgers = [Ledger(ledger_at), Ledger(ledger_at)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(25):
                ledgers[t % 2].record(rec(question=f"t{t}-{i}", session_id=str(t)))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    rows = ledgers[0].rows()
    assert len(rows) == 200
    assert sorted(r["seq"] for r in ledgers[1].query("SELECT seq FROM answers")) == list(
        range(1, 201))  # the write lock numbered every row once
    assert {r["question"] for r in rows} == {f"t{t}-{i}" for t in range(8) for i in range(25)}
    for led in ledgers:
        led.close()


def test_replicas_opening_a_new_database_at_once_make_its_tables_once(ledger_at):
    """Replicas started together all migrate the same empty database: each migration runs
    once, under the write lock, and every replica opens."""
    opened: list[Ledger] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        try:
            start.wait()
            opened.append(Ledger(ledger_at))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(opened) == 4
    engine = connect(ledger_at)
    assert applied(engine) == [fn.__name__ for fn in MIGRATIONS]
    engine.dispose()
    for led in opened:
        led.close()


def test_version_1_database_migrates_with_old_row_intact(ledger_at):
    path = ledger_at
    engine = connect(path)
    assert migrate(engine, upto=1) == ["m001_create_answers"]
    with engine.begin() as db:
        db.exec_driver_sql(
            "INSERT INTO answers (id, created_at, question, answer, mode, base_model, "
            "prompt_tokens, completion_tokens, total_ms, error) VALUES ('old1', "
            "'2024-01-02T03:04:05.000+00:00', 'old q', 'old a', 'prompt', 'smollm2-135m', 12, 7,"
            " 345.0, NULL)")
    engine.dispose()

    led = Ledger(path)
    assert led.schema_version() == len(MIGRATIONS)
    engine = connect(path)
    assert applied(engine) == [fn.__name__ for fn in MIGRATIONS]
    engine.dispose()
    (old,) = led.rows()
    assert (old["id"], old["question"], old["answer"]) == ("old1", "old q", "old a")
    assert old["chosen_mode"] == old["requested_mode"] == "prompt"
    assert (old["prompt_tokens"], old["completion_tokens"], old["total_ms"]) == (12, 7, 345.0)
    assert old["cost_usd"] is None and old["retrieved"] is None
    new_id = led.record(rec())  # the migrated table takes new rows
    assert [r["id"] for r in led.rows()] == ["old1", new_id]
    assert led.training_cost("none") == 0.0  # trainings table exists
    led.close()
    engine = connect(path)
    assert migrate(engine) == []  # re-opening applies nothing twice
    engine.dispose()


def test_percentile_is_linear_interpolation():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([400, 100, 300, 200], 50) == 250
    assert percentile([100, 200, 300, 400], 95) == pytest.approx(385)


def test_stats_by_mode_against_hand_computed_values(ledger):
    checks = ["grounded", "quoted: not in the documents: 9", "declined", "quoted: x"]
    for (ms, ttft), check in zip([(100, 10), (200, 20), (300, 30), (400, 40)], checks):
        ledger.record(rec(chosen_mode="prompt", total_ms=ms, ttft_ms=ttft, prompt_tokens=ms // 10,
                          completion_tokens=4, cost_usd=0.25, grounding=check))
    ledger.record(rec(chosen_mode="prompt", total_ms=9999, error="boom", cost_usd=0.5))
    ledger.record(rec(chosen_mode="adapter", adapter="law", total_ms=50, ttft_ms=5,
                      prompt_tokens=3, completion_tokens=8, cost_usd=0.125))
    prompt, adapter = ledger.stats(by="mode")
    assert prompt["group"] == "prompt"
    assert (prompt["count"], prompt["errors"]) == (5, 1)
    assert prompt["p50_total_ms"] == 250  # the failure's 9999 ms is excluded
    assert prompt["p95_total_ms"] == pytest.approx(385)
    assert prompt["p50_ttft_ms"] == 25 and prompt["p95_ttft_ms"] == pytest.approx(38.5)
    assert prompt["mean_prompt_tokens"] == 25 and prompt["mean_completion_tokens"] == 4
    assert prompt["total_cost_usd"] == pytest.approx(1.5)  # failures cost too
    assert prompt["quoted_rate"] == 0.5  # 2 of the 4 checked answers were quotes
    assert adapter == {**adapter, "group": "adapter", "count": 1, "errors": 0,
                       "p50_total_ms": 50, "total_cost_usd": 0.125, "quoted_rate": None}


def test_stats_by_adapter_with_amortised_training(ledger):
    ledger.record_training("law", base_model="smollm2-135m", seconds=100, cost_usd=0.3,
                           examples=16, steps=24, card={"r": 16})
    ledger.record_training("law", seconds=50, cost_usd=0.1)  # a retrain adds to the spend
    for _ in range(4):
        ledger.record(rec(chosen_mode="adapter", adapter="law"))
    ledger.record(rec(chosen_mode="adapter", adapter="law", error="oom"))
    ledger.record(rec(chosen_mode="prompt"))
    law, none = ledger.stats(by="adapter")
    assert (law["group"], law["count"], law["errors"]) == ("law", 5, 1)
    assert law["training_cost_usd"] == pytest.approx(0.4)
    assert law["training_cost_per_answer_usd"] == pytest.approx(0.1)  # 0.4 / 4 successes
    assert none["group"] == "(none)" and "training_cost_usd" not in none
    assert ledger.amortised_training_cost("unused") is None
    assert ledger.trainings("law")[0]["card"] == {"r": 16}
    with pytest.raises(StrataError):
        ledger.stats(by="colour")


def test_since_filters_rows(ledger):
    now = datetime.now(UTC)
    ledger.record(rec(question="old", created_at=to_iso(now - timedelta(days=3))))
    ledger.record(rec(question="new", created_at=now - timedelta(minutes=5)))
    assert [r["question"] for r in ledger.rows(since=parse_since("1d"))] == ["new"]
    assert [r["question"] for r in ledger.rows(since=parse_since("1w"))] == ["old", "new"]
    assert ledger.stats(since=parse_since("1h"))[0]["count"] == 1
    assert [r["question"] for r in ledger.recent(1)] == ["new"]


def test_parse_since_accepts_relative_and_iso_and_refuses_nonsense():
    now = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == "2025-06-10T10:30:00.000+00:00"
    assert parse_since("7d", now) == "2025-06-03T12:00:00.000+00:00"
    assert parse_since("2025-06-01") == "2025-06-01T00:00:00.000+00:00"
    assert parse_since("2025-06-01T02:00:00+02:00") == "2025-06-01T00:00:00.000+00:00"
    with pytest.raises(StrataError, match="relative age"):
        parse_since("yesterday")


def test_store_text_false_keeps_no_text(tmp_path):
    led = Ledger(tmp_path / "ledger.db", store_text=False)
    led.record(rec(question="secret question", answer="secret answer", total_ms=42.0))
    raw = (tmp_path / "ledger.db").read_bytes() + (tmp_path / "ledger.db-wal").read_bytes()
    (row,) = led.rows()
    assert row["question"] is None and row["answer"] is None and row["total_ms"] == 42.0
    assert b"secret" not in raw
    led.close()


def test_csv_export_has_header_and_rows(ledger, tmp_path):
    ledger.record(rec(question="one", retrieved=[{"id": "a", "score": 0.5}]))
    ledger.record(rec(question="two, with comma", error="bad"))
    out = tmp_path / "out.csv"
    assert ledger.to_csv(out) == 2
    with out.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ANSWER_COLUMNS
    assert [r["question"] for r in rows] == ["one", "two, with comma"]
    assert json.loads(rows[0]["retrieved"]) == [{"id": "a", "score": 0.5}]
    assert rows[1]["error"] == "bad"


def test_wal_mode_and_busy_timeout(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db")
    assert ledger.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    assert ledger.query("PRAGMA busy_timeout")[0]["timeout"] > 0
    ledger.close()


# --- the `assistant stats` command ---------------------------------------------


@pytest.fixture
def data_dir(tmp_path, monkeypatch, ledger_at):
    """(data folder, where the command's ledger is): data/ledger.db by default, or the
    PostgreSQL database ASSISTANT_DATABASE_URL names."""
    from assistant import cli
    from assistant.settings import get_settings

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    where = tmp_path / "data" / "ledger.db"
    if not is_file(ledger_at):
        monkeypatch.setenv("ASSISTANT_DATABASE_URL", str(ledger_at))
        where = ledger_at
    # Only this command: a broken sibling module must not fail the ledger's tests.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["stats"])
    get_settings.cache_clear()
    yield tmp_path / "data", where
    get_settings.cache_clear()


def test_stats_is_registered_in_the_cli():
    from assistant.cli import COMMAND_MODULES

    assert "stats" in COMMAND_MODULES


def test_cli_stats_json_prints_one_object(data_dir, capsys):
    from assistant.cli import main

    data, where = data_dir
    led = Ledger(where)
    led.record(rec(chosen_mode="prompt", cost_usd=0.01))
    led.record(rec(chosen_mode="adapter", adapter="law", cost_usd=0.02, error="x"))
    led.close()
    csv_path = data / "export.csv"
    assert main(["stats", "--json", "--by", "mode", "--since", "1h", "--csv", str(csv_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["by"] == "mode"
    assert result["overall"]["count"] == 2 and result["overall"]["errors"] == 1
    assert {g["group"]: g["count"] for g in result["groups"]} == {"prompt": 1, "adapter": 1}
    assert result["csv"]["rows"] == 2 and csv_path.is_file()
    assert result["prices"]["hardware"] == "cpu-upgrade"
    assert result["ledger"] == (str(where) if is_file(where) else
                                str(where).replace("postgresql://", "postgresql+psycopg://"))


def test_cli_stats_table_and_bad_since(data_dir, capsys):
    from assistant.cli import main

    assert main(["stats"]) == 0
    assert "no answers recorded yet" in capsys.readouterr().out
    led = Ledger(data_dir[1])
    led.record(rec(adapter="law", chosen_mode="adapter", ttft_ms=12.0))
    led.record_training("law", seconds=10, cost_usd=0.002)
    led.close()
    assert main(["stats", "--by", "adapter"]) == 0
    out = capsys.readouterr().out
    assert "p95 ms" in out and "law" in out and "amortised" in out
    assert main(["stats", "--json", "--since", "whenever"]) == 2
    assert "error" in json.loads(capsys.readouterr().out)
