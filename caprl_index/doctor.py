"""`caprl-index doctor`: can we reach the caption servers (model listed? which kind, family, budget?), Qdrant,
the embedding model, OCR, LibreOffice?"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import TYPE_CHECKING, Any

from caprl_index.config import Settings

if TYPE_CHECKING:
    from caprl_index.captioning import CaptionSetup


# Unreachable URLs keep the historic "vLLM" label: their kind is unknown.
_LABELS = {"vllm": "vLLM", "sglang": "SGLang", "llama.cpp": "llama.cpp", "ollama": "Ollama"}


def _check(name: str, state: str, detail: str) -> dict[str, Any]:
    return {"name": name, "state": state, "detail": detail}


def check_vllm(settings: Settings) -> list[dict[str, Any]]:
    """One check per caption URL (kind, context, slots), then the family and budget the run would use."""
    return asyncio.run(_check_servers(settings))


async def _check_servers(settings: Settings) -> list[dict[str, Any]]:
    from caprl_index.captioning import describe_server, probe_servers, resolve_setup

    required = settings.captioner == "vllm"
    probes = await probe_servers(settings)
    setup = resolve_setup(settings, probes)
    out = []
    for probe in probes:
        if probe.ok:
            served = f"serves {settings.vllm_model!r} ({probe.latency_s * 1000:.0f} ms)"
            label = _LABELS.get(probe.kind, "server")
            out.append(_check(f"{label} {probe.url}", "ok", f"{served}; {describe_server(setup, probe)}"))
        else:
            state = "fail" if required else "warn"
            hint = "" if required else "; figures will get OCR text until it is reachable"
            out.append(_check(f"vLLM {probe.url}", state, f"{probe.error}{hint}"))
    if not setup.probes:
        return out
    out.append(_check("captions", "warn" if setup.warnings else "ok", _budget_detail(settings, setup)))
    out.append(await _measure(settings, setup))
    return out


def _budget_detail(settings: Settings, setup: CaptionSetup) -> str:
    from caprl_index.captioning import describe_budget

    legacy = (
        f"; the budget comes from CAPRL_MAX_PIXELS={settings.max_pixels:,} (read as {settings.image_token_budget:,} "
        "tokens at 28x28 px): set CAPRL_IMAGE_TOKENS instead"
        if settings.legacy_max_pixels
        else ""
    )
    return "; ".join([describe_budget(setup) + legacy, *setup.warnings])


async def _measure(settings: Settings, setup: CaptionSetup) -> dict[str, Any]:
    """Send the test page once with max_tokens=1: the server's own count of what it costs."""
    from caprl_index.captioning.measure import measure_test_image

    try:
        probe, counted, predicted = await measure_test_image(settings, setup)
    except Exception as exc:  # doctor reports, it never fails on a measurement
        return _check("test image", "warn", f"could not send the test page: {type(exc).__name__}: {exc}")
    return _check(
        "test image",
        "ok",
        f"{probe.url} counted {counted:,} prompt tokens for the test page ({predicted:,} visual tokens predicted, "
        "the rest is the prompt and chat template)",
    )


def check_qdrant(settings: Settings) -> dict[str, Any]:
    from caprl_index.errors import StoreError
    from caprl_index.store import QdrantStore

    store = QdrantStore(settings)
    try:
        exists = store.exists()
        detail = f"{store.describe()}: collection {settings.collection!r} " + (
            f"holds {store.count()} points" if exists else "not created yet"
        )
        return _check("Qdrant", "ok", detail)
    except StoreError as exc:
        return _check("Qdrant", "fail", str(exc))
    finally:
        store.close()


def check_embedder(settings: Settings) -> dict[str, Any]:
    from caprl_index.embedding import open_embedder

    try:
        start = time.perf_counter()
        emb = open_embedder(settings)
        emb.embed(["caprl-index doctor"])
        took = time.perf_counter() - start
        return _check(
            "embedding",
            "ok",
            f"{settings.embed_model} on {getattr(emb, 'backend', type(emb).__name__)}: {emb.dim}-d, "
            f"window {emb.max_tokens} tokens, loaded in {took:.1f} s",
        )
    except Exception as exc:
        return _check("embedding", "fail", f"{settings.embed_model}: {exc}")


def check_tools() -> list[dict[str, Any]]:
    out = []
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    out.append(
        _check(
            "LibreOffice",
            "ok" if soffice else "warn",
            soffice
            or "not found: slides are indexed from their XML without rendering (apt-get install libreoffice-impress)",
        )
    )
    try:
        import rapidocr_onnxruntime  # noqa: F401

        out.append(_check("OCR", "ok", "rapidocr-onnxruntime"))
    except ImportError:
        out.append(_check("OCR", "warn", "rapidocr-onnxruntime missing: pip install rapidocr-onnxruntime"))
    return out


def run_checks(settings: Settings) -> list[dict[str, Any]]:
    return [*check_vllm(settings), check_qdrant(settings), check_embedder(settings), *check_tools()]
