"""Each world's moto server is its own. xdist workers start servers at the same time; CI once saw a world reach
another world's server (a port probed free and released, then bound by the other worker's server), where the file
system token "restore-target" already existed. MotoServer now hands its server a socket it bound and never let go."""

from __future__ import annotations

import socket

import pytest

from moto_world import MotoServer


@pytest.fixture
def two_servers(tmp_path):
    servers = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(MotoServer(tmp_path / name))
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_servers_started_together_each_serve_their_own_state_on_a_port_they_hold(two_servers):
    a, b = two_servers
    assert a.port != b.port
    a.client("efs").create_file_system(CreationToken="only-in-a")
    assert [fs["CreationToken"] for fs in a.client("efs").describe_file_systems()["FileSystems"]] == ["only-in-a"]
    assert b.client("efs").describe_file_systems()["FileSystems"] == []
    for server in two_servers:  # its own process answered, and holds the port: nothing else can bind it meanwhile
        assert server.proc.poll() is None
        with socket.socket() as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", server.port))
