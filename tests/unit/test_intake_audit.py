"""Intake's audit trail over its real routes (docs/data-protection.md): an agent's reading of
the citizen's record says why, and the file's supervisors read the trail."""

from __future__ import annotations

from tests.unit.test_intake_access import REFERENT, assign, client, filed

__all__ = ["client"]  # the fixture, shared with test_intake_access


async def test_agents_reads_say_why_and_land_in_the_files_audit_trail(client):
    tokens = client.tokens
    file_id = await filed(client, tokens.citizen("marie"))
    await assign(client.db, file_id)
    referent, supervisor = tokens.agent(REFERENT), tokens.supervisor_of("FS-93-01")
    record, trail = f"/api/files/{file_id}/record", f"/api/files/{file_id}/audit"

    missing = await client.get(record, headers=referent)
    read = await client.get(record, params={"reason": "Appel de l'usager"}, headers=referent)
    viewed = await client.get(f"/api/files/{file_id}", headers=referent)
    own = await client.get(f"/api/files/{file_id}", headers=tokens.citizen("marie"))
    refused = {
        name: (await client.get(trail, headers=headers)).status_code
        for name, headers in {
            "anonymous": {},
            "citizen": tokens.citizen("marie"),
            "référent": referent,
            "supervisor elsewhere": tokens.supervisor_of("FS-75-01"),
        }.items()
    }
    entries = await client.get(trail, headers=supervisor)

    assert missing.status_code == 422 and missing.json()["field"] == "reason"
    assert missing.json()["message"].startswith("Indiquez le motif de cette action")
    assert (read.status_code, viewed.status_code, own.status_code) == (200, 200, 200)
    assert refused == {
        "anonymous": 401,
        "citizen": 403,
        "référent": 403,
        "supervisor elsewhere": 403,
    }
    assert entries.status_code == 200
    # The citizen's own reading is not recorded; the refused read left nothing either.
    assert [(e["action"], e["who"]["agent_id"], e["reason"]) for e in entries.json()] == [
        ("file.record.read", REFERENT, "Appel de l'usager"),
        ("file.read", REFERENT, None),
        ("file.audit.read", "SUP-1", None),
    ]
    assert entries.json()[0]["who"]["kind"] == "agent"
