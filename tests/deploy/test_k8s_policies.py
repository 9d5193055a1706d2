"""Policies every overlay keeps: probes, requests and limits, non-root, read-only root, no
capability, seccomp, no service-account token, no Secret in git, settings the code reads,
and only the pages and intake reachable from the Ingress."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from devstack import k8s_identity
from guichet_runtime.auth.settings import AuthSettings
from tests.deploy.support import build, of_kind, settings_class

#: Variables that exist only for the manifests (DATABASE_URL is built from the password).
PLATFORM_ONLY = {"DATABASE_PASSWORD", "MIGRATION_DATABASE_PASSWORD", "PYTHONDONTWRITEBYTECODE"}
#: Read by OpenTelemetry's SDK itself (the sampler: guichet_runtime.telemetry.tracer_provider).
OPENTELEMETRY_STANDARD = {"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}
#: The services whose routes verify bearer tokens (guichet_runtime.auth, read from OIDC_*).
TOKEN_VERIFIERS = ("intake", "assignment", "notification", "adapter-")
OIDC_VARIABLES = {f"OIDC_{field.upper()}" for field in AuthSettings.model_fields}


def pod_specs(resources) -> list[tuple[str, dict[str, Any]]]:
    pods = [
        (f"{r['kind']}/{r['metadata']['name']}", r["spec"]["template"]["spec"])
        for r in resources
        if r["kind"] in ("Deployment", "Job")
    ]
    pods += [
        (f"CronJob/{r['metadata']['name']}", r["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for r in of_kind(resources, "CronJob")
    ]
    return pods


@pytest.mark.parametrize(
    ("service", "schedule"), [("intake", "15 3 * * *"), ("assignment", "30 3 * * *")]
)
def test_the_retention_job_runs_nightly_as_the_services_run_time_role(overlay, service, schedule):
    """docs/data-protection.md, "Retention" and "Audit trail": `intake retention` and
    `assignment retention` every night, with the service's settings and run-time role (never
    the owner's), one run at a time."""
    (job,) = [
        c for c in of_kind(overlay, "CronJob") if c["metadata"]["name"] == f"{service}-retention"
    ]
    spec = job["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (
        schedule,
        "Europe/Paris",
        "Forbid",
    )
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [service, "retention"]
    assert container["envFrom"] == [{"configMapRef": {"name": f"{service}-settings"}}]
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{service}-db"
    assert env["DATABASE_URL"]["value"].startswith(f"postgresql+asyncpg://{service}:")


def test_every_container_is_locked_down(overlay):
    specs = pod_specs(overlay)
    assert specs
    for name, pod in specs:
        assert pod["automountServiceAccountToken"] is False, name
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security.get("runAsNonRoot", pod_security["runAsNonRoot"]) is True, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{name}: a writable /tmp (emptyDir)"


def test_every_long_running_container_has_probes(overlay):
    for deployment in of_kind(overlay, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            live, ready = container["livenessProbe"], container["readinessProbe"]
            assert live["httpGet"]["path"] == "/health/live", deployment["metadata"]["name"]
            assert ready["httpGet"]["path"] == "/health/ready", deployment["metadata"]["name"]


def test_service_accounts_carry_no_token(overlay):
    accounts = of_kind(overlay, "ServiceAccount")
    assert accounts
    assert all(a["automountServiceAccountToken"] is False for a in accounts)
    names = {a["metadata"]["name"] for a in accounts}
    for name, pod in pod_specs(overlay):
        assert pod["serviceAccountName"] in names, name


def test_secrets_are_referenced_never_inlined(overlay):
    assert not of_kind(overlay, "Secret")
    for name, pod in pod_specs(overlay):
        for container in pod["containers"]:
            from_secrets = {
                f"$({e['name']})"
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            for env in container.get("env", []):
                if "value" in env:  # a literal: no secret, no credentials in a URL
                    assert "PASSWORD" not in env["name"] and "SECRET" not in env["name"], name
                    userinfo = env["value"].partition("://")[2].partition("@")
                    # A URL's password is a variable read from a Secret (or there is none: the
                    # migration Job's DATABASE_URL only names the role it grants the tables).
                    password = userinfo[0].partition(":")[2] if userinfo[1] else ""
                    assert not password or password in from_secrets, (name, env["name"])
    for config in of_kind(overlay, "ConfigMap"):
        for key in config["data"]:
            assert "PASSWORD" not in key and "SECRET" not in key, config["metadata"]["name"]


def test_every_variable_set_is_a_setting_the_code_reads(production):
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(production, "ConfigMap")}
    for deployment in of_kind(production, "Deployment"):
        name = deployment["metadata"]["name"]
        known = {field.upper() for field in settings_class(name).model_fields}
        if name.startswith(TOKEN_VERIFIERS):
            known |= OIDC_VARIABLES
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        names = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            names |= set(configs[source["configMapRef"]["name"]])
        unknown = names - known - PLATFORM_ONLY - OPENTELEMETRY_STANDARD
        assert not unknown, f"{name} sets variables its settings do not read: {unknown}"


def test_only_the_pages_and_intake_are_reachable_from_the_ingress(production):
    ingress = of_kind(production, "Ingress")
    backends = {
        path["backend"]["service"]["name"]
        for i in ingress
        for rule in i["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"web", "intake"}
    assert all(i["spec"]["tls"] for i in ingress)
    opened = set()
    for policy in of_kind(production, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                selector = peer.get("namespaceSelector", {}).get("matchLabels", {})
                if selector.get("kubernetes.io/metadata.name") == "ingress-nginx":
                    opened.add(
                        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                    )
    assert opened == {"web", "intake"}


def test_the_system_starts_from_default_deny(production):
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(production, "NetworkPolicy")}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    egress = policies["default-deny-egress-of-the-system"]
    assert egress["policyTypes"] == ["Egress"] and "egress" not in egress
    for deployment in of_kind(production, "Deployment"):
        name = deployment["metadata"]["name"]
        assert name in policies, f"{name} has no network policy of its own"


def test_adapters_reach_only_their_agency(production):
    """Their agency, the identity providers whose keys verify the tokens they accept (and
    that give them their own token), and intake's key service (the citizens' data keys)."""
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(production, "NetworkPolicy")}
    for deployment in of_kind(production, "Deployment"):
        name = deployment["metadata"]["name"]
        if not name.startswith("adapter-"):
            continue
        egress = policies[name]["egress"]
        assert [peer for rule in egress for peer in rule["to"]] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "intake"}}},
            {"ipBlock": {"cidr": "203.0.113.0/24"}},
            {"ipBlock": {"cidr": k8s_identity.IDP_CIDR}},
        ], name
        assert egress[0]["ports"] == [{"protocol": "TCP", "port": 8000}], name
        assert egress[-1]["ports"] == [{"protocol": "TCP", "port": 443}], name


def test_production_spreads_and_keeps_replicas_through_a_drain(production):
    budgets = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for p in of_kind(production, "PodDisruptionBudget")
    }
    scaled = {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"] for s in of_kind(production, "ScaledObject")
    }
    for deployment in of_kind(production, "Deployment"):
        name = deployment["metadata"]["name"]
        assert name in budgets, name
        pod = deployment["spec"]["template"]["spec"]
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }, name
        if name in scaled:  # KEDA owns the replicas
            assert "replicas" not in deployment["spec"], name
        else:
            assert deployment["spec"]["replicas"] >= 2, name


def test_dev_runs_one_replica_of_everything_without_autoscaling():
    dev = build("overlays/dev")
    assert all(d["spec"]["replicas"] == 1 for d in of_kind(dev, "Deployment"))
    assert not of_kind(dev, "ScaledObject") and not of_kind(dev, "TriggerAuthentication")


def test_every_service_with_a_database_is_migrated_by_a_job(overlay):
    jobs = {j["metadata"]["name"]: j for j in of_kind(overlay, "Job")}
    for deployment in of_kind(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if not any(e["name"] == "DATABASE_URL" for e in container.get("env", [])):
            continue
        job = jobs[f"{name}-migrate"]
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[:4] == ["python", "-m", "guichet_runtime.migrations", "upgrade"]
        package = importlib.import_module(command[4])
        assert (Path(package.__file__).parent / "migrations" / "env.py").is_file(), name
