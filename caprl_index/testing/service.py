"""For tests and benchmarks of `caprl-index serve`: a small index with real evidence images, and a live server.

`build_demo_index` writes what `ingest` writes (points through the store, crops and page renders through the
image store, file records) for a few made-up pages, without parsing documents: fast, and the images are
known exactly, so a test can check that the page shows the right crop and draws the box in the right place.
`ServeProcess` runs `caprl-index serve --port 0` as a real process and finds its address in the file the
server leaves beside the index.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caprl_index.config import Settings

PAGE_W, PAGE_H = 595.0, 842.0
RENDER_SCALE = 1.0  # render pixels per PDF point (small: fast tests)
THUMB_SCALE = 0.25
INJECTION = '<img src=x onerror="window.injected=1"><script>window.injected=2</script>'

# (file, page, kind, bbox or None, figure type, text)
DEMO: list[tuple[str, int, str, tuple[float, float, float, float] | None, str | None, str]] = [
    ("energy-report.pdf", 1, "text", None, None, "Annual energy report: electricity generation in 2023."),
    ("energy-report.pdf", 2, "text", None, None, "Solar and wind capacity grew quickly while coal plants closed."),
    ("energy-report.pdf", 2, "figure", (60.0, 380.0, 420.0, 640.0), "chart",
     "Bar chart: installed solar capacity by year in gigawatts, 2015 to 2023, rising every year."),
    ("energy-report.pdf", 3, "text", None, None, "Battery storage prices fell by half; grid operators bought more."),
    ("health-survey.pdf", 1, "text", None, None, f"National health survey of adults. {INJECTION}"),
    ("health-survey.pdf", 2, "figure", (300.0, 100.0, 560.0, 300.0), "infographic",
     "Infographic: share of adults who smoke daily, by age group and sex."),
    ("roadmap-deck.pptx", 1, "page", (0.0, 0.0, PAGE_W, PAGE_H), "slide",
     "Product roadmap: launch of the mobile banking app in spring."),
]  # fmt: skip


@dataclass(frozen=True)
class DemoIndex:
    folder: Path  # where the (made-up) source files live
    point_ids: dict[tuple[str, int, str], str]  # (file name, page, kind) -> point id
    file_sha: dict[str, str]  # file name -> sha256


def _render(page: int, boxes: list[tuple[float, float, float, float]], scale: float) -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (round(PAGE_W * scale), round(PAGE_H * scale)), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(range(60, 360, 24)):  # grey "text lines"
        draw.rectangle((50 * scale, line * scale, (540 - 17 * (i % 3)) * scale, (line + 8) * scale), fill=(190,) * 3)
    for x0, y0, x1, y1 in boxes:  # a "chart": coloured bars
        draw.rectangle((x0 * scale, y0 * scale, x1 * scale, y1 * scale), outline=(40, 40, 40), width=2)
        for b in range(5):
            left = x0 + (x1 - x0) * (0.1 + 0.17 * b)
            draw.rectangle(
                (
                    left * scale,
                    (y1 - (y1 - y0) * 0.15 * (b + 1)) * scale,
                    (left + (x1 - x0) * 0.12) * scale,
                    y1 * scale,
                ),
                fill=(30 + 40 * b, 90, 200 - 30 * b),
            )
    return image


def _encoded(image: Any, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def build_demo_index(settings: Settings, folder: Path, embedder: Any = None) -> DemoIndex:
    """Write the DEMO pages into the configured (embedded) index and image store; returns their ids."""
    from caprl_index.embedding.query import open_query_encoder
    from caprl_index.evidence import open_image_store
    from caprl_index.store import point_id

    images = open_image_store(settings)
    assert images is not None, "the demo index needs CAPRL_KEEP_IMAGES on"
    folder.mkdir(parents=True, exist_ok=True)
    sha = {name: hashlib.sha256(name.encode()).hexdigest() for name in {row[0] for row in DEMO}}
    _write_pages(images, sha)  # page renders first: a point never refers to a missing image
    chunks = [_demo_chunk(i, folder, sha, images) for i in range(len(DEMO))]
    embedder = embedder or open_query_encoder(settings)
    assert embedder is not None, "the packaged model embeds the demo pages"
    vectors = embedder.embed([c.text for c in chunks])
    _write_points(settings, chunks, vectors)
    ids = {(c.file.name, c.page.number, c.kind): point_id(c) for c in chunks}
    return DemoIndex(folder=folder, point_ids=ids, file_sha=sha)


def _write_pages(images: Any, sha: dict[str, str]) -> None:
    from caprl_index.evidence import page_key

    for name, number in {(name, page) for name, page, *_ in DEMO}:
        boxes = [b for n, p, kind, b, *_ in DEMO if (n, p) == (name, number) and kind == "figure" and b]
        images.put(page_key(sha[name], number), _encoded(_render(number, boxes, RENDER_SCALE), "WEBP"))
        images.put(page_key(sha[name], number, thumb=True), _encoded(_render(number, boxes, THUMB_SCALE), "WEBP"))


def _demo_chunk(i: int, folder: Path, sha: dict[str, str], images: Any) -> Any:
    """DEMO row `i` as the chunk ingest would make; a figure's crop goes to the image store."""
    from caprl_index.evidence import crop_key
    from caprl_index.models import Caption, Chunk, Figure, Page, SourceFile

    name, number, kind, bbox, ftype, text = DEMO[i]
    figure = caption = None
    if kind != "text":
        assert bbox is not None
        crop = _render(number, [bbox], RENDER_SCALE).crop(tuple(round(v * RENDER_SCALE) for v in bbox))
        data = _encoded(crop, "PNG")
        figure = Figure(
            kind=kind, figure_type=ftype or "other", bbox=bbox, image=data, mime="image/png",  # type: ignore[arg-type]
            image_sha256=hashlib.sha256(data).hexdigest(), region_index=0, ocr_text=text,
        )  # fmt: skip
        images.put(crop_key(figure.image_sha256, "image/png"), data)
        caption = Caption(text=text, source="vllm", model="caprl", prompt_version="demo")
    src = SourceFile(path=str(folder / name), sha256=sha[name], size=1000 + i)
    page = Page(number=number, width=PAGE_W, height=PAGE_H, text=text if kind == "text" else "")
    return Chunk(text=text, file=src, page_count=3, page=page, kind=kind, chunk_index=0, figure=figure,  # type: ignore[arg-type]
                 caption=caption, region_index=0 if figure else -1)  # fmt: skip


def _write_points(settings: Settings, chunks: list[Any], vectors: list[list[float]]) -> None:
    """The chunks' points (with their image URIs) and one complete record per file."""
    from caprl_index.evidence import crop_key, page_key
    from caprl_index.store import FileRecord, NewPoint, QdrantStore, payload, point_id
    from caprl_index.store.sparse import document_vector

    points = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        p = payload(chunk)
        p["page_image_uri"] = page_key(chunk.file.sha256, chunk.page.number)
        p["image_uri"] = crop_key(chunk.figure.image_sha256, "image/png") if chunk.figure else None
        points.append(NewPoint(point_id(chunk), vector, document_vector(chunk.text), p))
    store = QdrantStore(settings)
    try:
        store.ensure_collection(len(vectors[0]))
        store.upsert(points)
        for path in sorted({c.file.path for c in chunks}):
            mine = [c for c in chunks if c.file.path == path]
            figures = sum(1 for c in mine if c.figure)
            store.put_record(
                FileRecord(file_path=path, file_sha256=mine[0].file.sha256, complete=True, page_count=3,
                           points=len(mine), figures=figures, caption_sources={"vllm": figures} if figures else {})
            )  # fmt: skip
    finally:
        store.close()


class ServeProcess:
    """`caprl-index serve --port 0` in a child process with `env` (CAPRL_* settings); `url` once it answers."""

    def __init__(self, env: dict[str, str], *, args: tuple[str, ...] = (), start_timeout: float = 120.0) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CAPRL_")}  # only what is given
        self.env = {**inherited, "CAPRL_CONFIG": os.devnull, "HF_HUB_OFFLINE": "1", **env}
        self.args = args
        self.start_timeout = start_timeout
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a chatty server must never block on a full one. Closed with the object.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    def __enter__(self) -> ServeProcess:
        return self.start()

    def start(self) -> ServeProcess:
        from caprl_index.service.client import serve_file

        qdrant_path = Path(self.env["CAPRL_QDRANT_PATH"])
        marker = serve_file(Settings(qdrant_path=qdrant_path, collection=self.env.get("CAPRL_COLLECTION", "caprl")))
        cmd = [sys.executable, "-m", "caprl_index.cli", "serve", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log()}")
            info = _read_json(marker)
            if info.get("pid") == self.proc.pid:  # ours, not one a previous server left
                self.url = str(info["url"])
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not start within {self.start_timeout} s: {self.log()}")

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> tuple[int | None, str]:
        """SIGTERM, wait; the exit code and what it wrote to stderr."""
        if self.proc is None:
            return None, ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self.log()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
