"""`kustomize build` of deploy/k8s, shared by the deployment tests (kustomize is installed
into .cache/bin by `make setup`, through deploy/k8s/ensure-kustomize.sh), and what a deployed
process's environment is made of (its ConfigMaps, literal values and Secrets)."""

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


def environments(resources) -> dict[str, tuple[dict[str, str], dict[str, tuple[str, str]]]]:
    """Deployment -> (variables without the Secrets, variable -> (Secret, key))."""
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(resources, "ConfigMap")}
    result = {}
    for deployment in of_kind(resources, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        plain: dict[str, str] = {}
        for source in container.get("envFrom", []):
            plain |= configs[source["configMapRef"]["name"]]
        secrets: dict[str, tuple[str, str]] = {}
        for env in container.get("env", []):
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                secrets[env["name"]] = (ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
            elif "configMapKeyRef" in ref:
                plain[env["name"]] = configs[ref["configMapKeyRef"]["name"]][
                    ref["configMapKeyRef"]["key"]
                ]
            else:
                plain[env["name"]] = env["value"]
        result[deployment["metadata"]["name"]] = (plain, secrets)
    return result


def settings_from(name: str, variables: dict[str, str], monkeypatch) -> Any:
    with monkeypatch.context() as patch:
        for variable in (
            "ENVIRONMENT",
            "SECRET_KEY",
            "ACCESS_CODE_KEY",
            "CALLBACK_SECRET",
            "AUDIT_ANCHOR_KEY",
            "PERSONAL_DATA_KEK",
            "REPLY_ADDRESS_KEY",
            "INBOUND_SMTP_PORT",
        ):
            patch.delenv(variable, raising=False)
        for variable, value in variables.items():
            patch.setenv(variable, value)
        return settings_class(name)()
