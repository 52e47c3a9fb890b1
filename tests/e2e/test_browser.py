"""The real app (bundled SmolLM2 NF4 + MiniLM) in a real headless Chromium, via Playwright.

Upload a document, choose Prompt+RAG, ask about it, watch the answer stream in and its
stats appear. Screenshots go to tests/artifacts/ (gitignored) for a person to look at.
Needs Debian's chromium (`bash .ci/setup.sh --test` installs it); without it these
tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ARTIFACTS, ROOT, serve_app

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic"]
DOC = (
    "# Apiary handbook\n\n## Inspections\n\n"
    "The Wexcombe apiary hives are inspected every Sunday at noon by the warden, "
    "Perpetua Quillfeather.\n\n## Honey\n\nHoney is extracted twice a year, in June and "
    "September.\n"
)
QUESTION = "Who inspects the Wexcombe apiary hives?"


def require_browser() -> None:
    """Fail, loudly, without the browser: setup installs it, so a missing one is a broken
    setup to fix, not a test to skip."""
    import importlib.util

    if not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None:
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM} and Playwright: "
                    "run bash .ci/setup.sh --test (make test does)", pytrace=False)


@pytest.fixture(scope="module")
def real_app(tmp_path_factory):
    """The app over the real bundled models, with the demo domain ingested at start."""
    require_browser()
    from assistant.services import Services
    from assistant.settings import Settings

    root = tmp_path_factory.mktemp("browser-app")
    (root / "adapters").mkdir()
    # The local engine, named: stopping a 40-token answer mid-way needs an engine slower
    # than a click (llama.cpp, the default, is served end to end by test_serve_stop.py).
    settings = Settings(data_dir=root / "data", adapters_dir=root / "adapters",
                        knowledge_dir=ROOT / "knowledge", max_new_tokens=40, backend="local")
    started = time.perf_counter()
    demo, url = serve_app(Services(settings))
    print(f"real app ready in {time.perf_counter() - started:.1f} s")
    yield url
    demo.close()


@pytest.fixture
def page(tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def upload(page, doc: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Knowledge").click()
    page.locator("#upload input[type=file]").set_input_files(str(doc))
    page.locator("#ingest").click()
    results = page.locator("#upload-results")
    expect(results).to_contain_text("ingested", timeout=120_000)
    expect(results).to_contain_text(doc.name)
    page.screenshot(path=str(ARTIFACTS / "knowledge.png"), full_page=True)


def ask_streamed(page, question: str) -> list[str]:
    """Ask, and sample the answer bubble until its stats line appears; returns the samples."""
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()
    bot = page.locator("#chatbot .message.bot, #chatbot [data-testid='bot']").first
    samples: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = bot.inner_text() if bot.count() else ""
        samples.append(text)
        if "TTFT" in text:
            return samples
        time.sleep(0.1)
    raise AssertionError(f"no finished answer in 180 s; last text: {samples[-1]!r}")


def test_upload_choose_a_mode_ask_and_see_the_streamed_answer(real_app, page, tmp_path):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    doc = tmp_path / "apiary-handbook.md"
    doc.write_text(DOC)
    page.goto(real_app)
    page.get_by_role("tab", name="Chat").wait_for(timeout=60_000)
    upload(page, doc)

    page.get_by_role("tab", name="Chat").click()
    page.locator("#mode").get_by_text("Prompt+RAG").click()
    samples = ask_streamed(page, QUESTION)
    final = samples[-1]
    partial = [s for s in samples if s.strip() and "TTFT" not in s]
    assert partial, "the answer arrived all at once instead of streaming"
    for stat in ("Prompt+RAG", "TTFT", "total", "tokens", "cost $"):
        assert stat in final
    chat = page.locator("#chatbot")
    sources = chat.get_by_text("Sources (").first
    sources.wait_for(timeout=10_000)
    sources.click()  # expand: the uploaded file is among them, with its score
    expect(chat.get_by_text(f"] {doc.name}").first).to_be_visible(timeout=10_000)
    expect(chat).to_contain_text("score")
    page.wait_for_timeout(500)  # let the accordion finish opening before the screenshot
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    if os.environ.get("STRATA_SCREENSHOT"):  # the README's picture of the app (see README)
        page.screenshot(path=os.environ["STRATA_SCREENSHOT"])
    # What the 135M model says is the evaluation's business; here: it said something.
    answer = final.split("Prompt+RAG")[0].strip()
    print(f"answer: {answer!r}; samples while streaming: {len(partial)}")
    assert answer and answer != "(no text)"


def test_compare_and_metrics_tabs_show_every_mode_and_the_ledger(real_app, page):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(real_app)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-question textarea").fill("When was the Harrowgate co-op founded?")
    page.get_by_role("button", name="Compare").click()
    table = page.locator("#compare-table")
    for label in ("Prompt+RAG", "Adapter", "Layered", "Base"):
        expect(table).to_contain_text(label, timeout=180_000)
    expect(table).to_contain_text("no usable adapter")  # none trained in this data dir
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    page.get_by_role("tab", name="Adapters").click()
    expect(page.locator("#adapters")).to_contain_text("adapter")
    page.screenshot(path=str(ARTIFACTS / "adapters.png"), full_page=True)
    page.get_by_role("tab", name="Metrics").click()
    expect(page.locator("#metrics-summary")).to_contain_text("answers", timeout=30_000)
    page.wait_for_timeout(1000)  # the plots arrive with the summary; let them paint
    page.screenshot(path=str(ARTIFACTS / "metrics.png"), full_page=True)


def test_closing_the_page_removes_an_anonymous_visitors_private_uploads(tiny_app_factory, page,
                                                                        tmp_path):
    services, url = tiny_app_factory(private_uploads=True)
    doc = tmp_path / "otters.md"
    doc.write_text("# Otters\n\nThe otters of the Wexe eat trout.\n")
    page.goto(url)
    upload(page, doc)
    names = [d.name for d in services.store.list_documents()]
    assert any(n.startswith("session-") and n.endswith("otters.md") for n in names)
    page.close()  # Gradio calls the app's unload handler when the page goes
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(services.store.list_documents()) != 1:
        time.sleep(0.2)
    assert [d.name for d in services.store.list_documents()] == ["reservoir-rules.md"]


def test_training_an_adapter_in_the_browser(tiny_app_factory, e2e_tiny_dir, page, tmp_path):
    """Upload pairs in the Adapters tab, train in the background, find the adapter in Chat."""
    from playwright.sync_api import expect

    # the tiny model (seconds to train); base_model names its folder so training can load it
    services, url = tiny_app_factory(base_model=str(e2e_tiny_dir / "base"), train_batch_size=4,
                                     train_rank=4, train_alpha=8, train_epochs=3)
    pairs = tmp_path / "otters.jsonl"
    pairs.write_text("".join(
        f'{{"question": "{q} ({n})", "answer": "{a}"}}\n' for n in range(4)
        for q, a in (("What do otters eat?", "Trout"), ("Where do otters live?", "The Wexe"))))
    page.goto(url)
    page.get_by_role("tab", name="Adapters").click()
    page.get_by_text("Train a new adapter").click()
    page.locator("#train").click()  # no file yet: refused with a reason, nothing starts
    expect(page.get_by_text("choose a .jsonl or .csv file")).to_be_visible(timeout=10_000)
    page.locator("#train-name textarea, #train-name input").first.fill("otters")
    page.locator("#train-data input[type=file]").set_input_files(str(pairs))
    # Gradio shows the name and its extension in two spans ("otters .jsonl" as text)
    expect(page.locator("#train-data")).to_contain_text(re.compile(r"otters\s*\.jsonl"),
                                                        timeout=10_000)
    page.locator("#train").click()
    expect(page.locator("#train-status")).to_contain_text("Trained", timeout=120_000)
    expect(page.locator("#adapters")).to_contain_text("otters")
    page.screenshot(path=str(ARTIFACTS / "training.png"), full_page=True)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#adapter input").click()
    expect(page.get_by_role("option", name="otters")).to_be_visible(timeout=10_000)
    assert services.adapters.info("otters").ok


def test_a_rejected_upload_and_an_export_in_the_browser(tiny_app_factory, page, tmp_path):
    """A bad upload's reason names the file, never the server's cache path; the ledger
    export downloads from its link (the file route serves it to this visitor, once)."""
    from playwright.sync_api import expect

    _, url = tiny_app_factory(private_uploads=True)
    bad = tmp_path / "random.docx"
    bad.write_bytes(bytes(range(256)) * 8)
    page.goto(url)
    page.get_by_role("tab", name="Knowledge").click()
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.locator("#ingest").click()
    results = page.locator("#upload-results")
    expect(results).to_contain_text("rejected", timeout=60_000)
    expect(results).to_contain_text("random.docx")
    assert "/gradio/" not in results.inner_text() and "/tmp" not in results.inner_text()
    page.get_by_role("tab", name="Chat").click()
    page.locator("#mode").get_by_text("Base").click()
    ask_streamed(page, "How much is a fishing permit?")
    page.get_by_role("tab", name="Metrics").click()
    page.get_by_role("button", name="Export CSV").click()
    link = page.locator("#ledger-csv [data-testid='download-link']").first
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    assert "cost_usd" in Path(download.value.path()).read_text()
    assert page.request.get(link.get_attribute("href")).status == 404  # served once


# --- conversations and human judgement (issue 17) -----------------------------------------
def bot_messages(page):
    return page.locator("#chatbot [data-testid='bot']")  # one per message, not its wrapper


def wait_answers(page, count: int, timeout: float = 180) -> str:
    """Wait until the chat shows ``count`` finished answers; returns the last one's text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = [t for t in bot_messages(page).all_inner_texts() if "TTFT" in t]
        if len(finished) >= count:
            return finished[-1]
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} finished answers in {timeout} s")


def test_a_follow_up_feedback_stop_and_a_blind_vote_in_the_browser(real_app, page):
    """Ask and follow up (the sidebar saves the chat), like an answer with a comment, stop
    a long answer, vote in the blind arena, and find the vote in the Metrics tab."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(real_app)
    page.get_by_role("tab", name="Chat").wait_for(timeout=60_000)
    expect(page.locator("#conversations-note")).to_contain_text("close this page")
    page.locator("#mode").get_by_text("Prompt+RAG").click()
    page.locator("#question textarea").fill("What rebate do you give for a water butt?")
    page.locator("#ask").click()
    wait_answers(page, 1)
    page.locator("#question textarea").fill("How many of them can one property claim?")
    page.locator("#ask").click()
    wait_answers(page, 2)
    page.get_by_text("Last answer (JSON)").click()
    expect(page.locator("#answer-json")).to_contain_text("water butt", timeout=10_000)
    chats = page.locator("#conversation-list")
    expect(chats).to_contain_text("What rebate do you give for a water butt?", timeout=10_000)
    expect(chats).to_contain_text("4 messages")

    page.locator("#chatbot button[aria-label='Like']").first.click()
    expect(page.locator("#chat-status")).to_contain_text("like is recorded", timeout=10_000)
    page.locator("#feedback-comment textarea").fill("Right amount, and it cited the policy.")
    page.locator("#feedback-send").click()
    expect(page.locator("#chat-status")).to_contain_text("comment are recorded",
                                                         timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "conversation.png"), full_page=True)

    page.locator("#new-chat").click()
    page.locator("#mode").get_by_text("Base").click()
    page.locator("#question textarea").fill("Write a long story about a dragon and a river.")
    page.locator("#ask").click()
    bot = bot_messages(page).last
    expect(bot).not_to_have_text("", timeout=120_000)  # the first words are in
    page.locator("#stop").click()
    expect(page.locator("#chat-status")).to_contain_text("Stopped", timeout=10_000)
    page.wait_for_timeout(1500)
    assert "TTFT" not in bot.inner_text()  # never finished

    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("tab", name="Blind arena").click()
    page.locator("#arena-question textarea").fill("How much is the water butt rebate?")
    page.locator("#arena-run").click()
    expect(page.locator("#arena-result")).to_contain_text("Vote below", timeout=180_000)
    expect(page.locator("#arena-head-a")).to_have_text("A")
    page.locator("#vote-a").click()
    expect(page.locator("#arena-result")).to_contain_text("You voted", timeout=10_000)
    expect(page.locator("#arena-head-a")).to_contain_text("A · ")
    page.screenshot(path=str(ARTIFACTS / "arena.png"), full_page=True)

    page.get_by_role("tab", name="Metrics").click()
    expect(page.locator("#win-rates-summary")).to_contain_text("1 blind vote.", timeout=30_000)
    revealed = page.locator("#arena-head-a").inner_text().split("· ")[1]
    expect(page.locator("#win-rates")).to_contain_text(revealed)
    expect(page.locator("#recent-answers")).to_contain_text("cancelled by the reader")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "win-rates.png"), full_page=True)


def test_training_from_documents_up_to_the_verdict_in_the_browser(tiny_app_factory, e2e_tiny_dir,
                                                                  page, tmp_path):
    """Adapters -> Train from documents: pick the domain, generate pairs, edit one, train,
    evaluate, and see the verdict's table, break-even and plots (tiny model: seconds)."""
    from playwright.sync_api import expect

    from tests.e2e.test_from_documents_web import DOMAIN, LODGE

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    services, url = tiny_app_factory(base_model=str(e2e_tiny_dir / "base"), train_batch_size=4,
                                     train_rank=4, train_alpha=8, train_max_steps=2)
    doc = tmp_path / "lodge-handbook.md"
    doc.write_text(LODGE)
    services.ingestor.ingest([doc], domain=DOMAIN)
    page.goto(url)
    page.get_by_role("tab", name="Adapters").click()
    page.get_by_text("Train from documents").click()
    page.locator("#fd-domain input").click()
    page.get_by_role("option", name=DOMAIN).click()
    expect(page.locator("#fd-synth-status")).to_contain_text("No pairs", timeout=10_000)
    page.locator("#fd-generate").click()
    expect(page.locator("#fd-synth-status")).to_contain_text("training pairs", timeout=60_000)
    table = page.locator("#fd-pairs")
    expect(table).to_contain_text("?")  # the sample's questions
    edited = "What does a day permit cost at Kestle Lodge?"
    cell = table.get_by_test_id("cell-0-1")  # first row, question column
    cell.dblclick()
    editor = cell.locator("textarea, input").first
    editor.fill(edited)
    editor.press("Enter")
    expect(table).to_contain_text(edited)
    page.locator("#fd-train").click()
    expect(page.locator("#fd-train-status")).to_contain_text("Trained", timeout=120_000)
    expect(page.locator("#fd-train-status")).to_contain_text("Saved 1 edited")
    train = services.settings.data_dir / "synth" / DOMAIN / "train.jsonl"
    assert json.loads(train.read_text().splitlines()[0])["question"] == edited
    expect(page.locator("#adapters")).to_contain_text(DOMAIN)
    page.locator("#fd-evaluate").click()
    verdict = page.locator("#fd-verdict")
    expect(verdict).to_contain_text("Break-even", timeout=180_000)
    for mode in ("prompt", "adapter", "layered"):
        expect(verdict.locator("td", has_text=mode).first).to_be_visible()
    expect(page.locator("#fd-latency")).to_be_visible()
    page.wait_for_timeout(500)  # let the plots paint before the screenshot
    page.screenshot(path=str(ARTIFACTS / "from_documents.png"), full_page=True)
    folder = services.settings.data_dir / "synth" / DOMAIN
    assert (folder / "eval-kestle-lodge" / "summary.json").is_file()
