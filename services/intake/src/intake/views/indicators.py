"""The published indicators (see docs/indicators.md): the aggregation of the read model
(`intake.metrics`) per office, per agency and nationally, and the open-data CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from guichet_runtime.db import UnitOfWork, utcnow
from guichet_runtime.refusals import RefusalKind, Refused
from intake.domain import DEFAULT_MIN_FILES, MEDIAN, P90, interpolate, share
from intake.tables import citizen_messages, file_agencies, file_metrics, surveys
from shared_models import AGENCY_LABELS, DeadlineRule, Decision

IMPLICIT = (Decision.IMPLICIT_ACCEPTANCE.value, Decision.IMPLICIT_REJECTION.value)
WITH_DEADLINE = (DeadlineRule.SILENCE_ACCEPTS.value, DeadlineRule.SILENCE_REJECTS.value)


# --------------------------------------------------------------------------- aggregation

#: The delays, in the unit each is published in.
DELAYS = {
    "referent": (file_metrics.c.referent_delay_s, 3600),
    "contact": (file_metrics.c.contact_delay_s, 3600),
    "answer": (file_metrics.c.answer_delay_s, 86400),
}
FIGURES = (
    "files",
    "referent_count",
    "referent_median_hours",
    "referent_p90_hours",
    "contact_count",
    "contact_median_hours",
    "contact_p90_hours",
    "answer_count",
    "answer_median_days",
    "answer_p90_days",
    "deadline_decided",
    "deadline_within",
    "deadline_share",
    "implicit_acceptances",
    "implicit_rejections",
    "reassigned",
    "reassignment_rate",
    "satisfaction_answers",
    "satisfaction_mean",
    "message_answered",
    "message_answer_median_hours",
    "message_answer_p90_hours",
    "message_within_promise",
    "message_promise_share",
)
#: The figures of the citizen's messages: an office's and the nation's, not an agency's (the
#: référent answers, not the agency).
MESSAGE_FIGURES = FIGURES[-5:]
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


async def _percentiles(
    uow: UnitOfWork,
    level: Level,
    column: Any,
    start: dt.date | None,
    end: dt.date | None,
    source: Any = None,
) -> dict[Any, tuple[int, float, float]]:
    """group -> (n, median, 90th percentile) of `column`. SQLite has no percentile function
    and PostgreSQL's percentile_cont is an ordered-set aggregate: both rank the values with
    a window function instead, and only the (at most four) rows around the two positions
    come back, then are interpolated here."""
    key = level.key if level.key is not None else sa.literal_column("'all'")
    base = (
        sa.select(
            key.label("grp"),
            column.label("v"),
            (sa.func.row_number().over(partition_by=level.key, order_by=column) - 1).label("i"),
            sa.func.count().over(partition_by=level.key).label("n"),
        )
        .select_from(_source(level) if source is None else source)
        .where(column.is_not(None))
    )
    if level.key is not None:
        base = base.where(level.key.is_not(None))
    ranked = _period(base, start, end).subquery()
    n_1 = ranked.c.n - 1
    positions = (n_1 // 2, ranked.c.n // 2, (n_1 * 9) // 10, (n_1 * 9 + 9) // 10)  # floor and ceil
    rows = (
        await uow.conn.execute(
            sa.select(ranked.c.grp, ranked.c.i, ranked.c.n, ranked.c.v).where(
                ranked.c.i.in_(positions)
            )
        )
    ).all()
    by_group: dict[Any, tuple[int, dict[int, float]]] = {}
    for r in rows:
        by_group.setdefault(r.grp, (r.n, {}))[1][r.i] = float(r.v)
    return {
        grp: (n, interpolate(values, n, MEDIAN), interpolate(values, n, P90))
        for grp, (n, values) in by_group.items()
    }


def _source(level: Level) -> Any:
    source = file_metrics
    if level.joins_agencies:
        source = source.join(file_agencies, file_agencies.c.file_id == file_metrics.c.file_id)
    return source


async def _figures(
    uow: UnitOfWork, level: Level, start: dt.date | None, end: dt.date | None
) -> dict[Any, dict]:
    key = level.key if level.key is not None else sa.literal_column("'all'")
    # Inline constants: PostgreSQL cannot type a bound parameter inside CASE in sum().
    one, zero = sa.literal_column("1"), sa.literal_column("0")

    def count_if(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, one), else_=zero)), zero)

    files_q = sa.select(
        key.label("grp"),
        sa.func.max(file_metrics.c.office_name).label("office_name"),
        sa.func.count().label("files"),
        sa.func.count(file_metrics.c.first_referent_at).label("referent_count"),
        sa.func.count(file_metrics.c.first_contact_at).label("contact_count"),
        sa.func.count(file_metrics.c.answered_at).label("answer_count"),
        count_if(file_metrics.c.reassignments > 0).label("reassigned"),
        sa.func.count(surveys.c.score).label("satisfaction_answers"),
        sa.func.avg(surveys.c.score).label("satisfaction_mean"),
    ).select_from(_source(level).outerjoin(surveys, surveys.c.file_id == file_metrics.c.file_id))
    groups: dict[Any, dict] = {}
    for r in (await uow.conn.execute(_grouped(_period(files_q, start, end), level))).all():
        if r.files:
            groups[r.grp] = dict(r._mapping)
    # The agency-level facts: each agency's own answers for agencies, every agency of the
    # group's files otherwise.
    agency = file_agencies.c
    with_deadline = agency.deadline_rule.in_(WITH_DEADLINE) & agency.answered_at.is_not(None)
    in_time = (
        with_deadline
        & agency.decision.not_in(IMPLICIT)
        # no due date while the clock was suspended for a document: it was not running
        & (agency.due_on.is_(None) | (agency.answered_on <= agency.due_on))
    )
    agencies_q = sa.select(
        key.label("grp"),
        count_if(with_deadline).label("deadline_decided"),
        count_if(in_time).label("deadline_within"),
        count_if(agency.decision == IMPLICIT[0]).label("implicit_acceptances"),
        count_if(agency.decision == IMPLICIT[1]).label("implicit_rejections"),
    ).select_from(file_metrics.join(file_agencies, agency.file_id == file_metrics.c.file_id))
    for r in (await uow.conn.execute(_grouped(_period(agencies_q, start, end), level))).all():
        if r.grp in groups:
            groups[r.grp].update({k: int(v) for k, v in r._mapping.items() if k != "grp"})
    for name, (column, unit) in DELAYS.items():
        for grp, (_n, median, p90) in (await _percentiles(uow, level, column, start, end)).items():
            if grp in groups:
                suffix = "hours" if unit == 3600 else "days"
                groups[grp][f"{name}_median_{suffix}"] = round(median / unit, 1)
                groups[grp][f"{name}_p90_{suffix}"] = round(p90 / unit, 1)
    if not level.joins_agencies:
        await _message_figures(uow, level, start, end, groups)
    return groups


async def _message_figures(
    uow: UnitOfWork, level: Level, start: dt.date | None, end: dt.date | None, groups: dict
) -> None:
    """The citizen's messages answered by the référent (messages of the period's files):
    how many, the time to answer (median, 90th percentile, in hours) and the share
    answered within the answer-time promise."""
    key = level.key if level.key is not None else sa.literal_column("'all'")
    one, zero = sa.literal_column("1"), sa.literal_column("0")
    messages = citizen_messages.c
    source = file_metrics.join(citizen_messages, messages.file_id == file_metrics.c.file_id)
    within = messages.answer_due_at.is_not(None) & (messages.answered_at <= messages.answer_due_at)
    counts_q = (
        sa.select(
            key.label("grp"),
            sa.func.count(messages.answered_at).label("message_answered"),
            sa.func.coalesce(sa.func.sum(sa.case((within, one), else_=zero)), zero).label(
                "message_within_promise"
            ),
        )
        .select_from(source)
        .where(messages.answered_at.is_not(None))
    )
    for r in (await uow.conn.execute(_grouped(_period(counts_q, start, end), level))).all():
        if r.grp in groups:
            groups[r.grp]["message_answered"] = int(r.message_answered)
            groups[r.grp]["message_within_promise"] = int(r.message_within_promise)
    delays = await _percentiles(uow, level, messages.answer_delay_s, start, end, source)
    for grp, (_n, median, p90) in delays.items():
        if grp in groups:
            groups[grp]["message_answer_median_hours"] = round(median / 3600, 1)
            groups[grp]["message_answer_p90_hours"] = round(p90 / 3600, 1)


def _row(level: Level, grp: Any, figures: dict, min_files: int) -> dict:
    if level.name == "office":
        label = figures["office_name"] or grp
    elif level.name == "agency":
        label = AGENCY_LABELS.get(grp, grp)
    else:
        label = "France entière"
    row: dict[str, Any] = {
        "level": level.name,
        "id": None if level.key is None else grp,
        "label": label,
        "published": figures["files"] >= min_files,
    }
    if not row["published"]:
        return {**row, **dict.fromkeys(FIGURES)}
    values = {name: figures.get(name) for name in FIGURES}
    counts = (
        "deadline_decided",
        "deadline_within",
        "implicit_acceptances",
        "implicit_rejections",
        "reassigned",
    )
    values.update({name: int(values[name] or 0) for name in counts})
    values["deadline_share"] = share(values["deadline_within"], values["deadline_decided"])
    values["reassignment_rate"] = share(values["reassigned"], values["referent_count"])
    if level.name == "agency":
        values.update(dict.fromkeys(MESSAGE_FIGURES))
    else:
        values["message_answered"] = int(values["message_answered"] or 0)
        values["message_within_promise"] = int(values["message_within_promise"] or 0)
        values["message_promise_share"] = share(
            values["message_within_promise"], values["message_answered"]
        )
    # A mean over a handful of answers would tell one citizen's score.
    if values["satisfaction_answers"] < min_files:
        values["satisfaction_mean"] = None
    elif values["satisfaction_mean"] is not None:
        values["satisfaction_mean"] = round(float(values["satisfaction_mean"]), 2)
    return {**row, **values}


async def compute(
    uow: UnitOfWork,
    start: dt.date | None = None,
    end: dt.date | None = None,
    min_files: int = DEFAULT_MIN_FILES,
) -> dict:
    """The indicators of files submitted between `start` and `end` (Paris days, inclusive)."""
    async with uow:
        results = {level.name: await _figures(uow, level, start, end) for level in LEVELS}
    national_level, office_level, agency_level = LEVELS
    national = results["national"].get("all") or {"files": 0}
    rows = {
        "offices": sorted(
            (_row(office_level, g, f, min_files) for g, f in results["office"].items()),
            key=lambda r: r["label"],
        ),
        "agencies": sorted(
            (_row(agency_level, g, f, min_files) for g, f in results["agency"].items()),
            key=lambda r: r["label"],
        ),
    }
    return {
        "period": {"from": start, "to": end},
        "generated_at": utcnow(),
        "min_files": min_files,
        "confidentiality": (
            f"Les chiffres d'un groupe de moins de {min_files} dossiers ne sont pas publiés, "
            f"ni la satisfaction moyenne calculée sur moins de {min_files} réponses, "
            "pour qu'aucun usager ne puisse être reconnu."
        ),
        "percentiles": (
            "Médiane et 90e centile par interpolation linéaire entre les rangs les plus proches."
        ),
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
    "message_answered": "messages_usagers_repondus",
    "message_answer_median_hours": "delai_reponse_message_median_heures",
    "message_answer_p90_hours": "delai_reponse_message_90e_centile_heures",
    "message_within_promise": "messages_repondus_dans_le_delai_promis",
    "message_promise_share": "part_messages_repondus_dans_le_delai_promis",
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


@dataclass
class PublishedIndicators:
    """The indicators as the API serves them. Computing ranks every delay of the period:
    published figures may be `cache_seconds` old (their generated_at says when), so each
    replica computes a period's figures at most once in that time."""

    min_files: int = DEFAULT_MIN_FILES
    cache_seconds: float = 0.0
    _computed: dict[tuple[dt.date | None, dt.date | None], tuple[float, dict]] = field(
        default_factory=dict
    )

    async def of_period(self, uow: UnitOfWork, start: dt.date | None, end: dt.date | None) -> dict:
        if start and end and end < start:
            message = "La date de fin de période précède la date de début."
            raise Refused(RefusalKind.INVALID, message, field="to")
        hit = self._computed.get((start, end))
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        found = await compute(uow, start, end, self.min_files)
        if self.cache_seconds > 0:
            if len(self._computed) >= 64:  # any period may be asked for: keep the memory bounded
                self._computed.clear()
            self._computed[(start, end)] = (time.monotonic(), found)
        return found


def csv_filename(start: dt.date | None, end: dt.date | None) -> str:
    period = "_".join(d.isoformat() for d in (start, end) if d) or "tout"
    return f"indicateurs-guichet-unique-{period}.csv"
