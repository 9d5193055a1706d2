"""A stack's ports are chosen together, so no two of its services are given the same one."""

from devstack.ports import free_ports
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
