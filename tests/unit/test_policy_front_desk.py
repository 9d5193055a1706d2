"""The front desk of the référent's office answers the citizen's call (issue 16 §3): the rule
`front_desk_of_files_office` opens the file's appointments to them (FILE_APPOINTMENTS, and
nothing else of the file), and `answers_a_call` says their actions must state why."""

from __future__ import annotations

import dataclasses

from guichet_runtime.auth.principal import Role
from guichet_runtime.policy import (
    DECISIONS,
    FileParties,
    Policy,
    Subject,
    answers_a_call,
    front_desk_of_files_office,
    may_handle_appointments,
)
from tests.unit.test_policy import EVERYONE, FILE, FRONT_DESK, REFERENT, agent

#: A front-desk agent of the référent's office who did not register the file.
DESK_75 = agent("AG-75-01-9", Role.GUICHET)
#: A file the front desk of FS-75-01 did not register (registered by nobody: filed online).
ONLINE = dataclasses.replace(FILE, registered_by=None)
CALLED = Subject(file=ONLINE, caller_office="FS-75-01")


def test_the_front_desk_of_the_referents_office_may_handle_the_appointments():
    assert front_desk_of_files_office(DESK_75, CALLED)
    assert may_handle_appointments(DESK_75, CALLED)
    assert DECISIONS[Policy.FILE_APPOINTMENTS] is may_handle_appointments


def test_not_the_front_desk_of_another_office_nor_without_the_role_or_the_office():
    assert not front_desk_of_files_office(
        DESK_75, dataclasses.replace(CALLED, caller_office="FS-93-01")
    )
    assert not front_desk_of_files_office(DESK_75, dataclasses.replace(CALLED, caller_office=None))
    # A file without a référent yet has no office: no front desk is its office's.
    nobody = Subject(file=FileParties("F-2"), caller_office="FS-75-01")
    assert not front_desk_of_files_office(DESK_75, nobody)
    # A référent of the office is not its front desk.
    assert not front_desk_of_files_office(agent("AG-75-01-8", Role.REFERENT), CALLED)
    assert not front_desk_of_files_office(agent(None, Role.GUICHET), CALLED)


def test_the_office_rule_opens_the_appointments_only():
    for policy in Policy:
        if policy is not Policy.FILE_APPOINTMENTS and policy not in (
            Policy.PUBLIC,
            Policy.OPS,
            Policy.ONE_TIME_CODE,
            Policy.AGENCY_CALLBACK,
            Policy.SUBMIT_FILE,
            Policy.AGENT,
            Policy.FRONT_DESK,
        ):
            assert not DECISIONS[policy](DESK_75, CALLED), policy
    assert DECISIONS[Policy.FILE_APPOINTMENTS](DESK_75, CALLED)


def test_who_passes_file_appointments_when_the_caller_is_the_front_desk_of_the_office():
    passed = {n for n, p in EVERYONE.items() if may_handle_appointments(p, CALLED)}
    # The front desk of FS-75-01 (the scenario's, who did not register this file) passes by
    # the office; the others as before.
    assert passed == {"citizen_a", "front_desk", "referent", "cover", "supervisor"}


def test_only_the_office_rule_asks_for_a_reason():
    assert answers_a_call(DESK_75, CALLED)
    # The front-desk agent who registered the file is one of its agents: no reason asked.
    assert not answers_a_call(FRONT_DESK, Subject(file=FILE, caller_office="FS-75-01"))
    assert not answers_a_call(REFERENT, CALLED)
    assert not answers_a_call(DESK_75, dataclasses.replace(CALLED, caller_office="FS-93-01"))
