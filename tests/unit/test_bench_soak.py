"""The soak benchmark's plan and report, on synthetic timings (no server is started)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import bench_soak as soak


def record(n, kind, outcome, label, seconds):
    return {"n": n, "kind": kind, "outcome": outcome, "label": label, "seconds": seconds}


def test_the_schedule_keeps_the_mix_and_is_reproducible():
    plan = soak.schedule(200)
    assert len(plan) == 200 and plan == soak.schedule(200) and plan != soak.schedule(200, seed=1)
    assert Counter(plan) == {kind: share for kind, (share, _) in soak.MIX.items()}
    assert sum(share for share, _ in soak.MIX.values()) == soak.REQUESTS
    quick = soak.schedule(soak.QUICK_REQUESTS)
    assert len(quick) == soak.QUICK_REQUESTS and set(quick) <= set(soak.MIX)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert soak.percentile(values, 0.5) == 10.0
    assert soak.percentile(values, 0.95) == 19.0
    assert soak.percentile([7.0], 0.95) == 7.0
    assert soak.percentile([], 0.5) is None


def test_classify_separates_expected_refusals_queue_full_and_unexpected():
    c = soak.classify
    assert c("api strata", True, None) == ("ok", "answered")
    assert c("bad: api unknown model", False, 404) == ("ok", "HTTP 404")
    assert c("bad: api malformed JSON", False, 400) == ("ok", "HTTP 400")
    assert c("bad: web empty question", False, 0, "web refusal (gr.Error)") == (
        "ok", "web refusal (gr.Error)")
    assert c("bad: web corrupt upload", False, 0, "upload rejected") == ("ok", "upload rejected")
    assert c("api strata-prompt stream", False, 429) == ("queue_full", "HTTP 429")
    assert c("api strata stream", False, None, "stream error queue_full")[0] == "queue_full"
    assert c("web chat base", False, None, "queue_full (web)") == ("queue_full", "queue_full (web)")
    assert c("api strata", False, 500) == ("unexpected", "HTTP 500")
    assert c("bad: api wrong types", False, 500) == ("unexpected", "HTTP 500")
    assert c("web chat auto", False, None, "exception ReadTimeout") == (
        "unexpected", "exception ReadTimeout")
    assert c("bad: web corrupt upload", True, None) == ("unexpected", "bad input accepted")
    assert c("api strata-base", False, 400) == ("unexpected", "good input refused: HTTP 400")
    assert c("bad: api unknown model", False, 400) == ("unexpected", "wrong refusal: HTTP 400")


def test_summarize_counts_errors_by_kind_and_times_only_what_went_as_expected():
    records = [record(n, "api strata-base", "ok", "answered", s)
               for n, s in enumerate([1.0, 2.0, 3.0, 4.0])]
    records += [record(10, "api strata-base", "queue_full", "HTTP 429", 0.01),
                record(11, "api strata-base", "unexpected", "HTTP 500", 90.0),
                record(12, "bad: api unknown model", "ok", "HTTP 404", 0.02),
                record(13, "bad: api unknown model", "ok", "HTTP 404", 0.04),
                record(14, "bad: web empty question", "ok", "web refusal (gr.Error)", 0.3),
                record(15, "web upload", "skipped", "deadline", 0.0)]
    report = soak.summarize(records)
    assert (report["requests"], report["answered"], report["refused_as_expected"]) == (10, 4, 3)
    assert (report["queue_full"], report["unexpected"], report["skipped"]) == (1, 1, 1)
    assert report["errors"] == {
        "expected_refusals": {"HTTP 404": 2, "web refusal (gr.Error)": 1},
        "queue_full": {"HTTP 429": 1}, "unexpected": {"HTTP 500": 1}}
    base = report["kinds"]["api strata-base"]
    assert base == {"count": 6, "ok": 4, "queue_full": 1, "unexpected": 1, "skipped": 0,
                    "p50_ms": 2000.0, "p95_ms": 4000.0}  # the 429 and the 500 are not timed
    assert report["kinds"]["bad: api unknown model"]["p95_ms"] == 40.0
    assert report["kinds"]["web upload"]["p50_ms"] is None
    assert list(report["kinds"]) == [k for k in soak.MIX if k in report["kinds"]]  # MIX order


def test_rss_growth_and_server_exceptions():
    assert soak.rss_growth({"after_warmup_mb": 1000.0, "after_run_mb": 1025.0}) == {
        "growth_after_warmup_mb": 25.0, "growth_after_warmup_pct": 2.5}
    log = ("INFO ready\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
           "    boom()\nValueError: boom\nINFO next\nTraceback (most recent call last):\n"
           "  File \"y.py\"\nValueError: boom\n")
    log += "Traceback (most recent call last):\n  File \"z\"\ngradio.exceptions.Error: 'Type'\n"
    assert soak.server_exceptions(log) == {"tracebacks": 2, "exceptions": ["ValueError: boom"],
                                           "web_refusals_logged": 1}
    assert soak.server_exceptions("all fine\n") == {"tracebacks": 0, "exceptions": [],
                                                     "web_refusals_logged": 0}


def test_rss_by_progress_reads_the_first_sample_at_each_quarter():
    samples = [(0, 900.0), (3, 950.0), (5, 960.0), (6, 970.0), (9, 990.0), (10, 1000.0)]
    assert soak.rss_by_progress(samples, 10) == {"25%": 950.0, "50%": 960.0, "75%": 990.0,
                                                 "100%": 1000.0}
    assert soak.rss_by_progress([(1, 5.0)], 10) == {}


def test_markdown_states_counts_latency_rss_and_load():
    records = [record(0, "api strata", "ok", "answered", 1.5),
               record(1, "bad: api empty question", "ok", "HTTP 400", 0.05),
               record(2, "web upload", "ok", "answered", 0.5)]
    result = {"requests": 3, "clients": 2, "max_tokens": 24, "run_s": 90.0,
              "server": {"adapter": "harrowgate-water", "max_batch": 8, "max_queue": 32,
                         "tracebacks": 0, "exceptions": [], "web_refusals_logged": 0,
                         "ledger_rows_added": 1},
              **soak.summarize(records),
              "rss": {"after_start_mb": 900.0, "after_warmup_mb": 1000.0, "after_run_mb": 1010.0,
                      "peak_during_run_mb": 1100.0, "peak_lifetime_mb": 1150.0,
                      "growth_after_warmup_mb": 10.0,
                      "growth_after_warmup_pct": 1.0,
                      "by_progress": {"25%": 1001.0, "50%": 1004.0, "75%": 1008.0,
                                      "100%": 1010.0}},
              "load_average": {"start": [1.2, 1.5, 1.7], "end": [2.1, 1.8, 1.7]}}
    text = soak.markdown(result)
    assert "3 requests from 2 concurrent clients" in text and "in 1.5 min" in text
    assert ("2 answered (1 of them uploads), 1 bad inputs refused as expected, 0 queue-full "
            "refusals") in text
    assert "**0 unexpected errors**" in text
    assert "| api strata | 1 | 1 | 0 | 0 | 1.50 s | 1.50 s |" in text
    assert "| bad: api empty question | 1 | 1 | 0 | 0 | 0.05 s | 0.05 s |" in text
    assert "expected refusals HTTP 400 x1; queue full none; unexpected none" in text
    assert "Ledger rows added during the run: 1 (one per answer: 1)" in text
    assert "1000 MB after a warm-up" in text and "+10 MB (+1.0%)" in text
    assert "(at 25/50/75/100% of them: 1001 / 1004 / 1008 / 1010 MB)" in text
    assert "1.2, 1.5, 1.7 at the start" in text
    assert "1100 MB sampled during the run, 1150 MB at most over the server's life" in text


def test_the_bad_inputs_include_issue_28s_and_are_what_they_say(tmp_path):
    """The lone surrogate, the 10 MB question and the small-zip .docx, each with the
    refusal expected of it; the bodies and the file as sent."""
    import json
    import zipfile

    from assistant.errors import IngestError
    from assistant.retrieval.limits import Limits
    from assistant.settings import Settings
    from bench import soak_clients as clients

    assert soak.MIX["bad: api lone surrogate"][1] == (400,)
    assert soak.MIX["bad: api 10 MB question"][1] == (400,)
    assert soak.MIX["bad: web small-zip docx"][1] == (0,)
    for n in (0, 1):
        body = json.loads(clients.RAW_BODIES["bad: api lone surrogate"](n))
        assert "\ud800" in body["messages"][0]["content"] and body.get("stream", False) == bool(n)
    huge = json.loads(clients.RAW_BODIES["bad: api 10 MB question"](0))
    assert len(huge["messages"][0]["content"]) == 10_000_000
    docx = clients.small_zip_docx(tmp_path)
    assert docx.stat().st_size < 1024 * 1024 and clients.small_zip_docx(tmp_path) == docx
    with zipfile.ZipFile(docx) as archive:
        assert archive.getinfo("word/document.xml").file_size > 100 * 1024 * 1024
        with pytest.raises(IngestError, match="decompression bomb"):
            Limits.from_settings(Settings()).check_zip(archive)

