"""LoRA training of a domain adapter, on the weights that will serve it.

Question/answer pairs -> LoRA on the base (NF4: QLoRA; fp32 of the GGUF's 4-bit weights
when llama.cpp serves: backends/engine.py ``training_precision``) -> adapters/<name>/.

A small, explicit loop (torch AdamW, warmup + cosine decay, gradient clipping) instead of a
Trainer: one pass over length-sorted batches per epoch, validation loss after each epoch
(on the fact's tokens when the data names them), early stopping with the best weights
restored. Two CPU savings, both exact:
* the prompt prefix every example shares (system prompt, chat markup) is run once per
  batch and its key/value cache broadcast to all rows (~1/3 fewer tokens);
* logits are computed only where there is a target (the answer), not for the whole prompt.
The result is written atomically (temp folder, then rename), so a running AdapterManager
never sees half an adapter; it rescans the folder and picks the new adapter up.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import StrataError, TrainingCancelled, TrainingDiverged
from assistant.settings import Settings
from assistant.text import common_prefix
from assistant.training import card as adapter_card
from assistant.training.data import (
    Example,
    encode_example,
    fact_labels,
    load_examples,
    split_validation,
)

if TYPE_CHECKING:
    from assistant.ledger.store import Ledger

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, float, "float | None"], None]  # step, total, loss, val_loss
Encoded = tuple[list[int], list[int]]  # input_ids, labels (-100 = no target)


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run; the defaults come from Settings (see train_* there)."""

    epochs: int = 12
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: str = "all-linear"  # or a comma list such as "q_proj,v_proj"
    lr: float = 2e-3
    max_steps: int = 0  # 0 = no cap; otherwise stop after this many optimizer steps
    batch_size: int = 16
    seed: int = 0
    val_fraction: float = 0.1
    patience: int = 2  # epochs without a better validation loss before stopping
    neftune_alpha: float = 0.0  # NEFTune: noise on input embeddings while training; 0 = off
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    min_examples: int = 8
    quant: str = "nf4"  # the weights that serve the adapter (engine.training_precision)
    system_prompt: str | None = None  # None: built from the description (default_system_prompt)
    description: str | None = None  # None: derived from the adapter name and the questions
    examples: list[str] | None = None  # router profile examples; None: taken from the data
    routable: bool = True  # False: no router profile (a tool adapter, e.g. the question writer)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrainConfig:
        from assistant.backends.engine import local_quant

        names = [f for f in cls.__dataclass_fields__ if hasattr(settings, f"train_{f}")]
        values = {f: getattr(settings, f"train_{f}") for f in names}
        values["quant"] = local_quant(settings)  # the local base's; entry points pass the served
        # precision instead (commands/train.py served_precision, Services.training)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.rank >= 1, "rank must be at least 1"),
            (self.alpha > 0, "alpha must be positive"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.lr > 0, "lr must be positive"),
            (self.max_steps >= 0, "max-steps must be 0 (no cap) or more"),
            (self.batch_size >= 1, "batch-size must be at least 1"),
            (0 <= self.val_fraction < 0.5, "val-fraction must be in [0, 0.5)"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.neftune_alpha >= 0, "neftune must be 0 (off) or positive"),
            (bool(self.target_modules()), "targets must name modules or be 'all-linear'"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise StrataError("invalid training option: " + "; ".join(problems))

    def target_modules(self) -> str | list[str]:
        if self.targets.strip() == "all-linear":
            return "all-linear"
        return [t.strip() for t in self.targets.split(",") if t.strip()]

    def hyperparameters(self) -> dict[str, Any]:
        skip = {"system_prompt", "description", "examples"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class History:
    """What the loop did: the loss curve, steps, and where it stopped."""

    total_steps: int
    steps: int = 0
    epochs_run: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float | None = None
    best_epoch: int | None = None
    stopped_early: bool = False


@dataclass
class TrainResult:
    """The written adapter: its folder, and its card and profile as plain dicts."""

    name: str
    path: Path
    card: dict[str, Any]
    profile: dict[str, Any]


def train_adapter(
    name: str,
    data: Path | str,
    config: TrainConfig | None,
    settings: Settings,
    *,
    ledger: Ledger | None = None,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    progress_bar: bool = True,
) -> TrainResult:
    """Train adapter ``name`` on the pairs in ``data`` and write it under settings.adapters_dir.

    The run is recorded in ``ledger`` (the app's one ledger) when given, so the adapter's
    cost is amortised over its answers; without one (a benchmark, a test) nothing is recorded.
    """
    from assistant.models.base_models import load_base_model

    config = config or TrainConfig.from_settings(settings)
    adapter_card.check_target(settings.adapters_dir, name, overwrite)
    examples = load_examples(data, config.min_examples)
    profile = adapter_card.build_profile(name, examples, config.description, config.examples)
    system_prompt = config.system_prompt
    if system_prompt is None:
        system_prompt = adapter_card.default_system_prompt(name, profile["description"])
    train, val = split_validation(examples, config.val_fraction, config.seed)
    started = time.perf_counter()
    base = load_base_model(settings.base_model, settings.cache_dir, config.quant, settings.threads)
    model = _with_lora(base.model, config)
    history = Loop(model, config, on_progress, cancel, progress_bar).run(
        _encode(base.tokenizer, system_prompt, train),
        [fact_labels(base.tokenizer, system_prompt, e) for e in val],
    )
    run = _run_record(name, data, settings, config, base.quant, model, history,
                      time.perf_counter() - started, system_prompt,
                      (len(examples), len(train), len(val)),
                      any(e.must_contain for e in val))
    card = adapter_card.build_card(run, settings)
    path = adapter_card.write_adapter(
        model, settings.adapters_dir, name, settings.base_model, card, profile, overwrite,
        routable=config.routable)
    if ledger is not None:
        adapter_card.record(ledger, card)
    log.info("trained adapter %s in %.0f s (%d steps) -> %s", name, run.seconds, run.steps, path)
    return TrainResult(name, path, card.to_dict(), profile)


def _run_record(name: str, data: Path | str, settings: Settings, config: TrainConfig,
                quant: str, model: Any, history: History, seconds: float, system_prompt: str,
                counts: tuple[int, int, int], on_facts: bool) -> adapter_card.RunRecord:
    """The run in plain values, for the card (which never sees the loop's types)."""
    return adapter_card.RunRecord(
        name=name, data=data, base_model=settings.base_model, quant=quant, counts=counts,
        hyperparameters=config.hyperparameters(), system_prompt=system_prompt,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        steps=history.steps, planned_steps=history.total_steps, epochs_run=history.epochs_run,
        stopped_early=history.stopped_early, best_epoch=history.best_epoch,
        best_val_loss=history.best_val_loss, seconds=seconds, loss_curve=history.curve,
        validation_target="fact tokens (must_contain)" if on_facts else "answer tokens",
    )


def _encode(tokenizer: Any, system_prompt: str, examples: list[Example]) -> list[Encoded]:
    return [encode_example(tokenizer, system_prompt, e.question, e.answer, e.context)
            for e in examples]


def _with_lora(model: Any, config: TrainConfig) -> Any:
    """Wrap the (frozen) base in a fresh LoRA adapter, seeded for reproducibility."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules(),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        peft_model = get_peft_model(model, lora)
    except ValueError as exc:  # e.g. a target module the base model does not have
        raise StrataError(
            f"LoRA targets {config.targets!r} do not fit the base model: {exc}") from exc
    _keep_4bit_layout(peft_model)
    if config.neftune_alpha:
        _add_neftune(peft_model, config.neftune_alpha)
    peft_model.train()
    return peft_model


def _add_neftune(model: Any, alpha: float) -> None:
    """NEFTune (Jain et al. 2023): uniform noise of size alpha/sqrt(length x width) on the
    input embeddings, in training mode only, so the adapter cannot memorise exact wordings.
    Validation and the saved adapter are unaffected (eval mode; the hook is not saved)."""
    import torch

    def noisy(module: Any, inputs: Any, output: Any) -> Any:
        if not module.training:
            return output
        scale = alpha / (output.shape[-2] * output.shape[-1]) ** 0.5
        return output + torch.zeros_like(output).uniform_(-scale, scale)

    model.get_base_model().get_input_embeddings().register_forward_hook(noisy)


def _keep_4bit_layout(model: Any) -> None:
    """Stop bitsandbytes repacking 4-bit weights for its fast CPU inference kernel.

    bitsandbytes 0.50 repacks a Linear4bit's weights on its first eval-mode forward (our
    validation pass); after that, training-mode backward passes give wrong gradients
    (cosine ~0.1 to the true ones), so training silently stalls after the first epoch.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


class Loop:
    """The training loop: epochs of shuffled, length-sorted batches; eval; early stopping."""

    def __init__(self, model: Any, config: TrainConfig, on_progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, progress_bar: bool = True) -> None:
        self.model, self.config = model, config
        self.on_progress = on_progress
        self.cancel = cancel or threading.Event()
        self.progress_bar = progress_bar
        self.rng = random.Random(config.seed)
        self.pad_id = _pad_id(model)

    def run(self, train: list[Encoded], val: list[Encoded]) -> History:
        """Train; returns the history. The best-validation weights are left in the model."""
        import torch
        from tqdm.auto import tqdm

        c = self.config
        per_epoch = math.ceil(len(train) / c.batch_size)
        total = per_epoch * c.epochs if not c.max_steps else min(per_epoch * c.epochs, c.max_steps)
        self.history = History(total_steps=total)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=c.lr, weight_decay=c.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(total, c.warmup_ratio)
        )
        self.best: tuple[float, int, list] | None = None
        self.waited = 0
        self.val_loss: float | None = None
        self.bar = tqdm(total=total, desc="training", unit="step", disable=not self.progress_bar)
        try:
            for epoch in range(1, c.epochs + 1):
                losses = self._train_epoch(train)
                if self._end_epoch(epoch, losses, val) or self.history.steps >= total:
                    break
        finally:
            self.bar.close()
        if self.best is not None:
            self.history.best_val_loss = round(self.best[0], 4)
            self.history.best_epoch = self.best[1]
            _restore(self.params, self.best[2])
        self.model.eval()
        return self.history

    def _train_epoch(self, train: list[Encoded]) -> list[float]:
        losses: list[float] = []
        for batch in self._batches(train):
            self._check_cancel()
            losses.append(self._step(batch))
            self.history.steps += 1
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{losses[-1]:.3f}", val=_fmt(self.val_loss))
            self._report(losses[-1])
            if self.history.steps >= self.history.total_steps:
                break
        return losses

    def _end_epoch(self, epoch: int, losses: list[float], val: list[Encoded]) -> bool:
        """Validate, record the curve, keep the best weights; True when patience ran out."""
        self.val_loss = self._val_loss(val) if val else None
        self.history.epochs_run = epoch
        self.history.curve.append(_point(epoch, self.history.steps, losses, self.val_loss))
        log.info("epoch %d/%d: step %d, train loss %.4f, validation loss %s", epoch,
                 self.config.epochs, self.history.steps, sum(losses) / max(1, len(losses)),
                 _fmt(self.val_loss))  # the log's record where no progress bar is shown
        self.bar.set_postfix(loss=f"{losses[-1]:.3f}", val=_fmt(self.val_loss))
        self._report(losses[-1])
        if self.val_loss is None:
            return False
        if self.best is None or self.val_loss < self.best[0]:
            self.best, self.waited = (self.val_loss, epoch, _snapshot(self.params)), 0
            return False
        self.waited += 1
        self.history.stopped_early = self.waited >= self.config.patience
        return self.history.stopped_early

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise TrainingCancelled("training cancelled; no adapter was written")

    def _report(self, loss: float) -> None:
        if self.on_progress:
            self.on_progress(self.history.steps, self.history.total_steps, loss, self.val_loss)

    def _batches(self, rows: list[Encoded]) -> list[list[Encoded]]:
        """Shuffle, sort pools of 8 batches by length (little padding), shuffle the batches."""
        size = self.config.batch_size
        order = list(rows)
        self.rng.shuffle(order)
        batches = []
        for start in range(0, len(order), size * 8):
            pool = sorted(order[start:start + size * 8], key=lambda r: len(r[0]))
            batches += [pool[i:i + size] for i in range(0, len(pool), size)]
        self.rng.shuffle(batches)
        return batches

    def _step(self, batch: list[Encoded]) -> float:
        import torch

        loss = batch_loss(self.model, batch, self.pad_id)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged (loss {float(loss)}); try a lower --lr than {self.config.lr}"
            )
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _val_loss(self, rows: list[Encoded]) -> float:
        """Mean loss on the validation rows' target tokens (dropout off): the fact's own
        tokens where the data names them (``fact_labels``), else the whole answer."""
        import torch

        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(rows), self.config.batch_size):
                self._check_cancel()
                batch = rows[start:start + self.config.batch_size]
                n = sum(1 for _, labels in batch for t in labels[1:] if t != -100)
                total += float(batch_loss(self.model, batch, self.pad_id)) * n
                count += n
        self.model.train()
        return total / max(count, 1)


def batch_loss(model: Any, batch: list[Encoded], pad_id: int) -> Any:
    """Mean cross-entropy over the answer tokens of a batch.

    The shared prefix (up to one token before the shortest prompt) runs once; its KV cache
    is repeated for every row, and gradients flow back through it, so the loss and its
    gradient equal those of a plain padded forward pass.
    """
    import torch

    inner = model.get_base_model()
    decoder, head = inner.get_decoder(), inner.get_output_embeddings()
    prompt_lens = [next(i for i, t in enumerate(labels) if t != -100) for _, labels in batch]
    prefix = common_prefix([ids for ids, _ in batch], min(prompt_lens) - 1)
    width = max(len(ids) for ids, _ in batch) - prefix
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), prefix + width), dtype=torch.long)
    for row, (row_ids, row_labels) in enumerate(batch):
        n = len(row_ids) - prefix
        ids[row, :n] = torch.tensor(row_ids[prefix:])
        labels[row, :n] = torch.tensor(row_labels[prefix:])
        mask[row, : prefix + n] = 1
    cache = None
    if prefix:
        prefix_ids = torch.tensor([batch[0][0][:prefix]])
        cache = decoder(input_ids=prefix_ids, use_cache=True).past_key_values
        cache.batch_repeat_interleave(len(batch))
    positions = torch.arange(prefix, prefix + width).expand(len(batch), width)
    hidden = decoder(input_ids=ids, attention_mask=mask, position_ids=positions,
                     past_key_values=cache, use_cache=cache is not None).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, targets[keep])


def _pad_id(model: Any) -> int:
    config = model.get_base_model().config
    pad = getattr(config, "pad_token_id", None)
    eos = getattr(config, "eos_token_id", None)
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    return int(pad or 0)  # padded positions are masked out and carry no target


def _lr_lambda(total: int, warmup_ratio: float) -> Callable[[int], float]:
    """Linear warmup, then cosine decay to 10% of the peak learning rate."""
    warmup = max(1, int(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _snapshot(params: list) -> list:
    return [p.detach().clone() for p in params]


def _restore(params: list, saved: list) -> None:
    import torch

    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)


def _point(epoch: int, step: int, losses: list[float], val_loss: float | None) -> dict[str, Any]:
    train_loss = sum(losses) / len(losses) if losses else None
    return {"epoch": epoch, "step": step,
            "train_loss": round(train_loss, 4) if train_loss is not None else None,
            "val_loss": round(val_loss, 4) if val_loss is not None else None}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
