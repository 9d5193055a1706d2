"""The CloudNativePG cluster of deploy/k8s, generated from the workloads that have a database
(see devstack.k8s, which writes it): per database, an owner role that runs the migrations
(the migration Job) and a run-time role the service connects as, each with its password in its
own Secret; only those two roles can connect to the database, the run-time role can only read
and write its tables (granted by the migrations: guichet_runtime.migrations.runtime_grants).
The same roles as the development stack's (devstack.postgres)."""

from __future__ import annotations

from typing import Any

PG_CLUSTER = "guichet-pg"
PG_HOST = f"{PG_CLUSTER}-rw"

NOTE = (
    "# PostgreSQL through CloudNativePG: one cluster of three instances (a primary and two\n"
    "# replicas, one synchronous), one database per service and adapter, each with two roles:\n"
    "# `<db>_owner` owns it and runs the migrations (the migration Job; Secret\n"
    "# `<service>-db-owner`) and `<db>`, the service's run-time role (Secret `<service>-db`),\n"
    "# which can only read and write its tables. No other role can connect to a database; no\n"
    "# superuser at run time.\n"
    "# The Secrets are of type kubernetes.io/basic-auth, created by the operator of the\n"
    "# platform: never in git. Backups: WAL archived continuously and base backups to an\n"
    "# S3-compatible object store (barmanObjectStore), kept 30 days; see docs/operations.md,\n"
    '# "Backups and restore" and "Database roles".\n'
)


def owner_role(database: str) -> str:
    """The role owning a service's database (devstack.postgres names it the same)."""
    return f"{database}_owner"


def runtime_secret(workload: str) -> str:
    return f"{workload}-db"


def owner_secret(workload: str) -> str:
    return f"{workload}-db-owner"


def database_url(role: str, database: str, password_variable: str | None) -> str:
    """A SQLAlchemy URL on the cluster's primary; the password from a variable (Kubernetes
    expands `$(NAME)`), or none (a URL that only names the role)."""
    userinfo = f"{role}:$({password_variable})" if password_variable else role
    return f"postgresql+asyncpg://{userinfo}@{PG_HOST}:5432/{database}"


def migration_env(workload: str, database: str) -> list[dict[str, Any]]:
    """The migration Job's variables: it connects as the database's owner; DATABASE_URL,
    without a password, only names the run-time role the migrations grant the tables to."""
    secret = {"secretKeyRef": {"name": owner_secret(workload), "key": "password"}}
    owner_url = database_url(owner_role(database), database, "MIGRATION_DATABASE_PASSWORD")
    return [
        {"name": "MIGRATION_DATABASE_PASSWORD", "valueFrom": secret},
        {"name": "MIGRATION_DATABASE_URL", "value": owner_url},
        {"name": "DATABASE_URL", "value": database_url(database, database, None)},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},  # read-only root filesystem
    ]


def post_init_sql(database: str) -> list[str]:
    """Run once, as the superuser, when the cluster is created (a database added later: the
    same statements by hand, docs/operations.md)."""
    owner = owner_role(database)
    return [
        f"CREATE ROLE {owner} LOGIN",
        f"CREATE ROLE {database} LOGIN",
        f"CREATE DATABASE {database} OWNER {owner}",
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {database} TO {database}",
    ]


def managed_role(name: str, secret: str) -> dict[str, Any]:
    """A role CloudNativePG keeps as declared: it logs in with its Secret's password, and can
    do nothing on the cluster itself."""
    return {
        "name": name,
        "ensure": "present",
        "login": True,
        "superuser": False,
        "createdb": False,
        "createrole": False,
        "replication": False,
        "bypassrls": False,
        "passwordSecret": {"name": secret},
    }


def cluster(databases: dict[str, str]) -> dict[str, Any]:
    """The Cluster; `databases`: workload name -> its database (and run-time role) name."""
    roles: list[dict[str, Any]] = []
    sql: list[str] = []
    for workload, database in databases.items():
        sql += post_init_sql(database)
        roles.append(managed_role(owner_role(database), owner_secret(workload)))
        roles.append(managed_role(database, runtime_secret(workload)))
    s3_secret = "guichet-pg-backup"
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": PG_CLUSTER},
        "spec": {
            "instances": 3,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:17.6",
            "minSyncReplicas": 1,
            "maxSyncReplicas": 1,
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "storage": {"size": "20Gi"},
            "walStorage": {"size": "10Gi"},
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "1Gi"},
            },
            "postgresql": {"parameters": {"max_connections": "200", "shared_buffers": "256MB"}},
            "bootstrap": {
                "initdb": {
                    # The application database CloudNativePG always creates; unused.
                    "database": "guichet",
                    "owner": "guichet",
                    "postInitSQL": sql,
                }
            },
            "managed": {"roles": roles},
            "backup": {
                "retentionPolicy": "30d",
                "barmanObjectStore": {
                    "destinationPath": "s3://guichet-unique-backups/postgresql",
                    "endpointURL": "https://s3.example.gouv.fr",
                    "s3Credentials": {
                        "accessKeyId": {"name": s3_secret, "key": "ACCESS_KEY_ID"},
                        "secretAccessKey": {"name": s3_secret, "key": "ACCESS_SECRET_KEY"},
                    },
                    "wal": {"compression": "gzip"},
                    "data": {"compression": "gzip"},
                },
            },
        },
    }
