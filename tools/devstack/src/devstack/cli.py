"""`guichet-dev`: run the whole system locally, benchmark it, or run a bare Kafka broker.

Everything runs as real processes (no Docker): a Kafka broker from Maven Central jars
(devstack.kafka), Keycloak from Maven Central (devstack.keycloak), optionally PostgreSQL from
the Debian packages (devstack.postgres), the agency simulator, the SMTP sink and every service
(devstack.stack). `guichet-dev token` prints a test user's access token (devstack.token_command).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from devstack import cli_bench, cli_bench_system, cli_chaos
from devstack.kafka import LocalKafka, find_root
from devstack.kafka_env_command import kafka_env
from devstack.keycloak import ADMIN_PASSWORD, ADMIN_USERNAME, LocalKeycloak, template_ready
from devstack.keycloak import DEV_PORT as KEYCLOAK_PORT
from devstack.lifecycle import Signals, dead_process, ensure_jars, fail, say, stop_all
from devstack.postgres import LocalPostgres
from devstack.stack import Ports, Stack
from devstack.token_command import token

app = typer.Typer(
    name="guichet-dev",
    help="Developer tools of guichet unique: run the whole system locally, benchmark it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

KAFKA_PORT = 9092
POSTGRES_PORT = 5432

DEMO_FILE = {
    "life_event": "perte_emploi",
    "citizen": {
        "given_name": "Marie",
        "family_name": "Dupont",
        "email": "marie.dupont@example.fr",
        "phone": "0612345678",
        "postcode": "93200",
        "preferred_channel": "email",
    },
    "description": "J'ai perdu mon emploi le 15 novembre.",
    "urgent": True,
}


def shell_quote(text: str) -> str:
    """`text` as one single-quoted shell word (an apostrophe becomes '\\'')."""
    return "'" + text.replace("'", "'\\''") + "'"


def demo_token(keycloak_url: str | None = None) -> str:
    """The shell line putting Marie's access token in $TOKEN (`guichet-dev token`)."""
    default = f"http://127.0.0.1:{KEYCLOAK_PORT}"  # where `guichet-dev token` asks
    url = "" if keycloak_url in (None, default) else f" --url {keycloak_url}"
    return f"TOKEN=$(guichet-dev token marie.dupont{url})"


def demo_curl(intake_url: str) -> str:
    """Marie submits the demo file, logged in ($TOKEN, see `demo_token`): the file is hers."""
    body = json.dumps(DEMO_FILE, ensure_ascii=False, separators=(",", ":"))
    return (
        f"curl -s -X POST {intake_url}/api/files -H 'Content-Type: application/json' "
        '-H "Authorization: Bearer $TOKEN" '
        f"-H 'Idempotency-Key: demo-1' -d {shell_quote(body)}"
    )


def port_is_free(port: int) -> bool:
    """True if we could listen on 127.0.0.1:`port` now (as uvicorn would, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def fixed_ports(ports: Ports) -> list[tuple[str, int]]:
    """(what, port) of every fixed port of the stack."""
    named = [
        ("intake", ports.intake),
        ("assignment", ports.assignment),
        ("notification", ports.notification),
        ("web", ports.web),
    ]
    named += [(f"adapter-{a.replace('_', '-')}", p) for a, p in ports.adapters.items()]
    named += [(f"simulator-{a.replace('_', '-')}", p) for a, p in ports.simulators.items()]
    named += [
        ("smtp-sink (SMTP)", ports.smtp),
        ("smtp-sink (HTTP)", ports.smtp_http),
        ("channel-providers (SMS, post)", ports.providers),
        ("intake (inbound SMTP)", ports.inbound_smtp),
    ]
    return named


@contextmanager
def _workdir_lock(workdir: Path) -> Iterator[None]:
    """One `guichet-dev run` per workdir: two brokers on the same Kafka data would corrupt it."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                fail(f"another `guichet-dev run` already uses {workdir}")
            raise
        yield


def _banner(
    stack: Stack,
    kafka: LocalKafka,
    pg: LocalPostgres | None,
    workdir: Path,
    keycloak: LocalKeycloak | None = None,
) -> str:
    p = stack.ports
    url = lambda port: f"http://127.0.0.1:{port}"  # noqa: E731
    services = [
        ("intake", p.intake, "  API docs /docs, citizen API /api/files"),
        ("assignment", p.assignment, ""),
        ("notification", p.notification, ""),
    ]
    services += [(f"adapter-{a.replace('_', '-')}", port, "") for a, port in p.adapters.items()]
    lines = [
        "",
        "guichet unique is running.",
        "",
        f"Pages (citizens, counter, référents, supervisors): {url(p.web)}",
        "",
        "Services (health at /health, OpenAPI docs at /docs):",
    ]
    lines += [f"  {name:<24}{url(port)}{extra}" for name, port, extra in services]
    lines += [
        "",
        *(
            f"  {'simulator ' + a:<24}{url(port)}  (e.g. GET /agencies/{a}/received)"
            for a, port in p.simulators.items()
        ),
        f"  {'SMTP sink':<24}smtp://127.0.0.1:{p.smtp}  mail as JSON: {url(p.smtp_http)}/messages",
        f"  {'SMS gateway, post':<24}{url(p.providers)}/api/sms,"
        f" {url(p.providers)}/api/letters (PDF)",
        f"  {'Email replies':<24}smtp://127.0.0.1:{p.inbound_smtp}  (intake's inbound SMTP: "
        "the Reply-To of a référent's message)",
        f"  {'Kafka':<24}{kafka.bootstrap}  (topics without prefix"
        + ("; SASL: `guichet-dev kafka-env guichet-admin`)" if kafka.sasl else ")"),
    ]
    if keycloak is not None:
        lines += [
            f"  {'Keycloak (OIDC)':<24}{keycloak.url}/admin  ({ADMIN_USERNAME} / {ADMIN_PASSWORD}; "
            "realms citoyens, agents)",
            f"  {'':<24}a test user's token: guichet-dev token marie.dupont  (docs/security.md)",
        ]
    if pg is not None:
        lines.append(
            f"  {'PostgreSQL':<24}127.0.0.1:{pg.port}, superuser guichet/guichet; one database"
            " per service, each service as its own role:"
        )
        lines.append(f"  {'':<24}psql postgresql://guichet:guichet@127.0.0.1:{pg.port}/intake")
    else:
        lines.append(f"  {'SQLite':<24}{stack.data_dir}/<service>.db")
    lines += [
        "",
        f"Logs   {workdir / 'logs'}/<service>.log  (kafka: {kafka.log_path})",
        f"Mail   {stack.maildir}  (Maildir)",
        f"Spans  {stack.spans_dir}/<service>.jsonl",
        "",
        f"State in {workdir} is kept between runs (--fresh starts over).",
        "",
        "Try it (the services want a token: Marie's, from Keycloak):",
        f"  {demo_token(keycloak.url if keycloak is not None else None)}",
        f"  {demo_curl(stack.intake_url)}",
        f'  curl -s -H "Authorization: Bearer $TOKEN" {stack.intake_url}/api/files/<file_id>',
        "",
        "Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines)


RUN_HELP = "\n\n".join(
    [
        (
            "Run the whole system locally on fixed ports (intake on http://127.0.0.1:8000), for "
            "`make run`."
        ),
        (
            "Starts a Kafka broker (port 9092, or a free port if 9092 is taken; SASL "
            "SCRAM-SHA-512 and ACLs as in production, each process its own principal, see "
            "docs/security.md), Keycloak (port 8180, realms citoyens and agents; tokens with "
            "`guichet-dev token`), optionally "
            "PostgreSQL (port 5432, or a free one), the agency simulator, the SMTP sink and every"
            " service, prints their addresses, then waits until Ctrl-C / SIGTERM, or until a "
            "process dies (its log tail is shown and the exit code is 1). Everything is stopped "
            "on exit: services, PostgreSQL, Kafka, Keycloak."
        ),
        (
            "State persists in WORKDIR between runs, all of it together so that it stays "
            "consistent: the Kafka data (WORKDIR/kafka: topics, consumer offsets, events not "
            "consumed yet), the service databases (SQLite files in WORKDIR/data, or PostgreSQL in"
            " WORKDIR/pg), mail (WORKDIR/mail), logs (WORKDIR/logs), spans (WORKDIR/spans) and "
            "Keycloak's database (WORKDIR/keycloak, started over when deploy/keycloak/realms "
            "changes). Use --fresh to start from scratch. Services log at INFO unless "
            "GUICHET_LOG_LEVEL says otherwise."
        ),
    ]
)


@app.command(help=RUN_HELP)
def run(
    postgres: bool = typer.Option(False, "--postgres", help="PostgreSQL instead of SQLite files."),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="State directory (default: <repo>/var/run)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete WORKDIR first (all data, mail and logs)."
    ),
    clock_file: Path | None = typer.Option(
        None,
        "--clock-file",
        help=(
            "Rehearsal: every service takes today's date from this file"
            " (ISO date; empty: the real date)."
        ),
    ),
    kafka_sasl: bool = typer.Option(
        True,
        "--kafka-sasl/--no-kafka-sasl",
        help="Kafka authenticates every process (SCRAM-SHA-512 over TLS) and authorises it by "
        "ACLs, as in production; --no-kafka-sasl: an open broker.",
    ),
) -> None:
    root = find_root()
    workdir = (workdir or root / "var" / "run").resolve()
    ports = Ports()
    if busy := [f"{port} ({what})" for what, port in fixed_ports(ports) if not port_is_free(port)]:
        fail(
            f"port(s) already in use on 127.0.0.1: {', '.join(busy)}. "
            "Stop whatever listens there (another `guichet-dev run`?) and retry."
        )
    os.environ.setdefault("GUICHET_LOG_LEVEL", "INFO")

    kafka: LocalKafka | None = None
    keycloak: LocalKeycloak | None = None
    pg: LocalPostgres | None = None
    stack: Stack | None = None
    exit_code = 0
    with Signals() as signals, _workdir_lock(workdir):
        try:
            # Startup: a SIGINT/SIGTERM raises KeyboardInterrupt, handled below.
            if fresh:
                say(f"deleting everything in {workdir}")
                for child in workdir.iterdir():
                    if child.name == ".lock":  # held by us
                        continue
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            ensure_jars(root)
            if not template_ready(root):
                say(
                    "preparing Keycloak (first run only: Maven Central download, Quarkus build, "
                    "realm import; a few minutes)..."
                )
            keycloak = LocalKeycloak(
                root, workdir / "keycloak", port=KEYCLOAK_PORT if port_is_free(KEYCLOAK_PORT) else 0
            )
            say("starting Keycloak...")
            keycloak.launch()  # boots while Kafka (and PostgreSQL) start
            kafka_port = KAFKA_PORT if port_is_free(KAFKA_PORT) else 0
            kafka = LocalKafka(
                root, workdir / "kafka", port=kafka_port, sasl=kafka_sasl, tls=kafka_sasl
            )
            say("starting Kafka...")
            bootstrap = kafka.start()
            if kafka_port == 0:
                say(f"note: port {KAFKA_PORT} is taken, Kafka listens on {bootstrap} instead")
            database = None
            if postgres:
                pg_port = POSTGRES_PORT if port_is_free(POSTGRES_PORT) else 0
                pg = LocalPostgres(root, workdir / "pg", port=pg_port)
                say("starting PostgreSQL...")
                pg.start()
                if pg_port == 0:
                    say(
                        f"note: port {POSTGRES_PORT} is taken,"
                        f" PostgreSQL listens on port {pg.port} instead"
                    )
                database = pg.create_service_database
            keycloak.wait_ready()
            if keycloak.port != KEYCLOAK_PORT:
                say(f"note: port {KEYCLOAK_PORT} is taken, Keycloak listens on {keycloak.url}")
            stack = Stack(
                workdir,
                bootstrap,
                ports=ports,
                postgres=database,
                clock_file=clock_file.resolve() if clock_file else None,
                oidc_issuers=keycloak.issuers,
                rate_limits={},  # the services' own limits, as in production
                personal_data_sealing=True,  # crypto-shredding, as in production
            )
            say("starting services...")
            stack.start()
            say(_banner(stack, kafka, pg, workdir, keycloak))

            signals.phase = "running"
            while not signals.event.wait(0.5):
                if dead := dead_process(stack, kafka, pg, keycloak):
                    name, tail = dead
                    say(f"\nerror: {name} died. Last lines of its log:\n{tail}\n", err=True)
                    exit_code = 1
                    break
            if signals.received:
                say(f"\n{signals.received[0]} received, stopping...")
        except KeyboardInterrupt:
            say("\ninterrupted during startup, stopping...")
            exit_code = 130
        except (RuntimeError, TimeoutError) as e:
            say(f"\nerror: startup failed: {e}", err=True)
            exit_code = 1
        finally:
            signals.phase = "stopping"
            stop_all(stack, pg, kafka, keycloak)
            say("stopped.")
    raise typer.Exit(exit_code)


# The benchmarks live in devstack.cli_bench.
app.command()(cli_bench_system.bench)
app.command("bench-decision")(cli_bench.bench_decision)
app.command("bench-channels")(cli_bench.bench_channels)
app.command("bench-adapter")(cli_bench.bench_adapter)
app.command("chaos")(cli_chaos.chaos_command)


@app.command()
def kafka(
    port: int = typer.Option(KAFKA_PORT, "--port", help="Client port."),
    controller_port: int = typer.Option(
        0, "--controller-port", help="KRaft controller port (0: a free one)."
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="Data directory (default: <repo>/var/kafka) (kept)."
    ),
) -> None:
    """Run a bare Kafka broker in the foreground until Ctrl-C (prints its bootstrap address)."""
    from devstack.kafka import main

    argv = ["--port", str(port), "--controller-port", str(controller_port)]
    if workdir is not None:
        argv += ["--workdir", str(workdir)]
    raise typer.Exit(main(argv))


app.command("token")(token)  # defined in devstack.token_command
app.command("kafka-env")(kafka_env)  # defined in devstack.kafka_env_command


@app.command()
def asyncapi(
    output: Path = typer.Option(
        Path("docs/asyncapi.yaml"), "--output", help="Where to write the document."
    ),
) -> None:
    """Regenerate the AsyncAPI document of the events from the shared contracts."""
    from devstack.asyncapi import render

    output.write_text(render(), encoding="utf-8")
    typer.echo(f"wrote {output}")


@app.command("k8s-generate")
def k8s_generate(
    root: Path = typer.Option(
        Path("deploy/k8s"), "--root", help="The kustomize tree to write into."
    ),
) -> None:
    """Regenerate deploy/k8s's workloads and Strimzi topics and users (ACLs from the topology)."""
    from devstack.k8s import write

    changed = write(root)
    for path in changed:
        typer.echo(f"wrote {path}")
    typer.echo(f"{len(changed)} file(s) changed")


if __name__ == "__main__":
    app()
