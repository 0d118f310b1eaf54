"""The workers' `aws` in the moto end-to-end tests runs the shim forked from a server (aws_cli_server.py): a call
through it must be what running ``python3 aws_cli_shim.py ARG...`` is (output, errors, exit status, the caller's
directory and environment), and killing the caller must end the call, as killing the CLI does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aws_cli_server import ShimServer
from moto_world import MotoServer

SHIM = Path(__file__).resolve().parent / "aws_cli_shim.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shim-server")
    shim = ShimServer(workdir / "server.log")
    aws = workdir / "aws"
    aws.write_text(f"#!/bin/sh\n{shim.aws_command}\n")
    aws.chmod(0o755)
    yield aws
    shim.stop()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("shim-moto"))
    yield server
    server.stop()


GET = ["s3api", "get-object", "--region", "us-east-1", "--bucket", "shim-bucket"]


@pytest.mark.parametrize("argv, status", [
    ([*GET, "--key", "task.json", "out.json"], 0),
    ([*GET, "--key", "missing", "out.json"], 255),  # the service's error, printed
    (["stepfunctions", "send-task-heartbeat", "--region", "us-east-1"], 255),  # no token: the shim's KeyError
    (["ec2", "describe-instances"], 1),  # unsupported: the shim's SystemExit message
])
def test_a_call_through_the_server_is_the_shim_run_in_the_callers_directory_and_environment(server, moto, tmp_path,
                                                                                            argv, status):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="shim-bucket")
    s3.put_object(Bucket="shim-bucket", Key="task.json", Body=b'{"role": "work"}')
    results = {}
    for way, command in (("server", [str(server)]), ("direct", [sys.executable, str(SHIM)])):
        cwd = tmp_path / way
        cwd.mkdir()
        env = dict(os.environ, **moto.env, AWS_SHIM_CALL_LOG="calls.jsonl")  # relative: in the caller's directory
        proc = subprocess.run([*command, *argv], cwd=cwd, env=env, capture_output=True, timeout=60)
        out = cwd / "out.json"
        results[way] = (proc.returncode, proc.stdout, proc.stderr, out.read_bytes() if out.exists() else None,
                        [json.loads(line)["call"] for line in (cwd / "calls.jsonl").read_text().splitlines()])
    assert results["server"] == results["direct"]
    code, stdout, stderr, written, calls = results["server"]
    assert code == status and calls == [" ".join(argv[:2])]
    if status == 0:
        assert written == b'{"role": "work"}' and json.loads(stdout)["ContentLength"] == 16 and stderr == b""
    else:
        assert stderr.startswith(b"aws shim: ") and written is None and stdout == b""


def test_killing_the_caller_ends_its_call(server, tmp_path):
    """An endpoint that accepts and never answers: the call hangs in it until its caller is killed (the worker's
    process group terminated), then its connection closes at once."""
    endpoint = socket.socket()
    endpoint.bind(("127.0.0.1", 0))
    endpoint.listen(1)
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://localhost:{endpoint.getsockname()[1]}",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    caller = subprocess.Popen([str(server), "stepfunctions", "send-task-heartbeat", "--task-token", "t"], env=env,
                              cwd=tmp_path, stderr=subprocess.PIPE, start_new_session=True)
    endpoint.settimeout(30)
    connection, _ = endpoint.accept()
    connection.settimeout(5)
    time.sleep(0.5)
    assert caller.poll() is None, "the call waits for the endpoint"
    os.killpg(caller.pid, 15)
    assert caller.wait(5) == -15
    started = time.monotonic()
    while connection.recv(65536):  # the request, then the end of the connection
        pass
    assert time.monotonic() - started < 5
    connection.close()
    endpoint.close()


def test_a_caller_with_stdin_closed_is_served_like_one_with_it_open(server, moto, tmp_path):
    """A closed descriptor is not passed (it cannot be): the call runs with it closed too, as the shim would."""
    env = dict(os.environ, **moto.env)
    argv = [*GET, "--key", "task.json", "out.json"]
    moto.client("s3").create_bucket(Bucket="shim-bucket")
    moto.client("s3").put_object(Bucket="shim-bucket", Key="task.json", Body=b"{}")
    proc = subprocess.run(["sh", "-c", 'exec 0<&-; exec "$@"', "sh", str(server), *argv], cwd=tmp_path, env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.json").read_bytes() == b"{}" and json.loads(proc.stdout)["ContentLength"] == 2
