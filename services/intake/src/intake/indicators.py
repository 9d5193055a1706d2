"""Published indicators (see docs/indicators.md): the read model kept from a file's events,
the aggregation per office, per agency and nationally, and the open-data CSV.

The read model is written by intake's handlers inside their own transactions, so the
inbox that deduplicates an event also keeps it from being counted twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from guichet_runtime.clock import paris_day
from guichet_runtime.db import UnitOfWork, utcnow
from shared_models import AGENCY_LABELS, Decision, DeadlineRule, NotificationKind, NotificationSent, Referent
from intake.tables import file_agencies, file_metrics, surveys

#: Below this many files (or survey answers), a group's figures are not published.
DEFAULT_MIN_FILES = 5
IMPLICIT = (Decision.IMPLICIT_ACCEPTANCE.value, Decision.IMPLICIT_REJECTION.value)
WITH_DEADLINE = (DeadlineRule.SILENCE_ACCEPTS.value, DeadlineRule.SILENCE_REJECTS.value)


def _seconds(start: dt.datetime, end: dt.datetime) -> int:
    # Events are stamped by different hosts: a small skew must not give a negative delay.
    return max(0, int((end - start).total_seconds()))


# --------------------------------------------------------------------------- read model


async def file_opened(uow: UnitOfWork, file_id: str, at: dt.datetime) -> None:
    await uow.conn.execute(
        file_metrics.insert().values(file_id=file_id, submitted_at=at, submitted_on=paris_day(at), reassignments=0)
    )


async def _metrics(uow: UnitOfWork, file_id: str) -> sa.Row | None:
    return (await uow.conn.execute(sa.select(file_metrics).where(file_metrics.c.file_id == file_id))).first()


async def referent_assigned(uow: UnitOfWork, file_id: str, referent: Referent, at: dt.datetime) -> None:
    """The first référent starts the file's office and delay; any later different référent
    (change asked for, cover, departure, supervisor) is a reassignment."""
    row = await _metrics(uow, file_id)
    if row is None:
        return
    if row.current_agent_id is None:
        await uow.conn.execute(
            file_metrics.update().where(file_metrics.c.file_id == file_id).values(
                first_referent_at=at, referent_delay_s=_seconds(row.submitted_at, at),
                office_id=referent.office_id, office_name=referent.office, current_agent_id=referent.agent_id,
            )
        )
    elif row.current_agent_id != referent.agent_id:
        await uow.conn.execute(
            file_metrics.update().where(file_metrics.c.file_id == file_id).values(
                current_agent_id=referent.agent_id, reassignments=file_metrics.c.reassignments + 1,
            )
        )


def is_citizen_contact(event: NotificationSent) -> bool:
    """A message the administration sent the citizen (not one between agents, nor the access
    code the citizen asked for themselves)."""
    return (event.audience == "citoyen" and not event.notification_id.endswith(":referent")
            and event.kind is not NotificationKind.ACCESS_CODE)


async def _earliest(uow: UnitOfWork, file_id: str, at_column: str, delay_column: str, at: dt.datetime) -> None:
    """Keep the earliest time (events may be processed out of order after retries)."""
    row = await _metrics(uow, file_id)
    if row is None:
        return
    current = getattr(row, at_column)
    if current is None or at < current:
        await uow.conn.execute(
            file_metrics.update().where(file_metrics.c.file_id == file_id)
            .values({at_column: at, delay_column: _seconds(row.submitted_at, at)})
        )


async def citizen_contacted(uow: UnitOfWork, file_id: str, at: dt.datetime) -> None:
    await _earliest(uow, file_id, "first_contact_at", "contact_delay_s", at)


async def file_answered(uow: UnitOfWork, file_id: str, at: dt.datetime) -> None:
    await _earliest(uow, file_id, "answered_at", "answer_delay_s", at)


async def agency_decided(
    uow: UnitOfWork, file_id: str, agency: str, decision: Decision, at: dt.datetime, on: dt.date | None = None
) -> None:
    """The agency's final answer, by word or by silence; the first one recorded stands."""
    await uow.conn.execute(
        file_agencies.update()
        .where(file_agencies.c.file_id == file_id, file_agencies.c.agency == agency,
               file_agencies.c.answered_at.is_(None))
        .values(answered_at=at, answered_on=on or paris_day(at), decision=decision.value)
    )


# --------------------------------------------------------------------------- aggregation

#: The delays, in the unit each is published in.
DELAYS = {
    "referent": (file_metrics.c.referent_delay_s, 3600),
    "contact": (file_metrics.c.contact_delay_s, 3600),
    "answer": (file_metrics.c.answer_delay_s, 86400),
}
FIGURES = (
    "files", "referent_count", "referent_median_hours", "referent_p90_hours",
    "contact_count", "contact_median_hours", "contact_p90_hours",
    "answer_count", "answer_median_days", "answer_p90_days",
    "deadline_decided", "deadline_within", "deadline_share", "implicit_acceptances", "implicit_rejections",
    "reassigned", "reassignment_rate", "satisfaction_answers", "satisfaction_mean",
)
LEVEL_WORDS = {"national": "national", "office": "espace France Services", "agency": "organisme"}


@dataclass(frozen=True)
class Level:
    name: str
    key: Any  # the grouping column, None for the national total
    joins_agencies: bool  # file-level figures of an agency: the files it is concerned by


LEVELS = (
    Level("national", None, False),
    Level("office", file_metrics.c.office_id, False),
    Level("agency", file_agencies.c.agency, True),
)


def _period(query: sa.Select, start: dt.date | None, end: dt.date | None) -> sa.Select:
    if start is not None:
        query = query.where(file_metrics.c.submitted_on >= start)
    if end is not None:
        query = query.where(file_metrics.c.submitted_on <= end)
    return query


def _grouped(query: sa.Select, level: Level) -> sa.Select:
    if level.key is None:
        return query
    return query.where(level.key.is_not(None)).group_by(level.key)


def _share(part: int | None, whole: int | None) -> float | None:
    return round(part / whole, 3) if whole else None


def interpolate(ranked: dict[int, float], n: int, p: Fraction) -> float:
    """Percentile by linear interpolation between the closest ranks (PostgreSQL's
    percentile_cont, numpy's default), from the values at ranks floor and ceil of (n-1)p
    (0-based; exact fractions, so the ranks are the ones the query fetched)."""
    position = (n - 1) * p
    low = math.floor(position)
    high = math.ceil(position)
    return ranked[low] + (ranked[high] - ranked[low]) * float(position - low)


MEDIAN, P90 = Fraction(1, 2), Fraction(9, 10)


async def _percentiles(uow: UnitOfWork, level: Level, column: Any, start: dt.date | None,
                       end: dt.date | None) -> dict[Any, tuple[int, float, float]]:
    """group -> (n, median, 90th percentile) of `column`. SQLite has no percentile function
    and PostgreSQL's percentile_cont is an ordered-set aggregate: both rank the values with
    a window function instead, and only the (at most four) rows around the two positions
    come back, then are interpolated here."""
    key = level.key if level.key is not None else sa.literal_column("'all'")
    base = sa.select(
        key.label("grp"), column.label("v"),
        (sa.func.row_number().over(partition_by=level.key, order_by=column) - 1).label("i"),
        sa.func.count().over(partition_by=level.key).label("n"),
    ).select_from(_source(level)).where(column.is_not(None))
    if level.key is not None:
        base = base.where(level.key.is_not(None))
    ranked = _period(base, start, end).subquery()
    n_1 = ranked.c.n - 1
    positions = (n_1 // 2, ranked.c.n // 2, (n_1 * 9) // 10, (n_1 * 9 + 9) // 10)  # floor and ceil
    rows = (await uow.conn.execute(
        sa.select(ranked.c.grp, ranked.c.i, ranked.c.n, ranked.c.v).where(ranked.c.i.in_(positions))
    )).all()
    by_group: dict[Any, tuple[int, dict[int, float]]] = {}
    for r in rows:
        by_group.setdefault(r.grp, (r.n, {}))[1][r.i] = float(r.v)
    return {grp: (n, interpolate(values, n, MEDIAN), interpolate(values, n, P90))
            for grp, (n, values) in by_group.items()}


def _source(level: Level) -> Any:
    source = file_metrics
    if level.joins_agencies:
        source = source.join(file_agencies, file_agencies.c.file_id == file_metrics.c.file_id)
    return source


async def _figures(uow: UnitOfWork, level: Level, start: dt.date | None, end: dt.date | None) -> dict[Any, dict]:
    key = level.key if level.key is not None else sa.literal_column("'all'")
    # Inline constants: PostgreSQL cannot type a bound parameter inside CASE in sum().
    one, zero = sa.literal_column("1"), sa.literal_column("0")
    files_q = sa.select(
        key.label("grp"),
        sa.func.max(file_metrics.c.office_name).label("office_name"),
        sa.func.count().label("files"),
        sa.func.count(file_metrics.c.first_referent_at).label("referent_count"),
        sa.func.count(file_metrics.c.first_contact_at).label("contact_count"),
        sa.func.count(file_metrics.c.answered_at).label("answer_count"),
        sa.func.coalesce(sa.func.sum(sa.case((file_metrics.c.reassignments > 0, one), else_=zero)), zero).label("reassigned"),
        sa.func.count(surveys.c.score).label("satisfaction_answers"),
        sa.func.avg(surveys.c.score).label("satisfaction_mean"),
    ).select_from(_source(level).outerjoin(surveys, surveys.c.file_id == file_metrics.c.file_id))
    groups: dict[Any, dict] = {}
    for r in (await uow.conn.execute(_grouped(_period(files_q, start, end), level))).all():
        if r.files:
            groups[r.grp] = dict(r._mapping)
    # The agency-level facts: each agency's own answers for agencies, every agency of the
    # group's files otherwise.
    with_deadline = file_agencies.c.deadline_rule.in_(WITH_DEADLINE) & file_agencies.c.answered_at.is_not(None)
    in_time = (with_deadline & file_agencies.c.decision.not_in(IMPLICIT)
               # no due date while the clock was suspended for a document: it was not running
               & (file_agencies.c.due_on.is_(None) | (file_agencies.c.answered_on <= file_agencies.c.due_on)))
    agencies_q = sa.select(
        key.label("grp"),
        sa.func.coalesce(sa.func.sum(sa.case((with_deadline, one), else_=zero)), zero).label("deadline_decided"),
        sa.func.coalesce(sa.func.sum(sa.case((in_time, one), else_=zero)), zero).label("deadline_within"),
        *(sa.func.coalesce(sa.func.sum(sa.case((file_agencies.c.decision == d, one), else_=zero)), zero).label(name)
          for name, d in (("implicit_acceptances", IMPLICIT[0]), ("implicit_rejections", IMPLICIT[1]))),
    ).select_from(file_metrics.join(file_agencies, file_agencies.c.file_id == file_metrics.c.file_id))
    for r in (await uow.conn.execute(_grouped(_period(agencies_q, start, end), level))).all():
        if r.grp in groups:
            groups[r.grp].update({k: int(v) for k, v in r._mapping.items() if k != "grp"})
    for name, (column, unit) in DELAYS.items():
        for grp, (_n, median, p90) in (await _percentiles(uow, level, column, start, end)).items():
            if grp in groups:
                suffix = "hours" if unit == 3600 else "days"
                groups[grp][f"{name}_median_{suffix}"] = round(median / unit, 1)
                groups[grp][f"{name}_p90_{suffix}"] = round(p90 / unit, 1)
    return groups


def _row(level: Level, grp: Any, figures: dict, min_files: int) -> dict:
    if level.name == "office":
        label = figures["office_name"] or grp
    elif level.name == "agency":
        label = AGENCY_LABELS.get(grp, grp)
    else:
        label = "France entière"
    row: dict[str, Any] = {"level": level.name, "id": None if level.key is None else grp, "label": label,
                           "published": figures["files"] >= min_files}
    if not row["published"]:
        return {**row, **dict.fromkeys(FIGURES)}
    values = {name: figures.get(name) for name in FIGURES}
    values.update({name: int(values[name] or 0) for name in (
        "deadline_decided", "deadline_within", "implicit_acceptances", "implicit_rejections", "reassigned")})
    values["deadline_share"] = _share(values["deadline_within"], values["deadline_decided"])
    values["reassignment_rate"] = _share(values["reassigned"], values["referent_count"])
    # A mean over a handful of answers would tell one citizen's score.
    if values["satisfaction_answers"] < min_files:
        values["satisfaction_mean"] = None
    elif values["satisfaction_mean"] is not None:
        values["satisfaction_mean"] = round(float(values["satisfaction_mean"]), 2)
    return {**row, **values}


async def compute(uow: UnitOfWork, start: dt.date | None = None, end: dt.date | None = None,
                  min_files: int = DEFAULT_MIN_FILES) -> dict:
    """The indicators of files submitted between `start` and `end` (Paris days, inclusive)."""
    async with uow:
        results = {level.name: await _figures(uow, level, start, end) for level in LEVELS}
    national_level, office_level, agency_level = LEVELS
    national = results["national"].get("all") or {"files": 0}
    rows = {
        "offices": sorted((_row(office_level, g, f, min_files) for g, f in results["office"].items()),
                          key=lambda r: r["label"]),
        "agencies": sorted((_row(agency_level, g, f, min_files) for g, f in results["agency"].items()),
                           key=lambda r: r["label"]),
    }
    return {
        "period": {"from": start, "to": end},
        "generated_at": utcnow(),
        "min_files": min_files,
        "confidentiality": (
            f"Les chiffres d'un groupe de moins de {min_files} dossiers ne sont pas publiés, ni la satisfaction "
            f"moyenne calculée sur moins de {min_files} réponses, pour qu'aucun usager ne puisse être reconnu."
        ),
        "percentiles": "Médiane et 90e centile par interpolation linéaire entre les rangs les plus proches.",
        "definitions": "docs/indicators.md",
        "national": _row(national_level, "all", {"office_name": None, **national}, min_files),
        **rows,
    }


# --------------------------------------------------------------------------- open data

CSV_COLUMNS = {
    "level": "niveau",
    "id": "identifiant",
    "label": "libelle",
    "published": "publie",
    "files": "nombre_dossiers",
    "referent_count": "dossiers_avec_referent",
    "referent_median_hours": "delai_referent_median_heures",
    "referent_p90_hours": "delai_referent_90e_centile_heures",
    "contact_count": "dossiers_avec_premier_contact",
    "contact_median_hours": "delai_premier_contact_median_heures",
    "contact_p90_hours": "delai_premier_contact_90e_centile_heures",
    "answer_count": "dossiers_avec_reponse_coordonnee",
    "answer_median_days": "delai_reponse_coordonnee_median_jours",
    "answer_p90_days": "delai_reponse_coordonnee_90e_centile_jours",
    "deadline_decided": "reponses_soumises_a_delai_legal",
    "deadline_within": "reponses_dans_le_delai_legal",
    "deadline_share": "part_reponses_dans_le_delai_legal",
    "implicit_acceptances": "acceptations_implicites",
    "implicit_rejections": "rejets_implicites",
    "reassigned": "dossiers_reattribues",
    "reassignment_rate": "taux_reattribution",
    "satisfaction_answers": "reponses_enquete_satisfaction",
    "satisfaction_mean": "satisfaction_moyenne_sur_5",
}


def to_csv(indicators: dict) -> str:
    """One row per (level, office or agency); `;` separated, decimal point (numbers stay
    machine-readable), empty cells where a figure is unknown or not published."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS.values())
    for row in [indicators["national"], *indicators["offices"], *indicators["agencies"]]:
        cells = []
        for key in CSV_COLUMNS:
            value = row[key]
            if key == "level":
                value = LEVEL_WORDS[value]
            elif isinstance(value, bool):
                value = "oui" if value else "non"
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return out.getvalue()
