"""Reconciliation: an asynchronous agency that acknowledged a request and has not called back
in time is asked where the request stands, with backoff, until it has decided.

Durable: when to poll next is a column of the request (`requests.next_poll_at`), so a
restarted adapter carries on where it stopped; no timer lives only in memory. The decision a
poll finds takes the same path as a callback (`decisions.apply_once`), so a poll and a
callback racing apply it once. The worker also applies held callbacks whose request is known
by now, and keeps the gauges of requests awaiting a decision (and overdue) up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from adapter_sdk.callbacks import CallbackDesk
from adapter_sdk.config import AdapterConfig
from adapter_sdk.decisions import Recorder, apply_once
from adapter_sdk.interface import (
    AgencyAdapter,
    AgencyAnswer,
    AgencyReply,
    AnswerInvalid,
    PendingRequest,
    answer_problems,
    offers_status,
)
from adapter_sdk.metrics import AdapterMetrics
from adapter_sdk.tables import CallbackOutcome, RequestStatus, requests
from adapter_sdk.transport import AgencyFailed, AgencyRejected, AgencyUnavailable, Transport
from guichet_runtime.db import UnitOfWork, utcnow
from shared_models import AgencyStatusChecked, ExchangeDirection, StatusFinding, topics

log = logging.getLogger(__name__)

#: Requests polled per sweep at most (the rest wait for the next tick).
BATCH = 50


def poll_delay(config: AdapterConfig, polls: int) -> float:
    """Seconds before the next status poll, after `polls` polls that found no decision."""
    return min(
        config.reconcile_first_seconds * config.reconcile_backoff_factor**polls,
        config.reconcile_max_seconds,
    )


def read_status_checked(adapter: AgencyAdapter, reply: AgencyReply) -> AgencyAnswer | None:
    """The adapter's reading of a status reply; anything unreadable or incoherent is
    AnswerInvalid."""
    try:
        answer = adapter.read_status(reply)
    except AnswerInvalid:
        raise
    except Exception as exc:
        raise AnswerInvalid(f"état illisible ({type(exc).__name__}: {exc})") from exc
    if answer is not None and not isinstance(answer, AgencyAnswer):
        raise AnswerInvalid(f"read_status a rendu {type(answer).__name__}, ni réponse ni None")
    if answer is not None and answer_problems(answer):
        raise AnswerInvalid("état incohérent : " + "; ".join(answer_problems(answer)))
    return answer


class Reconciler:
    """The background worker of one adapter process."""

    def __init__(
        self,
        adapter: AgencyAdapter,
        config: AdapterConfig,
        uow: Callable[..., UnitOfWork],
        transport: Transport,
        recorder: Recorder,
        metrics: AdapterMetrics,
        desk: CallbackDesk,
    ) -> None:
        self.adapter = adapter
        self.decl = adapter.declaration
        self.config = config
        self.uow = uow
        self.transport = transport
        self.recorder = recorder
        self.metrics = metrics
        self.desk = desk

    @property
    def polls(self) -> bool:
        """Whether this adapter's requests are reconciled by status polls."""
        return self.decl.asynchronous and offers_status(self.adapter)

    def first_poll_at(self) -> dt.datetime | None:
        """When a request acknowledged now is first polled (None: never)."""
        if not self.polls:
            return None
        return utcnow() + dt.timedelta(seconds=poll_delay(self.config, 0))

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """Sweep every RECONCILE_TICK_SECONDS until `stopping` is set (SIGTERM: it returns
        between two sweeps) or cancelled; a failed sweep is retried."""
        stopping = stopping or asyncio.Event()
        while not stopping.is_set():
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: reconciliation sweep failed", self.decl.agency)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.config.reconcile_tick_seconds)

    async def sweep(self) -> int:
        """One pass: held callbacks, gauges, then the polls due. Returns the polls made."""
        await self.desk.apply_all_held()
        await self.measure()
        if not self.polls:
            return 0
        async with self.uow() as uow:
            due = (
                await uow.conn.execute(
                    sa.select(requests)
                    .where(
                        requests.c.status == RequestStatus.AWAITING,
                        requests.c.next_poll_at.is_not(None),
                        requests.c.next_poll_at <= utcnow(),
                    )
                    .order_by(requests.c.next_poll_at)
                    .limit(BATCH)
                )
            ).all()
        for row in due:
            await self.poll(row)
        return len(due)

    async def measure(self) -> None:
        """Requests acknowledged without a decision, and those past OVERDUE_SECONDS."""
        overdue_since = utcnow() - dt.timedelta(seconds=self.config.overdue_seconds)
        awaiting = requests.c.status == RequestStatus.AWAITING
        async with self.uow() as uow:
            waiting = (
                await uow.conn.execute(sa.select(sa.func.count()).where(awaiting))
            ).scalar_one()
            late = (
                await uow.conn.execute(
                    sa.select(sa.func.count()).where(
                        awaiting, requests.c.updated_at < overdue_since
                    )
                )
            ).scalar_one()
        self.metrics.awaiting_decision.labels(self.decl.agency).set(waiting)
        self.metrics.overdue.labels(self.decl.agency).set(late)

    async def poll(self, row: sa.Row[Any]) -> CallbackOutcome | None:
        """Ask the agency for one request's state; apply the decision if there is one."""
        agency = self.decl.agency
        answer: AgencyAnswer | None = None
        failed = True
        try:
            call = self.adapter.build_status_call(
                PendingRequest(row.request_id, row.file_id, row.agency_reference)
            )
            reply = await self.transport.send(call)
            answer = read_status_checked(self.adapter, reply)
            self.metrics.status_polls.labels(
                agency, "en_instruction" if answer is None else "reponse"
            ).inc()
            failed = False
        except (AgencyUnavailable, AgencyFailed, AgencyRejected, AnswerInvalid) as exc:
            log.warning("%s: status poll of %s failed: %s", agency, row.request_id, exc)
            self.metrics.status_polls.labels(agency, "echec").inc()
        except Exception:  # a defect of the adapter: keep the request, try later
            log.exception("%s: status poll of %s failed", agency, row.request_id)
            self.metrics.status_polls.labels(agency, "echec").inc()
        async with self.uow() as uow:
            if (
                answer is None
            ):  # no decision yet (or no answer): ask again later, a little later each time
                next_poll_at = utcnow() + dt.timedelta(
                    seconds=poll_delay(self.config, row.polls + 1)
                )
                still = await uow.conn.execute(
                    requests.update()
                    .where(
                        requests.c.request_id == row.request_id,
                        requests.c.status == RequestStatus.AWAITING,
                    )
                    .values(polls=row.polls + 1, next_poll_at=next_poll_at)
                )
                if still.rowcount:  # what it found, for the supervisors' view (assignment)
                    uow.emit(
                        topics.LEGAL_CLOCK,
                        AgencyStatusChecked(
                            file_id=row.file_id,
                            request_id=row.request_id,
                            agency=agency,
                            finding=StatusFinding.FAILED if failed else StatusFinding.PENDING,
                            checks=row.polls + 1,
                            next_check_at=next_poll_at,
                        ),
                    )
                await uow.commit()
                return None
            await self.recorder.record_exchanges(
                uow,
                row.file_id,
                row.request_id,
                (
                    ExchangeDirection.SENT,
                    f"Consultation de l'état de la demande : {self.decl.purpose}",
                    call.body,
                    1,
                ),
            )
            outcome = await apply_once(
                uow,
                self.recorder,
                row.request_id,
                answer,
                reply.body,
                "consultation de l'état",
                self.decl.purpose,
            )
            await uow.commit()
        self.metrics.handled.labels(agency, "consultation", outcome.value).inc()
        return outcome
