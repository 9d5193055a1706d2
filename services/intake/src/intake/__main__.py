"""`python -m intake` (the console script `intake`): the service; `intake retention`: one run
of the retention job (docs/data-protection.md, "Retention"), then exit."""

import asyncio
import json
import sys

from guichet_runtime.audit import trail_of
from guichet_runtime.clock import Clock
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.service import main as run
from intake.bootstrap import bootstrap
from intake.commands.retention import apply_retention
from intake.settings import IntakeSettings
from intake.tables import inbox, metadata, outbox


async def retention(settings: IntakeSettings) -> int:
    """Apply the retention periods once, on today's date (CLOCK_FILE's in a rehearsal)."""
    engine = make_engine(settings.database_url)
    trail = trail_of(metadata)
    try:
        done = await apply_retention(
            lambda: UnitOfWork(engine, outbox, inbox, audit=trail), Clock(settings.clock_file).now()
        )
    finally:
        await engine.dispose()
    sys.stdout.write(
        json.dumps(
            {
                "documents": done.documents,
                "erased_files": done.erased_files,
                "access_codes": done.access_codes,
                "audit_entries": done.audit_entries,
            }
        )
        + "\n"
    )
    return 0


def main() -> None:
    if sys.argv[1:2] == ["retention"]:
        sys.exit(asyncio.run(retention(IntakeSettings())))
    run(IntakeSettings, bootstrap)


if __name__ == "__main__":
    main()
