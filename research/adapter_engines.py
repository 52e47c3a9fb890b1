"""Why the demo adapter recalls fewer facts on llama.cpp than on the local engine.

Question (issue 31, item 0): ``adapters/harrowgate-water`` (QLoRA: trained on the NF4
quantisation of the fp32 weights dequantised from the bundled Q4_1 GGUF) scores fact
recall 0.64 in adapter mode on the local engine (NF4 + PEFT) but 0.50 on llama.cpp (the
Q4_1 GGUF + the adapter converted by ``assistant/backends/lora_gguf.py``). Is that the
base weights the adapter is served on (NF4 against Q4_1), or the conversion / application
of the LoRA in llama.cpp?

Measured without sampling noise: every in-scope held-out question's adapter-mode prompt
(the card's system prompt + the question, the chat template both engines use) followed
by its reference answer, read once (teacher forcing) by each engine configuration:

- ``nf4+lora``: the local engine as served (bitsandbytes NF4 base, PEFT adapter);
- ``fp32+lora``: the same PEFT adapter on the fp32 weights dequantised from the GGUF,
  i.e. the very weights llama.cpp computes with, in torch;
- ``int4+lora``: the same on torch's int4 kernel over the GGUF's own Q4_1 codes (scale and
  minimum rounded to bf16, bf16 activations; assistant/models/int4.py);
- ``q4_1+lora``: llama.cpp on the GGUF with the converted LoRA (as the backend serves it);
- ``q4_1+lora32``: the same with the LoRA written in float32 instead of float16;
- and each base without its adapter.

Per configuration: the mean negative log-likelihood of the reference answer's tokens and
of its fact tokens (those overlapping ``must_contain``), and the share of fact tokens the
configuration would pick itself (top-1). Per pair: the share of answer positions whose
top-1 token agrees, and the correlation of the adapter's effect on the logits (adapted
minus base). If ``fp32+lora`` sits with ``q4_1+lora`` and apart from ``nf4+lora``, the
adapter is tied to the NF4 weights it was trained on; if ``fp32+lora`` sits with
``nf4+lora`` and apart from ``q4_1+lora``, llama.cpp's LoRA is at fault.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python -m research.adapter_engines --out
research/results/adapter_engines.json`` (the first 40 in-scope questions; about 6 min on
two shared cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import tempfile
from itertools import combinations
from pathlib import Path
from typing import Any

os.environ.setdefault("LLAMA_GRAPH_REUSE_DISABLE", "1")  # adapter switches are honoured

ADAPTER = Path("adapters/harrowgate-water")
QUESTIONS = Path("knowledge/harrowgate-water/qa/test.jsonl")
MODEL = "smollm2-135m"


def load_questions(path: Path, limit: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if not r.get("out_of_scope") and r.get("must_contain")]
    return rows[:limit] if limit else rows


def encode(tokenizer: Any, system: str, row: dict[str, Any]) -> dict[str, Any]:
    """Prompt ids + answer ids, and which answer tokens overlap the fact."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": row["question"]}]
    prompt = list(tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    answer = row["answer"]
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    spans = []
    for fact in row["must_contain"]:
        at = answer.lower().find(fact.lower())
        if at >= 0:
            spans.append((at, at + len(fact)))
    fact = [any(s < e2 and e > s2 for s2, e2 in spans) for s, e in enc["offset_mapping"]]
    return {"prompt": prompt, "answer": list(enc["input_ids"]), "fact": fact}


def torch_logits(model: Any, item: dict[str, Any]) -> Any:
    import torch

    ids = item["prompt"] + item["answer"]
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0].float().numpy().astype("float16")
    n = len(item["prompt"])
    return out[n - 1: len(ids) - 1]  # the rows that predict each answer token


def llama_logits(llm: Any, item: dict[str, Any]) -> Any:
    import numpy as np

    ids = item["prompt"] + item["answer"]
    llm.reset()
    llm.eval(ids)
    n = len(item["prompt"])
    return np.array(llm.scores[n - 1: len(ids) - 1], dtype=np.float16)  # memory: see --limit


def lora32(adapter_dir: Path, gguf: Path, out: Path) -> Path:
    """lora_gguf.convert's file, but with float32 tensors (is float16 losing anything?)."""
    import numpy as np
    from gguf import GGUFWriter
    from safetensors.numpy import load_file

    from assistant.backends.lora_gguf import base_shape, lora_tensors

    shape = base_shape(gguf)
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    tensors = lora_tensors({k: v.astype(np.float32) for k, v in
                            load_file(adapter_dir / "adapter_model.safetensors").items()}, shape)
    writer = GGUFWriter(str(out), shape["architecture"])
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for name, array in sorted(tensors.items()):
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def collect(items: list[dict[str, Any]], scratch: Path) -> dict[str, list[Any]]:
    """Every configuration's answer-position logits, per question."""
    import llama_cpp
    import torch
    from peft import PeftModel

    from assistant.backends.llamacpp_accuracy import open_checked, without_extra_buffers
    from assistant.backends.lora_gguf import convert
    from assistant.models.base_models import REGISTRY, load_base_model
    from assistant.settings import get_settings

    torch.set_num_threads(1)
    cache = get_settings().cache_dir
    logits: dict[str, list[Any]] = {}
    locate = REGISTRY[MODEL].locate
    if locate is None:
        raise SystemExit(f"{MODEL} has no bundled GGUF for llama.cpp to read")
    gguf = locate()
    files = {"q4_1+lora": convert(ADAPTER, gguf, scratch),
             "q4_1+lora32": lora32(ADAPTER, gguf, scratch / "lora32.gguf")}
    # opened as the backend opens it (the start check picks the weights' layout), then again
    # with every position's logits kept (the check reads one row, so it runs without them)
    probe, accuracy = open_checked(llama_cpp, gguf, n_ctx=128, n_batch=128, verbose=False)
    probe.close()
    print(f"llama.cpp: {accuracy.to_dict()}", file=sys.stderr)
    with contextlib.nullcontext() if accuracy.extra_buffers else \
            without_extra_buffers(llama_cpp):
        llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=512, n_batch=512, n_threads=1,
                              n_threads_batch=1, logits_all=True, verbose=False)
    logits["q4_1"] = [llama_logits(llm, it) for it in items]
    for name, path in files.items():
        handle = llama_cpp.llama_adapter_lora_init(llm._model.model, str(path).encode())
        assert llama_cpp.llama_set_adapter_lora(llm._ctx.ctx, handle, 1.0) == 0
        logits[name] = [llama_logits(llm, it) for it in items]
        llama_cpp.llama_rm_adapter_lora(llm._ctx.ctx, handle)
    llm.close()
    print("llama.cpp: done", file=sys.stderr)
    for quant in ("fp32", "nf4", "int4"):
        base = load_base_model(MODEL, cache, quant, threads=1)
        assert base.quant == quant, f"{quant} unavailable here (got {base.quant})"
        tuned = PeftModel.from_pretrained(base.model, str(ADAPTER))
        tuned.eval()
        logits[f"{quant}+lora"] = [torch_logits(tuned, it) for it in items]
        with tuned.disable_adapter():
            logits[quant] = [torch_logits(tuned, it) for it in items]
        print(f"{quant}: done", file=sys.stderr)
        del tuned, base
    return logits


def per_config(items: list[dict[str, Any]], rows: list[Any]) -> dict[str, float]:
    import numpy as np

    nll, fact_nll, fact_top1, q_fact_top1 = [], [], [], []
    for it, lg in zip(items, rows, strict=True):
        lg = lg.astype(np.float64)
        logp = lg - np.logaddexp.reduce(lg, axis=1, keepdims=True)
        target = np.asarray(it["answer"])
        tok = -logp[np.arange(len(target)), target]
        top = lg.argmax(axis=1) == target
        mask = np.asarray(it["fact"])
        nll.extend(tok)
        if mask.any():
            fact_nll.extend(tok[mask])
            fact_top1.extend(top[mask])
            q_fact_top1.append(bool(top[mask].all()))
    return {"answer_nll": round(float(np.mean(nll)), 4),
            "fact_nll": round(float(np.mean(fact_nll)), 4),
            "fact_top1": round(float(np.mean(fact_top1)), 4),
            "questions_all_fact_tokens_top1": round(float(np.mean(q_fact_top1)), 4)}


def per_pair(a: list[Any], b: list[Any], base_a: list[Any] | None,
             base_b: list[Any] | None) -> dict[str, float]:
    import numpy as np

    a = [x.astype(np.float32) for x in a]
    b = [y.astype(np.float32) for y in b]
    base_a = None if base_a is None else [x.astype(np.float32) for x in base_a]
    base_b = None if base_b is None else [y.astype(np.float32) for y in base_b]
    agree = [float((x.argmax(1) == y.argmax(1)).mean()) for x, y in zip(a, b, strict=True)]
    out = {"top1_agreement": round(float(np.mean(agree)), 4),
           "logits_correlation": round(float(np.mean(
               [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)])), 4)}
    if base_a is not None and base_b is not None:
        out["adapter_effect_correlation"] = round(float(np.mean(
            [np.corrcoef((x - bx).ravel(), (y - by).ravel())[0, 1]
             for x, y, bx, by in zip(a, b, base_a, base_b, strict=True)])), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40,
                        help="first K in-scope questions (0: all 120; every answer position's "
                        "logits are kept, ~15 MB a question in float16)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from assistant.models.base_models import REGISTRY, ensure_converted
    from assistant.settings import get_settings

    folder = ensure_converted(REGISTRY[MODEL], get_settings().cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    system = json.loads((ADAPTER / "card.json").read_text(encoding="utf-8"))["system_prompt"]
    items = [encode(tokenizer, system, r) for r in load_questions(QUESTIONS, args.limit)]
    with tempfile.TemporaryDirectory() as scratch:
        logits = collect(items, Path(scratch))
    adapted = [k for k in logits if "+" in k]
    result = {
        "question": "issue 31 item 0: adapter mode's recall, local (NF4) vs llama.cpp (Q4_1)",
        "command": shlex.join(["python", "-m", "research.adapter_engines",
                               *(sys.argv[1:] if argv is None else argv)]),
        "questions": str(QUESTIONS), "n_questions": len(items),
        "answer_tokens": sum(len(it["answer"]) for it in items),
        "fact_tokens": sum(sum(it["fact"]) for it in items),
        "system_prompt": system,
        "configs": {k: per_config(items, v) for k, v in logits.items()},
        "pairs": {f"{a} vs {b}": per_pair(logits[a], logits[b], logits.get(a.split("+")[0]),
                                          logits.get(b.split("+")[0]))
                  for a, b in combinations(adapted, 2)},
        "base_pairs": {f"{a} vs {b}": per_pair(logits[a], logits[b], None, None)
                       for a, b in combinations(["fp32", "nf4", "int4", "q4_1"], 2)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
