"""Benchmark of one référent decision on a large directory and a long history.

Builds the assignment service's own database (its Alembic migrations) with `offices`
France Services points placed on real postcodes, `agents` agents, and `past_files`
answered files of earlier citizens; then times the assignment service's real code for a
decision — its référent engine, `assignment.referents`: the citizen locked, then
`take_agent` (continuity, candidates, proximity, skills, load, the guarded capacity
update) — each in its own transaction, rolled back so every decision
sees the same directory. Citizens are drawn from everywhere in France: some have an
earlier file (continuity), some live in a département without an office (nearest office
by distance).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

AGENCIES = ["caf", "dgfip", "france_travail", "cpam"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _postcodes() -> list[tuple[str, str, float, float]]:
    from assignment import geo

    with geo.POSTCODES.open(encoding="utf-8") as f:
        return [
            (r["postcode"], r["departement"], float(r["latitude"]), float(r["longitude"]))
            for r in csv.DictReader(f)
        ]


def _rows(offices_n: int, agents_n: int, past_files: int, rng: random.Random):
    """The directory rows, the history's citizen keys, and a generator of history chunks."""
    places = _postcodes()
    # One office per département first (so most citizens are served locally), then more.
    by_dept: dict[str, list[tuple[str, str, float, float]]] = {}
    for p in places:
        by_dept.setdefault(p[1], []).append(p)
    depts = sorted(by_dept)
    rng.shuffle(depts)
    chosen = [
        rng.choice(by_dept[d]) for d in depts[: min(offices_n, len(depts)) - 5]
    ]  # 5 départements without office
    while len(chosen) < offices_n:
        chosen.append(rng.choice(places))
    office_rows = [
        {
            "office_id": f"FS-{i:04d}",
            "name": f"France Services {pc}",
            "address": "1 place de la Mairie",
            "commune": pc,
            "departement": d,
            "latitude": lat,
            "longitude": lon,
            "opening_hours": "Du lundi au vendredi, 9h-17h",
        }
        for i, (pc, d, lat, lon) in enumerate(chosen)
    ]
    agent_rows = []
    for i in range(agents_n):
        capacity = rng.choice([30, 40, 50])
        agent_rows.append(
            {
                "agent_id": f"AG-{i:05d}",
                "name": f"Agent {i}",
                "office_id": office_rows[i % offices_n]["office_id"],
                "phone": "01 23 45 67 89",
                "email": f"agent{i}@france-services.gouv.fr",
                "agencies": rng.sample(AGENCIES, rng.randint(2, 4)),
                "capacity": capacity,
                "active_files": rng.randint(0, capacity),  # some are full
                "status": "actif" if rng.random() > 0.03 else "absent",
            }
        )
    citizens = [f"email:citoyen{i}@example.fr" for i in range(max(1, past_files // 3))]
    now = time.time()

    def history(chunk: int = 50_000):
        for start in range(0, past_files, chunk):
            rows = []
            for n in range(start, min(past_files, start + chunk)):
                created = dt.datetime.fromtimestamp(
                    now - rng.randint(3 * 86400, 3 * 365 * 86400), dt.UTC
                )
                rows.append(
                    {
                        "file_id": f"GU-OLD-{n:08d}",
                        "citizen_key": citizens[n % len(citizens)],
                        "citizen": {"postcode": "75011"},
                        "agencies": ["caf"],
                        "life_event": "naissance",
                        "life_event_label": "Naissance",
                        "description": "",
                        "urgent": False,
                        "status": "repondu",
                        "referent_id": agent_rows[rng.randrange(agents_n)]["agent_id"],
                        "created_at": created,
                        "answered_at": created,
                    }
                )
            yield rows

    return office_rows, agent_rows, citizens, history


def _fill_sqlite(
    url: str, offices_n: int, agents_n: int, past_files: int, rng: random.Random
) -> list[str]:
    """Bulk inserts through the sync driver; returns the history's citizen keys."""
    from assignment.tables import agents, files, offices

    office_rows, agent_rows, citizens, history = _rows(offices_n, agents_n, past_files, rng)
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.execute(offices.insert(), office_rows)
        conn.execute(agents.insert(), agent_rows)
        for rows in history():
            conn.execute(files.insert(), rows)
    engine.dispose()
    return citizens


async def _fill_postgres(
    url: str, offices_n: int, agents_n: int, past_files: int, rng: random.Random
) -> list[str]:
    """COPY through asyncpg (a million rows in seconds), then ANALYZE."""
    import json

    import asyncpg

    office_rows, agent_rows, citizens, history = _rows(offices_n, agents_n, past_files, rng)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:

        async def copy(
            table: str, rows: list[dict[str, Any]], json_columns: tuple[str, ...] = ()
        ) -> None:
            columns = list(rows[0])
            records = [
                tuple(json.dumps(r[c]) if c in json_columns else r[c] for c in columns)
                for r in rows
            ]
            await conn.copy_records_to_table(table, records=records, columns=columns)

        await copy("offices", office_rows)
        await copy("agents", agent_rows, ("agencies",))
        for rows in history():
            await copy("files", rows, ("citizen", "agencies", "description"))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return citizens


async def _decide(url: str, decisions: int, citizens: list[str], rng: random.Random) -> list[float]:
    from assignment.referents import lock_citizen, take_agent
    from assignment.tables import inbox, outbox
    from guichet_runtime.db import UnitOfWork, make_engine

    places = _postcodes()
    engine = make_engine(url)
    timings = []
    try:
        for i in range(decisions + 50):
            postcode = rng.choice(places)[0]
            key = rng.choice(citizens) if rng.random() < 0.3 else f"email:nouveau{i}@example.fr"
            agencies = rng.sample(AGENCIES, rng.randint(1, 3))
            urgent = rng.random() < 0.1
            uow = UnitOfWork(engine, outbox, inbox)
            async with uow:
                started = time.perf_counter()
                await lock_citizen(uow, key)
                await take_agent(uow, agencies, postcode, key, urgent=urgent)
                elapsed = time.perf_counter() - started
                # rolled back on exit: every decision sees the same directory
            if i >= 50:  # warm-up: connection, statement caches, the postcode table
                timings.append(elapsed * 1000)
    finally:
        await engine.dispose()
    return timings


async def run(
    sizes: list[tuple[int, int]],
    past_files: int,
    decisions: int,
    seed: int = 7,
    postgres: Any = None,
) -> list[dict[str, Any]]:
    """Time `decisions` decisions for each (offices, agents) size; returns one row per size.
    `postgres`: a callable database name -> URL (LocalPostgres.create_database); else SQLite."""
    import assignment
    from guichet_runtime import migrations

    results = []
    for offices_n, agents_n in sizes:
        rng = random.Random(seed)
        with tempfile.TemporaryDirectory(prefix="guichet-decision-") as tmp:
            if postgres is not None:
                url = postgres(f"decision_{agents_n}_{int(time.time())}")
            else:
                url = f"sqlite+aiosqlite:///{tmp}/assignment.db"
            await migrations.upgrade(Path(assignment.__file__).parent / "migrations", url)
            built = time.perf_counter()
            if postgres is not None:
                citizens = await _fill_postgres(url, offices_n, agents_n, past_files, rng)
            else:
                citizens = await asyncio.to_thread(
                    _fill_sqlite, url, offices_n, agents_n, past_files, rng
                )
            fill_s = time.perf_counter() - built
            timings = await _decide(url, decisions, citizens, rng)
        results.append(
            {
                "database": "postgresql" if postgres is not None else "sqlite",
                "offices": offices_n,
                "agents": agents_n,
                "past_files": past_files,
                "decisions": len(timings),
                "p50_ms": round(statistics.median(timings), 3),
                "p95_ms": round(_percentile(timings, 0.95), 3),
                "p99_ms": round(_percentile(timings, 0.99), 3),
                "max_ms": round(max(timings), 3),
                "fill_seconds": round(fill_s, 1),
            }
        )
    return results
