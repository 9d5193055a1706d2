"""The migration Job's command brings a service's database to head, and again is a no-op."""

import sqlite3
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["intake", "adapter_sdk"])
def test_upgrade_command_migrates_to_head_idempotently(package, tmp_path):
    db = tmp_path / "service.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{db}", "PATH": ""}
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-m", "guichet_runtime.migrations", "upgrade", package],
            env=env,
            check=True,
            cwd=tmp_path,
            timeout=120,
        )
    with sqlite3.connect(db) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version
