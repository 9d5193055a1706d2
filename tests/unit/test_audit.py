"""`make audit`'s verdicts (devstack.audit), from the JSON pip-audit and npm audit print: a
known vulnerability fails unless allowed until a date; an unreachable vulnerability service is
a skip, never a pass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from devstack.audit import Outcome, allowlist, main, read_npm_audit, read_pip_audit

PIP_VULNERABLE = {
    "dependencies": [
        {
            "name": "jinja2",
            "version": "3.1.2",
            "vulns": [
                {
                    "id": "GHSA-h5c8-rqwp-cp95",
                    "fix_versions": ["3.1.3"],
                    "aliases": ["CVE-2024-22195"],
                }
            ],
        },
        {"name": "anyio", "version": "4.16.0", "vulns": []},
    ]
}
PIP_UNREACHABLE = {
    "dependencies": [
        {"name": "anyio", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        {"name": "jinja2", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]
}
NPM_VULNERABLE = {
    "auditReportVersion": 2,
    "vulnerabilities": {
        "axe-core": {
            "name": "axe-core",
            "severity": "high",
            "via": [
                {
                    "source": 1096,
                    "title": "Prototype pollution",
                    "severity": "high",
                    "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
                    "range": "<4.1",
                }
            ],
            "fixAvailable": {"name": "axe-core", "version": "4.1.0"},
        },
        "wrapper": {"name": "wrapper", "severity": "high", "via": ["axe-core"]},
    },
    "metadata": {"dependencies": {"total": 3}},
}
NPM_UNREACHABLE = {"message": "405 Method Not Allowed - POST …/advisories/bulk", "error": {}}


def test_a_known_python_vulnerability_fails_with_its_fix():
    report = read_pip_audit(PIP_VULNERABLE, set())
    assert report.outcome is Outcome.VULNERABLE
    (finding,) = report.findings
    assert (finding.package, finding.advisory, finding.fixed_in) == (
        "jinja2",
        "GHSA-h5c8-rqwp-cp95",
        ["3.1.3"],
    )
    assert "fixed in 3.1.3" in finding.line()


def test_an_allowed_advisory_passes_but_is_shown():
    report = read_pip_audit(PIP_VULNERABLE, {"GHSA-h5c8-rqwp-cp95"})
    assert report.outcome is Outcome.CLEAN
    assert [f.advisory for f in report.allowed] == ["GHSA-h5c8-rqwp-cp95"]


def test_no_vulnerability_data_at_all_is_a_skip_not_a_pass():
    assert read_pip_audit(PIP_UNREACHABLE, set()).outcome is Outcome.SKIPPED
    assert read_npm_audit(NPM_UNREACHABLE, set()).outcome is Outcome.SKIPPED


def test_npm_advisories_are_read_from_their_package_not_the_dependents():
    report = read_npm_audit(NPM_VULNERABLE, set())
    assert report.outcome is Outcome.VULNERABLE
    assert [(f.package, f.advisory) for f in report.findings] == [
        ("axe-core", "GHSA-aaaa-bbbb-cccc")
    ]
    assert read_npm_audit(NPM_VULNERABLE, {"GHSA-aaaa-bbbb-cccc"}).outcome is Outcome.CLEAN
    clean = {"auditReportVersion": 2, "vulnerabilities": {}, "metadata": {}}
    assert read_npm_audit(clean, set()).outcome is Outcome.CLEAN


def test_an_allowance_lapses_on_its_date(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_text(
        '[[python]]\nid = "PYSEC-1"\nreason = "x"\nuntil = 2027-01-31\n'
        '[[npm]]\nid = "1096"\nreason = "y"\nuntil = 2026-01-01\n'
    )
    assert allowlist(path, "python", dt.date(2027, 1, 31)) == {"PYSEC-1"}
    assert allowlist(path, "python", dt.date(2027, 2, 1)) == set()
    assert allowlist(path, "npm", dt.date(2026, 11, 30)) == set()
    assert allowlist(tmp_path / "none.toml", "npm", dt.date(2026, 11, 30)) == set()


def test_the_committed_allowlist_reads():
    root = Path(__file__).resolve().parents[2]
    for ecosystem in ("python", "npm"):
        assert isinstance(
            allowlist(root / "deploy/audit-allowlist.toml", ecosystem, dt.date.min), set
        )


def test_exit_codes(monkeypatch, tmp_path):
    from devstack import audit

    def report(outcome):
        return lambda *a, **k: audit.Report("x", outcome)

    monkeypatch.setattr(audit, "audit_npm", report(Outcome.CLEAN))
    monkeypatch.setattr(audit, "audit_python", report(Outcome.SKIPPED))
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--strict"]) == 2
    monkeypatch.setattr(audit, "audit_python", report(Outcome.VULNERABLE))
    assert main(["--root", str(tmp_path)]) == 1
