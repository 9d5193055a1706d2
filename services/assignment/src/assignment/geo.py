"""Where a citizen lives, from their postcode: the point used to find the nearest office.

The table is derived from Etalab's and GeoNames' open data by `devstack.geodata`
(see its docstring); it is read once, on first use.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

POSTCODES = Path(__file__).parent / "data" / "postcodes.csv"


@cache
def _table() -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    points: dict[str, tuple[float, float]] = {}
    by_dept: dict[str, list[tuple[float, float]]] = {}
    with POSTCODES.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            point = (float(row["latitude"]), float(row["longitude"]))
            points[row["postcode"]] = point
            by_dept.setdefault(row["departement"], []).append(point)
    centres = {
        d: (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
        for d, pts in by_dept.items()
    }
    return points, centres


def locate(postcode: str, departement: str) -> tuple[float, float] | None:
    """The postcode's point, else its département's centre, else None (unknown place)."""
    points, centres = _table()
    return points.get(postcode) or centres.get(departement)
