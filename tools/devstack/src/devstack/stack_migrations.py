"""A stack's databases brought to head before its services start, as the Kubernetes
migration Job does (`devstack.k8s.migration_job`): the services then run with
`MIGRATE_AT_START=false` and never load Alembic, as in a pod (`Stack(migrate_first=True)`,
what the bench uses)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from devstack.procs import ServiceProcess

#: The environment of a service whose database `migrate_all` brought to head.
NOT_AT_START = {"MIGRATE_AT_START": "false"}


def migrations_package(service: str) -> str | None:
    """The package whose migrations a service's database runs (the Kubernetes Job's
    argument): the adapters share `adapter_sdk`'s; None for a process without a database."""
    if service in ("intake", "assignment", "notification", "web"):
        return service
    return "adapter_sdk" if service.startswith("adapter-") else None


def migrate_all(processes: Mapping[str, ServiceProcess], cwd: Path, timeout: float) -> None:
    """Bring every process's database to head with the Job's own command (`python -m
    guichet_runtime.migrations upgrade <package>`, as the database's owner: the process's
    MIGRATION_DATABASE_URL, else its DATABASE_URL), all at once; RuntimeError naming the
    service and its output if one fails."""
    running = {}
    for name, process in processes.items():
        package = migrations_package(name)
        if package is None or "DATABASE_URL" not in process.env:
            continue
        running[name] = subprocess.Popen(
            [sys.executable, "-m", "guichet_runtime.migrations", "upgrade", package],
            env={**os.environ, **process.env},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    failed = []
    for name, job in running.items():
        output, _ = job.communicate(timeout=timeout)
        if job.returncode != 0:
            failed.append(f"{name}: {output.decode(errors='replace')[-2000:]}")
    if failed:
        raise RuntimeError("migrations failed:\n" + "\n".join(failed))
