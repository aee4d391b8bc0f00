"""The sampler of ``bench.big_data``: every process's memory and CPU, and the disk, over time.

``MemorySampler`` follows the processes it is given and all their descendants (labelled by
their nearest root: ``provider-1 > training child``), every ``interval`` seconds: VmRSS,
RssAnon, RssFile, RssShmem and VmHWM from ``/proc/<pid>/status`` (VmHWM is the kernel's own
peak, so spikes between samples count too), PSS from ``smaps_rollup`` and the CPU seconds from
``/proc/<pid>/stat``. ``DiskSampler`` keeps the peak space allocated under a directory.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

MB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def status_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem of a process, in MB (empty if it is gone)."""
    values: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    values[name] = int(rest.split()[0]) / 1024
    except (OSError, ValueError):
        return {}
    try:  # PSS: shared pages (TensorFlow's libraries) split between the processes mapping them
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    values["Pss"] = int(line.split()[1]) / 1024
                    break
    except (OSError, ValueError):
        pass
    return values


def mem_total_mb() -> float:
    """The machine's memory, in MB."""
    with open("/proc/meminfo") as meminfo:
        return int(meminfo.readline().split()[1]) / 1024


@dataclass
class ProcessMemory:
    label: str
    pid: int
    cmdline: str
    first_seen: float
    last_seen: float = 0.0
    samples: int = 0
    peak_rss_mb: float = 0.0
    peak_anon_mb: float = 0.0
    peak_pss_mb: float = 0.0
    file_at_peak_mb: float = 0.0
    hwm_mb: float = 0.0  # VmHWM: the kernel's peak RSS, last read while the process lived
    cpu_s: float = 0.0  # user + system CPU seconds, at the last sample
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, VmRSS MB)
    cpu_timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, CPU s)

    def observe(self, at: float, values: dict[str, float], cpu: float) -> None:
        rss = values.get("VmRSS", 0.0)
        if not self.cpu_timeline or cpu - self.cpu_timeline[-1][1] >= 0.1:
            self.cpu_timeline.append((round(at, 2), round(cpu, 2)))
        self.cpu_s = cpu
        self.samples += 1
        self.last_seen = at
        self.hwm_mb = max(self.hwm_mb, values.get("VmHWM", 0.0))
        self.peak_anon_mb = max(self.peak_anon_mb, values.get("RssAnon", 0.0))
        self.peak_pss_mb = max(self.peak_pss_mb, values.get("Pss", 0.0))
        if rss >= self.peak_rss_mb:
            self.peak_rss_mb = rss
            self.file_at_peak_mb = values.get("RssFile", 0.0) + values.get("RssShmem", 0.0)
        if not self.timeline or abs(self.timeline[-1][1] - rss) >= 1.0:
            self.timeline.append((round(at, 2), round(rss, 1)))

    @property
    def peak_mb(self) -> float:
        return max(self.peak_rss_mb, self.hwm_mb)

    def peak_between(self, start: float, end: float) -> float | None:
        """Highest sampled VmRSS in [start, end) (within 1 MB), None if not alive then."""
        if self.last_seen < start or self.first_seen >= end:
            return None
        carried = [rss for at, rss in self.timeline if at <= start][-1:]
        inside = [rss for at, rss in self.timeline if start < at < end]
        return max(carried + inside) if carried + inside else None

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used in [start, end) (within 0.1 s)."""

        def at(moment: float) -> float:
            return max([cpu for when, cpu in self.cpu_timeline if when <= moment], default=0.0)

        return max(0.0, min(at(end), self.cpu_s) - at(start))


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, start time, CPU seconds) of every process on the machine."""
    table: dict[int, tuple[int, str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        table[int(entry.name)] = (int(fields[1]), fields[19], cpu)
    return table


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            return stream.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _child_kind(parent_label: str, cmdline: str) -> str:
    if "resource_tracker" in cmdline:
        return "resource tracker"
    if "daig.sandbox" in cmdline or "multiprocessing" in cmdline:
        if parent_label.startswith("provider"):
            return "training child"
        if parent_label == "aggregator":
            return "evaluation child"
        return "spawned child"
    return Path(cmdline.split(" ", 1)[0]).name or "child"


class MemorySampler(threading.Thread):
    """Samples the roots it is given and all their descendants until ``stop()``."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.interval = interval
        self.began = time.monotonic()
        self.began_wall = time.time()
        self._roots: dict[int, str] = {}
        self._seen: dict[tuple[int, str], ProcessMemory] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add_root(self, pid: int, label: str) -> None:
        with self._lock:
            self._roots[pid] = label
        self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        with self._lock:
            table = _proc_table()
            at = time.monotonic() - self.began
            for pid, label in self._tracked(table).items():
                key = (pid, table[pid][1])
                values = status_mb(pid)
                if not values:
                    continue
                record = self._seen.get(key)
                if record is None:
                    record = self._seen[key] = ProcessMemory(label, pid, _cmdline(pid)[:200], at)
                record.observe(at, values, table[pid][2])

    def _tracked(self, table: dict[int, tuple[int, str, float]]) -> dict[int, str]:
        """Every live root and descendant, labelled by its nearest root ('api > ...')."""
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        tracked: dict[int, str] = {}
        stack = [(pid, label) for pid, label in self._roots.items() if pid in table]
        while stack:
            pid, label = stack.pop()
            tracked[pid] = label
            for child in children.get(pid, []):
                if child in self._roots:
                    continue
                known = next((r.label for k, r in self._seen.items() if k[0] == child), None)
                child_label = known or f"{label} > {_child_kind(label, _cmdline(child))}"
                stack.append((child, child_label))
        return tracked

    def records(self) -> list[ProcessMemory]:
        with self._lock:
            records = sorted(self._seen.values(), key=lambda r: (r.label, r.first_seen))
        counts: dict[str, int] = {}
        labelled = []
        for record in records:  # a recycled training child is "... #2"
            counts[record.label] = counts.get(record.label, 0) + 1
            count = counts[record.label]
            labelled.append(
                replace(record, label=f"{record.label} #{count}" if count > 1 else record.label)
            )
        return labelled


class DiskSampler(threading.Thread):
    """The peak space allocated under a directory, checked every ``interval`` seconds."""

    def __init__(self, root: Path, interval: float = 1.0) -> None:
        super().__init__(name="disk-sampler", daemon=True)
        self.root, self.interval = root, interval
        self.peak_bytes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_bytes = max(self.peak_bytes, allocated_bytes(self.root))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.peak_bytes = max(self.peak_bytes, allocated_bytes(self.root))


def allocated_bytes(root: Path) -> int:
    """Space the files under ``root`` take on disk (st_blocks), tolerating files that vanish."""
    total = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total
