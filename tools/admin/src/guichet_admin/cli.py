"""`guichet-admin`: the operators' CLI (dead letters, outbox backlog, consumer lag, audit trail).

Configuration: options, else the environment (`KAFKA_BOOTSTRAP`, `TOPIC_NAMESPACE`,
`CREATE_TOPICS`, `GUICHET_<SERVICE>_DATABASE_URL`). Exit status 0 when done, 1 on an error
(its message on stderr), 2 on a usage error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError

from guichet_admin import audit, deadletters, render
from guichet_admin.errors import AdminError
from guichet_admin.lag import consumer_lag
from guichet_admin.outbox import backlog, database_targets

T = TypeVar("T")

app = typer.Typer(
    help="Operators' tool of the guichet unique: dead letters, outbox backlog, consumer lag.",
    no_args_is_help=True,
)
dlq_app = typer.Typer(
    help="Dead-letter topics (<topic>.dlq): list, show, replay after a fix, park.",
    no_args_is_help=True,
)
outbox_app = typer.Typer(help="The services' transactional outboxes.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")
audit_app = typer.Typer(
    help="The services' audit trails: verify the chain and its anchors, anchor the head now.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

Bootstrap = Annotated[
    str, typer.Option("--bootstrap", envvar="KAFKA_BOOTSTRAP", help="Kafka bootstrap servers.")
]
Namespace = Annotated[
    str,
    typer.Option(
        "--namespace", envvar="TOPIC_NAMESPACE", help="Prefix of the stack's topics and groups."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="JSON output, for scripts.")]
Topic = Annotated[
    str, typer.Argument(help="Dead-letter topic, e.g. files.submitted.dlq (or files.submitted).")
]
Partition = Annotated[int, typer.Option("--partition", help="Partition of the dead-letter topic.")]
Offset = Annotated[int | None, typer.Option("--offset", help="One dead letter, by its offset.")]
All = Annotated[bool, typer.Option("--all", help="Every pending dead letter of the topic.")]
CreateTopics = Annotated[
    bool,
    typer.Option(
        "--create-topics/--no-create-topics",
        envvar="CREATE_TOPICS",
        help="Create the .parked / .dlq.replayed topics if missing (off where Strimzi owns them).",
    ),
]
Operator = Annotated[
    str,
    typer.Option(
        "--operator", envvar="GUICHET_OPERATOR", help="Who acts, for the record (default: login)."
    ),
]
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _run(coro: Coroutine[Any, Any, T], bootstrap: str | None = None) -> T:
    """Run a use case; report the errors an operator can act on without a traceback."""
    try:
        return asyncio.run(coro)
    except AdminError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (KafkaError, TimeoutError) as exc:
        where = f" at {bootstrap}" if bootstrap else ""
        typer.echo(f"error: Kafka{where}: {exc!r}", err=True)
        raise typer.Exit(1) from exc


def _one_or_all(offset: int | None, every: bool) -> None:
    if (offset is not None) != every:
        return
    raise typer.BadParameter("give exactly one of --offset N or --all")


@dlq_app.command("list")
def dlq_list(
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, namespace: Namespace = "", as_json: AsJson = False
) -> None:
    """Every dead-letter topic with its letters pending, replayed and parked."""
    target = deadletters.Target(bootstrap, namespace)
    found = _run(deadletters.dead_letter_topics(target), bootstrap)
    summary = render.topics_summary(found, namespace)
    if as_json:
        render.print_json(summary)
    else:
        render.print_topics(summary)


@dlq_app.command("show")
def dlq_show(
    topic: Topic,
    offset: Offset = None,
    partition: Partition = 0,
    limit: Annotated[int, typer.Option("--limit", help="How many pending letters.")] = 10,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    namespace: Namespace = "",
    as_json: AsJson = False,
) -> None:
    """One dead letter (--offset), else the oldest pending ones: reason, headers, key, payload."""
    target = deadletters.Target(bootstrap, namespace)
    found = _run(deadletters.one_topic(target, topic), bootstrap)
    if offset is not None:
        try:
            letters = [found.find(partition, offset)]
        except AdminError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    else:
        letters = deadletters.select(found, partition, None)[0][:limit]
    shown = [render.letter_json(found, letter) for letter in letters]
    if as_json:
        render.print_json(shown[0] if offset is not None else shown)
        return
    if not shown:
        typer.echo(f"{found.name}: no pending dead letter")
    for i, data in enumerate(shown):
        if i:
            typer.echo("-" * 72)
        render.print_letter(data)


@dlq_app.command("replay")
def dlq_replay(
    topic: Topic,
    offset: Offset = None,
    every: All = False,
    partition: Partition = 0,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    namespace: Namespace = "",
    create_topics: CreateTopics = True,
    operator: Operator = "",
    as_json: AsJson = False,
) -> None:
    """Republish to the original topic (same key, payload, event_id, trace context), once."""
    _one_or_all(offset, every)
    target = deadletters.Target(bootstrap, namespace, create_topics, operator)
    outcomes = _run(
        deadletters.replay(target, topic, partition=partition, offset=offset), bootstrap
    )
    if as_json:
        render.print_json(render.outcomes_json("replayed", outcomes))
    else:
        render.print_outcomes("replayed", outcomes)


@dlq_app.command("park")
def dlq_park(
    topic: Topic,
    reason: Annotated[str, typer.Option("--reason", help="Why it will not be replayed.")],
    offset: Offset = None,
    every: All = False,
    partition: Partition = 0,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    namespace: Namespace = "",
    create_topics: CreateTopics = True,
    operator: Operator = "",
    as_json: AsJson = False,
) -> None:
    """Move aside to <topic>.parked with the operator's reason: no longer pending, never
    replayed."""
    _one_or_all(offset, every)
    target = deadletters.Target(bootstrap, namespace, create_topics, operator)
    outcomes = _run(
        deadletters.park(target, topic, partition=partition, offset=offset, reason=reason),
        bootstrap,
    )
    if as_json:
        render.print_json(render.outcomes_json("parked", outcomes))
    else:
        render.print_outcomes("parked", outcomes)


@outbox_app.command("backlog")
def outbox_backlog(
    database_url: Annotated[
        list[str] | None,
        typer.Option(
            "--database-url",
            help="SERVICE=URL (repeatable); default: every GUICHET_<SERVICE>_DATABASE_URL.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Per service database: outbox rows not yet published and the age of the oldest."""

    async def gather() -> list[Any]:
        targets = database_targets(database_url or [])
        return [await backlog(name, url) for name, url in targets.items()]

    backlogs = _run(gather())
    rows = render.backlog_json(backlogs, dt.datetime.now(dt.UTC))
    if as_json:
        render.print_json(rows)
    else:
        render.print_backlog(rows)


@app.command("lag")
def lag(
    group: Annotated[str | None, typer.Option("--group", help="Only this consumer group.")] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    namespace: Namespace = "",
    as_json: AsJson = False,
) -> None:
    """Consumer lag per group and topic-partition: committed offset against the end offset."""
    rows = render.lag_json(_run(consumer_lag(bootstrap, namespace, group), bootstrap), namespace)
    if as_json:
        render.print_json(rows)
    else:
        render.print_lag(rows)


AuditDatabase = Annotated[
    str,
    typer.Option(
        "--database",
        help="The service's database URL (intake's or assignment's).",
        show_default=False,
    ),
]
AnchorKey = Annotated[
    str | None,
    typer.Option(
        "--anchor-key",
        envvar="AUDIT_ANCHOR_KEY",
        help="The service's AUDIT_ANCHOR_KEY, to check the anchors' signatures.",
        show_default=False,
    ),
]


@audit_app.command("verify")
def audit_verify(
    database: AuditDatabase, anchor_key: AnchorKey = None, as_json: AsJson = False
) -> None:
    """Walk the audit trail: any altered, removed or reordered entry, a cut end, an anchor
    that does not match (or, with the key, whose signature does not verify) fails (exit 1)."""
    key = anchor_key.encode() if anchor_key else None
    verdict = _run(audit.verify_database(database, key))
    if as_json:
        render.print_json(
            {
                "ok": verdict.ok,
                "entries": verdict.entries,
                "anchors": verdict.anchors,
                "head": verdict.head_seq,
                "purged_through": verdict.purged_through,
                "signatures_checked": verdict.signatures_checked,
                "problems": verdict.problems,
            }
        )
    else:
        for problem in verdict.problems:
            typer.echo(f"TAMPERED: {problem}")
        signed = "checked" if verdict.signatures_checked else "NOT checked (no AUDIT_ANCHOR_KEY)"
        status = "intact" if verdict.ok else f"{len(verdict.problems)} problem(s)"
        purged = (
            f" (entries 1..{verdict.purged_through} purged after their retention period)"
            if verdict.purged_through
            else ""
        )
        typer.echo(
            f"audit trail {status}: {verdict.entries} entries{purged}, {verdict.anchors} "
            f"anchors (signatures {signed})"
        )
    if not verdict.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(database: AuditDatabase, anchor_key: AnchorKey = None) -> None:
    """Sign the audit trail's head now, as the service's daily worker does."""
    if not anchor_key:
        raise typer.BadParameter("give the service's AUDIT_ANCHOR_KEY (--anchor-key or env)")
    made = _run(audit.anchor_database(database, anchor_key.encode()))
    if made is None:
        typer.echo("the audit trail is empty: nothing to anchor")
    else:
        typer.echo(f"anchored entry {made['seq']} ({made['head_hash'][:12]}…)")
