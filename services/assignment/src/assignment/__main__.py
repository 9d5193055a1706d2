"""`python -m assignment` (the console script `assignment`): the service; `assignment
retention`: one run of its retention job (its audit trail's days past their period, the chain
kept verifiable: docs/data-protection.md, "Audit trail"), then exit."""

import asyncio
import json
import sys

from assignment.bootstrap import AssignmentSettings, bootstrap
from assignment.tables import inbox, metadata, outbox
from guichet_runtime.audit import trail_of
from guichet_runtime.audit_purge import purge_trail
from guichet_runtime.clock import Clock
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.service import main as run


async def retention(settings: AssignmentSettings) -> int:
    """Apply the audit trail's retention once, on today's date (CLOCK_FILE's in a rehearsal).
    Assignment's copies of a citizen's data go on `CitizenDataErased` (intake's job)."""
    engine = make_engine(settings.database_url)
    try:
        uow = UnitOfWork(engine, outbox, inbox, audit=trail_of(metadata))
        done = await purge_trail(uow, Clock(settings.clock_file).now())
    finally:
        await engine.dispose()
    sys.stdout.write(json.dumps({"audit_entries": done.purged}) + "\n")
    return 0


def main() -> None:
    if sys.argv[1:2] == ["retention"]:
        sys.exit(asyncio.run(retention(AssignmentSettings())))
    run(AssignmentSettings, bootstrap)


if __name__ == "__main__":
    main()
