"""Issue 13: the référent's continuity under sealing for a citizen without an account. A
citizen's files are matched at assignment by their data key's id; intake gives the files
of a citizen without an account one key, found by a keyed pseudonym of their contact."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from guichet_runtime.personal_data import contact_pseudonym
from tests.unit import test_personal_data
from tests.unit.test_personal_data import CITIZEN

# Intake on its real SQLite database, its key-encryption key loaded.
intake = test_personal_data.intake


def test_a_citizen_without_an_account_keeps_one_key_per_contact(intake):
    """Their files share one key when they share an email (any case) or, without one, a
    phone; a citizen with neither gets a key per file; no contact is stored."""
    from intake.commands.personal_data import seal_new_file
    from intake.tables import personal_data_key_refs, personal_data_keys

    _, runtime, _ = intake
    same = CITIZEN.model_copy(update={"email": CITIZEN.email.upper()})
    other = CITIZEN.model_copy(update={"email": "quelquun.dautre@example.fr"})
    by_phone = CITIZEN.model_copy(update={"email": None, "phone": "0612345678"})
    nothing = CITIZEN.model_copy(update={"email": None, "phone": None})
    files = {
        "GU-2026-CONTACT1": CITIZEN,
        "GU-2026-CONTACT2": same,
        "GU-2026-CONTACT3": other,
        "GU-2026-CONTACT4": by_phone,
        "GU-2026-CONTACT5": by_phone,
        "GU-2026-CONTACT6": nothing,
        "GU-2026-CONTACT7": nothing,
    }

    async def seal_all() -> tuple[dict, list]:
        for file_id, citizen in files.items():
            async with runtime.uow() as uow:
                await seal_new_file(uow, file_id, None, citizen)
                await uow.commit()
        async with runtime.engine.connect() as conn:
            refs = dict(
                (
                    await conn.execute(
                        sa.select(personal_data_key_refs.c.file_id, personal_data_key_refs.c.key_id)
                    )
                ).all()
            )
            owners = (await conn.scalars(sa.select(personal_data_keys.c.subject))).all()
        return refs, owners

    keys, owners = asyncio.run(seal_all())

    assert keys["GU-2026-CONTACT1"] == keys["GU-2026-CONTACT2"]  # the same email, any case
    assert keys["GU-2026-CONTACT4"] == keys["GU-2026-CONTACT5"]  # the same phone
    assert len({keys[f] for f in ("GU-2026-CONTACT1", "GU-2026-CONTACT3", "GU-2026-CONTACT4")}) == 3
    assert keys["GU-2026-CONTACT6"] != keys["GU-2026-CONTACT7"]  # nothing to know them by
    pseudonyms = sorted(o for o in owners if o is not None)
    assert len(pseudonyms) == 3 and all(o.startswith("contact:") for o in pseudonyms)
    for owner in pseudonyms:
        assert "exemple" not in owner and "0612345678" not in owner
        assert len(owner) == len("contact:") + 43  # HMAC-SHA256, base64url


def test_the_pseudonym_is_stable_and_needs_the_key_encryption_key():
    kek, other = bytes(32), bytes(range(32))
    once = contact_pseudonym(kek, "email:awa@example.fr")
    assert once == contact_pseudonym(kek, "email:awa@example.fr")
    assert once != contact_pseudonym(kek, "email:awa2@example.fr")
    assert once != contact_pseudonym(other, "email:awa@example.fr")
