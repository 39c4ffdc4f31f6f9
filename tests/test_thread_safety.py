"""Objects that are not thread-safe are never shared between threads: stress tests on every shared path.

Hugging Face fast tokenizers keep truncation and padding state on the object: `encode()` on the embed
thread sets it, `tokenize()` on the event-loop thread clears it, and a batch then fails with "Unable to
create tensor ... activate truncation and/or padding". The pipeline chunks on the loop thread while the
embed thread encodes, so the chunker must hold a tokenizer of its own.
"""

from __future__ import annotations

import threading
import time

from caprl_index.chunking import Chunker
from caprl_index.config import Settings
from caprl_index.embedding.query import open_query_encoder

# Short texts of different lengths: each batch needs padding, and is fast enough to run thousands.
BATCH = ["solar " * n for n in (1, 4, 12, 30)]
PAGE = ("Revenue grew in every region, led by Asia and Europe, while costs fell. " * 20).strip()


def _hammer(work, stop: threading.Event, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            while not stop.is_set():
                work()
        except BaseException as exc:  # the failure under test
            errors.append(exc)
            stop.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _stress(embed, tokenizer, seconds: float) -> list[BaseException]:
    """Chunk on one thread and embed on this one for `seconds` (the old code failed within ~5 s)."""
    chunker = Chunker(chunk_size=200, chunk_overlap=30, window=256, tokenizer=tokenizer)
    splitter = chunker._text_splitter
    stop, errors = threading.Event(), []
    chunking = _hammer(lambda: splitter.split_text(PAGE), stop, errors)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            embed(BATCH)
    except BaseException as exc:
        errors.append(exc)
    finally:
        stop.set()
        chunking.join(timeout=60)
    return errors


def test_chunking_while_embedding_never_breaks_a_batch(embedder) -> None:
    """The pipeline's two threads: chunking (loop thread) and encode (embed thread), one model."""
    errors = _stress(embedder.embed, embedder.tokenizer(), seconds=20)
    assert not errors, f"chunking and embedding share a tokenizer: {errors[0]!r}"


def test_query_encoder_tokenizer_is_its_own() -> None:
    encoder = open_query_encoder(Settings())
    assert encoder is not None
    errors = _stress(encoder.embed, encoder.tokenizer(), seconds=10)
    assert not errors, f"{errors[0]!r}"
