"""No route escapes the policy (issue 12, item 7): every route of every service's app
declares its access policy (guichet_runtime.policy), and docs/security.md lists exactly
those routes with those policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from guichet_runtime.policy import route_policies, routes_without_policy
from tests.security_matrix import PRINCIPALS, app_builders, documented_policies, read_tables

SERVICES = app_builders()


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    built = {}
    for name, (_, build) in SERVICES.items():
        built[name] = build(tmp_path_factory.mktemp(name.replace("_", "-")))
    return built


def test_every_agency_plugin_is_checked():
    assert {"adapter-caf", "adapter-dgfip", "adapter-france_travail"} <= set(SERVICES)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_route_declares_a_policy(apps, service: str):
    assert routes_without_policy(apps[service]) == []


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_docs_security_lists_the_routes_with_their_policy(apps, service: str):
    group, _ = SERVICES[service]
    declared = {route: policy.name for route, policy in route_policies(apps[service]).items()}
    documented = {route: policy.name for route, policy in documented_policies(group).items()}
    other = [r for r in declared.keys() & documented.keys() if declared[r] != documented[r]]
    assert declared == documented, (
        f"{service}: docs/security.md differs from the app. "
        f"Only in the app: {sorted(declared.keys() - documented.keys())}; "
        f"only in the doc: {sorted(documented.keys() - declared.keys())}; "
        f"another policy: {sorted(other)}"
    )


def test_the_tables_parse_and_every_matrix_row_has_every_principal():
    rows = read_tables()
    assert {row.group for row in rows} >= {"runtime", "intake", "assignment", "adapters", "web"}
    matrix = [row for row in rows if row.cells]
    assert matrix, "docs/security.md has no authorisation matrix"
    for row in matrix:
        assert row.group in ("runtime", "intake", "assignment", "adapters"), row
        assert set(row.cells) == set(PRINCIPALS.values()), row


def test_a_table_that_is_not_right_is_refused(tmp_path: Path):
    bad = "<!-- routes: intake -->\n| route | policy |\n| --- | --- |\n| `GET /x` | NOBODY |\n"
    with pytest.raises(KeyError):
        read_tables(bad)
    unknown = "<!-- routes: elsewhere -->\n| route | policy |\n| --- | --- |\n"
    with pytest.raises(ValueError):
        read_tables(unknown)
