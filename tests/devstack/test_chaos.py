"""`make chaos` in miniature: 30 three-agency files through the whole stack on SQLite while
assignment is SIGKILLed once, each agency's system goes down for a few seconds and the broker
is restarted once. Nothing lost, nothing stuck, nothing twice. (The full run, 10,000 files on
SQLite and on PostgreSQL with two assignment replicas, is `make chaos`: docs/operations.md.)

The command starts a broker of its own (it restarts it): the session's broker is not used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

GUICHET_DEV = str(Path(sys.executable).parent / "guichet-dev")


def test_a_short_chaos_run_loses_nothing_and_duplicates_nothing(tmp_path):
    out = tmp_path / "chaos.json"
    args = [
        *("--files", "30", "--rate", "2", "--backend", "sqlite"),
        *("--victims", "assignment", "--max-kills", "1", "--kill-every", "5"),
        *("--outage-seconds", "3", "--broker-restarts", "1", "--down-seconds", "1"),
        *("--settle", "120", "--output", str(out)),
    ]
    done = subprocess.run(
        [GUICHET_DEV, "chaos", *args], capture_output=True, text=True, timeout=450
    )
    assert out.exists(), f"no report:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(out.read_text())
    chaos = report["chaos"]
    # The faults really happened.
    assert [k["service"] for k in chaos["kills"]] == ["assignment"]
    assert chaos["restarts"] == 1 and len(chaos["broker_restarts"]) == 1
    assert sorted(o["agency"] for o in chaos["outages"]) == ["caf", "dgfip", "france_travail"]
    # And left nothing behind.
    assert (report["submitted"], report["answered"]) == (30, 30), report["stuck_files"]
    assert (report["lost"], report["stuck"], report["submit_failed"]) == (0, 0, 0)
    assert report["duplicate_referents"] == []
    assert report["duplicate_messages"] == {
        "mail": [],
        "mail_same_subject": [],
        "sms": [],
        "letters": [],
    }
    assert report["agency_repeats"] == {} and report["dead_letters"] == {}
    assert chaos["crashes"] == [] and chaos["restarts_failed"] == []
    assert report["failures"] == [] and done.returncode == 0, done.stdout[-3000:]
