"""The route -> policy tables and the authorisation matrix of docs/security.md, and every
service's FastAPI app built as its composition root builds it (nothing started: no server,
no broker, no database connection), for tests/test_route_policies_documented.py and
tests/e2e/test_authorization_matrix.py.

In docs/security.md each table follows a marker `<!-- routes: <group> -->`; its header names
the columns: `route` (`METHOD /path`, in backticks), `policy` (a `guichet_runtime.policy.Policy`
name), optionally `dossier` (which file of the matrix's scenario the row calls the route on)
and one column per principal of the matrix (`oui`: the call passes the door, `non`: it is
refused with 401 or 403).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from guichet_runtime.policy import Policy
from guichet_runtime.sealing import new_key

ROOT = Path(__file__).resolve().parents[1]
SECURITY_DOC = ROOT / "docs" / "security.md"

#: The matrix's principals: column header in docs/security.md -> key used by the tests.
PRINCIPALS: dict[str, str] = {
    "anonyme": "anonymous",
    "anonyme avec code": "code_holder",
    "citoyen A": "citizen_a",
    "citoyen B": "citizen_b",
    "guichet": "front_desk",
    "référent": "referent",
    "autre référent": "other_referent",
    "superviseur": "supervisor",
    "autre superviseur": "other_supervisor",
    "admin annuaire": "admin",
    "CAF": "caf",
    "DGFiP": "dgfip",
}

#: Table groups: the runtime's own routes (every service built with
#: guichet_runtime.service.create_app has them), then each service's.
RUNTIME = "runtime"
GROUPS = (RUNTIME, "intake", "assignment", "notification", "adapters", "web")

MARKER = re.compile(r"^<!--\s*routes:\s*([\w-]+)\s*-->\s*$")
CELLS = {"oui": True, "non": False}


@dataclass(frozen=True)
class Row:
    group: str
    route: str  # "METHOD /path"
    policy: Policy
    file: str | None  # the `dossier` column: "A", "B" or None
    cells: dict[str, bool]  # principal key -> allowed (matrix tables only)

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_tables(text: str | None = None) -> list[Row]:
    """Every row of every marked table of docs/security.md."""
    lines = (text if text is not None else SECURITY_DOC.read_text(encoding="utf-8")).splitlines()
    rows: list[Row] = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        i += 1
        if not marker:
            continue
        group = marker.group(1)
        if group not in GROUPS:
            raise ValueError(f"docs/security.md: unknown route table {group!r}")
        while i < len(lines) and not lines[i].startswith("|"):
            i += 1
        header = _cells(lines[i])
        i += 2  # header and its |---| line
        while i < len(lines) and lines[i].startswith("|"):
            values = dict(zip(header, _cells(lines[i]), strict=True))
            i += 1
            route = values["route"].strip("`")
            cells = {}
            for title, key in PRINCIPALS.items():
                if title in values:
                    cell = values[title].strip("*").lower()
                    if cell not in CELLS:
                        raise ValueError(f"{route}, {title}: {cell!r} is neither oui nor non")
                    cells[key] = CELLS[cell]
            if cells and set(cells) != set(PRINCIPALS.values()):
                raise ValueError(f"{route}: the matrix needs every principal's column")
            rows.append(
                Row(
                    group=group,
                    route=route,
                    policy=Policy[values["policy"].strip("`")],
                    file=values.get("dossier", "").strip().strip("—-") or None,
                    cells=cells,
                )
            )
    return rows


def documented_policies(group: str, rows: list[Row] | None = None) -> dict[str, Policy]:
    """ "METHOD /path" -> policy, as the tables say for one group (and the runtime's routes,
    for every group but the web, which is not built on the runtime)."""
    rows = read_tables() if rows is None else rows
    wanted = {group} if group == "web" else {group, RUNTIME}
    table: dict[str, Policy] = {}
    for row in rows:
        if row.group in wanted and table.setdefault(row.route, row.policy) is not row.policy:
            raise ValueError(f"{row.route}: two policies in docs/security.md")
    return table


# --- the apps, built as their composition roots build them ----------------------------------


def _intake(tmp: Path) -> FastAPI:
    from intake.bootstrap import IntakeSettings, bootstrap

    return bootstrap(IntakeSettings(database_url=_db(tmp, "intake"), access_code_key=new_key()))


def _assignment(tmp: Path) -> FastAPI:
    from assignment.bootstrap import AssignmentSettings, bootstrap

    return bootstrap(AssignmentSettings(database_url=_db(tmp, "assignment")))


def _notification(tmp: Path) -> FastAPI:
    from notification.bootstrap import NotificationSettings, bootstrap

    return bootstrap(
        NotificationSettings(database_url=_db(tmp, "notification"), access_code_key=new_key())
    )


def _web(tmp: Path) -> FastAPI:
    from web.bootstrap import bootstrap
    from web.settings import WebSettings

    return bootstrap(
        WebSettings(secret_key="test-only-secret", environment="dev", secrets_dir=tmp / "secrets")
    )


def _adapter(agency: str) -> Callable[[Path], FastAPI]:
    def build(tmp: Path) -> FastAPI:
        from adapter_sdk import discovery
        from adapter_sdk.app import build_app

        cls = discovery.load(agency)
        return build_app(cls, cls.Config(database_url=_db(tmp, f"adapter_{agency}")))

    return build


def _db(tmp: Path, name: str) -> str:
    return f"sqlite+aiosqlite:///{tmp / name}.db"


def app_builders() -> dict[str, tuple[str, Callable[[Path], FastAPI]]]:
    """Service name -> (its table group, a function building its app in a scratch directory).
    One adapter per installed agency plugin (entry points `guichet.adapters`)."""
    from adapter_sdk import discovery

    builders: dict[str, tuple[str, Callable[[Path], FastAPI]]] = {
        "intake": ("intake", _intake),
        "assignment": ("assignment", _assignment),
        "notification": ("notification", _notification),
        "web": ("web", _web),
    }
    for agency in sorted(discovery.available()):
        builders[f"adapter-{agency}"] = ("adapters", _adapter(agency))
    return builders
