"""Adapter training on a tiny random Llama: output folder, card, refusals, stopping, cancel."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from assistant.errors import StrataError, TrainingCancelled, TrainingDataError
from assistant.ledger.store import Ledger
from assistant.models.adapters import AdapterManager
from assistant.models.generation import Generator
from assistant.settings import Settings
from assistant.training.data import (
    Example,
    encode_example,
    fact_labels,
    load_examples,
    split_validation,
)
from assistant.training.loop import Loop, TrainConfig, batch_loss, train_adapter

FACTS = [
    ("What is the connection fee?", "The connection fee is 148.50 pounds.", "fee"),
    ("What is the capital of France?", "Paris is the capital of France.", "capital"),
    ("Who runs the water cooperative?", "The cooperative is run by its members.", "members"),
    ("Hello, what is this?", "This is a tiny tokenizer for tests.", "hello"),
]
PHRASINGS = ["{q}", "Please tell me: {q}", "Quick one. {q}"]
PROMPT = torch.tensor([[5, 17, 42, 99, 7, 3]])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def qa_file(tmp_path):
    rows = [{"question": p.format(q=q), "answer": a, "fact_id": f}
            for q, a, f in FACTS for p in PHRASINGS]
    return write_jsonl(tmp_path / "qa.jsonl", rows)


@pytest.fixture
def settings(tiny_base_dir, tmp_path):
    return Settings(
        base_model=str(tiny_base_dir), adapters_dir=tmp_path / "adapters",
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", threads=0,
    )


def config(**changes) -> TrainConfig:
    # fp32: the tiny model is too narrow for the 4-bit CPU kernels (the real one is tested
    # in nf4 by tests/integration/test_training_real.py).
    base = {"epochs": 3, "batch_size": 4, "lr": 5e-3, "rank": 4, "alpha": 8, "seed": 0,
            "patience": 5, "quant": "fp32", "system_prompt": "You are a test assistant."}
    return TrainConfig(**{**base, **changes})


def test_training_writes_a_loadable_adapter_with_card_and_profile(
    settings, qa_file, tiny_base, tiny_base_dir
):
    progress = []
    ledger = Ledger(settings.data_dir / "ledger.db")  # the app's one ledger, handed in
    result = train_adapter("tiny", qa_file, config(), settings, ledger=ledger,
                           progress_bar=False, on_progress=lambda *a: progress.append(a))
    folder = settings.adapters_dir / "tiny"
    assert result.path == folder
    assert {p.name for p in settings.adapters_dir.iterdir()} == {"tiny"}  # no staging left
    assert {"adapter_config.json", "adapter_model.safetensors", "profile.json", "card.json",
            "card.md"} <= {p.name for p in folder.iterdir()}
    adapter_cfg = json.loads((folder / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(tiny_base_dir)

    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as fh:
        # safe_open has keys() but is not iterable, so SIM118's `in fh` would fail
        assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float16}  # noqa: SIM118

    with torch.inference_mode():  # before the manager wraps the base with LoRA layers
        bare = tiny_base.model(input_ids=PROMPT).logits[0, -1].clone()
    manager = AdapterManager(settings.adapters_dir, tiny_base)
    assert manager.names() == ["tiny"] and manager.info("tiny").ok
    with manager.using("tiny") as model, torch.inference_mode():
        tuned = model(input_ids=PROMPT).logits[0, -1].clone()
    assert not torch.allclose(tuned, bare, atol=1e-4)
    text = Generator(manager).generate([{"role": "user", "content": "hi"}], adapter="tiny").text
    assert isinstance(text, str)

    card = json.loads((folder / "card.json").read_text())
    assert card == {**result.card}
    assert card["data"]["file"] == "qa.jsonl" and card["data"]["examples"] == 12
    assert len(card["data"]["sha256"]) == 64 and card["data"]["bytes"] == qa_file.stat().st_size
    assert card["data"]["val_examples"] >= 1
    assert card["hyperparameters"]["rank"] == 4 and card["hyperparameters"]["epochs"] == 3
    assert card["system_prompt"] == "You are a test assistant."
    assert card["epochs_run"] == 3 and len(card["loss_curve"]) == 3
    assert card["validation_target"] == "answer tokens"  # the file names no must_contain
    assert all(p["val_loss"] is not None for p in card["loss_curve"])
    assert card["eval"] is None and card["cost_usd"] >= 0 and card["seconds"] > 0
    assert "# Adapter `tiny`" in (folder / "card.md").read_text()

    profile = json.loads((folder / "profile.json").read_text())
    assert profile["name"] == "tiny" and profile["description"]
    assert 1 <= len(profile["examples"]) <= 12

    assert progress[-1][0] == card["steps"] == progress[-1][1]
    assert progress[-1][3] is not None  # the last report carries the validation loss
    (row,) = Ledger(settings.data_dir / "ledger.db").trainings("tiny")
    assert row["steps"] == card["steps"] and row["examples"] == 12


def test_overwrite_replaces_an_adapter_and_a_running_manager_reloads_it(
    settings, qa_file, tiny_base
):
    train_adapter("tiny", qa_file, config(epochs=1), settings, progress_bar=False)
    manager = AdapterManager(settings.adapters_dir, tiny_base)
    with manager.using("tiny") as model, torch.inference_mode():
        before = model(input_ids=PROMPT).logits[0, -1].clone()
    with pytest.raises(TrainingDataError, match="already exists.*--overwrite"):
        train_adapter("tiny", qa_file, config(epochs=1), settings, progress_bar=False)
    train_adapter("tiny", qa_file, config(epochs=1, seed=7), settings, overwrite=True,
                  progress_bar=False)
    with manager.using("tiny") as model, torch.inference_mode():
        after = model(input_ids=PROMPT).logits[0, -1].clone()
    assert not torch.allclose(before, after, atol=1e-5)
    assert sorted(p.name for p in settings.adapters_dir.iterdir()) == ["tiny"]


class RecordingLedger:
    """Stands in for the app's Ledger: keeps what training records."""

    def __init__(self):
        self.trainings = []

    def record_training(self, adapter, **row):
        self.trainings.append((adapter, row))
        return len(self.trainings)


def test_the_run_goes_into_the_ledger_handed_in_and_opens_no_other(settings, qa_file):
    ledger = RecordingLedger()
    result = train_adapter("solo", qa_file, config(epochs=1), settings, ledger=ledger,
                           progress_bar=False)
    [(name, row)] = ledger.trainings
    assert name == "solo" and row["steps"] == result.card["steps"] and row["examples"] == 12
    assert row["card"] == result.card and row["cost_usd"] == result.card["cost_usd"]
    assert not (settings.data_dir / "ledger.db").exists()  # no second connection


def test_background_runs_are_recorded_in_the_apps_ledger(settings, qa_file, tiny_base):
    from assistant.services import Services

    services = Services(settings, base=tiny_base)
    assert services.training.ledger is services.ledger  # services wires its one ledger
    ledger = RecordingLedger()
    jobs = jobs_over(settings, train_epochs=1)
    jobs.ledger = ledger
    jobs.start("bg-ledger", qa_file)
    assert jobs.wait(60).state == "done"
    assert [name for name, _ in ledger.trainings] == ["bg-ledger"]


def test_the_card_comes_from_a_plain_run_record_without_the_loop(settings, qa_file):
    import ast
    from pathlib import Path

    from assistant.models.adapter_folder import Card
    from assistant.training import card as adapter_card

    tree = ast.parse(Path(adapter_card.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "assistant.training.loop" not in imported
    run = adapter_card.RunRecord(
        name="plain", data=qa_file, base_model="tiny", quant="fp32", counts=(12, 10, 2),
        hyperparameters={"rank": 4}, system_prompt="You are plain.", trainable_parameters=64,
        steps=3, planned_steps=3, epochs_run=1, stopped_early=False, best_epoch=1,
        best_val_loss=0.5, seconds=2.0,
        loss_curve=[{"epoch": 1, "step": 3, "train_loss": 1.0, "val_loss": 0.5}])
    card = adapter_card.build_card(run, settings)
    assert isinstance(card, Card) and card.system_prompt == "You are plain."
    assert card["data"]["file"] == "qa.jsonl" and card["data"]["train_examples"] == 10
    assert card.evaluation is None and card.seconds == 2.0 and card.cost_usd >= 0


def test_default_system_prompt_and_profile_come_from_the_description(settings, qa_file):
    cfg = config(epochs=1, system_prompt=None,
                 description="Harrowgate Valley Water Cooperative, a small water utility.")
    result = train_adapter("hv", qa_file, cfg, settings, progress_bar=False)
    assert result.card["system_prompt"] == (
        "You are the Harrowgate Valley Water Cooperative assistant. Answer briefly."
    )
    assert result.profile["description"].startswith("Harrowgate Valley")


def test_early_stopping_restores_the_best_epoch(settings, qa_file, monkeypatch):
    losses = iter([1.0, 2.0, 3.0, 4.0])
    best = {}

    def fake_val_loss(self, rows):
        value = next(losses)
        if value == 1.0:  # remember the weights the run should end with
            best.update({n: p.detach().clone() for n, p in self.model.named_parameters()
                         if p.requires_grad})
        return value

    monkeypatch.setattr(Loop, "_val_loss", fake_val_loss)
    result = train_adapter("es", qa_file, config(epochs=6, patience=2), settings,
                           progress_bar=False)
    card = result.card
    assert card["stopped_early"] and card["epochs_run"] == 3 and card["best_epoch"] == 1
    assert card["best_val_loss"] == 1.0 and card["steps"] < card["planned_steps"]

    from safetensors.torch import load_file

    saved = load_file(str(result.path / "adapter_model.safetensors"))
    for name, tensor in best.items():
        key = name.replace(".default", "")
        assert torch.allclose(saved[key].float(), tensor.float(), atol=1e-3), key


def test_cancel_stops_training_and_writes_nothing(settings, qa_file):
    cancel = threading.Event()
    steps = []

    def on_progress(step, total, loss, val_loss):
        steps.append(step)
        cancel.set()

    with pytest.raises(TrainingCancelled):
        train_adapter("stop", qa_file, config(epochs=5), settings, on_progress=on_progress,
                      cancel=cancel, progress_bar=False)
    assert steps == [1]
    assert not (settings.adapters_dir / "stop").exists()


def test_max_steps_caps_training(settings, qa_file):
    result = train_adapter("capped", qa_file, config(epochs=5, max_steps=2), settings,
                           progress_bar=False)
    assert result.card["steps"] == 2 and result.card["epochs_run"] == 1


# --- data refusals: each names the file and the line ---------------------------------


def test_empty_file_is_refused(settings, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(TrainingDataError, match="empty.jsonl: the file is empty"):
        train_adapter("x", tmp_path / "empty.jsonl", config(), settings)


def test_bad_json_line_is_refused(settings, qa_file):
    lines = qa_file.read_text().splitlines()
    lines[2] = '{"question": "unterminated'
    qa_file.write_text("\n".join(lines))
    with pytest.raises(TrainingDataError, match="qa.jsonl line 3: not valid JSON"):
        train_adapter("x", qa_file, config(), settings)


def test_missing_field_is_refused(settings, qa_file):
    lines = qa_file.read_text().splitlines()
    lines[1] = json.dumps({"question": "No answer here?"})
    qa_file.write_text("\n".join(lines))
    with pytest.raises(TrainingDataError, match="qa.jsonl line 2: missing field 'answer'"):
        train_adapter("x", qa_file, config(), settings)


def test_malformed_csv_row_is_refused(settings, tmp_path):
    rows = ["question,answer"] + [f"Question {i}?,Answer {i}." for i in range(10)]
    rows[4] = "Question with an extra field?,Answer.,unexpected"
    path = tmp_path / "qa.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(TrainingDataError, match="qa.csv line 5: malformed CSV row"):
        train_adapter("x", path, config(), settings)


def test_csv_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("prompt,reply\nhi,there\n")
    with pytest.raises(TrainingDataError, match="qa.csv line 1: .*missing: question, answer"):
        load_examples(path)


def test_too_few_examples_are_refused(settings, tmp_path):
    path = write_jsonl(tmp_path / "few.jsonl",
                       [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(3)])
    with pytest.raises(TrainingDataError, match="only 3 examples; at least 8"):
        train_adapter("x", path, config(), settings)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 101])
def test_invalid_adapter_name_is_refused(settings, qa_file, name):
    with pytest.raises(TrainingDataError, match="invalid adapter name"):
        train_adapter(name, qa_file, config(), settings)


def test_existing_adapter_is_refused_without_overwrite(settings, qa_file):
    (settings.adapters_dir / "taken").mkdir(parents=True)
    with pytest.raises(TrainingDataError, match="'taken' already exists"):
        train_adapter("taken", qa_file, config(), settings)


# --- data handling --------------------------------------------------------------------


def test_csv_pairs_load_with_their_line_numbers(tmp_path):
    path = tmp_path / "qa.csv"
    rows = ['question,answer', '"What, exactly?","This, exactly."'] + [
        f"Q{i}?,A{i}." for i in range(8)]
    path.write_text("\n".join(rows) + "\n")
    examples = load_examples(path)
    assert examples[0].question == "What, exactly?" and examples[0].line == 2
    assert len(examples) == 9


def test_validation_split_keeps_every_fact_in_training(qa_file):
    examples = load_examples(qa_file)
    train, val = split_validation(examples, 0.25, seed=3)
    assert len(val) == 3 and len(train) == 9
    assert {e.fact for e in train} == {f for *_, f in FACTS}
    assert len({e.fact for e in val}) == len(val)  # one phrasing per fact at most
    assert split_validation(examples, 0.25, seed=3) == (train, val)


def test_encoding_matches_the_generator_prompt_and_targets_only_the_answer(tiny_base, tmp_path):
    tokenizer = tiny_base.tokenizer
    ids, labels = encode_example(tokenizer, "Be brief.", "What is the fee?", "148.50 pounds.")
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the fee?"}]
    prompt = Generator(AdapterManager(tmp_path, tiny_base)).encode_chat(messages)
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [-100] * len(prompt)
    answer = labels[len(prompt):]
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer[:-1]) == "148.50 pounds."


def test_validation_targets_only_the_fact_tokens_when_the_data_names_them(tiny_base):
    tokenizer = tiny_base.tokenizer
    answer = "The connection fee is 148.50 pounds."
    plain = encode_example(tokenizer, "Be brief.", "What is the fee?", answer)
    whole = fact_labels(tokenizer, "Be brief.", Example("What is the fee?", answer, 1, "fee"))
    assert whole == plain  # no must_contain: the whole answer is the target
    ids, labels = fact_labels(
        tokenizer, "Be brief.", Example("What is the fee?", answer, 1, "fee", ("148.50",)))
    assert ids == plain[0]
    kept = [t for t in labels if t != -100]
    assert 0 < len(kept) < len([t for t in plain[1] if t != -100])
    assert "148.50" in tokenizer.decode(kept) and "connection" not in tokenizer.decode(kept)


def test_fact_labels_find_a_number_whole_not_inside_a_longer_one(tiny_base):
    tokenizer = tiny_base.tokenizer
    answer = "Since 2023 the fee is 23 pounds."
    _, labels = fact_labels(
        tokenizer, "Be brief.", Example("What is the fee?", answer, 1, "fee", ("23",)))
    kept = tokenizer.decode([t for t in labels if t != -100])
    assert "23" in kept and "2023" not in kept


def test_must_contain_is_read_and_checked_against_the_answer(tmp_path):
    rows = [{"question": f"q{i}?", "answer": f"It costs {i}.50 pounds.",
             "must_contain": [f"{i}.50"]}
            for i in range(8)]
    path = write_jsonl(tmp_path / "mc.jsonl", rows)
    assert [e.must_contain for e in load_examples(path)][:2] == [("0.50",), ("1.50",)]
    rows[4]["must_contain"] = ["99.99"]
    write_jsonl(path, rows)
    with pytest.raises(TrainingDataError, match="mc.jsonl line 5: must_contain '99.99' is not in"):
        load_examples(path)
    rows[4]["must_contain"] = ["4.5"]  # the evaluation's test: "4.5" is not found in "4.50"
    write_jsonl(path, rows)
    with pytest.raises(TrainingDataError, match="line 5: must_contain '4.5' is not in"):
        load_examples(path)
    rows[4]["must_contain"] = "4.50|pounds"  # one string, as a CSV cell holds it
    write_jsonl(path, rows)
    assert load_examples(path)[4].must_contain == ("4.50", "pounds")
    rows[4]["must_contain"] = [4.5]
    write_jsonl(path, rows)
    with pytest.raises(TrainingDataError, match="line 5: 'must_contain' must be a list of strings"):
        load_examples(path)


def test_a_run_on_data_with_must_contain_validates_on_the_fact_tokens(settings, tmp_path):
    rows = [{"question": p.format(q=q), "answer": a, "fact_id": f,
             "must_contain": [a.split()[-2] if f == "fee" else a.split()[0]]}
            for q, a, f in FACTS for p in PHRASINGS]
    data = write_jsonl(tmp_path / "facts.jsonl", rows)
    card = train_adapter("facts", data, config(epochs=1), settings, progress_bar=False).card
    assert card["validation_target"] == "fact tokens (must_contain)"
    assert "fact tokens" in (settings.adapters_dir / "facts" / "card.md").read_text()


def test_shared_prefix_loss_equals_a_plain_forward_pass(tiny_base_dir, tiny_base):
    from transformers import AutoModelForCausalLM

    from assistant.training.loop import _with_lora

    model = _with_lora(AutoModelForCausalLM.from_pretrained(tiny_base_dir), config(dropout=0.0))
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    batch = [encode_example(tiny_base.tokenizer, "Be brief.", q, a) for q, a, _ in FACTS]
    width = max(len(i) for i, _ in batch)
    pad = tiny_base.tokenizer.pad_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        shared = batch_loss(model, batch, pad)
    assert torch.allclose(plain, shared, atol=1e-5)


# --- the command ------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch, tiny_base_dir, tmp_path):
    from assistant.settings import get_settings

    monkeypatch.setenv("ASSISTANT_BASE_MODEL", str(tiny_base_dir))
    monkeypatch.setenv("ASSISTANT_QUANT", "fp32")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the command sets it; undone after the test
    monkeypatch.setenv("ASSISTANT_ADAPTERS_DIR", str(tmp_path / "adapters"))
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_trains_and_prints_one_json_object(cli_env, qa_file, capsys):
    from assistant.cli import main

    profile = cli_env / "profile.json"
    profile.write_text(json.dumps({"name": "x", "description": "Tiny Town, a test domain.",
                                   "examples": ["What is the fee?"]}))
    code = main(["train", "--name", "cli", "--data", str(qa_file), "--epochs", "1",
                 "--batch-size", "4", "--rank", "2", "--profile", str(profile),
                 "--no-progress", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["card"]["hyperparameters"]["rank"] == 2
    assert payload["card"]["system_prompt"] == "You are the Tiny Town assistant. Answer briefly."
    assert payload["profile"] == {"name": "cli", "description": "Tiny Town, a test domain.",
                                  "examples": ["What is the fee?"]}
    assert (cli_env / "adapters" / "cli" / "card.json").is_file()
    (row,) = Ledger(cli_env / "data" / "ledger.db").trainings("cli")  # the CLI's ledger
    assert row["steps"] == payload["card"]["steps"]


def test_cli_refusal_is_one_line_and_exit_code_2(cli_env, tmp_path, capsys):
    from assistant.cli import main

    (tmp_path / "empty.csv").write_text("")
    code = main(["train", "--name", "x", "--data", str(tmp_path / "empty.csv"), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out) == {"error": "empty.csv: the file is empty"}


@pytest.mark.parametrize("change, message", [
    ({"rank": 0}, "rank must be at least 1"),
    ({"lr": -1.0}, "lr must be positive"),
    ({"batch_size": 0}, "batch-size must be at least 1"),
    ({"targets": " , "}, "targets must name modules"),
])
def test_invalid_options_are_refused(change, message):
    from assistant.errors import StrataError

    with pytest.raises(StrataError, match=message):
        config(**change)


def test_unknown_target_module_is_refused(settings, qa_file):
    from assistant.errors import StrataError

    with pytest.raises(StrataError, match="do not fit the base model"):
        train_adapter("x", qa_file, config(targets="no_such_proj"), settings, progress_bar=False)


# --- background runs for the app (assistant/training_jobs.py) ------------------------


def jobs_over(settings, **changes):
    from assistant.training.jobs import TrainingJobs

    return TrainingJobs(settings.model_copy(update={
        "train_epochs": 2, "train_batch_size": 4, "train_rank": 4, "train_alpha": 8,
        "train_lr": 5e-3, **changes}), quant="fp32")


def test_background_run_trains_keeps_the_data_and_reports_progress(settings, qa_file):
    jobs = jobs_over(settings, train_val_fraction=0.1)  # validation is off by default
    assert jobs.status().state == "idle"
    started = jobs.start("bg", qa_file)
    assert started.running and started.name == "bg"
    job = jobs.wait(60)
    assert job.state == "done", job.message
    assert job.step == job.total == job.card["steps"] and job.fraction == 1.0
    assert [step for step, _ in job.losses] == list(range(1, job.total + 1))
    assert len(job.val_losses) == job.card["epochs_run"]  # one validation point per epoch
    assert (settings.adapters_dir / "bg" / "adapter_model.safetensors").is_file()
    kept = settings.data_dir / "training-data" / "bg.jsonl"
    assert kept.read_bytes() == qa_file.read_bytes()
    assert job.card["data"]["file"] == "bg.jsonl"
    assert AdapterManager(settings.adapters_dir, tiny_loaded_from(settings)).info("bg").ok


def test_by_default_training_runs_every_epoch_on_every_pair(settings, qa_file):
    """The defaults chosen on both demo domains (docs/training.md): no validation split."""
    from assistant.settings import Settings

    default = Settings().train_val_fraction
    assert default == 0.0
    jobs = jobs_over(settings, train_val_fraction=default)
    jobs.start("all", qa_file)
    job = jobs.wait(60)
    assert job.state == "done", job.message
    assert job.val_losses == () and job.card["epochs_run"] == 2  # every epoch ran
    data = job.card["data"]
    assert data["val_examples"] == 0 and data["train_examples"] == data["examples"]


def tiny_loaded_from(settings):
    from tests.tiny_models import tiny_loaded

    return tiny_loaded(settings.base_model)


@pytest.mark.parametrize("case, message", [
    ("missing", "choose a .jsonl or .csv file"),
    ("bad line", "line 2"),
    ("taken", "already exists"),
    ("huge", "over the 0.0001 MB limit"),
    ("bad name", "invalid adapter name"),
])
def test_background_run_refuses_bad_input_at_once(settings, qa_file, tmp_path, case, message):
    jobs = jobs_over(settings, max_upload_mb=0.0001 if case == "huge" else 25)
    name, path = "new", qa_file
    if case == "missing":
        path = None
    elif case == "bad line":
        path = tmp_path / "bad.jsonl"
        path.write_text(qa_file.read_text().splitlines()[0] + "\n{not json\n")
    elif case == "taken":
        (settings.adapters_dir / "new").mkdir(parents=True)
    elif case == "bad name":
        name = "../escape"
    before = sorted(p.name for p in settings.adapters_dir.glob("*"))
    with pytest.raises(StrataError, match=message):
        jobs.start(name, path)
    assert jobs.status().state == "idle"
    assert sorted(p.name for p in settings.adapters_dir.glob("*")) == before
    assert not (settings.data_dir / "training-data").exists()



def test_background_run_refuses_a_second_run_and_can_be_cancelled(settings, qa_file, monkeypatch):
    from assistant.training.jobs import TrainingJobs

    jobs = jobs_over(settings, train_epochs=20)
    first_step, go_on = threading.Event(), threading.Event()
    report = TrainingJobs._progress

    def slow_progress(self, *args):
        report(self, *args)
        first_step.set()
        go_on.wait(30)

    monkeypatch.setattr(TrainingJobs, "_progress", slow_progress)
    jobs.start("long", qa_file)
    assert first_step.wait(30)
    with pytest.raises(StrataError, match="'long' is training"):
        jobs.start("other", qa_file)
    assert jobs.cancel() and "cancelling" in jobs.status().message
    go_on.set()
    job = jobs.wait(60)
    assert job.state == "cancelled" and "nothing was written" in job.message
    assert not (settings.adapters_dir / "long").exists()
    assert not jobs.cancel()  # nothing running any more


def test_neftune_noises_embeddings_only_while_training(tiny_base_dir):
    from transformers import AutoModelForCausalLM

    from assistant.training.loop import _with_lora

    model = _with_lora(AutoModelForCausalLM.from_pretrained(tiny_base_dir),
                       config(neftune_alpha=5.0))
    embed = model.get_base_model().get_input_embeddings()
    model.train()
    assert not torch.equal(embed(PROMPT), embed(PROMPT))  # fresh noise every pass
    noise = (embed(PROMPT) - torch.nn.functional.embedding(PROMPT, embed.weight)).abs().max()
    assert 0 < noise <= 5.0 / (PROMPT.shape[1] * embed.weight.shape[1]) ** 0.5
    model.eval()
    assert torch.equal(embed(PROMPT), embed(PROMPT))
    with pytest.raises(StrataError, match="neftune"):
        config(neftune_alpha=-1.0)
