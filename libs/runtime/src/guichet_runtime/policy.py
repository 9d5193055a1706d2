"""Who may do what: every access rule of every service, in one place (docs/security.md).

A route declares its policy at birth, as a FastAPI dependency that also hands it the caller:

    @api.get("/files/{file_id}")
    async def get_file(file_id: str, who: Principal = requires(Policy.FILE_READ, facts)) -> ...

`facts` is the service's own lookup of what the request is about (`Subject`: the file's
parties, the agent concerned, whether a one-time-code proof came with the request); the
decision itself is one pure function per policy below (`DECISIONS`), so the rules read the
same in intake, assignment and the adapters. `routes_without_policy(app)` lists the routes that
escape it (a test fails on any).

Refusals: no identity where one is needed -> 401; an identity without the right -> 403; the
file or agent unknown to a caller who may ask -> 404 (an anonymous caller gets 401 first, so
file ids reveal nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import Mount

from guichet_runtime.auth.dependencies import optional_principal
from guichet_runtime.auth.principal import Principal, PrincipalKind, Role
from guichet_runtime.refusals import RefusalKind, Refused


class Policy(StrEnum):
    """The named access policies; every route has exactly one."""

    PUBLIC = "public"  # anyone: published indicators, life events, a référent's public card
    OPS = "ops"  # probes and metrics: no personal data; kept inside the cluster by the network
    ONE_TIME_CODE = "one-time-code"  # anyone may ask for / try a code: it goes to the file's
    # registered contact, and proves control of it (rate-limited per client and per file)
    AGENCY_CALLBACK = "agency-callback"  # only the agency's signed callbacks (HMAC + replay window)
    SUBMIT_FILE = "submit-file"  # anyone: a logged-in citizen's file is linked to them, a
    # front-desk agent's records the channel and who registered it
    FILE_CITIZEN = "file-citizen"  # the file's citizen: logged in as them, or with a proof
    # from the one-time code
    FILE_READ = "file-read"  # the file's citizen, or one of the file's agents
    FILE_APPOINTMENTS = "file-appointments"  # the file's citizen (logged in as them, or with
    # the one-time code's proof), one of the file's agents, or a front-desk agent of the
    # référent's office answering the citizen's call: book, move, cancel a meeting
    FILE_AGENTS = "file-agents"  # the file's agents: référent (or cover), the front-desk agent
    # who registered it, a supervisor of the référent's office
    FILE_REFERENT = "file-referent"  # the référent (or the agent covering them), as themselves
    FILE_SUPERVISOR = "file-supervisor"  # a supervisor of the référent's office
    AGENT_SELF = "agent-self"  # the agent themselves, or a supervisor of their office
    AGENT_SUPERVISOR = "agent-supervisor"  # a supervisor of the agent's office
    SUPERVISOR = "supervisor"  # any supervisor; the answer covers only their offices
    DIRECTORY_ADMIN = "directory-admin"  # the directory administrator
    AGENCY = "agency"  # an agency's system (service account), for its own agency
    AGENT = "agent"  # any authenticated agent (a page of the agents' space)
    CITIZEN = "citizen"  # any logged-in citizen; the answer covers only their own files
    FRONT_DESK = "front-desk"  # a front-desk agent; the answer covers only what they registered
    SERVICE_KEYS = "service-keys"  # one of our services with the role personal-data-reader:
    # the citizens' data keys (intake's key service); never a person, never an agency


@dataclass(frozen=True)
class FileParties:
    """Who is linked to a file, as the service guarding it knows them."""

    file_id: str
    citizen_subject: str | None = None  # the citizen's `sub`, when they filed logged in
    registered_by: str | None = None  # the front-desk agent who registered it for the citizen
    referent: str | None = None  # the référent's agent id
    covering: frozenset[str] = frozenset()  # agents covering the référent's absence
    office: str | None = None  # the référent's France Services office


@dataclass(frozen=True)
class Subject:
    """What a request is about, looked up by the service (its `facts`)."""

    file: FileParties | None = None
    agent_id: str | None = None  # the agent a route is about (path `agent_id`)
    agent_office: str | None = None  # that agent's office
    agency: str | None = None  # the agency a route speaks for (an adapter's)
    proved: bool = False  # a live proof from the file's one-time code came with the request
    caller_office: str | None = None  # the calling agent's own office, from the directory
    # (looked up only where a rule needs it: FILE_APPOINTMENTS)
    exists: bool = True  # False: the file or agent is unknown (-> 404 to a caller who may ask)
    extra: dict[str, Any] = field(default_factory=dict)


# --- the rules: one pure function each ------------------------------------------------------


def is_agent_with(principal: Principal, role: Role) -> bool:
    return principal.kind is PrincipalKind.AGENT and principal.has_role(role)


def is_files_citizen(principal: Principal, file: FileParties | None) -> bool:
    """The citizen the file was opened by (logged in when they filed)."""
    return (
        file is not None
        and principal.kind is PrincipalKind.CITIZEN
        and principal.subject is not None
        and principal.subject == file.citizen_subject
    )


def is_logged_in_citizen(principal: Principal, subject: Subject) -> bool:
    """A citizen logged in with their account (the answer is about their `sub` only)."""
    return principal.kind is PrincipalKind.CITIZEN and principal.subject is not None


def is_front_desk(principal: Principal, subject: Subject) -> bool:
    """A front-desk agent (the answer is about the files they registered only)."""
    return is_agent_with(principal, Role.GUICHET) and principal.agent_id is not None


def is_files_referent(principal: Principal, file: FileParties | None) -> bool:
    """The file's référent, or the agent covering their absence, acting as themselves."""
    return (
        file is not None
        and is_agent_with(principal, Role.REFERENT)
        and principal.agent_id is not None
        and (principal.agent_id == file.referent or principal.agent_id in file.covering)
    )


def registered_the_file(principal: Principal, file: FileParties | None) -> bool:
    """The front-desk agent who registered the file for the citizen."""
    return (
        file is not None
        and is_agent_with(principal, Role.GUICHET)
        and principal.agent_id is not None
        and principal.agent_id == file.registered_by
    )


def supervises_file(principal: Principal, file: FileParties | None) -> bool:
    """A supervisor of the office the file's référent belongs to."""
    return (
        file is not None
        and file.office is not None
        and principal.kind is PrincipalKind.AGENT
        and principal.supervises(file.office)
    )


def is_file_agent(principal: Principal, file: FileParties | None) -> bool:
    return (
        is_files_referent(principal, file)
        or registered_the_file(principal, file)
        or supervises_file(principal, file)
    )


def speaks_as_citizen(principal: Principal, subject: Subject) -> bool:
    """The file's citizen: logged in as them, or holding a proof from the one-time code."""
    return is_files_citizen(principal, subject.file) or (
        subject.proved and subject.file is not None
    )


def is_key_reading_service(principal: Principal, subject: Subject) -> bool:
    """One of our services (a service account, not a person nor an agency's system) holding
    the role `personal-data-reader`."""
    return (
        principal.kind is PrincipalKind.SERVICE
        and principal.service is not None
        and principal.has_role(Role.PERSONAL_DATA_READER)
    )


def is_the_agent(principal: Principal, subject: Subject) -> bool:
    return (
        principal.kind is PrincipalKind.AGENT
        and principal.agent_id is not None
        and principal.agent_id == subject.agent_id
    )


def supervises_agent(principal: Principal, subject: Subject) -> bool:
    return (
        principal.kind is PrincipalKind.AGENT
        and subject.agent_office is not None
        and principal.supervises(subject.agent_office)
    )


def front_desk_of_files_office(principal: Principal, subject: Subject) -> bool:
    """A front-desk agent of the office the file's référent belongs to: they answer the
    citizen's calls there, so they may book, move or cancel the file's appointments (and
    must say why: `answers_a_call`), and see nothing else of the file."""
    file = subject.file
    return (
        file is not None
        and file.office is not None
        and is_front_desk(principal, subject)
        and subject.caller_office == file.office
    )


def may_handle_appointments(principal: Principal, subject: Subject) -> bool:
    """Book, move or cancel a file's meeting with its référent: the file's citizen, one of
    the file's agents, or a front-desk agent of the référent's office."""
    return (
        speaks_as_citizen(principal, subject)
        or is_file_agent(principal, subject.file)
        or front_desk_of_files_office(principal, subject)
    )


def answers_a_call(principal: Principal, subject: Subject) -> bool:
    """Only the front-desk office rule lets this caller in (they are not one of the file's
    agents): each booking, move or cancellation states why (e.g. "Appel téléphonique de
    l'usager"), and the reason goes to the audit trail."""
    return (
        front_desk_of_files_office(principal, subject)
        and not speaks_as_citizen(principal, subject)
        and not is_file_agent(principal, subject.file)
    )


def speaks_for_agency(principal: Principal, subject: Subject) -> bool:
    return (
        principal.kind is PrincipalKind.AGENCY
        and principal.agency is not None
        and (subject.agency is None or principal.agency == subject.agency)
    )


Decision = Callable[[Principal, Subject], bool]

#: The policy -> the rule deciding it. Read this table to know who may do what.
DECISIONS: dict[Policy, Decision] = {
    Policy.PUBLIC: lambda p, s: True,
    Policy.OPS: lambda p, s: True,
    Policy.ONE_TIME_CODE: lambda p, s: True,
    Policy.AGENCY_CALLBACK: lambda p, s: True,  # the callback gate checks the signature
    Policy.SUBMIT_FILE: lambda p, s: p.kind not in (PrincipalKind.AGENCY, PrincipalKind.SERVICE),
    Policy.FILE_CITIZEN: speaks_as_citizen,
    Policy.FILE_READ: lambda p, s: speaks_as_citizen(p, s) or is_file_agent(p, s.file),
    Policy.FILE_APPOINTMENTS: may_handle_appointments,
    Policy.FILE_AGENTS: lambda p, s: is_file_agent(p, s.file),
    Policy.FILE_REFERENT: lambda p, s: is_files_referent(p, s.file),
    Policy.FILE_SUPERVISOR: lambda p, s: supervises_file(p, s.file),
    Policy.AGENT_SELF: lambda p, s: is_the_agent(p, s) or supervises_agent(p, s),
    Policy.AGENT_SUPERVISOR: supervises_agent,
    Policy.SUPERVISOR: lambda p, s: is_agent_with(p, Role.SUPERVISEUR),
    Policy.DIRECTORY_ADMIN: lambda p, s: is_agent_with(p, Role.ADMIN_ANNUAIRE),
    Policy.AGENCY: speaks_for_agency,
    Policy.AGENT: lambda p, s: p.kind is PrincipalKind.AGENT,
    Policy.CITIZEN: is_logged_in_citizen,
    Policy.FRONT_DESK: is_front_desk,
    Policy.SERVICE_KEYS: is_key_reading_service,
}

#: Policies that need no identity at all (the route may still use one when given).
OPEN: frozenset[Policy] = frozenset(
    {
        Policy.PUBLIC,
        Policy.OPS,
        Policy.ONE_TIME_CODE,
        Policy.AGENCY_CALLBACK,
        Policy.SUBMIT_FILE,
    }
)

#: Policies an anonymous caller may pass with a proof from the one-time code.
PROOF_ACCEPTED: frozenset[Policy] = frozenset(
    {Policy.FILE_CITIZEN, Policy.FILE_READ, Policy.FILE_APPOINTMENTS}
)

Facts = Callable[[Request, Principal], Awaitable[Subject]]

NOT_LOGGED_IN = "Identifiez-vous pour continuer."
NOT_ALLOWED = "Vous n'avez pas accès à cette ressource."
UNKNOWN = "Ressource introuvable."


def decide(
    policy: Policy, principal: Principal, subject: Subject, forbidden: str = NOT_ALLOWED
) -> None:
    """Raise the refusal `policy` calls for, or return when `principal` may go on."""
    if DECISIONS[policy](principal, subject):
        return
    if principal.is_anonymous and not subject.proved:
        raise Refused(
            RefusalKind.UNAUTHENTICATED, NOT_LOGGED_IN, headers={"WWW-Authenticate": "Bearer"}
        )
    raise Refused(RefusalKind.FORBIDDEN, forbidden)


def requires(
    policy: Policy,
    facts: Facts | None = None,
    *,
    unknown: str = UNKNOWN,
    forbidden: str = NOT_ALLOWED,
) -> Any:
    """The route's policy, as a dependency returning the verified caller.

    `facts` looks up what the request is about; a `Subject(exists=False)` answers 404 with
    `unknown` to a caller who is identified (401 to an anonymous one without a proof). An
    identified caller the policy refuses reads `forbidden` (403)."""

    async def guard(
        request: Request, principal: Principal = Depends(optional_principal)
    ) -> Principal:
        if policy in OPEN and facts is None:
            return principal
        if (
            principal.is_anonymous
            and policy not in OPEN
            and (policy not in PROOF_ACCEPTED or facts is None)
        ):
            decide(policy, principal, Subject())
        subject = await facts(request, principal) if facts is not None else Subject()
        if not subject.exists:
            if principal.is_anonymous and not subject.proved and policy not in OPEN:
                decide(policy, principal, Subject())
            raise Refused(RefusalKind.NOT_FOUND, unknown)
        decide(policy, principal, subject, forbidden)
        request.state.subject = subject
        return principal

    guard.__guichet_policy__ = policy  # type: ignore[attr-defined]
    return Depends(guard)


def declared(policy: Policy) -> Any:
    """Declare a route's policy where another layer enforces it (the web's pages: the
    services behind them decide on the forwarded token). Returns a no-op dependency."""

    async def marker() -> None:
        return None

    marker.__guichet_policy__ = policy  # type: ignore[attr-defined]
    return Depends(marker)


# --- no route escapes -----------------------------------------------------------------------

#: Routes FastAPI and Starlette add by themselves: the API's documentation, public.
DOCUMENTATION_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def _policies(dependant: Any) -> Iterable[Policy]:
    for dep in dependant.dependencies:
        policy = getattr(dep.call, "__guichet_policy__", None)
        if policy is not None:
            yield policy
        yield from _policies(dep)


def route_policy(route: APIRoute | RouteContext) -> Policy | None:
    """The policy a route declares (one, else None: two declared is an error too)."""
    found = set(_policies(route.dependant))
    if len(found) > 1:
        raise ValueError(f"{route.path} declares several policies: {sorted(found)}")
    return next(iter(found), None)


def _routes(app: FastAPI) -> Iterable[RouteContext]:
    """Every route of `app`, those of included routers too (FastAPI includes them lazily:
    `app.routes` holds the routers; each context has the full path and the dependencies
    the inclusion added)."""
    return iter_route_contexts(app.routes)


def route_policies(app: FastAPI) -> dict[str, Policy]:
    """`"METHOD /path"` -> policy, for every API route of `app` (documentation is public,
    mounted static files too)."""
    table: dict[str, Policy] = {}
    for route in _routes(app):
        original = route.original_route
        if isinstance(original, APIRoute):
            policy = route_policy(route)
            if policy is not None:
                for method in sorted(route.methods or ()):
                    table[f"{method} {route.path}"] = policy
        elif isinstance(original, Mount):
            table[f"GET {route.path}/*"] = Policy.PUBLIC
        elif route.path in DOCUMENTATION_PATHS:
            table[f"GET {route.path}"] = Policy.PUBLIC
    return table


def routes_without_policy(app: FastAPI) -> list[str]:
    """Every route of `app` that declares no policy: must be empty."""
    missing: list[str] = []
    for route in _routes(app):
        original = route.original_route
        if isinstance(original, APIRoute) and route_policy(route) is None:
            missing.extend(f"{m} {route.path}" for m in sorted(route.methods or ()))
        elif not isinstance(original, APIRoute | Mount) and route.path not in DOCUMENTATION_PATHS:
            missing.append(f"? {route.path or original!r}")
    return missing
