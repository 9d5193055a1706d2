"""deploy/k8s builds with kustomize, its generated part is up to date, and every resource is
valid: standard kinds against the Kubernetes schemas (kubernetes-validate, strict: an unknown
field fails), Strimzi, KEDA and CloudNativePG kinds against their CRDs (deploy/k8s/crds)."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from devstack import k8s
from tests.deploy.support import ADAPTER_DIRS, K8S, build

#: The oldest Kubernetes the manifests must run on.
KUBERNETES_VERSION = "1.31.0"
CRD_FILES = sorted((K8S / "crds").glob("*.yaml"))


def test_the_generated_files_are_up_to_date():
    for relative, text in k8s.render().items():
        path = K8S / relative
        assert path.is_file(), f"{relative} missing: run `uv run guichet-dev k8s-generate`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{relative} is stale: run `uv run guichet-dev k8s-generate`"
        )


def test_every_installed_adapter_has_its_directory():
    from adapter_sdk import discovery

    assert set(discovery.available()) <= set(k8s.deployed_agencies()), "add it to ADAPTER_PORTS"
    expected = {a.replace("_", "-") for a in k8s.deployed_agencies()}
    assert set(ADAPTER_DIRS) == expected


@pytest.mark.parametrize("adapter", ADAPTER_DIRS)
def test_an_adapter_builds_alone(adapter):
    resources = build(f"adapters/{adapter}")
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Service", "Job", "KafkaUser", "KafkaTopic", "NetworkPolicy"} <= kinds
    for overlay in ("dev", "production"):
        text = (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
        assert f"../../adapters/{adapter}" in text, (overlay, adapter)


def _strict(schema: Any) -> Any:
    """The CRD schema, refusing unknown fields where the API server would silently drop them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict schema of its spec."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in CRD_FILES:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def test_every_crd_copy_is_documented():
    readme = (K8S / "crds" / "README.md").read_text()
    assert CRD_FILES
    for path in CRD_FILES:
        assert path.name in readme or path.name.split("-Crd-")[-1] in readme, path.name


def test_every_resource_is_valid(overlay):
    for resource in overlay:
        key = (resource["apiVersion"], resource["kind"])
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        group = resource["apiVersion"].rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            assert key in crd_schemas(), f"{name}: no CRD schema for {key} in deploy/k8s/crds"
            validator = jsonschema.Draft7Validator(crd_schemas()[key])
            errors = sorted(validator.iter_errors(resource), key=str)
            assert not errors, f"{name}: " + "; ".join(e.message for e in errors[:5])
        else:
            try:
                kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {exc.message} at {list(exc.path)}")
