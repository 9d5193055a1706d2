"""Property-based stateful test of the référent engine: over random sequences of
submissions, answers, citizen change requests, supervisor moves, absences, returns,
departures and housekeeping, every open file has exactly one active référent who is
in post, and no agent is ever above capacity."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from assignment.commands import directory, directory_import, housekeeping
from assignment.projections import files as assignment
from assignment.settings import DEFAULT_DIRECTORY
from assignment.tables import inbox, outbox
from guichet_runtime.clock import Clock
from guichet_runtime.db import UnitOfWork, make_engine
from guichet_runtime.refusals import Refused
from shared_models import AgencyAnswerReceived, ReferentChangeRequested
from tests.unit.samples import citizen, decision, file_submitted

TODAY = Clock().today()
POSTCODES = ["93200", "93100", "75018", "69100", "23000"]


class ReferentEngine(RuleBasedStateMachine):
    template: Path
    checked_files = 0  # open files the invariant looked at, over all examples

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="invariant-"))
        shutil.copyfile(self.template, self.folder / "a.db")
        self.engine = make_engine(f"sqlite+aiosqlite:///{self.folder / 'a.db'}")
        self.files: list[str] = []
        self.count = 0

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def uow(self, key: str | None = None) -> UnitOfWork:
        return UnitOfWork(
            self.engine, outbox, inbox, inbox_key=("assignment", key) if key else None
        )

    async def _query(self, sql: str, **params):
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).all()

    def query(self, sql: str, **params):
        return self.run(self._query(sql, **params))

    async def _attempt(self, coro) -> None:
        # Refused with a message: a legitimate outcome, the state must still hold.
        with contextlib.suppress(Refused):
            await coro

    @initialize(capacity=st.integers(1, 3))
    def seed(self, capacity):
        self.run(directory_import.seed_directory(self.uow(), DEFAULT_DIRECTORY))
        # A small network, so capacity, covers and waiting files really happen.
        self.run(
            self._exec(
                "UPDATE agents SET status = 'parti' WHERE office_id NOT IN ('FS-93-01', "
                "'FS-75-01', 'FS-69-01')"
            )
        )
        self.run(self._exec(f"UPDATE agents SET capacity = {capacity}"))

    async def _exec(self, sql: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(sql))

    @rule(person=st.integers(0, 7), postcode=st.sampled_from(POSTCODES), urgent=st.booleans())
    def submit(self, person, postcode, urgent):
        self.count += 1
        event = file_submitted(
            f"GU-2026-P{self.count:07d}",
            urgent=urgent,
            citizen=citizen(email=f"personne{person}@example.fr", postcode=postcode),
        )
        self.run(assignment.on_file_submitted(event, self.uow(str(event.event_id))))
        self.files.append(event.file_id)

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def all_agencies_answer(self, data):
        file_id = data.draw(st.sampled_from(self.files))
        for request_id, agency in self.query(
            "SELECT request_id, agency FROM agency_requests WHERE file_id = :f AND status != "
            "'repondue'",
            f=file_id,
        ):
            answer = AgencyAnswerReceived(
                file_id=file_id, request_id=request_id, answer=decision(agency)
            )
            self.run(assignment.on_agency_answer(answer, self.uow(str(answer.event_id))))

    @precondition(lambda self: self.files)
    @rule(data=st.data(), by=st.sampled_from(["citoyen", "superviseur"]))
    def change_requested(self, data, by):
        event = ReferentChangeRequested(
            file_id=data.draw(st.sampled_from(self.files)), requested_by=by, reason="Motif de test."
        )
        self.run(assignment.on_referent_change_requested(event, self.uow(str(event.event_id))))

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def supervisor_moves(self, data):
        file_id = data.draw(st.sampled_from(self.files))
        self.run(self._attempt(directory.reassign(self.uow(), file_id, "Rééquilibrage.", None)))

    def agents(self) -> list[str]:
        return [
            r.agent_id
            for r in self.query(
                "SELECT agent_id FROM agents WHERE status != 'parti' ORDER BY agent_id"
            )
        ]

    @rule(data=st.data(), days=st.integers(0, 3))
    def absence(self, data, days):
        agents = self.agents()
        if agents:
            agent = data.draw(st.sampled_from(agents))
            from datetime import timedelta

            self.run(
                self._attempt(
                    directory.declare_absence(
                        self.uow(), agent, TODAY, TODAY + timedelta(days=days), "Congés", TODAY
                    )
                )
            )

    @rule(data=st.data())
    def back(self, data):
        absent = [
            r.agent_id for r in self.query("SELECT agent_id FROM agents WHERE status = 'absent'")
        ]
        if absent:
            self.run(
                self._attempt(
                    directory.agent_returns(self.uow(), data.draw(st.sampled_from(absent)))
                )
            )

    @rule(data=st.data())
    def departure(self, data):
        agents = self.agents()
        if len(agents) > 2:
            self.run(
                self._attempt(
                    directory.agent_leaves(
                        self.uow(), data.draw(st.sampled_from(agents)), "Mutation"
                    )
                )
            )

    @rule()
    def housekeeping(self):
        self.run(housekeeping.assign_waiting(self.uow()))

    @invariant()
    def one_active_referent_per_open_file_and_nobody_above_capacity(self):
        if not hasattr(self, "engine"):
            return
        agents = {r.agent_id: r for r in self.query("SELECT * FROM agents")}
        held: dict[str, int] = {}
        last_assigned = {
            r.file_id: r.agent_id
            for r in self.query(
                "SELECT file_id, agent_id FROM assignments a "
                "WHERE id = (SELECT max(id) FROM assignments b WHERE b.file_id = a.file_id)"
            )
        }
        for f in self.query("SELECT file_id, status, referent_id, titular_id FROM files"):
            if f.status == "en_cours":
                ReferentEngine.checked_files += 1
                assert f.referent_id is not None, f
                assert agents[f.referent_id].status == "actif", (f, agents[f.referent_id].status)
                held[f.referent_id] = held.get(f.referent_id, 0) + 1
                assert (
                    last_assigned[f.file_id] == f.referent_id
                )  # the history ends with today's référent
            elif f.status == "en_attente_attribution":
                assert f.referent_id is None  # waiting, visibly, never dropped
        for agent in agents.values():
            assert agent.active_files == held.get(agent.agent_id, 0), agent.agent_id
            # Own files coming back from a cover may exceed capacity; nothing else may.
            if agent.active_files > agent.capacity:
                returned = self.query(
                    "SELECT count(*) AS n FROM assignments WHERE agent_id = :a AND rule = 'retour'",
                    a=agent.agent_id,
                )[0].n
                assert returned > 0, agent.agent_id

    def teardown(self):
        self.run(self.engine.dispose())
        self.loop.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def test_the_referent_invariant_holds_over_random_sequences(migrated_templates):
    ReferentEngine.template = migrated_templates["assignment"]
    ReferentEngine.checked_files = 0
    # How many examples, the deadline and the draw are the profile's (tests/hypothesis_profiles).
    run_state_machine_as_test(
        ReferentEngine,
        settings=settings(
            stateful_step_count=30,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    # The machine really built portfolios: the invariant held over many open files.
    assert ReferentEngine.checked_files > 100
