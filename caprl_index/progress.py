"""Progress display: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Any

from caprl_index.terminal import markup, safe

log = logging.getLogger("caprl_index")


class Reporter:
    """Receives pipeline events. The base class logs; `RichReporter` draws bars."""

    def start(self, files: int) -> None:
        log.info("ingesting %d file(s)", files)

    def file_started(self, path: str, pages: int) -> None:
        log.info("%s: %d page(s)", safe(path), pages)

    def pages_done(self, n: int, figures: int) -> None:
        pass

    def captions_done(self, n: int) -> None:
        pass

    def file_done(self, path: str, ok: bool, detail: str = "") -> None:
        if ok:
            log.info("%s: indexed%s", safe(path), f" ({safe(detail)})" if detail else "")
        else:
            log.warning("%s: FAILED (%s)", safe(path), safe(detail))

    def warn(self, message: str) -> None:
        log.warning("%s", safe(message, newlines=True))

    def stop(self) -> None:
        pass


class RichReporter(Reporter):
    """Three bars: files, pages, captions."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def start(self, files: int) -> None:
        p = self._progress
        self._tasks = {
            "files": p.add_task("files", total=files),
            "pages": p.add_task("pages", total=0),
            "captions": p.add_task("captions", total=0),
        }
        p.start()

    def file_started(self, path: str, pages: int) -> None:
        task = self._tasks["pages"]
        self._progress.update(task, total=(self._progress.tasks[task].total or 0) + pages)

    def pages_done(self, n: int, figures: int) -> None:
        self._progress.advance(self._tasks["pages"], n)
        cap = self._tasks["captions"]
        self._progress.update(cap, total=(self._progress.tasks[cap].total or 0) + figures)

    def captions_done(self, n: int) -> None:
        self._progress.advance(self._tasks["captions"], n)

    def file_done(self, path: str, ok: bool, detail: str = "") -> None:
        self._progress.advance(self._tasks["files"], 1)
        if not ok:
            self.console.print(f"[red]failed[/red] {markup(path)}: {markup(detail)}")

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {markup(message, newlines=True)}")

    def stop(self) -> None:
        self._progress.stop()


def make_reporter() -> Reporter:
    """Bars on an interactive terminal, log lines when piped or in CI."""
    if sys.stderr.isatty():
        return RichReporter()
    return Reporter()
