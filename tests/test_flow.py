"""The byte budget of parsed batches in flight (`flow.ByteBudget`) and the pipeline held to it."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

import pytest

from caprl_index.flow import ByteBudget


def _run_batches(budget: ByteBudget, sizes: list[int], seed: int = 0) -> dict[str, int]:
    """Run one task per size through the budget (hold, "parse", settle, "store", release) and track, by
    their own bookkeeping, how many were held at once and how many settled bytes."""
    rng = random.Random(seed)
    state = {"holders": 0, "max_holders": 0, "settled": 0, "max_settled": 0}

    async def batch(size: int) -> None:
        async with budget.hold() as settle:
            state["holders"] += 1
            state["max_holders"] = max(state["max_holders"], state["holders"])
            await asyncio.sleep(rng.random() / 500)  # parsing
            await settle(size)
            state["settled"] += size
            state["max_settled"] = max(state["max_settled"], state["settled"])
            await asyncio.sleep(rng.random() / 500)  # embedding and storing
            state["settled"] -= size
            state["holders"] -= 1

    async def main() -> None:
        await asyncio.gather(*(batch(s) for s in sizes))

    asyncio.run(main())
    assert budget.used == 0 and state["holders"] == 0
    return state


def test_equal_batches_stay_within_the_limit() -> None:
    budget = ByteBudget(limit=10_000, first_estimate=1_000)
    state = _run_batches(budget, [1_000] * 200)
    assert budget.peak <= 10_000 and state["max_settled"] <= 10_000
    assert state["max_holders"] == 10  # the limit is used, not just respected


def test_the_estimate_learns_the_real_size() -> None:
    """A first guess 10x too small admits too many at first; from the first settled batch on, the
    estimate is the mean of real sizes and admission follows it."""
    budget = ByteBudget(limit=40_000, first_estimate=400)
    state = _run_batches(budget, [4_000] * 100, seed=1)
    assert budget.estimate == 4_000
    late = ByteBudget(limit=40_000, first_estimate=4_000)
    assert _run_batches(late, [4_000] * 100, seed=1)["max_settled"] <= 40_000
    assert state["max_settled"] <= 40_000 + 100 * (4_000 - 400)  # the worst case of the first wave


def test_a_batch_larger_than_the_limit_runs_alone() -> None:
    """Nothing held: a batch is admitted whatever its size (no stall), and nothing joins it while it is held."""
    budget = ByteBudget(limit=1_000, first_estimate=5_000)
    state = _run_batches(budget, [5_000] * 6)
    assert state["max_holders"] == 1 and budget.peak == 5_000


def test_mixed_sizes_track_what_is_held() -> None:
    sizes = [random.Random(i).choice([200, 1_000, 30_000]) for i in range(300)]
    budget = ByteBudget(limit=50_000, first_estimate=1_000)
    state = _run_batches(budget, sizes, seed=2)
    assert state["max_holders"] > 1
    assert budget.peak >= state["max_settled"]  # the budget counts at least what is really held


def test_a_slot_given_back_early_is_given_back_once() -> None:
    """A file gives its slot to the next file once its pages are parsed; leaving later must not free a second."""
    from caprl_index.flow import Slot

    async def main() -> list[bool]:
        semaphore = asyncio.Semaphore(1)
        seen = []
        async with Slot(semaphore) as slot:
            seen.append(semaphore.locked())
            slot.release()
            seen.append(semaphore.locked())
            async with Slot(semaphore):  # the next file runs meanwhile
                seen.append(semaphore.locked())
            slot.release()
        seen.append(semaphore.locked())
        await semaphore.acquire()
        seen.append(semaphore.locked())  # one slot, as at the start: not two
        return seen

    assert asyncio.run(main()) == [True, False, True, False, True]


def test_a_known_size_is_admitted_on_that_size() -> None:
    budget = ByteBudget(limit=1_000, first_estimate=1)

    async def main() -> list[int]:
        seen = []
        async with budget.hold(600):
            seen.append(budget.used)
            waiting = asyncio.ensure_future(budget.hold(600).__aenter__())
            await asyncio.sleep(0.01)
            seen.append(int(waiting.done()))  # 600 + 600 > 1,000: it waits, whatever the estimate
        await waiting
        seen.append(budget.used)
        return seen

    assert asyncio.run(main()) == [600, 0, 600]


@pytest.mark.slow
def test_pipeline_holds_to_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder) -> None:
    """A budget of one byte runs the batches one at a time and indexes the same points as the default
    budget, under which batches of the three example files overlap."""
    import caprl_index.pipeline as pipeline
    from caprl_index.config import Settings
    from tests.conftest import EXAMPLES

    docs = tmp_path / "docs"
    shutil.copytree(EXAMPLES, docs, ignore=shutil.ignore_patterns("*.py", "*.md"))
    budgets: list[ByteBudget] = []

    class Recorded(ByteBudget):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            budgets.append(self)
            self.holders = self.max_holders = 0
            self.sizes: list[int] = []

        def hold(self, *args):  # type: ignore[override]
            outer = super().hold(*args)
            budget = self

            class Counted:
                async def __aenter__(self):
                    settle = await outer.__aenter__()
                    budget.holders += 1
                    budget.max_holders = max(budget.max_holders, budget.holders)

                    async def recorded(size: int) -> None:
                        budget.sizes.append(size)
                        await settle(size)

                    return recorded

                async def __aexit__(self, *exc):
                    budget.holders -= 1
                    return await outer.__aexit__(*exc)

            return Counted()

    monkeypatch.setattr(pipeline, "ByteBudget", Recorded)
    counts = []
    for limit in (pipeline.IN_FLIGHT_BYTES, 1):
        monkeypatch.setattr(pipeline, "IN_FLIGHT_BYTES", limit)
        settings = Settings(qdrant_path=tmp_path / f"q{limit}", workers=2, captioner="none", ocr=False)
        stats = pipeline.ingest([docs], settings, embedder=embedder)
        assert stats.files_failed == 0 and stats.files_indexed >= 3
        counts.append(stats.points)
    default, tiny = [b for b in budgets if b.limit != pipeline.CAPTION_BACKLOG_BYTES]  # the parsed batches'
    assert default.max_holders > 1 and tiny.max_holders == 1
    assert sorted(default.sizes) == sorted(tiny.sizes) and min(tiny.sizes) > 0  # the same batches, measured
    assert tiny.peak == max(pipeline.FIRST_BATCH_BYTES, *tiny.sizes)  # one batch held at a time
    assert default.peak > max(tiny.sizes)
    assert counts[0] == counts[1] and default.used == tiny.used == 0


@pytest.mark.slow
def test_batches_waiting_for_captions_let_the_next_pages_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder
) -> None:
    """One batch slot and a caption server slower than the parser: every page is parsed while most captions
    are still to come, because a batch that only waits for captions gives its slot back. A caption backlog
    of one byte holds the next batch until the previous one's captions are in, as a held slot did."""
    import caprl_index.pipeline as pipeline
    from caprl_index.config import Settings
    from caprl_index.progress import Reporter
    from caprl_index.testing.fake_vllm import FakeVLLM

    docs = tmp_path / "docs"
    docs.mkdir()
    _picture_book(docs / "survey-photos.pdf", pages=3 * pipeline.PAGES_PER_BATCH)

    class Timeline(Reporter):
        def __init__(self) -> None:
            self.figures = self.captions = self.captions_when_all_parsed = 0

        def pages_done(self, n: int, figures: int) -> None:
            self.figures += figures
            self.captions_when_all_parsed = self.captions  # the last call is the last batch parsed

        def captions_done(self, n: int) -> None:
            self.captions += n

    monkeypatch.setattr(pipeline, "batch_slots", lambda workers: 1)
    runs = []
    with FakeVLLM(model="caprl", latency_s=0.5, max_num_seqs=1) as srv:
        for backlog in (pipeline.CAPTION_BACKLOG_BYTES, 1):
            monkeypatch.setattr(pipeline, "CAPTION_BACKLOG_BYTES", backlog)
            index = tmp_path / f"run{backlog}" / "q"  # and its own caption cache beside it
            settings = Settings(qdrant_path=index, vllm_url=[srv.url], captioner="vllm", ocr=False)
            timeline = Timeline()
            stats = pipeline.ingest([docs], settings, reporter=timeline, embedder=embedder)
            assert stats.files_failed == 0 and stats.files_indexed == 1
            assert timeline.captions == timeline.figures == stats.figures == 3 * pipeline.PAGES_PER_BATCH
            assert stats.captions_by_source == {"vllm": stats.figures} and stats.cache_hits == 0  # all served
            runs.append((timeline.captions_when_all_parsed, stats.points, stats.figures))
    (loose, points, _), (tight, tight_points, _) = runs
    assert points == tight_points
    batch = pipeline.PAGES_PER_BATCH  # one figure a page
    # Holding its slot until its captions are in, a batch would keep the last one from parsing until the
    # first two batches' captions were all in; given back, the last batch parses while they are captioned.
    assert loose < 2 * batch, runs
    # With no room in the backlog, a batch waits for the previous one's captions before the next can parse.
    assert tight >= batch, runs


@pytest.mark.slow
def test_a_failing_file_stops_its_other_batches_before_it_is_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder
) -> None:
    """A batch of a file fails while another batch of it is still parsing: that one is stopped before the file's
    partial points are removed, instead of writing its own afterwards (points of a failed file, which
    `status` and the next ingest would not know about). A second, slower file keeps the run going."""
    import caprl_index.pipeline as pipeline
    from caprl_index.config import Settings
    from caprl_index.errors import CorruptFile
    from caprl_index.store import PointFilter, QdrantStore

    docs = tmp_path / "docs"
    docs.mkdir()
    _picture_book(docs / "failing.pdf", pages=2 * pipeline.PAGES_PER_BATCH)
    _picture_book(docs / "slow.pdf", pages=pipeline.PAGES_PER_BATCH)
    real = pipeline._Run._in_pool
    stopped = []

    async def in_pool(self, fn, *args):  # type: ignore[no-untyped-def]
        if fn is pipeline.parse_batch:
            name, start = Path(args[0].file.path).name, args[1]
            if name == "failing.pdf" and start > 0:
                raise CorruptFile(args[0].file.path, "page 9 is broken")
            try:
                await asyncio.sleep(1.5 if name == "failing.pdf" else 4.0)  # still parsing when its sibling fails
            except asyncio.CancelledError:
                stopped.append(name)
                raise
        return await real(self, fn, *args)

    monkeypatch.setattr(pipeline._Run, "_in_pool", in_pool)
    settings = Settings(qdrant_path=tmp_path / "q", captioner="none", ocr=False)
    stats = pipeline.ingest([docs], settings, embedder=embedder)
    assert stats.files_failed == 1 and stats.files_indexed == 1
    assert [Path(f.path).name for f in stats.failures] == ["failing.pdf"] and "page 9" in stats.failures[0].reason
    assert stopped == ["failing.pdf"]
    store = QdrantStore(settings, create=False)
    try:
        assert store.count(PointFilter(file_paths=(str(docs / "failing.pdf"),))) == 0
        assert store.count(PointFilter(file_paths=(str(docs / "slow.pdf"),))) > 0
    finally:
        store.close()


def _picture_book(path: Path, pages: int) -> None:
    """A PDF of `pages` pages, each with a paragraph and one photo-like picture (a figure to caption)."""
    import numpy as np
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        page.insert_text((72, 72), f"Site {i + 1}: the survey team photographed the north wall before repairs.")
        rng = np.random.default_rng(i)
        y, x = np.mgrid[0:240, 0:360]
        rgb = np.stack([(x + 40 * i) % 256, (y * 2) % 256, rng.integers(0, 256, (240, 360))], -1).astype(np.uint8)
        pix = pymupdf.Pixmap(pymupdf.csRGB, 360, 240, rgb.tobytes(), False)
        page.insert_image(pymupdf.Rect(72, 120, 432, 360), pixmap=pix)
    doc.save(path)
    doc.close()
