"""`make test`'s lanes (devstack.lanes): every test directory runs in exactly one lane, the
lanes' ports never meet each other's nor the shared servers', and every lane is told where
the shared servers are."""

from __future__ import annotations

from pathlib import Path

from devstack.lanes import (
    KAFKA_VARIABLE,
    KEYCLOAK_VARIABLE,
    LANES,
    SERVERS_PORT_RANGE,
    Lane,
    Servers,
    expand,
)

ROOT = Path(__file__).resolve().parents[2]
#: Linux's first ephemeral port (net.ipv4.ip_local_port_range): outgoing connections draw there.
EPHEMERAL = 32768


def span(value: str) -> range:
    first, _, last = value.partition("-")
    return range(int(first), int(last) + 1)


def test_every_test_module_runs_in_exactly_one_lane():
    modules = {p.relative_to(ROOT) for p in (ROOT / "tests").rglob("test_*.py")}
    assert len(modules) > 100
    for module in modules:
        lanes = [
            lane.title
            for lane in LANES
            for arg in expand(ROOT, lane.args)
            if not arg.startswith("-") and (module == Path(arg) or Path(arg) in module.parents)
        ]
        # The two end-to-end halves name the same directory: GUICHET_E2E_SHARD splits it.
        halves = {t for t in lanes if t.startswith("end-to-end")}
        assert len(lanes) - len(halves) + (1 if halves else 0) == 1, (module, lanes)
    shards = sorted(lane.env.get("GUICHET_E2E_SHARD", "") for lane in LANES)
    assert shards == ["", "1/2", "2/2"]


def test_the_port_ranges_are_disjoint_and_below_the_ephemeral_range():
    ranges = [span(SERVERS_PORT_RANGE), *(span(lane.env["GUICHET_PORT_RANGE"]) for lane in LANES)]
    for i, one in enumerate(ranges):
        assert one.start > 1024 and one.stop <= EPHEMERAL, one
        for other in ranges[i + 1 :]:
            assert not set(one) & set(other), (one, other)


def test_every_lane_is_told_where_the_shared_servers_are(tmp_path):
    servers = Servers(ROOT, tmp_path)
    servers.kafka.port, servers.keycloak.port = 10001, 10002
    assert servers.env() == {
        KAFKA_VARIABLE: "127.0.0.1:10001",
        KEYCLOAK_VARIABLE: "http://127.0.0.1:10002",
    }
    assert servers.keycloak.concurrent_logins  # the lanes log the same test users in at once
    for lane in LANES:  # a lane's own variables never hide the shared servers
        assert not {KAFKA_VARIABLE, KEYCLOAK_VARIABLE} & set(lane.env), lane.title


def test_the_glob_of_top_level_modules_is_expanded():
    lane = Lane("t", ("--durations=1", "tests/test_*.py", "tests/unit"))
    args = expand(ROOT, lane.args)
    assert args[0] == "--durations=1" and args[-1] == "tests/unit"
    assert "tests/test_e2e_halves.py" in args and not any("*" in a for a in args)


def test_each_lane_is_timed_to_its_own_end(monkeypatch, tmp_path):
    """A quick lane listed after a slow one is reported with its own time, not the slow
    one's (every lane used to show the time of the slowest before it)."""
    import devstack.lanes as lanes

    monkeypatch.setattr(lanes, "PYTEST", ("-c", "import sys, time; time.sleep(float(sys.argv[1]))"))
    monkeypatch.setattr(
        lanes, "LANES", (Lane("slow", ("5",)), Lane("quick", ("0",), log="quick.log"))
    )

    class NoServers:
        def env(self) -> dict[str, str]:
            return {}

    (slow, slow_status, slow_s), (quick, quick_status, quick_s) = lanes.run_lanes(
        tmp_path,
        NoServers(),  # type: ignore[arg-type]
    )
    assert (slow.title, slow_status, quick.title, quick_status) == ("slow", 0, "quick", 0)
    assert slow_s >= 5 and quick_s < slow_s - 2
