"""The whole system as real processes: agency simulators, SMTP sink, SMS gateway and
postal service (`devstack.providers`) and every service,
on a given Kafka broker and database server. Used by `make run`, the end-to-end tests
and the benchmark, so all three run exactly the same thing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from devstack import kafka_sasl
from devstack.forkserver import ForkServer
from devstack.kafka_sasl import KafkaAccess
from devstack.ports import free_ports
from devstack.postgres import Databases, ServiceDatabase
from devstack.procs import ServiceProcess, terminate_all
from devstack.stack_migrations import NOT_AT_START, migrate_all
from guichet_runtime.sealing import new_key

#: The agencies a stack connects by default (an adapter and a simulator each).
AGENCIES = ("caf", "dgfip", "france_travail", "cpam")

#: The SMTP sink answers 550 to every address of this domain: a real bounce for tests and demos.
BOUNCING_DOMAIN = "adresse-inconnue.example"
#: The domain of the routing addresses of the citizens' email replies in a dev/test stack
#: (mail for it is given straight to intake's inbound SMTP port).
REPLY_DOMAIN = "reponse.guichet.localhost"


@dataclass
class Ports:
    intake: int = 8000
    assignment: int = 8001
    notification: int = 8002
    web: int = 8003
    adapters: dict[str, int] = field(
        default_factory=lambda: {"caf": 8011, "dgfip": 8012, "france_travail": 8013, "cpam": 8014}
    )
    simulators: dict[str, int] = field(
        default_factory=lambda: {"caf": 8101, "dgfip": 8102, "france_travail": 8103, "cpam": 8104}
    )
    smtp: int = 8025
    smtp_http: int = 8026
    providers: int = 8027
    #: Intake's inbound SMTP: the citizens' email replies (docs/referent-desk.md).
    inbound_smtp: int = 8028

    @classmethod
    def free(cls, agencies: Sequence[str] = AGENCIES) -> Ports:
        """Ports free right now, distinct within the stack; one adapter and one simulator
        for each of `agencies` (the stack starts exactly those)."""
        ports = iter(free_ports(8 + 2 * len(agencies)))
        return cls(
            intake=next(ports),
            assignment=next(ports),
            notification=next(ports),
            web=next(ports),
            adapters={a: next(ports) for a in agencies},
            simulators={a: next(ports) for a in agencies},
            smtp=next(ports),
            smtp_http=next(ports),
            providers=next(ports),
            inbound_smtp=next(ports),
        )


#: A development stack: secrets generated once under the workdir; the web, on the same
#: machine, names the client to the services in X-Forwarded-For.
DEV_ENV = {"ENVIRONMENT": "dev", "TRUSTED_PROXIES": json.dumps(["127.0.0.1/32", "::1/128"])}

#: Test stacks: every client is 127.0.0.1, so the per-client limits are lifted (the limits
#: themselves are tested in tests/unit/test_rate_limits.py).
TEST_RATE_LIMITS = dict.fromkeys(
    (
        "files_per_client",
        "access_codes_per_client",
        "code_checks_per_client",
        "referent_changes_per_client",
        "surveys_per_client",
        "thanks_per_client",
        "messages_per_client",
        "contact_changes_per_client",
        "documents_per_client",
    ),
    "100000/hour",
)


def _bin(name: str) -> str:
    """Console script of the running interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class Stack:
    """Start with `start()`, stop with `stop()`; `kill`/`restart` one service for fault tests.

    `postgres` is a callable creating a database and returning its URL, or a ServiceDatabase
    (e.g. LocalPostgres.create_service_database): each service then runs as its own role,
    reading and writing its tables only, and migrates as its database's owner
    (MIGRATION_DATABASE_URL); a `devstack.postgres.Databases` (the tests' postgres_factory)
    gives its service databases; None: SQLite files. `database_urls`: each service's URL (its
    run-time role's), `migration_urls` its owner's.
    `clock_file`: every service reads "today" from this file when it holds an ISO date
    (`CLOCK_FILE`, see `guichet_runtime.clock`); `travel_to` writes it.
    `oidc_issuers`: trusted token issuers (issuer URL -> "citizen" or "agent", e.g.
    `LocalKeycloak.issuers`), given to every service as OIDC_ISSUERS with its own name as
    OIDC_AUDIENCE (see guichet_runtime.auth).
    `callback_secrets`: per agency, the secret its simulated system signs callbacks with and
    its adapter checks them with (CALLBACK_SECRET on both sides); generated afresh per stack.
    `personal_data_sealing`: crypto-shredding (docs/data-protection.md): intake gives each
    citizen a data key (wrapped with a fresh PERSONAL_DATA_KEK per stack) and every personal
    field travels sealed; assignment, notification and each adapter fetch the keys from
    intake's key service as their Keycloak client `service-<name>` (needs the agents' issuer
    in `oidc_issuers`). Off (the default here, not in production): intake seals nothing.
    `personal_data_key_ttl`: how long the services keep a key in memory (seconds).
    `rate_limits`: intake's RATE_LIMITS (rule -> "count/period"); None: every per-client rule
    relaxed (TEST_RATE_LIMITS), since every test client calls from 127.0.0.1; {} keeps the
    service's defaults (`guichet-dev run`).

    Every process runs with ENVIRONMENT=dev: secrets such as the web's SECRET_KEY are
    generated once in WORKDIR/secrets (see guichet_runtime.secrets), and intake
    and assignment trust the web (127.0.0.1) to name the client in X-Forwarded-For.
    `kafka_access`: the broker's credentials (default: those of a local broker this process
    started on `kafka_bootstrap`, see devstack.kafka_sasl.access). With authentication, the stack
    creates its topics and its principals' ACLs under its namespace, and each process connects
    as its own principal.
    """

    def __init__(
        self,
        workdir: Path,
        kafka_bootstrap: str,
        *,
        ports: Ports | None = None,
        namespace: str = "",
        postgres=None,
        extra_env: dict[str, str] | None = None,
        clock_file: Path | None = None,
        oidc_issuers: dict[str, str] | None = None,
        rate_limits: dict[str, str] | None = None,
        kafka_access: KafkaAccess | None = None,
        personal_data_sealing: bool = False,
        personal_data_key_ttl: float | None = None,
        trace_ratio: float | None = None,
        launcher: ForkServer | None = None,
        migrate_first: bool = False,
    ) -> None:
        self.workdir = workdir
        self.migrate_first = migrate_first  # as deployed: devstack.stack_migrations
        self.launcher = launcher
        self.kafka_bootstrap = kafka_bootstrap
        self.kafka = kafka_access or kafka_sasl.access(kafka_bootstrap)
        self.ports = ports or Ports.free()
        self.namespace = namespace
        self.maildir = workdir / "mail"
        self.providers_dir = workdir / "providers"
        self.spans_dir = workdir / "spans"
        self.data_dir = workdir / "data"
        self._postgres = postgres
        self._extra_env = {**(NOT_AT_START if migrate_first else {}), **(extra_env or {})}
        self.clock_file = clock_file
        self.oidc_issuers = dict(oidc_issuers or {})
        self.rate_limits = TEST_RATE_LIMITS if rate_limits is None else rate_limits
        # Intake seals the one-time access codes for notification: one fresh key per stack.
        self.access_code_key = new_key()
        # Signs the Reply-To of the référent's messages (notification), verified by intake's
        # inbound SMTP: one fresh key per stack.
        self.reply_address_key = secrets.token_urlsafe(32)
        self.personal_data_sealing = personal_data_sealing
        self.personal_data_key_ttl = personal_data_key_ttl
        # Spans: every trace recorded (one trace per file, what the tests read), or a
        # parent-based ratio as in production (the bench).
        self.trace_ratio = trace_ratio
        # The key-encryption key of the citizens' data keys, one per stack.
        self.personal_data_kek = new_key()
        if personal_data_sealing and "agent" not in self.oidc_issuers.values():
            raise ValueError("personal_data_sealing needs the agents' issuer (oidc_issuers)")
        self.database_urls: dict[str, str] = {}
        self.migration_urls: dict[str, str] = {}
        self.callback_secrets = {a: secrets.token_urlsafe(32) for a in self.ports.adapters}
        self.processes: dict[str, ServiceProcess] = {}

    # -- addresses ---------------------------------------------------------------
    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.intake}"

    def simulator_url(self, agency: str) -> str:
        """Base URL of one agency's simulated system (each agency runs its own process)."""
        return f"http://127.0.0.1:{self.ports.simulators[agency]}"

    def adapter_url(self, agency: str) -> str:
        return f"http://127.0.0.1:{self.ports.adapters[agency]}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}"

    @property
    def assignment_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.assignment}"

    @property
    def notification_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.notification}"

    @property
    def smtp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.smtp_http}"

    @property
    def providers_url(self) -> str:
        """The simulated SMS gateway and postal service."""
        return f"http://127.0.0.1:{self.ports.providers}"

    # -- processes ---------------------------------------------------------------
    def _database_env(self, name: str) -> dict[str, str]:
        """DATABASE_URL, and MIGRATION_DATABASE_URL where the database has its owner role."""
        db_name = f"{self.namespace}{name}".replace("-", "_").lower()
        create = self._postgres.service if isinstance(self._postgres, Databases) else self._postgres
        db = (
            create(db_name)
            if create is not None
            else f"sqlite+aiosqlite:///{self.data_dir / db_name}.db"
        )
        if isinstance(db, ServiceDatabase):
            self.database_urls[name] = db.url
            self.migration_urls[name] = db.migration_url
            return {"DATABASE_URL": db.url, "MIGRATION_DATABASE_URL": db.migration_url}
        self.database_urls[name] = self.migration_urls[name] = db
        return {"DATABASE_URL": db}

    def _oidc_env(self, audience: str | None) -> dict[str, str]:
        if not self.oidc_issuers:
            return {}
        env = {"OIDC_ISSUERS": json.dumps(self.oidc_issuers)}
        return {**env, "OIDC_AUDIENCE": audience} if audience else env

    def _web_login_env(self) -> dict[str, str]:
        """The pages sign agents and citizens in at the trusted issuers (client `web`, its
        development secret `web-<realm>-dev-secret` from deploy/keycloak/realms)."""
        env: dict[str, str] = {}
        for issuer, kind in self.oidc_issuers.items():
            audience = {"agent": "AGENTS", "citizen": "CITIZENS"}[kind]
            realm = issuer.rstrip("/").rsplit("/", 1)[-1]
            env[f"LOGIN_{audience}_ISSUER"] = issuer
            env[f"LOGIN_{audience}_CLIENT_SECRET"] = f"web-{realm}-dev-secret"
        return env

    def _personal_data_env(self, name: str) -> dict[str, str]:
        """Crypto-shredding: intake holds the keys; every other consumer of personal data
        asks its key service for them, as its own Keycloak client."""
        ttl = (
            {"PERSONAL_DATA_KEY_TTL_SECONDS": str(self.personal_data_key_ttl)}
            if self.personal_data_key_ttl is not None
            else {}
        )
        if name == "intake":
            return {
                "PERSONAL_DATA_SEALING": "true" if self.personal_data_sealing else "false",
                "PERSONAL_DATA_KEK": self.personal_data_kek,
                **ttl,
            }
        if not self.personal_data_sealing:
            return {}
        agents = next(i for i, kind in self.oidc_issuers.items() if kind == "agent")
        client_id = f"service-{name}"
        return {
            "KEY_SERVICE_URL": self.intake_url,
            "KEY_SERVICE_TOKEN_URL": f"{agents.rstrip('/')}/protocol/openid-connect/token",
            "KEY_SERVICE_CLIENT_ID": client_id,
            "KEY_SERVICE_CLIENT_SECRET": f"{client_id}-dev-secret",
            **ttl,
        }

    def _sampler_env(self) -> dict[str, str]:
        """OpenTelemetry's standard sampler variables, set whatever the caller's environment
        holds: always on by default (the one-trace-per-file tests), else the parent-based
        ratio production uses (the root span of a file decides for the whole trace)."""
        if self.trace_ratio is None:
            return {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
        return {
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": f"{self.trace_ratio:g}",
        }

    def _service(self, name: str, script: str, port: int, env: dict[str, str]) -> ServiceProcess:
        base = {
            **self.kafka.env(name),
            "TOPIC_NAMESPACE": self.namespace,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(port),
            **self._database_env(name),
            # Static membership: a process restarted after a crash takes its partitions
            # back at once instead of waiting out the dead one's session (10 s). One process
            # per service here, so its name is a unique instance id within its group.
            "KAFKA_GROUP_INSTANCE_ID": name,
            "OTEL_SPANS_FILE": str(self.spans_dir / f"{name}.jsonl"),
            **self._sampler_env(),
            "LOG_LEVEL": os.environ.get("GUICHET_LOG_LEVEL", "WARNING"),
            **DEV_ENV,
            "SECRETS_DIR": str(self.workdir / "secrets"),
            **({"CLOCK_FILE": str(self.clock_file)} if self.clock_file else {}),
            **self._oidc_env(name),
            **self._personal_data_env(name),
            **self._extra_env,
            **env,
        }
        return ServiceProcess(
            name,
            [_bin(script)],
            base,
            self.workdir / "logs" / f"{name}.log",
            health_url=f"http://127.0.0.1:{port}/health",
            cwd=self.workdir,
        )

    def _define(self) -> None:
        p = self.ports
        for agency, port in p.simulators.items():
            name = f"simulator-{agency.replace('_', '-')}"
            self.processes[name] = ServiceProcess(
                name,
                [
                    _bin("agency-simulator"),
                    "--agency",
                    agency,
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                {"CALLBACK_SECRET": self.callback_secrets[agency]},
                self.workdir / "logs" / f"{name}.log",
                health_url=f"{self.simulator_url(agency)}/health",
            )
        self.processes["smtp-sink"] = ServiceProcess(
            "smtp-sink",
            [
                sys.executable,
                "-m",
                "devstack.smtp_sink",
                "--port",
                str(p.smtp),
                "--http-port",
                str(p.smtp_http),
                "--maildir",
                str(self.maildir),
                "--log-level",
                "WARNING",
                "--refuse",
                f"@{BOUNCING_DOMAIN}",
            ],
            {},
            self.workdir / "logs" / "smtp-sink.log",
            health_url=f"{self.smtp_http_url}/health",
        )
        self.processes["channel-providers"] = ServiceProcess(
            "channel-providers",
            [
                sys.executable,
                "-m",
                "devstack.providers",
                "--port",
                str(p.providers),
                "--data-dir",
                str(self.providers_dir),
                "--log-level",
                "WARNING",
            ],
            {},
            self.workdir / "logs" / "channel-providers.log",
            health_url=f"{self.providers_url}/health",
        )
        limits = {"RATE_LIMITS": json.dumps(self.rate_limits)} if self.rate_limits else {}
        sealing = {"ACCESS_CODE_KEY": self.access_code_key}
        replies = {"REPLY_ADDRESS_KEY": self.reply_address_key, "REPLY_DOMAIN": REPLY_DOMAIN}
        self.processes["intake"] = self._service(
            "intake",
            "intake",
            p.intake,
            {**limits, **sealing, **replies, "INBOUND_SMTP_PORT": str(p.inbound_smtp)},
        )
        # Who a file's citizen is: asked of intake (export parts, guichet_runtime.file_citizen).
        asks_intake = {"INTAKE_URL": self.intake_url}
        self.processes["assignment"] = self._service(
            "assignment", "assignment", p.assignment, asks_intake
        )
        self.processes["notification"] = self._service(
            "notification",
            "notification",
            p.notification,
            {
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(p.smtp),
                "SMS_GATEWAY_URL": self.providers_url,
                "POSTAL_URL": self.providers_url,
                **asks_intake,
                **sealing,
                **replies,
            },
        )
        # The pages: no broker; they talk to intake and assignment over HTTP, and keep their
        # sessions in their own database.
        self.processes["web"] = ServiceProcess(
            "web",
            [_bin("web")],
            {
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(p.web),
                **self._database_env("web"),
                "INTAKE_URL": self.intake_url,
                "ASSIGNMENT_URL": self.assignment_url,
                "NOTIFICATION_URL": self.notification_url,
                "OTEL_SPANS_FILE": str(self.spans_dir / "web.jsonl"),
                **self._sampler_env(),
                "LOG_LEVEL": os.environ.get("GUICHET_LOG_LEVEL", "WARNING"),
                **DEV_ENV,
                "SECRETS_DIR": str(self.workdir / "secrets"),
                **self._oidc_env(None),
                **self._web_login_env(),
                **self._extra_env,
            },
            self.workdir / "logs" / "web.log",
            health_url=f"{self.web_url}/health",
            cwd=self.workdir,
        )
        for agency, port in p.adapters.items():
            name = f"adapter-{agency.replace('_', '-')}"
            # Each agency's adapter is its own package and console script (adapters/<agency>).
            self.processes[name] = self._service(
                name,
                name,
                port,
                {
                    "AGENCY_BASE_URL": self.simulator_url(agency),
                    "CALLBACK_SECRET": self.callback_secrets[agency],
                },
            )

    def start(self, timeout: float = 90) -> None:
        # The maildir is left to the sink: mailbox.Maildir only lays out tmp/new/cur itself.
        for d in (self.spans_dir, self.data_dir, self.workdir / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        self._define()
        for process in self.processes.values():
            process.launcher = self.launcher
        if self.kafka.sasl:
            self.kafka.prepare_blocking(self.namespace, self.ports.adapters)
        if self.migrate_first:
            migrate_all(self.processes, self.workdir, timeout)
        try:
            # Start everything, then wait: the processes boot in parallel.
            for proc in self.processes.values():
                proc.start()
            for proc in self.processes.values():
                proc.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def travel_to(self, day: date | None) -> None:
        """Move "today" for every running service (None: back to the real date)."""
        if self.clock_file is None:
            raise RuntimeError("this stack was started without a clock_file")
        self.clock_file.write_text(day.isoformat() if day else "", encoding="utf-8")

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would."""
        self.processes[name].kill()

    def restart(self, name: str, timeout: float = 60) -> None:
        proc = self.processes[name]
        if proc.is_running:
            proc.terminate()
        proc.start()
        proc.wait_healthy(timeout)

    #: The test doubles the services talk to: stopped once the services are gone.
    DOUBLES = ("smtp-sink", "channel-providers")

    def stop(self, grace: float = 10) -> None:
        """The services and the web together (each drains on its own: stopping them one after
        the other only added their stop times up), then the simulators and sinks they used."""
        doubles = [
            p for n, p in self.processes.items() if n in self.DOUBLES or n.startswith("simulator-")
        ]
        services = [p for p in self.processes.values() if p not in doubles]
        for group in (services, doubles):
            with contextlib.suppress(Exception):  # already gone
                terminate_all(group, grace)
