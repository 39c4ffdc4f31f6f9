"""The CLI commands' side of a run through `caprl-index serve`: the same output as a local run.

An ingest becomes a server job; its progress is replayed into the CLI's own `Reporter` (bars on a terminal,
log lines otherwise) and its summary printed as a local run prints it. Ctrl-C stops watching, not the job.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from caprl_index.errors import CaprlError
from caprl_index.terminal import safe

if TYPE_CHECKING:
    from caprl_index.progress import Reporter
    from caprl_index.service.client import ServiceClient

EXIT_OK, EXIT_PARTIAL = 0, 1


class _Relay:
    """Turns successive job snapshots into the Reporter events a local run would have sent."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.started = False
        self.seen: dict[str, int] = {}
        self.files_from = 0  # finished files already reported
        self.warnings = 0

    def __call__(self, job: dict[str, Any]) -> None:
        p = job["progress"]
        if not self.started and (p["files_total"] or job["state"] != "queued"):
            self.reporter.start(p["files_total"])
            self.started = True
        for message in job["warnings"][self.warnings :]:
            self.reporter.warn(message)
        self.warnings = len(job["warnings"])
        pages = self._delta(p, "pages_total")
        if pages:
            self.reporter.file_started(p["current_file"] or "", pages)
        done, figures = self._delta(p, "pages_done"), self._delta(p, "captions_total")
        if done or figures:
            self.reporter.pages_done(done, figures)
        captions = self._delta(p, "captions_done")
        if captions:
            self.reporter.captions_done(captions)
        for finished in job["files"]:
            self.reporter.file_done(finished["path"], finished["ok"], finished["detail"])
        self.files_from = job["files_from"] + len(job["files"])

    def _delta(self, progress: dict[str, int], key: str) -> int:
        """How much `key` grew since the last snapshot."""
        value = int(progress[key])
        delta, self.seen[key] = value - self.seen.get(key, 0), value
        return delta


def remote_ingest(client: ServiceClient, paths: list[str], options: dict[str, Any]) -> int:
    """`ingest` through the server: start the job, show its progress, print its summary; the exit code."""
    from caprl_index.progress import make_reporter

    job = client.ingest(paths, **options)
    print(f"ingest job {job['id']} on caprl-index serve at {client.url}", file=sys.stderr)
    relay = _Relay(make_reporter())
    try:
        job = client.wait(job["id"], relay, files_from=lambda: relay.files_from)
    except KeyboardInterrupt:
        print(
            f"stopped watching: the job goes on in the server; follow it at {client.url}/v1/jobs/{job['id']}",
            file=sys.stderr,
        )
        return 130
    finally:
        if relay.started:
            relay.reporter.stop()
    if job["state"] != "done":
        raise CaprlError(f"ingest job {job['id']} {job['state']}: {job['error']}")
    summary = job["summary"]
    for line in summary["lines"]:
        print(line, file=sys.stderr)
    if summary.get("note"):
        print(summary["note"], file=sys.stderr)
    return EXIT_PARTIAL if summary["failures"] else EXIT_OK


def remote_delete(client: ServiceClient, paths: list[str]) -> int:
    """`delete` through the server: what it deleted, or that the delete waits behind a running job."""
    job = client.delete(paths)
    if job["state"] != "done":
        print(
            f"delete queued as job {job['id']} behind the job writing now; follow it at "
            f"{client.url}/v1/jobs/{job['id']}",
            file=sys.stderr,
        )
        return EXIT_OK
    deleted = job["result"]["deleted"]
    for path in deleted:
        print(f"deleted {safe(path)}")
    if not deleted:
        print("nothing indexed under " + ", ".join(safe(p) for p in paths), file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
