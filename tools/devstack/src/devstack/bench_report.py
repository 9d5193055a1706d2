"""The figures of `guichet-dev bench` as JSON and as the table it prints.

`build_report` turns one phase's Measurement (devstack.bench) into figures; `run_report`
assembles a run: the burst's figures at the top level (as before the open loop existed),
the open loop's under `open_loop`, the bare chain's under `bare_chain` with the product's
throughput as a fraction of it, and CPU per file per process and per group of processes
(the product's own, the test doubles, the bench client, Kafka, Keycloak: listed apart).
`compare_security` puts two runs side by side: the same bench on an open broker and on the
production-like one (SASL/SCRAM over TLS with ACLs).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.bench import Measurement, latencies_ms, summarize, throughput

#: Processes measured but not counted in the stack's totals.
KAFKA, CLIENT, KEYCLOAK, POSTGRES = "kafka", "bench client", "keycloak", "postgresql"
NOT_IN_TOTAL = frozenset({KAFKA, CLIENT, KEYCLOAK, POSTGRES})
#: The test doubles (agencies' simulators, SMTP sink, SMS/postal simulator), by name prefix.
DOUBLES = ("simulator-", "smtp-sink", "channel-providers")


def group_of(process: str) -> str:
    """Which group a measured process belongs to: "product" (services, adapters, web),
    "test doubles", or the process itself (bench client, kafka, keycloak, postgresql)."""
    if process in NOT_IN_TOTAL:
        return process
    if process.startswith(DOUBLES):
        return "test doubles"
    return "product"


def by_group(per_process: Mapping[str, float | None]) -> dict[str, float | None]:
    """Sums per group (group_of); None where a member is unknown and none is known."""
    out: dict[str, float | None] = {}
    for name, value in per_process.items():
        group = group_of(name)
        if value is None:
            out.setdefault(group, None)
        else:
            out[group] = (out.get(group) or 0.0) + value
    return out


def build_report(
    m: Measurement,
    *,
    rss_mb: Mapping[str, Mapping[str, float | None]] | None = None,
    cpu_s: Mapping[str, float | None] | None = None,
    context: Mapping[str, Any] | None = None,
    max_missing_listed: int = 50,
) -> dict[str, Any]:
    """The figures of a run as a JSON-ready dict."""
    ids = list(m.submitted)
    done = [i for i in ids if i in m.answer]
    missing_answer = [i for i in ids if i not in m.answer]
    missing_referent = [i for i in ids if i not in m.referent]
    first_submit = min(m.submitted.values()) if m.submitted else None
    last_answer = max((m.answer[i] for i in done), default=None)
    wall = (
        (last_answer - first_submit)
        if first_submit is not None and last_answer is not None
        else None
    )
    cpu = dict(cpu_s if cpu_s is not None else m.cpu_s)
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **({"context": dict(context)} if context else {}),
        "mode": m.mode,
        "files": m.files,
        "concurrency": m.concurrency,
        "offered_rate_per_s": m.rate,
        "life_event": m.life_event,
        "submitted": len(ids),
        "post_errors": len(m.post_errors),
        "post_error_samples": m.post_errors[:10],
        "completed": len(done),
        "missing_referent": len(missing_referent),
        "missing_answer": len(missing_answer),
        "missing_answer_ids": missing_answer[:max_missing_listed],
        "timed_out": m.timed_out,
        "aborted": m.aborted,
        "submit_phase_s": m.submit_phase_s,
        "post_rate_per_s": (len(ids) / m.submit_phase_s) if m.submit_phase_s else None,
        "wall_time_s": wall,
        "files_per_s": throughput(len(done), first_submit, last_answer),
        "latency_ms": {
            "post": summarize(m.post_latency_ms),
            "referent": summarize(latencies_ms(m.submitted, m.referent)),
            "answer": summarize(latencies_ms(m.submitted, m.answer)),
        },
        "send_lag_ms": summarize(m.send_lag_ms) if m.mode == "open-loop" else None,
        "rss_mb": {k: dict(v) for k, v in (rss_mb or {}).items()},
        "cpu_s": cpu,
        "cpu_ms_per_file": per_file_ms(cpu, len(done)),
        "cpu_ms_per_file_by_group": by_group(per_file_ms(cpu, len(done))),
        "messages_per_file": messages_per_file(m.messages, len(done)),
    }


def per_file_ms(cpu_s: Mapping[str, float | None], files: int) -> dict[str, float | None]:
    """CPU milliseconds per completed file, per process (None: unknown or no file)."""
    return {n: None if c is None or not files else c * 1000 / files for n, c in cpu_s.items()}


def messages_per_file(written: Mapping[str, int], files: int) -> dict[str, Any]:
    """Messages written per completed file: per topic (those with any) and in all."""
    if not files or not written:
        return {"total": None, "per_topic": {}}
    per_topic = {t: n / files for t, n in sorted(written.items()) if n}
    return {"total": sum(written.values()) / files, "per_topic": per_topic}


def ratio(product: float | None, ceiling: float | None) -> float | None:
    """The product's throughput as a fraction of the bare chain's (None if either is)."""
    if not product or not ceiling:
        return None
    return product / ceiling


def chain_report(
    result: Any, plan: Mapping[str, Any], cpu_s: Mapping[str, float | None]
) -> dict[str, Any]:
    """The bare chain's figures (devstack.bare_chain.ChainResult and Plan.describe()).
    `cpu_s`: CPU seconds of other processes (Kafka) during its measured files."""
    done = len([k for k in result.submitted if k in result.answered])
    cpu = {CLIENT: result.cpu_s, **cpu_s}
    return {
        **plan,
        "files": result.files,
        "completed": done,
        "timed_out": result.timed_out,
        "files_per_s": result.files_per_s(),
        "latency_ms": summarize(latencies_ms(result.submitted, result.answered)),
        "cpu_s": cpu,
        "cpu_ms_per_file": per_file_ms(cpu, done),
    }


def run_report(
    phases: list[Measurement],
    *,
    rss_mb: Mapping[str, Mapping[str, float | None]] | None = None,
    chain: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One run's figures: the burst at the top level, the open loop, the bare chain."""
    report = build_report(phases[0], rss_mb=rss_mb, context=context)
    report["open_loop"] = None
    if len(phases) > 1:
        o = build_report(phases[1])
        for key in ("generated_at", "rss_mb"):
            o.pop(key, None)
        report["open_loop"] = o
    report["bare_chain"] = dict(chain) if chain else None
    report["product_vs_bare_chain"] = ratio(
        report["files_per_s"], chain.get("files_per_s") if chain else None
    )
    return report


def _summary(r: Mapping[str, Any]) -> dict[str, Any]:
    groups = r.get("cpu_ms_per_file_by_group", {})
    chain = r.get("bare_chain") or {}
    return {
        "files_per_s": r.get("files_per_s"),
        "cpu_ms_per_file": groups,
        "bare_chain_files_per_s": chain.get("files_per_s"),
        "bare_chain_cpu_ms_per_file": chain.get("cpu_ms_per_file"),
        "product_vs_bare_chain": r.get("product_vs_bare_chain"),
    }


def _change(before: float | None, after: float | None) -> dict[str, float | None]:
    if before is None or after is None:
        return {"difference": None, "percent": None}
    return {
        "difference": after - before,
        "percent": (after - before) * 100 / before if before else None,
    }


def compare_security(open_run: Mapping[str, Any], secure_run: Mapping[str, Any]) -> dict[str, Any]:
    """The cost of Kafka's security: the same bench on an open broker (PLAINTEXT, no ACLs) and
    on the production-like one (SASL/SCRAM-SHA-512 over TLS, ACLs), secure minus open."""
    a, b = _summary(open_run), _summary(secure_run)
    groups = sorted({*a["cpu_ms_per_file"], *b["cpu_ms_per_file"]})
    chain_cpu = sorted(
        {*(a["bare_chain_cpu_ms_per_file"] or {}), *(b["bare_chain_cpu_ms_per_file"] or {})}
    )
    return {
        "plaintext": a,
        "sasl_scram_tls": b,
        "difference": {
            "files_per_s": _change(a["files_per_s"], b["files_per_s"]),
            "cpu_ms_per_file": {
                g: _change(a["cpu_ms_per_file"].get(g), b["cpu_ms_per_file"].get(g)) for g in groups
            },
            "bare_chain_files_per_s": _change(
                a["bare_chain_files_per_s"], b["bare_chain_files_per_s"]
            ),
            "bare_chain_cpu_ms_per_file": {
                p: _change(
                    (a["bare_chain_cpu_ms_per_file"] or {}).get(p),
                    (b["bare_chain_cpu_ms_per_file"] or {}).get(p),
                )
                for p in chain_cpu
            },
        },
    }


def write_report(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# -- the printed table -------------------------------------------------------------------


def _fmt(value: float | int | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


_COLS = ("p50", "p95", "p99", "max")


def _phase_lines(r: Mapping[str, Any], tag: str) -> list[str]:
    lines = [
        f"  completed          {r['completed']}/{r['submitted']} answers sent"
        f" (POST errors {r['post_errors']}, no référent {r['missing_referent']}, no answer "
        f"{r['missing_answer']})",
        f"  wall time          {_fmt(r['wall_time_s'], '.2f')} s (first submit -> last answer)",
        f"  throughput         {_fmt(r['files_per_s'], '.1f')} files/s",
        f"  submit phase       {_fmt(r['submit_phase_s'], '.2f')} s "
        f"({_fmt(r['post_rate_per_s'], '.1f')} POST/s)",
    ]
    if r.get("send_lag_ms"):
        lag = r["send_lag_ms"]
        lines.append(
            f"  send lag           p50 {_fmt(lag['p50'])} ms, p99 {_fmt(lag['p99'])} ms, max "
            f"{_fmt(lag['max'])} ms (POST sent after its scheduled time)"
        )
    if r.get("aborted"):
        lines.append(f"  ABORTED            {r['aborted']}")
    elif r.get("timed_out"):
        lines.append(
            "  TIMED OUT          some answers never arrived (see missing_answer_ids in the JSON)"
        )
    lines += ["", f"  {'latency (ms), ' + tag:<32}" + "".join(f"{c:>9}" for c in _COLS)]
    for label, key in (
        ("POST /api/files", "post"),
        ("submit -> référent named", "referent"),
        ("submit -> answer sent", "answer"),
    ):
        s = r["latency_ms"][key]
        lines.append(f"  {label:<32}" + "".join(f"{_fmt(s[c]):>9}" for c in _COLS))
    return lines


def _chain_lines(r: Mapping[str, Any]) -> list[str]:
    c = r.get("bare_chain")
    if not c:
        return []
    if "error" in c:
        return ["", f"  bare chain         FAILED: {c['error']}"]
    written = r.get("messages_per_file", {}).get("total")
    journey = c.get("journey_messages_per_file", c["messages_per_file"])
    lines = [
        "",
        f"  bare chain         {c['completed']}/{c['files']} files,"
        f" {_fmt(c['messages_per_file'], '.1f')} messages ({journey} on the journey),"
        f" {_fmt(c['reads_per_file'], '.1f')} reads and {c['consumer_hops']} consumer hops per"
        f" file: {_fmt(c['files_per_s'], '.0f')} files/s",
        f"  product / chain    {_fmt(r.get('product_vs_bare_chain'), '.4f')} (burst files/s over"
        " the bare chain's, same broker)",
        f"  messages per file  product {_fmt(written, '.1f')} (measured), bare chain"
        f" {_fmt(c['messages_per_file'], '.1f')}",
        "  chain CPU ms/file  "
        + ", ".join(f"{n} {_fmt(v, '.2f')}" for n, v in c.get("cpu_ms_per_file", {}).items()),
    ]
    if c.get("not_reproduced"):
        lines.append(f"  not in the chain   {', '.join(c['not_reproduced'])}")
    return lines


def _process_lines(r: Mapping[str, Any]) -> list[str]:
    rss, cpu = r.get("rss_mb", {}), r.get("cpu_s", {})
    burst = r.get("cpu_ms_per_file", {})
    loop = (r.get("open_loop") or {}).get("cpu_ms_per_file", {})
    names = list(dict.fromkeys([*rss, *cpu]))
    if not names:
        return []
    lines = [
        "",
        f"  {'process':<28}{'RSS MB':>9}{'peak MB':>9}{'CPU s':>9}{'ms/file':>9}{'(open)':>9}",
    ]
    for name in names:
        mem = rss.get(name, {})
        lines.append(
            f"  {name:<28}{_fmt(mem.get('rss')):>9}{_fmt(mem.get('peak')):>9}"
            f"{_fmt(cpu.get(name), '.1f'):>9}{_fmt(burst.get(name), '.1f'):>9}"
            f"{_fmt(loop.get(name), '.1f'):>9}"
        )
    total_rss = [
        m["rss"] for n, m in rss.items() if m.get("rss") is not None and n not in NOT_IN_TOTAL
    ]
    total_cpu = [c for n, c in cpu.items() if c is not None and n not in NOT_IN_TOTAL]
    groups = r.get("cpu_ms_per_file_by_group", {})
    loop_groups = (r.get("open_loop") or {}).get("cpu_ms_per_file_by_group", {})
    stack_ms = [v for g, v in groups.items() if v is not None and g not in NOT_IN_TOTAL]
    loop_ms = [v for g, v in loop_groups.items() if v is not None and g not in NOT_IN_TOTAL]
    lines.append(
        f"  {'total of the stack':<28}{_fmt(sum(total_rss) if total_rss else None):>9}{'':>9}"
        f"{_fmt(sum(total_cpu) if total_cpu else None, '.1f'):>9}"
        f"{_fmt(sum(stack_ms) if stack_ms else None, '.1f'):>9}"
        f"{_fmt(sum(loop_ms) if loop_ms else None, '.1f'):>9}"
    )
    for group, value in groups.items():
        lines.append(
            f"  {'  ' + group:<28}{'':>27}{_fmt(value, '.1f'):>9}"
            f"{_fmt(loop_groups.get(group), '.1f'):>9}"
        )
    lines.append("  (CPU s and ms/file: during the burst's files; (open): during the open loop)")
    return lines


def format_report(r: Mapping[str, Any]) -> str:
    """The human-readable table printed at the end of `guichet-dev bench`."""
    ctx = r.get("context", {})
    backend = ctx.get("backend", "")
    head = (
        f"{r['files']} files '{r['life_event']}'"
        + (f" ({ctx['agencies_per_file']} agencies each)" if "agencies_per_file" in ctx else "")
        + f", concurrency {r['concurrency']}"
        + (f", {backend}" if backend else "")
        + (f", Kafka {ctx['kafka']}" if "kafka" in ctx else "")
    )
    lines = [f"guichet unique benchmark: {head}", "", *_phase_lines(r, "burst")]
    if o := r.get("open_loop"):
        lines += [
            "",
            f"  open loop          {o['files']} files arriving at"
            f" {_fmt(o['offered_rate_per_s'], '.1f')} files/s (latencies from each file's"
            " scheduled time)",
            *_phase_lines(o, "open loop"),
        ]
    lines += _chain_lines(r) + _process_lines(r)
    return "\n".join(lines)


def format_comparison(c: Mapping[str, Any]) -> str:
    """The cost of Kafka's security, as printed after the two runs."""
    a, b, d = c["plaintext"], c["sasl_scram_tls"], c["difference"]

    def row(label: str, x: float | None, y: float | None, change: Mapping[str, Any]) -> str:
        return (
            f"  {label:<30}{_fmt(x, '.2f'):>11}{_fmt(y, '.2f'):>11}"
            f"{_fmt(change['difference'], '+.2f'):>11}{_fmt(change['percent'], '+.1f'):>9}"
        )

    lines = [
        "cost of Kafka security (same bench, one broker each, back to back)",
        f"  {'':<30}{'PLAINTEXT':>11}{'SASL+TLS':>11}{'diff':>11}{'%':>9}",
        row("product files/s", a["files_per_s"], b["files_per_s"], d["files_per_s"]),
    ]
    for g, change in d["cpu_ms_per_file"].items():
        x, y = a["cpu_ms_per_file"].get(g), b["cpu_ms_per_file"].get(g)
        lines.append(row(f"CPU ms/file {g}", x, y, change))
    lines.append(
        row(
            "bare chain files/s",
            a["bare_chain_files_per_s"],
            b["bare_chain_files_per_s"],
            d["bare_chain_files_per_s"],
        )
    )
    for p, change in d["bare_chain_cpu_ms_per_file"].items():
        x = (a["bare_chain_cpu_ms_per_file"] or {}).get(p)
        y = (b["bare_chain_cpu_ms_per_file"] or {}).get(p)
        lines.append(row(f"chain CPU ms/file {p}", x, y, change))
    return "\n".join(lines)
