"""Every tunable of Strata in one place.

Read from the environment (prefix ``ASSISTANT_``) or a ``.env`` file. Each field
says why its default is what it is, so that changing one is a decision, not a guess.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Quant = Literal["nf4", "bf16", "fp32"]


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

    # --- ledger and cost model (assistant/ledger.py, assistant/costs.py) -------
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

    @field_validator("data_dir", "cache_dir", "adapters_dir", "knowledge_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings(...)`` instead)."""
    return Settings()
