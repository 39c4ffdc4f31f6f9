"""`caprl-index doctor`: can we reach vLLM (model listed?), Qdrant, the embedding model, OCR, LibreOffice?"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

from caprl_index.config import Settings


def _check(name: str, state: str, detail: str) -> dict[str, Any]:
    return {"name": name, "state": state, "detail": detail}


def check_vllm(settings: Settings) -> list[dict[str, Any]]:
    from caprl_index.captioning import probe_servers

    required = settings.captioner == "vllm"
    out = []
    for probe in asyncio.run(probe_servers(settings)):
        if probe.ok:
            out.append(
                _check(f"vLLM {probe.url}", "ok", f"serves {settings.vllm_model!r} ({probe.latency_s * 1000:.0f} ms)")
            )
        else:
            state = "fail" if required else "warn"
            hint = "" if required else "; figures will get OCR text until it is reachable"
            out.append(_check(f"vLLM {probe.url}", state, f"{probe.error}{hint}"))
    return out


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
            f"{settings.embed_model}: {emb.dim}-d, window {emb.max_tokens} tokens, loaded in {took:.1f} s",
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
