"""The chaos run's schedule and judgement (devstack.chaos_plan), without any process."""

from __future__ import annotations

import random

from devstack.chaos_plan import Fault, Observation, judge, schedule, state_of, verdict, why_stuck

AGENCIES = ("france_travail", "caf", "dgfip")


def plan(window: float, **overrides):
    args = {
        "victims": ("intake", "assignment"),
        "agencies": AGENCIES,
        "kill_every": 10.0,
        "max_kills": None,
        "outage_every": 60.0,
        "outage_seconds": 5.0,
        "broker_restarts": 1,
        "rng": random.Random(1),
    }
    return schedule(window, **{**args, **overrides})


def test_a_long_run_kills_every_few_seconds_and_each_agency_goes_down():
    steps = plan(300)
    kills = [s for s in steps if s.fault is Fault.KILL]
    assert [s.at for s in kills] == [10.0 * k for k in range(1, 30)]
    assert {s.target for s in kills} == {"intake", "assignment"}
    outages = [s for s in steps if s.fault is Fault.OUTAGE]
    assert {s.target for s in outages} == set(AGENCIES) and all(s.at < 300 for s in outages)
    assert [s.at for s in steps if s.fault is Fault.BROKER] == [150.0]
    assert steps == sorted(steps)


def test_a_short_run_still_gets_one_kill_each_outage_and_its_broker_restarts():
    steps = plan(5, max_kills=1, broker_restarts=2)
    assert len([s for s in steps if s.fault is Fault.KILL]) == 1
    assert sorted(s.target for s in steps if s.fault is Fault.OUTAGE) == sorted(AGENCIES)
    assert len([s for s in steps if s.fault is Fault.BROKER]) == 2


def test_kills_are_capped_or_off():
    assert len([s for s in plan(300, max_kills=3) if s.fault is Fault.KILL]) == 3
    assert not [s for s in plan(300, max_kills=0) if s.fault is Fault.KILL]
    assert not [s for s in plan(300, victims=()) if s.fault is Fault.KILL]


def answered_obs(*file_ids: str, **extra) -> Observation:
    return Observation(
        submitted=list(file_ids),
        intake_files=dict.fromkeys(file_ids, "repondu"),
        assignment_files=dict.fromkeys(file_ids, ("repondu", "AG-1")),
        assignments=dict.fromkeys(file_ids, 1),
        notifications={f: {"answer_ready": ["envoye"]} for f in file_ids},
        **extra,
    )


def test_a_clean_run_has_only_zeros():
    figures = judge(answered_obs("F1", "F2"))
    assert (figures["submitted"], figures["answered"], figures["lost"], figures["stuck"]) == (
        2,
        2,
        0,
        0,
    )
    assert verdict(figures) == []


def test_lost_files_are_those_a_service_never_knew():
    obs = answered_obs("F1")
    obs.submitted = ["F1", "F2", "F3"]
    obs.intake_files = {**obs.intake_files, "F3": "depose"}
    figures = judge(obs)
    assert figures["lost"] == 2 and figures["stuck"] == 0
    assert {item["file_id"] for item in figures["lost_files"]} == {"F2", "F3"}
    assert verdict(figures) == ["2 lost"]


def test_a_stuck_file_says_which_agency_request_waits_and_where():
    obs = answered_obs("F1")
    obs.intake_files = {"F1": "en_cours"}
    obs.intake_agencies = {"F1": {"caf": "repondu", "france_travail": "transmis"}}
    obs.requests = {"R-ft": ("F1", "france_travail", "transmise"), "R-caf": ("F1", "caf", "x")}
    obs.adapter_requests = {"france_travail": {"R-ft": "accuse"}}
    obs.agency_calls = {"france_travail": {"R-ft": 1}}
    figures = judge(obs)
    assert figures["stuck"] == 1
    [why] = figures["stuck_files"]
    assert why["waiting_for"] == [
        {
            "agency": "france_travail",
            "intake": "transmis",
            "request_id": "R-ft",
            "assignment": "transmise",
            "adapter": "accuse",
            "agency_calls": 1,
            "callbacks": 0,
        }
    ]
    assert figures["stuck_by_state"] == {
        "france_travail: intake transmis, assignment transmise, adapter accuse": 1
    }
    assert verdict(figures) == ["1 stuck"]


def test_a_file_without_referent_reads_as_such():
    obs = answered_obs("F1")
    obs.intake_files = {"F1": "depose"}
    obs.assignment_files = {"F1": ("en_attente_attribution", None)}
    assert state_of(why_stuck(obs, "F1")).startswith("no référent")


def test_duplicates_of_every_kind_fail_the_run():
    obs = answered_obs(
        "F1",
        mail_duplicates=[{"message_id": "m", "file_id": "F1", "copies": 2}],
        sms_repeats=[{"file_id": "other", "kind": "sms"}],
        dead_letters={"files.submitted.dlq": 1, "thanks.dlq": 0},
    )
    obs.assignments = {"F1": 2}
    obs.mail_subjects = {"F1": {"Votre réponse": 2, "Votre référent": 1}}
    figures = judge(obs)
    assert figures["duplicate_referents"] == [{"file_id": "F1", "decisions": 2}]
    assert figures["duplicate_messages"]["sms"] == []  # another run's file
    assert verdict(figures, {"processes that died by themselves": 1}) == [
        "1 files with two référents",
        "1 duplicate messages (mail)",
        "1 duplicate messages (mail_same_subject)",
        "1 dead letters on files.submitted.dlq",
        "1 processes that died by themselves",
    ]


def test_a_request_sent_again_after_its_adapter_was_killed_is_explained_once():
    obs = answered_obs("F1")
    obs.requests = {"R1": ("F1", "caf", "repondue"), "R2": ("F1", "dgfip", "repondue")}
    obs.agency_calls = {"caf": {"R1": 2}, "dgfip": {"R2": 2}}
    figures = judge(obs, killed_adapters={"caf"})
    assert figures["agency_repeats_explained"] == {
        "caf": [{"request_id": "R1", "file_id": "F1", "calls": 2}]
    }
    assert figures["agency_repeats"] == {
        "dgfip": [{"request_id": "R2", "file_id": "F1", "calls": 2}]
    }
    assert verdict(figures) == ["1 requests sent twice to dgfip"]


def test_an_email_repeated_under_its_message_id_after_notifications_kill_is_explained():
    """SMTP cannot be asked whether a message arrived: one repeat per email in flight at the
    kill, under the recorded Message-ID, is reported as explained; beyond what the kills
    explain, or a third copy, it is a duplicate."""
    repeats = [
        {"message_id": f"<m{i}@guichet>", "file_id": "F1", "subject": f"S{i}", "copies": 2}
        for i in range(6)
    ]
    obs = answered_obs("F1", mail_duplicates=[*repeats, {**repeats[0], "copies": 3}])
    obs.mail_subjects = {"F1": {f"S{i}": 2 for i in range(6)}}

    figures = judge(obs, notification_kills=1)  # 4 emails in flight at most per kill
    assert [d["message_id"] for d in figures["mail_repeats_explained"]] == [
        f"<m{i}@guichet>" for i in range(4)
    ]
    assert [d["copies"] for d in figures["duplicate_messages"]["mail"]] == [2, 2, 3]
    assert [d["subject"] for d in figures["duplicate_messages"]["mail_same_subject"]] == [
        "S4",
        "S5",
    ]
    assert verdict(figures) == [
        "3 duplicate messages (mail)",
        "2 duplicate messages (mail_same_subject)",
    ]
    # Without a kill of notification nothing explains a repeated email.
    assert len(judge(obs)["duplicate_messages"]["mail"]) == 7
