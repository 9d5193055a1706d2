"""`guichet-dev kafka-env`: the environment that connects as one principal to the local broker
of `make run` (SASL on, see devstack.kafka_sasl)."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from devstack import kafka_sasl
from devstack.kafka import ensure_kafka_jars, find_root

#: The port `make run` gives Kafka when it is free.
KAFKA_PORT = 9092


def kafka_env(
    user: str = typer.Argument(
        "guichet-admin",
        help="A principal: guichet-admin (the operators), admin (super user), intake…",
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="make run's state directory (default: <repo>/var/run)."
    ),
) -> None:
    """Print the environment (`export …` lines) that connects as USER to the local broker of
    `make run`: `eval "$(guichet-dev kafka-env)"` then `guichet-admin dlq list`."""
    root = find_root()
    cache = ensure_kafka_jars(root).parent
    known = kafka_sasl.default_users(root)
    if user not in known:
        raise typer.BadParameter(f"unknown principal; one of {', '.join(known)}")
    ca_file = (workdir or root / "var" / "run") / "kafka" / "tls" / "ca.pem"  # see LocalKafka
    access = kafka_sasl.KafkaAccess(
        f"127.0.0.1:{KAFKA_PORT}",
        kafka_sasl.passwords(cache, [user]),
        str(ca_file.resolve()) if ca_file.exists() else None,
    )
    for name, value in access.env(user).items():
        if name != "CREATE_TOPICS":
            typer.echo(f"export {name}={shlex.quote(value)}")
