"""PostgreSQL on the cluster keeps least privilege (issue 13): per database an owner role that
only the migration Job uses and a run-time role the service connects as; no other role can
connect; no role can create databases or roles; the same roles as the development stack's."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from devstack import k8s_postgres
from devstack import postgres as local_postgres
from tests.deploy.support import of_kind


def the_cluster(resources) -> dict[str, Any]:
    (cluster,) = of_kind(resources, "Cluster")
    return cluster["spec"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def url_of(env: dict[str, dict[str, Any]], name: str) -> tuple[str, str, str]:
    """(user, password, database) of the URL in variable `name`."""
    parts = urlsplit(env[name]["value"])
    return parts.username or "", parts.password or "", parts.path.lstrip("/")


def secret_of(env: dict[str, dict[str, Any]], name: str) -> str:
    return env[name]["valueFrom"]["secretKeyRef"]["name"]


def test_each_service_runs_as_its_own_role_and_migrates_as_the_owner(overlay):
    roles = {r["name"]: r for r in the_cluster(overlay)["managed"]["roles"]}
    jobs = {j["metadata"]["name"]: j for j in of_kind(overlay, "Job")}
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(overlay, "ConfigMap")}
    seen = set()
    for deployment in of_kind(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        if "DATABASE_URL" not in env:
            continue
        user, password, database = url_of(env, "DATABASE_URL")
        assert user == database and password == "$(DATABASE_PASSWORD)", name
        assert roles[user]["passwordSecret"]["name"] == secret_of(env, "DATABASE_PASSWORD")
        assert "MIGRATION_DATABASE_URL" not in env, f"{name}: the owner's password stays in the Job"
        # The run-time role could not migrate: the service waits for the Job (readiness).
        assert configs[f"{name}-settings"]["MIGRATE_AT_START"] == "false", name
        owner_secret = roles[k8s_postgres.owner_role(database)]["passwordSecret"]["name"]
        for variable in env.values():
            ref = variable.get("valueFrom", {}).get("secretKeyRef", {})
            assert ref.get("name") != owner_secret, name

        job_env = env_of(jobs[f"{name}-migrate"]["spec"]["template"]["spec"]["containers"][0])
        owner, owner_password, owner_database = url_of(job_env, "MIGRATION_DATABASE_URL")
        assert (owner, owner_database) == (k8s_postgres.owner_role(database), database), name
        assert owner_password == "$(MIGRATION_DATABASE_PASSWORD)", name
        assert secret_of(job_env, "MIGRATION_DATABASE_PASSWORD") == owner_secret, name
        # The Job names the run-time role it grants the tables to, without its password.
        assert url_of(job_env, "DATABASE_URL") == (user, "", database), name
        assert "DATABASE_PASSWORD" not in job_env, name
        seen.add(database)
    assert len(seen) >= 4


def test_only_the_two_roles_of_a_database_reach_it(overlay):
    spec = the_cluster(overlay)
    assert spec["enableSuperuserAccess"] is False
    sql = spec["bootstrap"]["initdb"]["postInitSQL"]
    databases = [s.split()[2] for s in sql if s.startswith("CREATE DATABASE")]
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert set(roles) == {*databases, *(k8s_postgres.owner_role(d) for d in databases)}
    for database in databases:
        owner = k8s_postgres.owner_role(database)
        assert f"CREATE DATABASE {database} OWNER {owner}" in sql
        assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC" in sql
        grants = [s for s in sql if s.startswith("GRANT") and f" {database} TO " in s]
        assert grants == [f"GRANT CONNECT ON DATABASE {database} TO {database}"]
    for role in roles.values():
        assert role["login"] is True and role["ensure"] == "present", role["name"]
        for power in ("superuser", "createdb", "createrole", "replication", "bypassrls"):
            assert role[power] is False, (role["name"], power)


def test_the_cluster_and_the_development_stack_name_the_roles_alike():
    for database in ("intake", "adapter_france_travail"):
        assert k8s_postgres.owner_role(database) == local_postgres.owner_role(database)
    local = [s.replace('"', "") for s in local_postgres.database_sql("intake", exists=False)]
    assert k8s_postgres.post_init_sql("intake")[2:] == local
