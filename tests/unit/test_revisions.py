"""The readiness probe's migration check without Alembic (guichet_runtime.revisions): the
same heads as Alembic's for every migrations folder of the project, the same answer on a
database before, at and behind its head, and a service's process that does not migrate at
start never loads Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from guichet_runtime import migrations, revisions
from guichet_runtime.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = sorted(
    path.parent
    for path in [
        *ROOT.glob("services/*/src/*/migrations/env.py"),
        *ROOT.glob("libs/*/src/*/migrations/env.py"),
    ]
)


async def alembic_at_head(script_location: Path, engine: AsyncEngine) -> bool:
    """Alembic's own answer (its script directory and migration context), for comparison."""
    heads = set(ScriptDirectory(str(script_location)).get_heads())
    async with engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync: set(MigrationContext.configure(sync).get_current_heads())
        )
    return current == heads


def test_every_migrations_folder_is_found() -> None:
    names = {folder.parent.name for folder in FOLDERS}
    assert {"intake", "assignment", "notification", "web", "adapter_sdk"} <= names


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.parent.name)
def test_the_scripts_heads_are_alembics(folder: Path) -> None:
    heads = revisions.script_heads(folder)
    assert heads
    assert heads == set(ScriptDirectory(str(folder)).get_heads())


async def test_at_head_answers_as_alembic_before_at_and_behind_the_head(tmp_path: Path) -> None:
    folder = next(f for f in FOLDERS if f.parent.name == "assignment")
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    try:
        answers = [(await revisions.at_head(folder, engine), await alembic_at_head(folder, engine))]
        await migrations.upgrade(folder, url)
        answers.append(
            (await revisions.at_head(folder, engine), await alembic_at_head(folder, engine))
        )
        head = ScriptDirectory(str(folder)).get_current_head()
        behind = ScriptDirectory(str(folder)).get_revision(head).down_revision
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE alembic_version SET version_num = :v"), {"v": behind}
            )
        answers.append(
            (await revisions.at_head(folder, engine), await alembic_at_head(folder, engine))
        )
    finally:
        await engine.dispose()
    assert answers == [(False, False), (True, True), (False, False)]


def test_a_service_that_does_not_migrate_never_loads_alembic() -> None:
    code = (
        "import sys\n"
        "import intake.__main__, assignment.__main__, notification.__main__, web.bootstrap\n"
        "import adapter_caf, adapter_france_travail\n"
        "import guichet_runtime.probes, guichet_runtime.service\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
