"""A stack's ports are chosen together, so no two of its services are given the same one."""

import pytest

from devstack.ports import RANGE_VARIABLE, free_port, free_ports
from devstack.stack import Ports


def test_free_ports_are_distinct_within_one_call():
    ports = free_ports(60)
    assert len(set(ports)) == 60 and all(1024 < p < 65536 for p in ports)


def test_a_free_stack_gives_each_process_its_own_port():
    p = Ports.free()
    every = [
        p.intake,
        p.assignment,
        p.notification,
        p.web,
        *p.adapters.values(),
        *p.simulators.values(),
        p.smtp,
        p.smtp_http,
        p.providers,
        p.inbound_smtp,
    ]
    assert len(set(every)) == len(every)


def test_ports_come_from_below_the_ephemeral_range_or_the_range_asked(monkeypatch):
    monkeypatch.delenv(RANGE_VARIABLE, raising=False)
    assert all(20000 <= p <= 32767 for p in free_ports(30))
    # Below every range `make test` gives its runs, so nothing else draws from it.
    monkeypatch.setenv(RANGE_VARIABLE, "11000-11039")
    ports = free_ports(30)
    assert len(set(ports)) == 30 and all(11000 <= p <= 11039 for p in ports)
    assert 11000 <= free_port() <= 11039


def test_a_wrong_range_is_refused(monkeypatch):
    for wrong in ("20000", "30000-20000", "80-90", "a-b"):
        monkeypatch.setenv(RANGE_VARIABLE, wrong)
        with pytest.raises(ValueError, match=RANGE_VARIABLE):
            free_ports(1)
