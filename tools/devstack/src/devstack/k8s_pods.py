"""Pieces of every pod of deploy/k8s (devstack.k8s uses them): the containers' lockdown, the
probes, and the resources requested and limited, with the measurements behind them."""

from __future__ import annotations

from typing import Any


def security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


#: Measured RSS ≈ 100–135 MB per process (docs/performance.md): the request covers the upper
#: figure with headroom, the limit absorbs peaks (PDF letters, indicators, large batches) and
#: still stops a leak. One event loop uses at most one core: the CPU limit is one core, the
#: request a quarter (≈ 60 ms of CPU per file: ≈ 4 files/s per replica guaranteed).
RESOURCES = {
    "requests": {"cpu": "250m", "memory": "192Mi"},
    "limits": {"cpu": "1", "memory": "384Mi"},
}
JOB_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


def probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


RESOURCES_NOTE = (
    '# Resources (docs/operations.md, "Scaling"): measured RSS is 100-135 MB per process, so\n'
    "# 192Mi requested and a 384Mi limit for peaks (PDF letters, indicators, large batches);\n"
    "# one event loop uses at most one core, so a 1-core limit and a 250m request (about 60 ms\n"
    "# of CPU per file in the busiest service: 4 files/s guaranteed per replica).\n"
)
