"""RSS of a process tree over time, tagged by the pipeline stage the benchmark is in.

A sampler thread reads the RSS of this process and of each descendant every `interval_s` and tags the
sample with `stage` (set by the benchmark as it moves on). The summary gives the peak of the whole tree
per stage and the peak of each process role (parent, parser workers, the OCR process), which is where a
memory budget is won or lost, and the CPU seconds each role spent (where the cores went); `write_csv` keeps
the raw timeline for plotting.
"""

from __future__ import annotations

import contextlib
import csv
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the sampler started
    stage: str
    pid: int
    role: str
    rss: int  # bytes
    cpu: float  # user + system CPU seconds of the process so far


def _role(proc: object, me: int) -> str:
    """Name a process by what it is: the cmdline of a spawned child says which multiprocessing entry it runs."""
    pid = getattr(proc, "pid", 0)
    if pid == me:
        return "bench"
    try:
        cmd = " ".join(proc.cmdline())  # type: ignore[attr-defined]
    except Exception:
        return "other"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if _is_ocr(proc):
        return "ocr"
    if "spawn_main" in cmd:
        return "worker"
    return "subprocess"


def _is_ocr(proc: object) -> bool:
    """The OCR process names itself (its /proc comm) `caprl-ocr`."""
    try:
        return proc.name() == "caprl-ocr"  # type: ignore[attr-defined]
    except Exception:
        return False


class RssTimeline:
    """Samples the process tree's RSS every `interval_s` (0.5 s: cheap enough on 2 busy cores)."""

    def __init__(self, interval_s: float = 0.5, root_pid: int | None = None) -> None:
        import psutil

        self.proc = psutil.Process(root_pid)
        self.interval_s = interval_s
        self.stage = "idle"
        self.names: dict[int, str] = {}  # roles the benchmark knows better than the cmdline (its e2e child)
        self.samples: list[Sample] = []
        self._roles: dict[int, str] = {}
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-timeline", daemon=True)

    def _run(self) -> None:
        me = self.proc.pid
        while not self._stop.is_set():
            t = time.perf_counter() - self._start
            stage = self.stage
            for proc in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(Exception):  # a worker may exit between listing and reading
                    role = self.names.get(proc.pid) or _role(proc, me)
                    if role == "other":  # an exiting process cannot be read: it keeps the role it had
                        role = self._roles.get(proc.pid, role)
                    self._roles[proc.pid] = role  # (the OCR process reads as a worker until it names itself)
                    times = proc.cpu_times()
                    cpu = times.user + times.system
                    self.samples.append(Sample(t, stage, proc.pid, role, proc.memory_info().rss, cpu))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def tree_peaks(self) -> dict[str, int]:
        """Peak of the whole tree's RSS (summed per tick) for each stage, in stage order. In `e2e` stages the
        ingest runs in a child process and the tree is that child's: this script's own process is left out."""
        ticks: dict[tuple[float, str], int] = {}
        for s in self.samples:
            if s.role == "bench" and s.stage.startswith("e2e"):
                continue
            ticks[(s.t, s.stage)] = ticks.get((s.t, s.stage), 0) + s.rss
        peaks: dict[str, int] = {}
        for (_, stage), total in ticks.items():
            peaks[stage] = max(peaks.get(stage, 0), total)
        return peaks

    def role_peaks(self, run: str) -> dict[str, tuple[int, int]]:
        """Per role in the stages of `run` (`e2e` covers `e2e:split` and `e2e:drain`): (peak RSS of any one
        process of that role, number of distinct processes)."""
        peak: dict[str, int] = {}
        pids: dict[str, set[int]] = {}
        for s in self.samples:
            if s.stage.split(":")[0] != run:
                continue
            peak[s.role] = max(peak.get(s.role, 0), s.rss)
            pids.setdefault(s.role, set()).add(s.pid)
        return {role: (peak[role], len(pids[role])) for role in peak}

    def role_cpu(self, run: str) -> dict[str, float]:
        """CPU seconds per role in `run`, summed over its processes (each read at its last sample, so a
        process that exits loses at most one interval): where the cores went. This script's own process is
        left out (its CPU is the benchmark's, counted since it started)."""
        last: dict[int, Sample] = {}
        for s in self.samples:
            if s.stage.split(":")[0] == run and s.role != "bench":
                last[s.pid] = s
        cpu: dict[str, float] = {}
        for s in last.values():
            cpu[s.role] = cpu.get(s.role, 0.0) + s.cpu
        return cpu

    def report(self) -> str:
        mib = 2**20
        lines = ["peak RSS of the process tree by stage:"]
        lines += [f"  {stage:<14} {total / mib:7.0f} MiB" for stage, total in self.tree_peaks().items()]
        for prefix in sorted({s.stage.split(":")[0] for s in self.samples}):
            roles = self.role_peaks(prefix)
            parts = [f"{role} {rss / mib:.0f} MiB (x{n})" for role, (rss, n) in sorted(roles.items())]
            lines.append(f"  per process in {prefix}: " + ", ".join(parts))
            cpu = {role: s for role, s in sorted(self.role_cpu(prefix).items()) if s >= 0.05}
            if cpu:
                spent = ", ".join(f"{role} {s:.1f} s" for role, s in cpu.items())
                lines.append(f"  CPU time in {prefix}: {spent} (total {sum(cpu.values()):.1f} s)")
        return "\n".join(lines)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["t_s", "stage", "pid", "role", "rss_mib", "cpu_s"])
            for s in self.samples:
                out.writerow([f"{s.t:.2f}", s.stage, s.pid, s.role, f"{s.rss / 2**20:.1f}", f"{s.cpu:.2f}"])
