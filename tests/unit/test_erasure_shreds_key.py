"""The erasure of a citizen's data (issue 13 §6) shreds their data key (§4) with their last
file still holding personal data: a logged-in citizen's files share one key, so erasing one
closed file while another is open keeps the key, and erasing the last one shreds it."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from guichet_runtime.auth.principal import Principal, PrincipalKind
from intake.commands.files import SubmitFile, submit_file
from intake.commands.gdpr import erase_file_data
from intake.commands.personal_data import key_of_file
from intake.domain import FileStatus
from intake.schemas import FileIn
from intake.tables import audit, files, personal_data_keys
from tests.unit.samples import AWA_FORM
from tests.unit.test_personal_data import intake

__all__ = ["intake"]  # the fixture: intake's app with crypto-shredding on

FORM = AWA_FORM


def test_the_key_is_shredded_with_the_citizens_last_file_not_before(intake):
    _, runtime, _ = intake
    awa = Principal(kind=PrincipalKind.CITIZEN, subject="citoyen-awa")
    form = FileIn.model_validate(FORM)

    async def shredded(key_id: str) -> bool:
        async with runtime.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(personal_data_keys).where(personal_data_keys.c.key_id == key_id)
                )
            ).one()
        return row.shredded_at is not None and row.wrapped_key is None

    async def close(file_id: str) -> None:
        async with runtime.engine.begin() as conn:
            await conn.execute(
                files.update().where(files.c.file_id == file_id).values(status=FileStatus.ANSWERED)
            )

    async def scenario() -> list[str]:
        first, _ = await submit_file(SubmitFile(form=form, by=awa), runtime.uow())
        second, _ = await submit_file(SubmitFile(form=form, by=awa), runtime.uow())
        key_id = await key_of_file(runtime.uow(), first)
        assert key_id is not None and key_id == await key_of_file(runtime.uow(), second)

        await close(first)
        await erase_file_data(first, True, awa, runtime.uow())
        assert not await shredded(key_id), "the open file still needs the key"

        await close(second)
        await erase_file_data(second, True, awa, runtime.uow())
        assert await shredded(key_id)
        async with runtime.engine.connect() as conn:
            return [r.action for r in await conn.execute(sa.select(audit.log.c.action))]

    actions = asyncio.run(scenario())
    assert actions.count("personal-data-key.shredded") == 1
    assert actions.count("file.data.erased") == 2


def test_an_anonymous_citizens_file_has_its_own_key_shredded_with_it(intake):
    _, runtime, _ = intake
    nobody = Principal.anonymous()

    async def scenario() -> tuple[str, object]:
        file_id, _ = await submit_file(
            SubmitFile(form=FileIn.model_validate(FORM), by=nobody), runtime.uow()
        )
        key_id = await key_of_file(runtime.uow(), file_id)
        assert key_id is not None
        async with runtime.engine.begin() as conn:
            await conn.execute(
                files.update().where(files.c.file_id == file_id).values(status=FileStatus.ANSWERED)
            )
        await erase_file_data(file_id, True, nobody, runtime.uow())
        async with runtime.engine.connect() as conn:
            return key_id, await conn.scalar(
                sa.select(personal_data_keys.c.shredded_at).where(
                    personal_data_keys.c.key_id == key_id
                )
            )

    _, shredded_at = asyncio.run(scenario())
    assert shredded_at is not None
