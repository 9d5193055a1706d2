"""`make audit`: known vulnerabilities in the locked dependencies.

Python: the packages uv.lock pins (every group: what the image ships and what the tests run),
exported by `uv export --frozen` with their hashes, checked by pip-audit (pinned, run by
`uv tool run`, outside the project's environment: uv.lock is untouched) against PyPI's
vulnerability data. The pages: `npm audit --omit=dev` on services/web's package-lock.json.

Verdicts: a known vulnerability not in the allow-list fails (exit 1); a vulnerability service
that cannot be reached (no network, a registry mirror without the audit API) is a clear skip
(exit 0, or 2 with `--strict`), never a silent pass. The allow-list (deploy/audit-allowlist.toml)
names each accepted advisory with the reason and the date it must be looked at again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

PIP_AUDIT = "pip-audit==2.10.1"
ALLOWLIST = Path("deploy/audit-allowlist.toml")


class Outcome(StrEnum):
    CLEAN = "clean"
    VULNERABLE = "vulnerable"
    SKIPPED = "skipped"


@dataclass
class Finding:
    package: str
    version: str
    advisory: str
    fixed_in: list[str] = field(default_factory=list)
    summary: str = ""

    def line(self) -> str:
        fix = f" -> fixed in {', '.join(self.fixed_in)}" if self.fixed_in else " (no fix yet)"
        return f"{self.package} {self.version}: {self.advisory}{fix} {self.summary}".rstrip()


@dataclass
class Report:
    ecosystem: str
    outcome: Outcome
    findings: list[Finding] = field(default_factory=list)
    allowed: list[Finding] = field(default_factory=list)
    note: str = ""


def allowlist(path: Path, ecosystem: str, today: dt.date) -> set[str]:
    """The advisories accepted for `ecosystem` whose review date has not passed."""
    if not path.exists():
        return set()
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get(ecosystem, [])
    return {e["id"] for e in entries if dt.date.fromisoformat(str(e["until"])) >= today}


def split(findings: list[Finding], allowed_ids: set[str]) -> tuple[list[Finding], list[Finding]]:
    kept = [f for f in findings if f.advisory not in allowed_ids]
    return kept, [f for f in findings if f.advisory in allowed_ids]


def read_pip_audit(data: dict[str, Any], allowed_ids: set[str]) -> Report:
    """pip-audit's JSON (`-f json`) as a verdict. Every dependency "not found" means the
    vulnerability service did not answer (PyPI's JSON API unreachable): a skip."""
    deps = data.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    findings = [
        Finding(
            d["name"],
            d.get("version", "?"),
            v["id"],
            list(v.get("fix_versions", [])),
            ", ".join(v.get("aliases", [])),
        )
        for d in deps
        for v in d.get("vulns", [])
    ]
    kept, allowed = split(findings, allowed_ids)
    if deps and len(skipped) == len(deps):
        reason = f"no vulnerability data for any of the {len(deps)} packages, e.g. "
        return Report("python", Outcome.SKIPPED, note=reason + skipped[0]["skip_reason"])
    note = f"{len(deps) - len(skipped)} packages checked"
    if skipped:
        note += f"; not checked: {', '.join(d['name'] for d in skipped)}"
    outcome = Outcome.VULNERABLE if kept else Outcome.CLEAN
    return Report("python", outcome, kept, allowed, note)


def read_npm_audit(data: dict[str, Any], allowed_ids: set[str]) -> Report:
    """`npm audit --json` as a verdict; an error answer (no audit endpoint) is a skip."""
    if "error" in data or "vulnerabilities" not in data:
        reason = data.get("message") or data.get("error", {}).get("summary") or "no report"
        return Report("npm", Outcome.SKIPPED, note=str(reason))
    findings = []
    for name, vuln in data["vulnerabilities"].items():
        for via in vuln.get("via", []):
            if isinstance(via, dict):  # an advisory (a string names the dependency it comes by)
                advisory = via.get("url", "").rsplit("/", 1)[-1] or str(via.get("source"))
                fixed = vuln.get("fixAvailable")
                fix = [f"{fixed['name']} {fixed['version']}"] if isinstance(fixed, dict) else []
                summary = f"[{via.get('severity', '?')}] {via.get('title', '')}"
                findings.append(Finding(name, via.get("range", "?"), advisory, fix, summary))
    kept, allowed = split(findings, allowed_ids)
    total = data.get("metadata", {}).get("dependencies", {}).get("total", "?")
    outcome = Outcome.VULNERABLE if kept else Outcome.CLEAN
    return Report("npm", outcome, kept, allowed, f"{total} packages checked")


def audit_python(root: Path, allowed_ids: set[str], uv: list[str]) -> Report:
    with tempfile.TemporaryDirectory(prefix="guichet-audit-") as tmp:
        requirements, output = Path(tmp) / "requirements.txt", Path(tmp) / "audit.json"
        export = [*uv, "export", "--frozen", "--all-groups", "--no-emit-workspace"]
        export += ["--format", "requirements-txt", "--quiet", "-o", str(requirements)]
        subprocess.run(export, cwd=root, check=True, capture_output=True, text=True)
        command = [*uv, "tool", "run", "--from", PIP_AUDIT, "pip-audit", "-r", str(requirements)]
        command += ["--disable-pip", "--require-hashes", "-s", "pypi", "--progress-spinner"]
        command += ["off", "-f", "json", "-o", str(output)]
        for advisory in sorted(allowed_ids):
            command += ["--ignore-vuln", advisory]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
        if not output.exists() or not output.read_text().strip():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return Report("python", Outcome.SKIPPED, note=f"pip-audit could not run: {tail[0]}")
        return read_pip_audit(json.loads(output.read_text()), allowed_ids)


def audit_npm(root: Path, allowed_ids: set[str]) -> Report:
    command = ["npm", "audit", "--omit=dev", "--json"]
    try:
        done = subprocess.run(
            command, cwd=root / "services" / "web", capture_output=True, text=True, timeout=300
        )
    except FileNotFoundError:
        return Report("npm", Outcome.SKIPPED, note="npm is not installed")
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        return Report("npm", Outcome.SKIPPED, note=(done.stderr.strip() or "no report")[-300:])
    return read_npm_audit(data, allowed_ids)


def show(report: Report) -> None:
    print(f"{report.ecosystem}: {report.outcome.upper()} ({report.note})")
    for finding in report.findings:
        print(f"  VULNERABLE {finding.line()}")
    for finding in report.allowed:
        print(f"  allowed    {finding.line()}  (deploy/audit-allowlist.toml)")
    if report.outcome is Outcome.SKIPPED:
        print(f"  the {report.ecosystem} vulnerability service could not be reached: not audited")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--strict", action="store_true", help="a skip fails too (exit 2)")
    parser.add_argument("--uv", default=shutil.which("uv") or "python3 -m uv", help="uv's command")
    args = parser.parse_args(argv)
    today = dt.datetime.now(dt.UTC).date()
    path = args.root / ALLOWLIST
    reports = [
        audit_python(args.root, allowlist(path, "python", today), args.uv.split()),
        audit_npm(args.root, allowlist(path, "npm", today)),
    ]
    for report in reports:
        show(report)
    if any(r.outcome is Outcome.VULNERABLE for r in reports):
        return 1
    if args.strict and any(r.outcome is Outcome.SKIPPED for r in reports):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
