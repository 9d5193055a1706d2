"""Memory and CPU time of a running process, read from Linux's /proc (for the benchmarks'
per-process figures)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def parse_vmrss_mb(status: str, field_name: str = "VmRSS") -> float | None:
    """`VmRSS` (or another `kB` field such as `VmHWM`) of a /proc/<pid>/status text, in MB."""
    for line in status.splitlines():
        if line.startswith(field_name + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) / 1024
    return None


def process_memory_mb(pid: int) -> dict[str, float | None]:
    """Current (VmRSS) and peak (VmHWM) resident memory of `pid`, in MB (None if gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {"rss": None, "peak": None}
    return {"rss": parse_vmrss_mb(status, "VmRSS"), "peak": parse_vmrss_mb(status, "VmHWM")}


def parse_stat_cpu_seconds(stat: str, clock_ticks: int) -> float | None:
    """utime + stime of a /proc/<pid>/stat line, in seconds (the command name, in parentheses,
    may itself contain spaces or parentheses: fields are counted after the last ')')."""
    try:
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / clock_ticks
    except (IndexError, ValueError):
        return None


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) `pid` has used so far, in seconds (None if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return parse_stat_cpu_seconds(stat, os.sysconf("SC_CLK_TCK"))


def cpu_deltas(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> dict[str, float | None]:
    """CPU seconds used between two snapshots, per process present in `after`."""
    out: dict[str, float | None] = {}
    for name, end in after.items():
        start = before.get(name)
        out[name] = None if start is None or end is None else max(0.0, end - start)
    return out


def parse_stat(stat: str) -> tuple[int, list[str]] | None:
    """(parent pid, fields after the command name) of a /proc/<pid>/stat line."""
    try:
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[1]), fields
    except (IndexError, ValueError):
        return None


def process_tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of `pid` and of its descendants, live or already waited for (a server whose
    work runs in child processes: Keycloak's launcher and its JVM, PostgreSQL's backends),
    in seconds (None if `pid` is gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parsed = parse_stat((entry / "stat").read_text())
        except OSError:
            continue
        if parsed is not None:
            children.setdefault(parsed[0], []).append(int(entry.name))
            stats[int(entry.name)] = parsed[1]
    if pid not in stats:
        return None
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is not None:  # utime, stime, cutime, cstime
            total += sum(int(f) for f in fields[11:15])
        todo += children.get(current, [])
    return total / ticks
