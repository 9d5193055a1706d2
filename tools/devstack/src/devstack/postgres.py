"""A throw-away PostgreSQL server for dev and tests, run from the Debian packages' binaries.

Tuned for speed, not durability (fsync, synchronous_commit and full_page_writes are off).

Each service gets its database with two roles of its own, as on the cluster
(deploy/k8s/base/postgres/cluster.yaml): `<db>_owner` owns it and runs the migrations, `<db>`
(the run-time role) can only connect to it and read and write its tables, granted by the
migrations (guichet_runtime.migrations.runtime_grants). No other role can connect to it.
"""

from __future__ import annotations

import fcntl
import glob
import os
import pwd
import re
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from devstack.ports import free_port

USER = PASSWORD = "guichet"
ENV_URL = "GUICHET_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class ServiceDatabase:
    """A service's database and its two roles' URLs."""

    name: str
    url: str  # the run-time role: DATABASE_URL
    migration_url: str  # the owner, for the migrations: MIGRATION_DATABASE_URL


def owner_role(database: str) -> str:
    """The role owning a service's database (the run-time role has the database's name)."""
    return f"{database}_owner"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def roles_sql(database: str, owner_password: str, runtime_password: str) -> list[str]:
    """Create (or reset the passwords of) a database's owner and run-time roles: they log in
    and nothing more (no superuser, no database or role creation)."""
    statements = []
    for role, password in ((owner_role(database), owner_password), (database, runtime_password)):
        statements += [
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
            f"{literal(role)}) THEN CREATE ROLE {ident(role)}; END IF; END$$",
            f"ALTER ROLE {ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS PASSWORD {literal(password)}",
        ]
    return statements


def database_sql(database: str, exists: bool) -> list[str]:
    """On the server, after `roles_sql`: the database, owned by its owner role, which only it
    and its run-time role can connect to (no temporary tables either)."""
    owner = ident(owner_role(database))
    create = (
        f"ALTER DATABASE {ident(database)} OWNER TO {owner}"
        if exists
        else f"CREATE DATABASE {ident(database)} OWNER {owner}"
    )
    return [
        create,
        f"REVOKE ALL ON DATABASE {ident(database)} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {ident(database)} TO {ident(database)}",
    ]


def inside_database_sql(database: str) -> list[str]:
    """Inside the database, as a superuser: only the owner creates in the schema `public`
    (PostgreSQL 15's default, said for older servers), and tables another role created (a
    database from before the roles) pass to the owner."""
    owner = owner_role(database)
    return [
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        "DO $$DECLARE t regclass; BEGIN FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v')"
        f" AND pg_get_userbyid(c.relowner) <> {literal(owner)} LOOP"
        f" EXECUTE format('ALTER TABLE %s OWNER TO %I', t, {literal(owner)}); END LOOP; END$$",
    ]


def with_role(base_url: str, role: str, password: str, database: str) -> str:
    """`base_url` (a server's) as `role` on `database`."""
    url = make_url(base_url).set(username=role, password=password, database=database)
    return url.render_as_string(hide_password=False)


def new_password() -> str:
    return secrets.token_hex(16)


def create_service_database_at(base_url: str, name: str) -> ServiceDatabase:
    """`LocalPostgres.create_service_database` on another server, whose superuser's URL
    (without a database) is `base_url`; a fresh database (dropped first if it exists)."""
    import asyncio
    import threading

    import asyncpg

    owner_password, runtime_password = new_password(), new_password()
    server = make_url(base_url).set(drivername="postgresql")

    async def run(database: str, statements: list[str]) -> None:
        url = server.set(database=database).render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def provision() -> None:
        await run("postgres", [f"DROP DATABASE IF EXISTS {ident(name)}"])
        await run("postgres", roles_sql(name, owner_password, runtime_password))
        await run("postgres", database_sql(name, exists=False))
        await run(name, inside_database_sql(name))

    # Its own thread and loop: callers may be inside a running event loop (async fixtures).
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(errors, lambda: asyncio.run(provision())))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return ServiceDatabase(
        name,
        url=with_role(base_url, name, runtime_password, name),
        migration_url=with_role(base_url, owner_role(name), owner_password, name),
    )


def _capture(errors: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as e:  # handed to the calling thread
        errors.append(e)


class Databases:
    """Databases on one server, for tests: `databases(name)` is a fresh database's URL as the
    superuser (a test that migrates and queries it itself); `databases.service(name)` a
    service's database with its two roles (what a devstack Stack gives each process)."""

    def __init__(
        self, create: Callable[[str], str], service: Callable[[str], ServiceDatabase]
    ) -> None:
        self.create = create
        self.service = service

    def __call__(self, name: str) -> str:
        return self.create(name)


def postgres_url_from_env() -> str | None:
    """An external server's base URL from $GUICHET_TEST_POSTGRES_URL, if set and non-empty."""
    return os.environ.get(ENV_URL) or None


def find_bindir() -> Path | None:
    """The highest-version /usr/lib/postgresql/<v>/bin that has the server tools."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)])
    return found[-1] if found else None


def _install_postgres() -> Path:
    if os.geteuid() != 0:
        raise RuntimeError(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin and not root to "
            "install them: "
            f"run `sudo apt-get install -y postgresql`, or point {ENV_URL} at a server"
        )
    # Serialise concurrent installers (parallel test workers); apt would fail on its own lock.
    with open("/tmp/guichet-postgres-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (bindir := find_bindir()) is None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            res = subprocess.run(
                "apt-get update -q && apt-get install -y -q postgresql",
                shell=True,
                env=env,
                capture_output=True,
                text=True,
            )
            bindir = find_bindir()
            if res.returncode != 0 or bindir is None:
                raise RuntimeError(
                    f"installing postgresql failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}"
                )
    return bindir


class LocalPostgres:
    """A private PostgreSQL cluster in `workdir`, on 127.0.0.1:`port` (0 = pick a free one).

    Superuser `guichet`/`guichet`: password auth over TCP (127.0.0.1 only), trust on the unix
    socket in `workdir/sock`. Run as root, the server runs as the `postgres` OS user (it refuses
    to run as root), so `workdir` is chowned to it and its parents must be traversable by it.
    Reusing a `workdir` keeps the databases.
    """

    def __init__(self, root: Path, workdir: Path, port: int = 0) -> None:
        self.root = Path(root)  # kept for symmetry with LocalKafka; nothing is read from it
        self.workdir = Path(workdir).resolve()
        self.port = port
        self.data = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.log_path = self.workdir / "postgres.log"
        self.bindir: Path | None = None
        self._running = False
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """Base SQLAlchemy URL, without a database name."""
        return f"postgresql+asyncpg://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def _run(
        self, *argv: str, server_side: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool; server-side ones as the postgres OS user when we are root."""
        assert self.bindir is not None
        kw: dict = (
            {"user": "postgres", "group": "postgres", "extra_groups": []}
            if server_side and self._as_postgres
            else {}
        )
        res = subprocess.run(
            [str(self.bindir / argv[0]), *argv[1:]],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            input=input,
            **kw,
        )
        if res.returncode != 0:
            log = (
                self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            )
            raise RuntimeError(
                f"{' '.join(argv)} failed ({res.returncode}):\n{res.stdout}{res.stderr}\n{log}"
            )
        return res

    def _prepare_workdir(self) -> None:
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if not self._as_postgres:
            return
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "running as root needs the `postgres` OS user (apt-get install postgresql)"
            ) from None
        for d, _, files in os.walk(self.workdir):
            for p in (d, *(os.path.join(d, f) for f in files)):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        if subprocess.run(["test", "-w", str(self.workdir)], user="postgres").returncode != 0:
            raise RuntimeError(
                f"the postgres OS user cannot reach {self.workdir}: pick a workdir whose parents "
                "it can traverse (e.g. tempfile.mkdtemp() under /tmp, not pytest's tmp_path)"
            )

    def start(self) -> str:
        """Init the cluster if needed, start it, wait until it accepts connections; return `url`."""
        if self._running:
            return self.url
        self.bindir = find_bindir() or _install_postgres()
        self.port = self.port or free_port()
        sock = self.sockdir / f".s.PGSQL.{self.port}"
        if len(str(sock)) > 107:  # sun_path limit
            raise RuntimeError(f"unix socket path too long ({sock}): use a shorter workdir")
        fresh = not (self.data / "PG_VERSION").exists()
        pwfile = self.workdir / "pwfile"
        if fresh:
            self.sockdir.mkdir(parents=True, exist_ok=True)
            pwfile.write_text(PASSWORD + "\n")
        self._prepare_workdir()
        if fresh:
            try:
                self._run(
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    USER,
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                    "--auth-host=md5",
                    "--no-sync",
                )
            finally:
                pwfile.unlink(missing_ok=True)
            with open(self.data / "postgresql.conf", "a") as f:
                f.write("include = 'guichet.conf'\n")
        # Rewritten on every start so a reused workdir can take a new port.
        (self.data / "guichet.conf").write_text(
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = "
            f"'{self.sockdir}'\n"
            "max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )  # owned by root when we are root: fine, the server only reads it
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            "60",
            "-s",
            "start",
        )
        self._running = True
        return self.url

    def create_database(self, name: str) -> str:
        """Create database `name` unless it exists; return its SQLAlchemy URL."""
        lit, ident = name.replace("'", "''"), '"' + name.replace('"', '""') + '"'
        psql = [
            "psql",
            "-X",
            "-q",
            "-tA",
            "-h",
            str(self.sockdir),
            "-p",
            str(self.port),
            "-U",
            USER,
            "-d",
            "postgres",
            "-c",
        ]
        if (
            self._run(
                *psql, f"SELECT 1 FROM pg_database WHERE datname = '{lit}'", server_side=False
            ).stdout.strip()
            != "1"
        ):
            try:
                self._run(*psql, f"CREATE DATABASE {ident}", server_side=False)
            except RuntimeError as e:  # lost a race with another creator: fine
                if "already exists" not in str(e):
                    raise
        return f"{self.url}/{name}"

    def _psql(self, database: str, statements: list[str]) -> str:
        """Run `statements` one by one as the superuser, over the unix socket."""
        script = "".join(f"{statement};\n" for statement in statements)
        argv = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", str(self.sockdir)]
        argv += ["-p", str(self.port), "-U", USER, "-d", database, "-f", "-"]
        return self._run(*argv, server_side=False, input=script).stdout

    def create_service_database(self, name: str) -> ServiceDatabase:
        """Database `name` with its owner and run-time roles (new passwords on every call);
        an existing database is kept and handed to its owner role."""
        owner_password, runtime_password = new_password(), new_password()
        exists = f"SELECT 1 FROM pg_database WHERE datname = {literal(name)}"
        found = self._psql("postgres", [exists])
        self._psql("postgres", roles_sql(name, owner_password, runtime_password))
        self._psql("postgres", database_sql(name, exists=found.strip() == "1"))
        self._psql(name, inside_database_sql(name))
        return ServiceDatabase(
            name,
            url=with_role(self.url, name, runtime_password, name),
            migration_url=with_role(self.url, owner_role(name), owner_password, name),
        )

    def stop(self) -> None:
        """Fast shutdown: disconnect clients, no waiting for them."""
        if self._running:
            self._running = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "-s", "stop")

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
