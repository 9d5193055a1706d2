"""`kustomize build` of deploy/k8s, shared by the deployment tests (kustomize is installed
into .cache/bin by `make setup`, through deploy/k8s/ensure-kustomize.sh)."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZE = ROOT / ".cache" / "bin" / "kustomize"
OVERLAYS = ["dev", "production"]
ADAPTER_DIRS = sorted(p.name for p in (K8S / "adapters").iterdir() if p.is_dir())


@cache
def kustomize() -> Path:
    subprocess.run(["bash", str(K8S / "ensure-kustomize.sh")], check=True, timeout=900)
    return KUSTOMIZE


@cache
def build(directory: str) -> tuple[dict[str, Any], ...]:
    """The resources `kustomize build deploy/k8s/<directory>` outputs."""
    out = subprocess.run(
        [str(kustomize()), "build", str(K8S / directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(resources: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def settings_class(name: str) -> type:
    """The settings class a deployed process reads its environment with."""
    if name == "intake":
        from intake.settings import IntakeSettings

        return IntakeSettings
    if name == "assignment":
        from assignment.settings import AssignmentSettings

        return AssignmentSettings
    if name == "notification":
        from notification.bootstrap import NotificationSettings

        return NotificationSettings
    if name == "web":
        from web.settings import WebSettings

        return WebSettings
    from adapter_sdk import discovery

    return discovery.load(name.removeprefix("adapter-").replace("-", "_")).Config
