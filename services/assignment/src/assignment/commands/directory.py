"""Agents come and go: absences get a temporary cover per file (same office first) and
the files go back on return; a departure spreads the portfolio over the least loaded
colleagues; a supervisor may move a file with a reason. At every step each open file
keeps exactly one active référent and nobody goes above capacity."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection

import sqlalchemy as sa

from assignment import domain
from assignment.commands.absence_appointments import cancel_appointments_during_absence
from assignment.domain import AbsenceStatus, AgentStatus, AssignmentRule, FileStatus
from assignment.lifecycle import compose_if_complete, file_agencies, move_file, park_file
from assignment.personal_columns import citizen_of
from assignment.referents import take_agent, take_capacity
from assignment.tables import absences, agents, files
from guichet_runtime import audit
from guichet_runtime.audit import AuditAction
from guichet_runtime.auth.principal import Principal
from guichet_runtime.clock import now_on
from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from shared_models import AgentAbsenceDeclared, AgentLeft, AgentReturned, topics

log = logging.getLogger(__name__)


async def _agent(uow: UnitOfWork, agent_id: str) -> sa.Row:
    row = (
        await uow.conn.execute(
            sa.select(agents).where(agents.c.agent_id == agent_id).with_for_update()
        )
    ).first()
    if row is None:
        raise Refused(RefusalKind.NOT_FOUND, f"Aucun agent ne porte l'identifiant {agent_id}.")
    return row


async def _open_files(uow: UnitOfWork, column: sa.Column, agent_id: str) -> list[sa.Row]:
    return (
        await uow.conn.execute(
            sa.select(files)
            .where(column == agent_id, files.c.status != FileStatus.ANSWERED)
            .order_by(files.c.urgent.desc(), files.c.created_at)
            .with_for_update()
        )
    ).all()


async def _cover(uow: UnitOfWork, file: sa.Row, away: sa.Row) -> domain.Choice | None:
    """A colleague of the same office first, then the usual rules."""
    agencies = await file_agencies(uow, file.file_id)
    postcode = (await citizen_of(uow, file)).postcode
    return await take_agent(
        uow,
        agencies,
        postcode,
        None,
        exclude=away.agent_id,
        office_id=away.office_id,
        urgent=file.urgent,
    ) or await take_agent(uow, agencies, postcode, None, exclude=away.agent_id, urgent=file.urgent)


async def declare_absence(
    uow: UnitOfWork,
    agent_id: str,
    starts_on: dt.date,
    ends_on: dt.date,
    reason: str | None,
    today: dt.date,
    by: Principal | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """A supervisor declares an agent's absence, saying why (422 without a reason). The
    agent's appointments on its days are cancelled with it (`now`: the instant, by default
    the time of day on `today`)."""
    if ends_on < starts_on:
        raise Refused(RefusalKind.INVALID, "La date de fin d'absence précède la date de début.")
    if ends_on < today:
        raise Refused(RefusalKind.INVALID, "Cette absence est déjà terminée.")
    async with uow:
        agent = await _agent(uow, agent_id)
        if agent.status == AgentStatus.GONE:
            raise Refused(RefusalKind.CONFLICT, f"{agent.name} a quitté le réseau.")
        reason = audit.reason_given(reason)
        result = await uow.conn.execute(
            absences.insert().values(
                agent_id=agent_id,
                starts_on=starts_on,
                ends_on=ends_on,
                reason=reason,
                status=AbsenceStatus.PLANNED,
                created_at=utcnow(),
            )
        )
        absence_id = result.inserted_primary_key[0]
        uow.emit(
            topics.DIRECTORY_CHANGES,
            AgentAbsenceDeclared(
                agent_id=agent_id, absence_id=absence_id, starts_on=starts_on, ends_on=ends_on
            ),
        )
        covered = await _start_absence(uow, absence_id, today) if starts_on <= today else 0
        # After the cover: the citizen is told whom to book with again.
        cancelled = await _cancel_appointments(uow, absence_id, now or now_on(today), by)
        audit.record(
            uow,
            by or audit.SYSTEM,
            AuditAction.ABSENCE_DECLARED,
            agent_id=agent_id,
            reason=reason,
            starts_on=starts_on.isoformat(),
            ends_on=ends_on.isoformat(),
            files_covered=covered,
            appointments_cancelled=cancelled,
        )
        await uow.commit()
    status = AbsenceStatus.ONGOING if starts_on <= today else AbsenceStatus.PLANNED
    return {
        "absence_id": absence_id,
        "status": status.value,
        "files_covered": covered,
        "appointments_cancelled": cancelled,
    }


async def _cancel_appointments(
    uow: UnitOfWork, absence_id: int, now: dt.datetime, by: Principal | None = None
) -> int:
    """The absent agent's appointments on the days of the absence, cancelled (the citizen
    is told why and whom to book with again)."""
    absence = (await uow.conn.execute(sa.select(absences).where(absences.c.id == absence_id))).one()
    name = await uow.conn.scalar(
        sa.select(agents.c.name).where(agents.c.agent_id == absence.agent_id)
    )
    return await cancel_appointments_during_absence(
        uow,
        absence.agent_id,
        str(name),
        absence.starts_on,
        absence.ends_on,
        now,
        by,
    )


async def _start_absence(uow: UnitOfWork, absence_id: int, today: dt.date) -> int:
    absence = (await uow.conn.execute(sa.select(absences).where(absences.c.id == absence_id))).one()
    agent = await _agent(uow, absence.agent_id)
    await uow.conn.execute(
        agents.update().where(agents.c.agent_id == agent.agent_id).values(status=AgentStatus.ABSENT)
    )
    await uow.conn.execute(
        absences.update().where(absences.c.id == absence_id).values(status=AbsenceStatus.ONGOING)
    )
    until = f"{absence.ends_on:%d/%m/%Y}"
    covered = 0
    for file in await _open_files(uow, files.c.referent_id, agent.agent_id):
        choice = await _cover(uow, file, agent)
        if choice is None:
            log.warning(
                "no cover with room for %s during %s's absence: it waits", file.file_id, agent.name
            )
            await park_file(
                uow,
                file,
                titular_id=agent.agent_id,
                reason=(
                    f"{agent.name} est absent(e) jusqu'au {until} inclus "
                    "et aucun collègue n'a de place."
                ),
            )
            continue
        await move_file(
            uow,
            file,
            choice.agent_id,
            AssignmentRule.COVER,
            f"Suppléance pendant l'absence de {agent.name} jusqu'au {until} inclus — "
            f"{choice.explanation}",
            f"{agent.name} est absent(e) jusqu'au {until} inclus ; "
            f"votre dossier reviendra ensuite à {agent.name}.",
            choice.considered,
            titular_id=agent.agent_id,
        )
        covered += 1
    return covered


async def agent_returns(uow: UnitOfWork, agent_id: str, by: Principal | None = None) -> dict:
    async with uow:
        returned = await _end_absence(uow, agent_id)
        audit.record(
            uow,
            by or audit.SYSTEM,
            AuditAction.AGENT_RETURNED,
            agent_id=agent_id,
            files_returned=returned,
        )
        await uow.commit()
    return {"files_returned": returned}


async def _end_absence(uow: UnitOfWork, agent_id: str) -> int:
    agent = await _agent(uow, agent_id)
    if agent.status != AgentStatus.ABSENT:
        raise Refused(RefusalKind.CONFLICT, f"{agent.name} n'est pas absent(e).")
    await uow.conn.execute(
        agents.update().where(agents.c.agent_id == agent_id).values(status=AgentStatus.ACTIVE)
    )
    await uow.conn.execute(
        absences.update()
        .where(absences.c.agent_id == agent_id, absences.c.status == AbsenceStatus.ONGOING)
        .values(status=AbsenceStatus.ENDED)
    )
    returned = 0
    for file in await _open_files(uow, files.c.titular_id, agent_id):
        # Their own files come back even above capacity: they were within it before.
        await take_capacity(uow, agent_id, reserve_percent=None)
        await move_file(
            uow,
            file,
            agent_id,
            AssignmentRule.RETURN,
            f"Retour de {agent.name} : reprise de son dossier.",
            f"{agent.name} est de retour et reprend votre dossier.",
            [agent_id],
            titular_id=None,
            previous_agent_id=file.referent_id or agent_id,  # a file that waited had no cover
        )
        await compose_if_complete(uow, file.file_id)
        returned += 1
    uow.emit(topics.DIRECTORY_CHANGES, AgentReturned(agent_id=agent_id, files_returned=returned))
    return returned


async def agent_leaves(
    uow: UnitOfWork, agent_id: str, reason: str | None, by: Principal | None = None
) -> dict:
    """An agent leaves the network, the supervisor saying why (422 without a reason)."""
    async with uow:
        agent = await _agent(uow, agent_id)
        if agent.status == AgentStatus.GONE:
            raise Refused(RefusalKind.CONFLICT, f"{agent.name} a déjà quitté le réseau.")
        reason = audit.reason_given(reason)
        await uow.conn.execute(
            agents.update().where(agents.c.agent_id == agent_id).values(status=AgentStatus.GONE)
        )
        moved = waiting = 0
        # Files covered by someone else go to their cover for good; the agent's own go
        # one by one to the least loaded colleague, which balances the portfolio.
        for file in await _open_files(uow, files.c.titular_id, agent_id):
            await uow.conn.execute(
                files.update().where(files.c.file_id == file.file_id).values(titular_id=None)
            )
        for file in await _open_files(uow, files.c.referent_id, agent_id):
            choice = await _cover(uow, file, agent)
            if choice is None:
                await park_file(
                    uow,
                    file,
                    titular_id=None,
                    reason=f"{agent.name} a quitté son poste et aucun collègue n'a de place.",
                )
                waiting += 1
                continue
            await move_file(
                uow,
                file,
                choice.agent_id,
                AssignmentRule.DEPARTURE,
                f"Départ de {agent.name} — {choice.explanation}",
                # The departure's reason is internal (audit trail): citizens are not told it.
                f"{agent.name} a quitté son poste ; tout votre dossier a été transmis.",
                choice.considered,
                titular_id=None,
            )
            moved += 1
        uow.emit(
            topics.DIRECTORY_CHANGES,
            AgentLeft(agent_id=agent_id, files_redistributed=moved, files_waiting=waiting),
        )
        audit.record(
            uow,
            by or audit.SYSTEM,
            AuditAction.AGENT_LEFT,
            agent_id=agent_id,
            reason=reason,
            files_redistributed=moved,
            files_without_referent=waiting,
        )
        await uow.commit()
    return {"files_redistributed": moved, "files_without_referent": waiting}


async def reassign(
    uow: UnitOfWork,
    file_id: str,
    reason: str,
    agent_id: str | None,
    supervised: Collection[str] | None = None,
    by: Principal | None = None,
) -> dict:
    """A supervisor moves a file, to a named agent of an office they supervise
    (`supervised`) or by the usual rules."""
    async with uow:
        file = (
            await uow.conn.execute(
                sa.select(files).where(files.c.file_id == file_id).with_for_update()
            )
        ).first()
        if file is None:
            raise Refused(RefusalKind.NOT_FOUND, f"Aucun dossier ne porte la référence {file_id}.")
        if file.status == FileStatus.ANSWERED or file.referent_id is None:
            raise Refused(
                RefusalKind.CONFLICT, "Ce dossier est clos ou attend encore son premier référent."
            )
        if agent_id is not None:
            target = await _agent(uow, agent_id)
            domain.ensure_target_supervised(target.name, target.office_id, supervised)
            if agent_id == file.referent_id:
                raise Refused(
                    RefusalKind.CONFLICT, f"{target.name} est déjà le référent de ce dossier."
                )
            if target.status != AgentStatus.ACTIVE:
                raise Refused(
                    RefusalKind.CONFLICT, f"{target.name} n'est pas disponible ({target.status})."
                )
            if not await take_capacity(uow, agent_id, reserve_percent=0):
                raise Refused(
                    RefusalKind.CONFLICT,
                    f"{target.name} a atteint sa capacité ({target.capacity} dossiers).",
                )
            explanation, considered = f"Choisi par le superviseur : {target.name}.", [agent_id]
        else:
            choice = await take_agent(
                uow,
                await file_agencies(uow, file_id),
                (await citizen_of(uow, file)).postcode,
                None,
                exclude=file.referent_id,
                urgent=file.urgent,
            )
            if choice is None:
                raise Refused(
                    RefusalKind.CONFLICT, "Aucun autre agent n'a de place pour ce dossier."
                )
            agent_id, explanation, considered = (
                choice.agent_id,
                choice.explanation,
                choice.considered,
            )
        await move_file(
            uow,
            file,
            agent_id,
            AssignmentRule.SUPERVISOR_MOVE,
            f"Motif : {reason} — {explanation}",
            reason,
            considered,
            titular_id=None,
        )
        audit.record(
            uow,
            by or audit.SYSTEM,
            AuditAction.FILE_REASSIGNED,
            file_id=file_id,
            agent_id=agent_id,
            reason=reason,
            previous_referent=file.referent_id,
        )
        await uow.commit()
    return {"file_id": file_id, "referent_id": agent_id}


async def apply_due_absences(uow_factory, today: dt.date, now: dt.datetime | None = None) -> int:
    """Start the absences whose first day has come and end those whose last day has
    passed. State lives in the database, so any replica, after any restart, does it."""
    done = 0
    async with uow_factory() as uow:
        due = (
            await uow.conn.execute(
                sa.select(absences.c.id, absences.c.agent_id, absences.c.status).where(
                    sa.or_(
                        sa.and_(
                            absences.c.status == AbsenceStatus.PLANNED,
                            absences.c.starts_on <= today,
                        ),
                        sa.and_(
                            absences.c.status == AbsenceStatus.ONGOING,
                            absences.c.ends_on < today,
                        ),
                    )
                )
            )
        ).all()
    for absence in due:
        async with uow_factory() as uow:
            if absence.status == AbsenceStatus.PLANNED:
                await _start_absence(uow, absence.id, today)
                # Declaring it cancelled them; one booked as it was declared is caught here.
                late = await _cancel_appointments(uow, absence.id, now or now_on(today))
                if late:
                    log.warning("%d appointment(s) cancelled as absence %s began", late, absence.id)
            else:
                await _end_absence(uow, absence.agent_id)
            await uow.commit()
            done += 1
    return done
