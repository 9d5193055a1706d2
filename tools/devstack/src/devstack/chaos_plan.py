"""The soak-and-chaos run's pure half (`guichet-dev chaos`, driven by devstack.chaos): the
schedule of faults, the judgement of what the run left behind, and the report.

Nothing here does I/O: the driver gathers the services' rows and the test doubles' stats into
an `Observation`, `judge` turns it into the report's figures and `verdict` into the run's
outcome. Unit-tested in tests/devstack/test_chaos_plan.py.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: Values as the services store them (their StrEnums; tools never import services).
INTAKE_ANSWERED = "repondu"  # intake.domain.FileStatus.ANSWERED
ANSWER_KIND = "answer_ready"  # shared_models NotificationKind.ANSWER_READY
NOTIFICATION_SENT = "envoye"  # notification.domain.NotificationStatus.SENT
AGENCY_ANSWERED = "repondu"  # intake.domain.AgencyStatus.ANSWERED

#: How many files each list of the report names at most (the counts are always complete).
LISTED = 50


class Fault(StrEnum):
    """What the chaos does at one moment of the run."""

    KILL = "kill"  # SIGKILL one service, then start it again
    OUTAGE = "outage"  # an agency's system answers 503 for a while
    BROKER = "broker"  # the Kafka broker is stopped and started again


@dataclass(frozen=True, order=True)
class Step:
    """One fault of the schedule, `at` seconds after the first submission."""

    at: float
    fault: Fault
    target: str = ""
    seconds: float = 0.0


def schedule(
    window: float,
    *,
    victims: Sequence[str],
    agencies: Sequence[str],
    kill_every: float,
    max_kills: int | None,
    outage_every: float,
    outage_seconds: float,
    broker_restarts: int,
    rng: random.Random,
) -> list[Step]:
    """The faults of a run whose submissions last `window` seconds, in time order.

    A random victim is killed every `kill_every` seconds (at most `max_kills`); the agencies
    go down in turn for `outage_seconds`, each at least once and spread over the window (one
    outage every `outage_every` seconds at most); the broker is restarted `broker_restarts`
    times at evenly spaced moments.
    """
    steps: list[Step] = []
    if victims and kill_every > 0:
        at = kill_every
        while at < window and (max_kills is None or len(steps) < max_kills):
            steps.append(Step(round(at, 3), Fault.KILL, rng.choice(list(victims))))
            at += kill_every
        if not steps and max_kills != 0:  # a short run still gets its kill
            steps.append(Step(round(window / 3, 3), Fault.KILL, rng.choice(list(victims))))
    if agencies and outage_seconds > 0:
        spacing = min(outage_every, window / len(agencies)) if window > 0 else outage_every
        k = 0
        while k < len(agencies) or spacing * (k + 0.25) < window:
            agency = agencies[k % len(agencies)]
            steps.append(Step(round(spacing * (k + 0.25), 3), Fault.OUTAGE, agency, outage_seconds))
            k += 1
    for n in range(broker_restarts):
        steps.append(
            Step(round(window * (n + 1) / (broker_restarts + 1), 3), Fault.BROKER, "kafka")
        )
    return sorted(steps)


# -- what the run left behind --------------------------------------------------------


@dataclass
class Observation:
    """Everything read after the run, from the services' databases and the test doubles.

    Rows are plain tuples/dicts so the judgement needs no database: `intake_files` file id ->
    status; `intake_agencies` file id -> agency -> status; `assignment_files` file id ->
    (status, référent id or None); `assignments` file id -> number of assignment decisions;
    `requests` (assignment's agency requests) request id -> (file id, agency, status);
    `adapter_requests` agency -> request id -> adapter status; `callbacks` agency -> request
    id -> callbacks taken; `notifications` file id -> kind -> statuses; `mail_subjects` file
    id -> subject -> copies; `mail_duplicates`, `sms_repeats`, `letter_repeats`: the doubles'
    lists; `agency_calls` agency -> request id -> calls; `dead_letters` topic -> records."""

    submitted: Sequence[str]
    intake_files: Mapping[str, str] = field(default_factory=dict)
    intake_agencies: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    assignment_files: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    assignments: Mapping[str, int] = field(default_factory=dict)
    requests: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)
    adapter_requests: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    callbacks: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    notifications: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)
    mail_subjects: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    mail_duplicates: Sequence[Mapping[str, Any]] = ()
    sms_repeats: Sequence[Mapping[str, Any]] = ()
    letter_repeats: Sequence[Mapping[str, Any]] = ()
    agency_calls: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    dead_letters: Mapping[str, int] = field(default_factory=dict)


def answered(obs: Observation, file_id: str) -> bool:
    """The coordinated answer is on the file and its message was sent to the citizen."""
    sent = obs.notifications.get(file_id, {}).get(ANSWER_KIND, ())
    return obs.intake_files.get(file_id) == INTAKE_ANSWERED and NOTIFICATION_SENT in sent


def lost(obs: Observation, file_id: str) -> str | None:
    """Why a file acknowledged to the citizen is lost (a service that should know it does
    not, and nothing is pending that would bring it there), else None."""
    if file_id not in obs.intake_files:
        return "unknown to intake (acknowledged, then gone)"
    if file_id not in obs.assignment_files:
        return "never reached assignment (FileSubmitted lost)"
    return None


def why_stuck(obs: Observation, file_id: str) -> dict[str, Any]:
    """Where an unanswered file waits: its statuses, and per agency not answered the request
    as assignment, the adapter and the agency know it."""
    status, referent = obs.assignment_files.get(file_id, ("", None))
    agencies = obs.intake_agencies.get(file_id, {})
    by_agency = {agency: rid for rid, (fid, agency, _) in obs.requests.items() if fid == file_id}
    waiting = []
    for agency, agency_status in sorted(agencies.items()):
        if agency_status == AGENCY_ANSWERED:
            continue
        rid = by_agency.get(agency)
        waiting.append(
            {
                "agency": agency,
                "intake": agency_status,
                "request_id": rid,
                "assignment": obs.requests[rid][2] if rid else None,
                "adapter": obs.adapter_requests.get(agency, {}).get(rid or "", "absent"),
                "agency_calls": obs.agency_calls.get(agency, {}).get(rid or "", 0),
                "callbacks": obs.callbacks.get(agency, {}).get(rid or "", 0),
            }
        )
    answer = obs.notifications.get(file_id, {}).get(ANSWER_KIND, ())
    return {
        "file_id": file_id,
        "intake": obs.intake_files.get(file_id),
        "assignment": status,
        "referent": referent,
        "waiting_for": waiting,
        "answer_notification": list(answer) or None,
    }


#: Emails notification has in flight at most (`dispatch_pending`'s concurrency per channel).
MAIL_IN_FLIGHT = 4


def judge(
    obs: Observation, killed_adapters: Iterable[str] = (), notification_kills: int = 0
) -> dict[str, Any]:
    """The report's figures: answered, lost, stuck (with why), duplicates of every kind.

    An agency request repeated once, at an agency whose adapter was killed, is the documented
    at-least-once delivery (the same request id, which the agency takes once: docs/adapters.md)
    and is listed as `explained`; any other repeat counts as a duplicate.

    SMTP cannot be asked whether a message arrived (docs/notifications.md, "Never twice"): an
    email the relay accepted just before notification was SIGKILLed, its outcome not yet
    recorded, goes again under the Message-ID recorded before the first send. Such a repeat
    (two copies, one Message-ID) is listed and counted in `mail_repeats_explained`, at most
    MAIL_IN_FLIGHT per kill of notification; any other repeated email (a third copy, a new
    Message-ID for the same subject, more repeats than the kills explain) is a duplicate.
    """
    ours = list(dict.fromkeys(obs.submitted))
    mine = set(ours)
    lost_files = {f: why for f in ours if (why := lost(obs, f))}
    done = [f for f in ours if answered(obs, f)]
    stuck = [f for f in ours if f not in lost_files and not answered(obs, f)]
    duplicate_referents = [
        {"file_id": f, "decisions": n}
        for f, n in sorted(obs.assignments.items())
        if f in mine and n > 1
    ]
    same_subject = [
        {"file_id": f, "subject": s, "copies": n}
        for f, subjects in sorted(obs.mail_subjects.items())
        if f in mine
        for s, n in sorted(subjects.items())
        if n > 1
    ]
    mail = [d for d in obs.mail_duplicates if d.get("file_id") in mine]
    twice = [d for d in mail if d.get("copies") == 2]
    mail_explained = twice[: MAIL_IN_FLIGHT * notification_kills]
    again = {(d.get("file_id"), d.get("subject")) for d in mail_explained}
    messages = {
        "mail": [d for d in mail if d not in mail_explained],
        "mail_same_subject": [
            d
            for d in same_subject
            if not (d["copies"] == 2 and (d["file_id"], d["subject"]) in again)
        ],
        "sms": [r for r in obs.sms_repeats if r.get("file_id") in mine],
        "letters": [r for r in obs.letter_repeats if r.get("file_id") in mine],
    }
    killed = set(killed_adapters)
    file_of = {rid: fid for rid, (fid, _, _) in obs.requests.items()}
    repeats: dict[str, list[dict[str, Any]]] = defaultdict(list)
    explained: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for agency, calls in sorted(obs.agency_calls.items()):
        for rid, n in sorted(calls.items()):
            if n <= 1:
                continue
            item = {"request_id": rid, "file_id": file_of.get(rid), "calls": n}
            (explained if n == 2 and agency in killed else repeats)[agency].append(item)
    return {
        "submitted": len(ours),
        "answered": len(done),
        "lost": len(lost_files),
        "lost_files": [{"file_id": f, "why": w} for f, w in list(lost_files.items())[:LISTED]],
        "stuck": len(stuck),
        "stuck_files": [why_stuck(obs, f) for f in stuck[:LISTED]],
        "stuck_by_state": dict(Counter(state_of(why_stuck(obs, f)) for f in stuck)),
        "duplicate_referents": duplicate_referents,
        "duplicate_messages": messages,
        "agency_repeats": dict(repeats),
        "agency_repeats_explained": dict(explained),
        "mail_repeats_explained": [
            {k: d.get(k) for k in ("message_id", "file_id", "subject", "copies")}
            for d in mail_explained
        ],
        "dead_letters": {t: n for t, n in sorted(obs.dead_letters.items()) if n},
    }


def state_of(why: Mapping[str, Any]) -> str:
    """One line per kind of wait, to count stuck files by cause."""
    if not why["referent"]:
        return f"no référent (assignment: {why['assignment'] or 'absent'})"
    if why["waiting_for"]:
        return "; ".join(
            f"{w['agency']}: intake {w['intake']}, assignment {w['assignment']}, "
            f"adapter {w['adapter']}"
            for w in why["waiting_for"]
        )
    return f"answer not sent (intake {why['intake']}, message {why['answer_notification']})"


def verdict(figures: Mapping[str, Any], extra: Mapping[str, int] | None = None) -> list[str]:
    """Why the run failed (empty: it passed). `extra`: other counts that must be zero
    (submissions never accepted, processes that died on their own...)."""
    failures = []
    for key in ("lost", "stuck"):
        if figures[key]:
            failures.append(f"{figures[key]} {key}")
    if figures["duplicate_referents"]:
        failures.append(f"{len(figures['duplicate_referents'])} files with two référents")
    for channel, items in figures["duplicate_messages"].items():
        if items:
            failures.append(f"{len(items)} duplicate messages ({channel})")
    for agency, items in figures["agency_repeats"].items():
        failures.append(f"{len(items)} requests sent twice to {agency}")
    for topic, n in figures["dead_letters"].items():
        failures.append(f"{n} dead letters on {topic}")
    for key, n in (extra or {}).items():
        if n:
            failures.append(f"{n} {key}")
    return failures


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def format_report(r: Mapping[str, Any]) -> str:
    """The summary printed at the end of `guichet-dev chaos`."""
    ctx, chaos = r["context"], r["chaos"]
    kills = Counter(k["service"] for k in chaos["kills"])
    messages = r["duplicate_messages"]
    lines = [
        f"guichet unique chaos run: {ctx['files']} files '{ctx['life_event']}' at "
        f"{ctx['rate']}/s, {ctx['backend']}, assignment x{ctx['assignment_replicas']}",
        "",
        f"  duration           {_fmt(r['duration_s'])} s (submissions "
        f"{_fmt(r['submit_phase_s'])} s, then quiescence {_fmt(r['quiescence_s'])} s)",
        f"  submitted          {r['submitted']} (never accepted: {r['submit_failed']})",
        f"  POST /api/files    p50 {_fmt(r['submit_latency_s']['p50'], '.2f')} s, max "
        f"{_fmt(r['submit_latency_s']['max'], '.1f')} s (retries included; retried: "
        f"{r['submit_retried']})",
        f"  answered           {r['answered']}",
        f"  lost               {r['lost']}",
        f"  stuck              {r['stuck']}",
        *(f"    {n} x {state}" for state, n in r["stuck_by_state"].items()),
        f"  duplicate référents {len(r['duplicate_referents'])}",
        "  duplicate messages " + ", ".join(f"{k} {len(v)}" for k, v in messages.items()),
        f"  emails repeated    {len(r.get('mail_repeats_explained', []))} under their recorded"
        f" Message-ID, after {kills.get('notification', 0)} kills of notification (SMTP"
        " cannot be asked whether a message arrived)",
        "  agency requests sent twice "
        + (", ".join(f"{a} {len(v)}" for a, v in r["agency_repeats"].items()) or "0")
        + " (explained by an adapter's kill: "
        + (", ".join(f"{a} {len(v)}" for a, v in r["agency_repeats_explained"].items()) or "0")
        + ")",
        f"  dead letters       {sum(r['dead_letters'].values())}",
        f"  kills              {len(chaos['kills'])}"
        + (" (" + ", ".join(f"{s} {n}" for s, n in sorted(kills.items())) + ")" if kills else ""),
        f"  restarts           {chaos['restarts']} services, {len(chaos['broker_restarts'])} broker"
        + "".join(f", down {b['down_s']:.0f} s" for b in chaos["broker_restarts"]),
        f"  agency outages     {len(chaos['outages'])} ("
        + ", ".join(f"{o['agency']} {_fmt(o['seconds'])} s" for o in chaos["outages"])
        + ")",
        f"  crashed by itself  {len(chaos['crashes'])}",
        "",
        "  PASSED" if not r["failures"] else "  FAILED: " + "; ".join(r["failures"]),
    ]
    return "\n".join(lines)
