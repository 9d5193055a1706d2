"""The policy module (guichet_runtime.policy): every rule function, the DECISIONS table,
`decide` and the `requires` guard (401 before 403 before 404; a one-time-code proof only for
FILE_CITIZEN and FILE_READ), and the enumeration of routes (`route_policies`,
`routes_without_policy`). The caller is given directly (the `optional_principal` dependency
overridden); tokens are tested in test_auth_tokens.py."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.staticfiles import StaticFiles

from guichet_runtime.auth import Principal, PrincipalKind, Role, optional_principal
from guichet_runtime.policy import (
    DECISIONS,
    NOT_ALLOWED,
    NOT_LOGGED_IN,
    OPEN,
    PROOF_ACCEPTED,
    UNKNOWN,
    FileParties,
    Policy,
    Subject,
    decide,
    declared,
    is_agent_with,
    is_file_agent,
    is_files_citizen,
    is_files_referent,
    is_the_agent,
    registered_the_file,
    requires,
    route_policies,
    route_policy,
    routes_without_policy,
    speaks_as_citizen,
    speaks_for_agency,
    supervises_agent,
    supervises_file,
)
from guichet_runtime.refusals import RefusalKind, Refused, install_refusals

ANONYMOUS = Principal.anonymous()
CITIZEN_A = Principal(kind=PrincipalKind.CITIZEN, subject="sub-a")
CITIZEN_B = Principal(kind=PrincipalKind.CITIZEN, subject="sub-b")


def agent(agent_id: str | None, *roles: Role, offices: tuple[str, ...] = ()) -> Principal:
    return Principal(
        kind=PrincipalKind.AGENT,
        subject=f"sub-{agent_id}",
        agent_id=agent_id,
        roles=frozenset(roles),
        offices=frozenset(offices),
    )


FRONT_DESK = agent("AG-75-01-3", Role.GUICHET)
REFERENT = agent("AG-75-01-1", Role.REFERENT)
COVER = agent("AG-75-01-2", Role.REFERENT)
OTHER_REFERENT = agent("AG-93-01-1", Role.REFERENT)
SUPERVISOR = agent("SUP-IDF", Role.SUPERVISEUR, offices=("FS-75-01", "FS-93-01"))
OTHER_SUPERVISOR = agent("SUP-ARA", Role.SUPERVISEUR, offices=("FS-69-01",))
ADMIN = agent(None, Role.ADMIN_ANNUAIRE)
CAF = Principal(kind=PrincipalKind.AGENCY, subject="svc-caf", agency="caf")
DGFIP = Principal(kind=PrincipalKind.AGENCY, subject="svc-dgfip", agency="dgfip")

FILE = FileParties(
    file_id="F-1",
    citizen_subject="sub-a",
    registered_by="AG-75-01-3",
    referent="AG-75-01-1",
    covering=frozenset({"AG-75-01-2"}),
    office="FS-75-01",
)
ON_FILE = Subject(file=FILE)
PROVED = Subject(file=FILE, proved=True)
ON_AGENT = Subject(agent_id="AG-75-01-1", agent_office="FS-75-01")

EVERYONE = {
    "anonymous": ANONYMOUS,
    "citizen_a": CITIZEN_A,
    "citizen_b": CITIZEN_B,
    "front_desk": FRONT_DESK,
    "referent": REFERENT,
    "cover": COVER,
    "other_referent": OTHER_REFERENT,
    "supervisor": SUPERVISOR,
    "other_supervisor": OTHER_SUPERVISOR,
    "admin": ADMIN,
    "caf": CAF,
    "dgfip": DGFIP,
}


def allowed(policy: Policy, subject: Subject) -> set[str]:
    return {name for name, p in EVERYONE.items() if DECISIONS[policy](p, subject)}


# --- the rule functions ---------------------------------------------------------------------


def test_is_agent_with_needs_an_agent_holding_the_role():
    assert is_agent_with(REFERENT, Role.REFERENT)
    assert not is_agent_with(REFERENT, Role.SUPERVISEUR)
    # Roles only count for agents, whatever a principal carries.
    forged = Principal(kind=PrincipalKind.CITIZEN, roles=frozenset({Role.SUPERVISEUR}))
    assert not is_agent_with(forged, Role.SUPERVISEUR)


def test_is_files_citizen_is_the_citizen_who_filed_logged_in():
    assert is_files_citizen(CITIZEN_A, FILE)
    assert not is_files_citizen(CITIZEN_B, FILE)
    assert not is_files_citizen(CITIZEN_A, None)
    # A file filed without an account has no citizen subject: no citizen matches it.
    assert not is_files_citizen(Principal(kind=PrincipalKind.CITIZEN), FileParties("F-2"))
    # An agent whose `sub` happens to equal the citizen's is not the citizen.
    assert not is_files_citizen(Principal(kind=PrincipalKind.AGENT, subject="sub-a"), FILE)


def test_is_files_referent_is_the_referent_or_their_cover_with_the_role():
    assert is_files_referent(REFERENT, FILE)
    assert is_files_referent(COVER, FILE)
    assert not is_files_referent(OTHER_REFERENT, FILE)
    assert not is_files_referent(REFERENT, None)
    # The référent's agent id without the role (a front-desk token) is not enough.
    assert not is_files_referent(agent("AG-75-01-1", Role.GUICHET), FILE)
    assert not is_files_referent(agent(None, Role.REFERENT), FileParties("F-2"))


def test_registered_the_file_is_the_front_desk_agent_who_did():
    assert registered_the_file(FRONT_DESK, FILE)
    assert not registered_the_file(agent("AG-75-01-9", Role.GUICHET), FILE)
    assert not registered_the_file(agent("AG-75-01-3", Role.REFERENT), FILE)
    assert not registered_the_file(FRONT_DESK, FileParties("F-2"))


def test_supervises_file_is_a_supervisor_of_the_referents_office():
    assert supervises_file(SUPERVISOR, FILE)
    assert not supervises_file(OTHER_SUPERVISOR, FILE)
    assert not supervises_file(SUPERVISOR, FileParties("F-2"))  # no référent's office yet
    # Offices without the role do not supervise.
    assert not supervises_file(agent("X", Role.REFERENT, offices=("FS-75-01",)), FILE)


def test_is_file_agent_is_referent_cover_front_desk_or_supervisor():
    agents = {name for name, p in EVERYONE.items() if is_file_agent(p, FILE)}
    assert agents == {"front_desk", "referent", "cover", "supervisor"}


def test_speaks_as_citizen_logged_in_or_with_the_files_proof():
    assert speaks_as_citizen(CITIZEN_A, ON_FILE)
    assert not speaks_as_citizen(CITIZEN_B, ON_FILE)
    assert not speaks_as_citizen(ANONYMOUS, ON_FILE)
    assert speaks_as_citizen(ANONYMOUS, PROVED)
    assert not speaks_as_citizen(ANONYMOUS, Subject(proved=True))  # a proof of no file


def test_is_the_agent_and_supervises_agent():
    assert is_the_agent(REFERENT, ON_AGENT)
    assert not is_the_agent(OTHER_REFERENT, ON_AGENT)
    assert not is_the_agent(Principal(kind=PrincipalKind.CITIZEN, agent_id="AG-75-01-1"), ON_AGENT)
    assert supervises_agent(SUPERVISOR, ON_AGENT)
    assert not supervises_agent(OTHER_SUPERVISOR, ON_AGENT)
    # The agent's office unknown: no supervisor can be said to supervise them.
    assert not supervises_agent(SUPERVISOR, Subject(agent_id="AG-75-01-1"))


def test_speaks_for_agency_is_an_agencys_system_for_its_own_agency():
    assert speaks_for_agency(CAF, Subject(agency="caf"))
    assert not speaks_for_agency(DGFIP, Subject(agency="caf"))
    assert not speaks_for_agency(REFERENT, Subject(agency="caf"))


# --- the table ------------------------------------------------------------------------------


def test_every_policy_has_its_rule():
    assert set(DECISIONS) == set(Policy)
    assert {Policy.FILE_CITIZEN, Policy.FILE_READ, Policy.FILE_APPOINTMENTS} == PROOF_ACCEPTED
    assert OPEN.isdisjoint(PROOF_ACCEPTED)


@pytest.mark.parametrize(
    ("policy", "subject", "who"),
    [
        (Policy.FILE_CITIZEN, ON_FILE, {"citizen_a"}),
        (Policy.FILE_CITIZEN, PROVED, set(EVERYONE)),  # whoever holds the proof
        (
            Policy.FILE_READ,
            ON_FILE,
            {"citizen_a", "front_desk", "referent", "cover", "supervisor"},
        ),
        (
            Policy.FILE_APPOINTMENTS,
            ON_FILE,
            {"citizen_a", "front_desk", "referent", "cover", "supervisor"},
        ),
        (Policy.FILE_APPOINTMENTS, PROVED, set(EVERYONE)),  # whoever holds the proof
        (Policy.FILE_AGENTS, ON_FILE, {"front_desk", "referent", "cover", "supervisor"}),
        (Policy.FILE_AGENTS, PROVED, {"front_desk", "referent", "cover", "supervisor"}),
        (Policy.FILE_REFERENT, ON_FILE, {"referent", "cover"}),
        (Policy.FILE_REFERENT, PROVED, {"referent", "cover"}),
        (Policy.FILE_SUPERVISOR, ON_FILE, {"supervisor"}),
        (Policy.AGENT_SELF, ON_AGENT, {"referent", "supervisor"}),
        (Policy.AGENT_SUPERVISOR, ON_AGENT, {"supervisor"}),
        (Policy.SUPERVISOR, Subject(), {"supervisor", "other_supervisor"}),
        (Policy.DIRECTORY_ADMIN, Subject(), {"admin"}),
        (Policy.AGENCY, Subject(agency="caf"), {"caf"}),
        (Policy.AGENT, Subject(), {n for n, p in EVERYONE.items() if p.kind == "agent"}),
        (Policy.PUBLIC, Subject(), set(EVERYONE)),
        (Policy.OPS, Subject(), set(EVERYONE)),
        (Policy.ONE_TIME_CODE, Subject(), set(EVERYONE)),
        # One's own lists: the answer is the caller's own (by `sub`, by `agent_id`); a proof
        # opens one file, never a list.
        (Policy.CITIZEN, Subject(), {"citizen_a", "citizen_b"}),
        (Policy.CITIZEN, PROVED, {"citizen_a", "citizen_b"}),
        (Policy.FRONT_DESK, Subject(), {"front_desk"}),
    ],
)
def test_who_passes_each_policy(policy: Policy, subject: Subject, who: set[str]):
    assert allowed(policy, subject) == who


def test_an_agency_never_submits_a_file():
    assert allowed(Policy.SUBMIT_FILE, Subject()) == set(EVERYONE) - {"caf", "dgfip"}


# --- decide ---------------------------------------------------------------------------------


def refusal(policy: Policy, principal: Principal, subject: Subject) -> Refused | None:
    try:
        decide(policy, principal, subject)
    except Refused as refused:
        return refused
    return None


def test_decide_lets_through_or_says_401_or_403():
    assert refusal(Policy.FILE_READ, CITIZEN_A, ON_FILE) is None
    anonymous = refusal(Policy.FILE_READ, ANONYMOUS, ON_FILE)
    assert anonymous is not None and anonymous.kind is RefusalKind.UNAUTHENTICATED
    assert anonymous.message == NOT_LOGGED_IN
    assert anonymous.headers == {"WWW-Authenticate": "Bearer"}
    other = refusal(Policy.FILE_READ, CITIZEN_B, ON_FILE)
    assert other is not None and other.kind is RefusalKind.FORBIDDEN
    assert other.message == NOT_ALLOWED
    # An agency's system is identified: 403, not 401.
    agency = refusal(Policy.FILE_READ, CAF, ON_FILE)
    assert agency is not None and agency.kind is RefusalKind.FORBIDDEN


# --- requires: the guard on a route ---------------------------------------------------------


class Lookup:
    """A service's facts: the subject to hand back, and whether it was asked."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.calls = 0

    async def __call__(self, request: Request, principal: Principal) -> Subject:
        self.calls += 1
        return self.subject


def guarded(policy: Policy, facts: Lookup | None, principal: Principal) -> TestClient:
    app = FastAPI()
    install_refusals(app)
    app.dependency_overrides[optional_principal] = lambda: principal

    @app.get("/files/{file_id}")
    async def route(file_id: str, who: Principal = requires(policy, facts)) -> dict:  # noqa: B008
        return {"kind": who.kind.value}

    return TestClient(app)


def status(policy: Policy, facts: Lookup | None, principal: Principal) -> int:
    return guarded(policy, facts, principal).get("/files/F-1").status_code


def test_requires_hands_the_route_its_caller():
    answer = guarded(Policy.FILE_READ, Lookup(ON_FILE), CITIZEN_A).get("/files/F-1")
    assert answer.status_code == 200 and answer.json() == {"kind": "citizen"}


def test_open_policies_take_anyone_without_looking_anything_up():
    # The guard does not decide an open policy without facts: SUBMIT_FILE's refusal of
    # agencies' systems and of agents other than the front desk is intake's
    # (`intake.domain.submitter_of`, with its own message).
    for policy in OPEN:
        assert status(policy, None, ANONYMOUS) == 200
        assert status(policy, None, CAF) == 200


@pytest.mark.parametrize("policy", sorted(set(Policy) - OPEN - PROOF_ACCEPTED))
def test_anonymous_is_401_before_anything_is_looked_up(policy: Policy):
    # Even with a proof for the file: only FILE_CITIZEN and FILE_READ take one.
    facts = Lookup(PROVED)
    answer = guarded(policy, facts, ANONYMOUS).get("/files/F-1")
    assert answer.status_code == 401
    assert answer.json()["message"] == NOT_LOGGED_IN
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert facts.calls == 0


@pytest.mark.parametrize("policy", sorted(PROOF_ACCEPTED))
def test_a_proof_lets_an_anonymous_citizen_in_for_file_citizen_and_file_read(policy: Policy):
    assert status(policy, Lookup(PROVED), ANONYMOUS) == 200
    assert status(policy, Lookup(ON_FILE), ANONYMOUS) == 401


@pytest.mark.parametrize("policy", sorted(PROOF_ACCEPTED))
def test_a_proof_needs_facts_to_check_it(policy: Policy):
    assert status(policy, None, ANONYMOUS) == 401


def test_unknown_file_is_404_to_identified_callers_and_401_to_anonymous_ones():
    unknown = Subject(exists=False)
    answer = guarded(Policy.FILE_AGENTS, Lookup(unknown), REFERENT).get("/files/F-1")
    assert answer.status_code == 404 and answer.json()["message"] == UNKNOWN
    # An identified caller without rights on any file also gets 404 for an unknown one:
    # existence is not a secret once identified, content is.
    assert status(Policy.FILE_READ, Lookup(unknown), CITIZEN_B) == 404
    # Anonymous: 401 first, file ids reveal nothing, on proof-taking policies too.
    assert status(Policy.FILE_READ, Lookup(unknown), ANONYMOUS) == 401
    assert status(Policy.FILE_AGENTS, Lookup(unknown), ANONYMOUS) == 401


def test_wrong_identity_is_403():
    assert status(Policy.FILE_READ, Lookup(ON_FILE), CITIZEN_B) == 403
    assert status(Policy.FILE_AGENTS, Lookup(ON_FILE), CITIZEN_A) == 403
    assert status(Policy.FILE_REFERENT, Lookup(ON_FILE), SUPERVISOR) == 403
    assert status(Policy.FILE_SUPERVISOR, Lookup(ON_FILE), OTHER_SUPERVISOR) == 403
    assert status(Policy.DIRECTORY_ADMIN, None, SUPERVISOR) == 403
    assert status(Policy.SUPERVISOR, None, REFERENT) == 403
    assert status(Policy.FILE_READ, Lookup(ON_FILE), CAF) == 403


def test_a_citizen_without_a_subject_or_a_front_desk_without_an_agent_id_has_no_list():
    assert not DECISIONS[Policy.CITIZEN](Principal(kind=PrincipalKind.CITIZEN), Subject())
    assert not DECISIONS[Policy.FRONT_DESK](agent(None, Role.GUICHET), Subject())


def test_the_subject_is_left_for_the_route():
    app = FastAPI()
    install_refusals(app)
    app.dependency_overrides[optional_principal] = lambda: REFERENT

    @app.get("/files/{file_id}", dependencies=[requires(Policy.FILE_REFERENT, Lookup(ON_FILE))])
    async def route(request: Request) -> dict:
        return {"referent": request.state.subject.file.referent}

    assert TestClient(app).get("/files/F-1").json() == {"referent": "AG-75-01-1"}


# --- no route escapes -----------------------------------------------------------------------


def test_routes_and_their_policies_through_included_routers(tmp_path):
    api = APIRouter()

    @api.get("/files/{file_id}", dependencies=[requires(Policy.FILE_READ, Lookup(ON_FILE))])
    async def read() -> None: ...

    @api.post("/files")
    async def undeclared() -> None: ...

    inner = APIRouter()

    @inner.get("/deep", dependencies=[declared(Policy.OPS)])
    async def deep() -> None: ...

    api.include_router(inner, prefix="/inner")
    guarded_router = APIRouter()

    @guarded_router.get("/guarded")
    async def by_router() -> None: ...

    app = FastAPI()
    app.include_router(api, prefix="/api")
    app.include_router(guarded_router, dependencies=[requires(Policy.SUPERVISOR)])
    (tmp_path / "x.css").write_text("")
    app.mount("/static", StaticFiles(directory=tmp_path), name="static")

    assert route_policies(app) == {
        "GET /openapi.json": Policy.PUBLIC,
        "GET /docs": Policy.PUBLIC,
        "GET /docs/oauth2-redirect": Policy.PUBLIC,
        "GET /redoc": Policy.PUBLIC,
        "GET /api/files/{file_id}": Policy.FILE_READ,
        "GET /api/inner/deep": Policy.OPS,
        "GET /guarded": Policy.SUPERVISOR,
        "GET /static/*": Policy.PUBLIC,
    }
    assert routes_without_policy(app) == ["POST /api/files"]


def test_a_route_declaring_two_policies_is_an_error():
    app = FastAPI()

    @app.get("/x", dependencies=[declared(Policy.PUBLIC), requires(Policy.SUPERVISOR)])
    async def twice() -> None: ...

    route = next(r for r in app.routes if getattr(r, "path", None) == "/x")
    with pytest.raises(ValueError, match="several policies"):
        route_policy(route)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="several policies"):
        routes_without_policy(app)


def test_declared_only_marks():
    app = FastAPI()
    install_refusals(app)

    @app.get("/page", dependencies=[declared(Policy.AGENT)])
    async def page() -> dict:
        return {"ok": True}

    assert TestClient(app).get("/page").status_code == 200
    assert route_policies(app)["GET /page"] is Policy.AGENT


def test_refusals_depend_on_nothing_but_the_principal():
    # The guard's principal dependency is the one routes share (one token check per request).
    guard = requires(Policy.FILE_READ, Lookup(ON_FILE))
    assert isinstance(guard, type(Depends(optional_principal)))
