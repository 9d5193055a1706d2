"""One-time access codes: a citizen opens their file online without an account. Only a
salted hash of each code is kept; the code leaves sealed for the notification service,
which sends it. A verified code gives a short-lived proof of control of the file's channel
(only its hash is kept), which changing the contact details requires."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from guichet_runtime.sealing import Keyring
from intake.domain import (
    ACCESS_CODE_MAX_ATTEMPTS,
    ACCESS_CODE_TTL,
    ACCESS_PROOF_TTL,
    CODE_NO_LONGER_VALID,
    PROOF_EXPIRED,
    PROOF_NEEDED,
    code_hash,
    code_retry_after,
    ensure_code_can_be_sent,
    ensure_not_erased,
    new_access_code,
    new_access_proof,
    proof_hash,
    wrong_code,
)
from intake.records import file_for_update, live_proof
from intake.tables import access_codes
from shared_models import AccessCodeIssued, CitizenContact, Referent, topics


async def issue_access_code(file_id: str, uow: UnitOfWork, keyring: Keyring) -> dt.datetime:
    """Store a hashed one-time code and emit it once, sealed with `keyring` for the
    notification service to send. Returns when it expires."""
    async with uow:
        row = await file_for_update(uow, file_id)
        ensure_not_erased(row.erased_at)
        citizen = CitizenContact.model_validate(row.citizen)
        now = utcnow()
        recent, oldest = (
            await uow.conn.execute(
                sa.select(sa.func.count(), sa.func.min(access_codes.c.created_at)).where(
                    access_codes.c.file_id == file_id,
                    access_codes.c.created_at > now - ACCESS_CODE_TTL,
                )
            )
        ).one()
        ensure_code_can_be_sent(
            bool(citizen.email), bool(citizen.phone), recent, code_retry_after(oldest, now)
        )
        code, salt = new_access_code()
        expires_at = now + ACCESS_CODE_TTL
        await uow.conn.execute(
            access_codes.insert().values(
                file_id=file_id,
                code_hash=code_hash(salt, code),
                salt=salt,
                created_at=now,
                expires_at=expires_at,
                attempts=0,
            )
        )
        try:
            referent = Referent.model_validate(row.referent) if row.referent else None
        except ValueError:  # a card recorded before agent ids were kept
            referent = None
        uow.emit(
            topics.ACCESS_CODES,
            AccessCodeIssued(
                file_id=file_id,
                occurred_at=now,
                sealed_code=keyring.seal(code, AccessCodeIssued.sealing_context(file_id)),
                expires_at=expires_at,
                citizen=citizen,
                referent=referent,
            ),
        )
        await uow.commit()
    return expires_at


@dataclass(frozen=True)
class AccessProof:
    """What a verified code gives: a bearer proof of control of the file's channel, bound
    to that file, valid until `expires_at`."""

    token: str
    expires_at: dt.datetime


async def verify_access_code(file_id: str, code: str, uow: UnitOfWork) -> AccessProof:
    """Accept a valid code once; a wrong one counts against every live code of the file.
    The code, spent, leaves a proof of access (only its hash is kept)."""
    async with uow:
        now = utcnow()
        live = (
            await uow.conn.execute(
                sa.select(access_codes)
                .where(
                    access_codes.c.file_id == file_id,
                    access_codes.c.used_at.is_(None),
                    access_codes.c.expires_at > now,
                    access_codes.c.attempts < ACCESS_CODE_MAX_ATTEMPTS,
                )
                .with_for_update()
            )
        ).all()
        if not live:
            raise Refused(RefusalKind.FORBIDDEN, CODE_NO_LONGER_VALID)
        match = next(
            (c for c in live if hmac.compare_digest(c.code_hash, code_hash(c.salt, code))), None
        )
        if match is None:
            await uow.conn.execute(
                access_codes.update()
                .where(access_codes.c.id.in_([c.id for c in live]))
                .values(attempts=access_codes.c.attempts + 1)
            )
            await uow.commit()
            raise wrong_code(max(c.attempts for c in live))
        proof = AccessProof(new_access_proof(), now + ACCESS_PROOF_TTL)
        await uow.conn.execute(
            access_codes.update()
            .where(access_codes.c.id == match.id)
            .values(
                used_at=now, proof_hash=proof_hash(proof.token), proof_expires_at=proof.expires_at
            )
        )
        await uow.commit()
    return proof


async def ensure_access_proof(uow: UnitOfWork, file_id: str, proof: str | None) -> None:
    """Within the caller's transaction: refuse (401) unless `proof` is a live proof given
    by a code verified for this very file."""
    if not proof:
        raise Refused(RefusalKind.UNAUTHENTICATED, PROOF_NEEDED)
    if not await live_proof(uow, file_id, proof):
        raise Refused(RefusalKind.UNAUTHENTICATED, PROOF_EXPIRED)
