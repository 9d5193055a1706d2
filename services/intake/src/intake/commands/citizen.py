"""The citizen's actions on an open or answered file: another référent, the satisfaction
survey, thanks to the référent by name."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork, utcnow
from intake.domain import (
    NO_REFERENT_YET,
    TimelineKind,
    ensure_not_erased,
    ensure_not_thanked_yet,
    ensure_referent_change_allowed,
    ensure_survey_open,
    named_referent,
)
from intake.records import add_timeline, file_for_update
from intake.schemas import SurveyIn
from intake.tables import files, surveys, thanks
from shared_models import (
    CitizenContact,
    ReferentChangeRequested,
    ReferentThanked,
    SurveyAnswered,
    citizen_name,
    topics,
)


async def request_referent_change(file_id: str, reason: str, uow: UnitOfWork) -> None:
    """The citizen asks for another référent: granted once per file, on an open file."""
    async with uow:
        row = await file_for_update(uow, file_id)
        ensure_referent_change_allowed(row.status, row.referent, row.referent_change_requested_at)
        now = utcnow()
        await uow.conn.execute(
            files.update()
            .where(files.c.file_id == file_id)
            .values(referent_change_requested_at=now, referent_change_reason=reason)
        )
        event = ReferentChangeRequested(
            file_id=file_id, occurred_at=now, requested_by="citoyen", reason=reason
        )
        await add_timeline(
            uow,
            event,
            TimelineKind.REFERENT_CHANGE_REQUESTED,
            f"Vous avez demandé un autre référent. Motif : {reason}",
        )
        uow.emit(topics.REFERENT_CHANGES, event)
        await uow.commit()


async def answer_survey(file_id: str, survey: SurveyIn, uow: UnitOfWork) -> None:
    """Once per file, after the coordinated answer."""
    async with uow:
        row = await file_for_update(uow, file_id)
        done = await uow.conn.scalar(
            sa.select(surveys.c.file_id).where(surveys.c.file_id == file_id)
        )
        ensure_survey_open(row.status, already_answered=done is not None)
        now = utcnow()
        referent = row.referent or {}
        await uow.conn.execute(
            surveys.insert().values(
                file_id=file_id,
                score=survey.score,
                referent_reachable=survey.referent_reachable,
                comment=survey.comment,
                referent_agent_id=referent.get("agent_id"),
                answered_at=now,
            )
        )
        event = SurveyAnswered(
            file_id=file_id,
            occurred_at=now,
            score=survey.score,
            referent_reachable=survey.referent_reachable,
            comment=survey.comment,
            referent_agent_id=referent.get("agent_id"),
            office_id=referent.get("office_id"),
        )
        await add_timeline(
            uow, event, TimelineKind.SURVEY, f"Merci pour votre avis (note : {survey.score}/5)."
        )
        uow.emit(topics.SURVEYS, event)
        await uow.commit()


async def thank_referent(file_id: str, message: str, uow: UnitOfWork) -> str:
    """The citizen thanks their référent by name (once per référent and file); returns the
    name."""
    async with uow:
        row = await file_for_update(uow, file_id)
        ensure_not_erased(row.erased_at)
        referent = named_referent(row.referent, NO_REFERENT_YET)
        already = await uow.conn.scalar(
            sa.select(thanks.c.thanks_id).where(
                thanks.c.file_id == file_id, thanks.c.agent_id == referent.agent_id
            )
        )
        ensure_not_thanked_yet(referent, already_thanked=already is not None)
        citizen = CitizenContact.model_validate(row.citizen)
        now = utcnow()
        thanks_id = str(uuid.uuid4())
        await uow.conn.execute(
            thanks.insert().values(
                thanks_id=thanks_id,
                file_id=file_id,
                agent_id=referent.agent_id,
                agent_name=referent.name,
                office_id=referent.office_id,
                citizen_given_name=citizen.given_name,
                message=message,
                at=now,
            )
        )
        event = ReferentThanked(
            file_id=file_id,
            occurred_at=now,
            thanks_id=thanks_id,
            referent=referent,
            citizen=citizen_name(citizen),
            message=message,
        )
        await add_timeline(uow, event, TimelineKind.THANKS, f"Vous avez remercié {referent.name}.")
        uow.emit(topics.THANKS, event)
        await uow.commit()
    return referent.name
