"""Runs aws_cli_shim.py calls without paying Python's and boto3's start-up on every call (most of the moto
end-to-end tests' CPU: a worker makes a dozen calls, each an interpreter that imports boto3 and loads the service
models, about 0.25 s of CPU).

A fork server: ``python3 aws_cli_server.py ADDRESS`` imports the shim (boto3) and loads the models once, then serves
on a Unix socket (ADDRESS in the abstract namespace). The workers' ``aws`` is the client below (``python3 -I -S
aws_cli_server.py --client ADDRESS ARG...``: the standard library only); ``ShimServer`` starts and stops a server. The client sends its arguments, environment and working directory and
passes its stdin, stdout and stderr (SCM_RIGHTS); the server forks a process per call that takes them over and runs
the shim's ``run(argv)``, exactly the code ``python3 aws_cli_shim.py ARG...`` runs, and sends back the exit status,
which the client exits with. So each call is still a process of its own with the caller's environment, directory,
file descriptors and exit status; what a call does to AWS is the shim's, unchanged.

Killing the client (the worker's process group is terminated, as when an instance shuts down) ends the call: the
forked process watches the connection and exits at once when the client is gone.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys

MAX_FDS = 3
HEADER = struct.Struct("!I")


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        data += chunk
    return data


# --------------------------------------------------------------------------------------------------- client


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def client(address: str, argv: list) -> int:
    standard = [fd for fd in (0, 1, 2) if _is_open(fd)]  # a closed one stays closed in the call
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "fds": standard}).encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(_socket_name(address))
    except OSError as error:
        print(f"aws shim: the shim server {address} is not running: {error}", file=sys.stderr)
        return 255
    fds = array.array("i", standard)
    conn.sendmsg([HEADER.pack(len(request))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    conn.sendall(request)
    try:
        (status,) = HEADER.unpack(_recv_exactly(conn, HEADER.size))
    except ConnectionError:
        print("aws shim: the call ended without an exit status", file=sys.stderr)
        return 255
    return status


# --------------------------------------------------------------------------------------------------- server


def _warm_loader():
    """A botocore data loader with every model a shim call needs already parsed (shared by the forked calls)."""
    import boto3

    session = boto3.Session(region_name="us-east-1", aws_access_key_id="warm", aws_secret_access_key="warm")
    for service in ("s3", "stepfunctions", "logs"):
        session.client(service, endpoint_url="http://localhost:1")
    return session._session.get_component("data_loader")


def _watch_client(conn: socket.socket) -> None:
    """In the call's process: exit at once when the client goes away (it was killed), as a killed CLI would."""
    import threading

    def watch() -> None:
        try:
            while conn.recv(1):
                pass
        except OSError:
            pass
        os._exit(143)

    threading.Thread(target=watch, daemon=True).start()


def _serve_call(conn: socket.socket, loader) -> None:
    """In the forked process: become the caller's `aws` process, run the shim, report the exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    header, ancillary, _, _ = conn.recvmsg(HEADER.size, socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize))
    header += _recv_exactly(conn, HEADER.size - len(header))
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    (size,) = HEADER.unpack(header)
    request = json.loads(_recv_exactly(conn, size))
    for target in (0, 1, 2):
        if target in request["fds"]:
            fd = fds[request["fds"].index(target)]
            os.dup2(fd, target)
            os.close(fd)
        else:
            os.close(target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _watch_client(conn)

    import boto3
    import botocore.session

    import aws_cli_shim

    # A fresh session reads this call's environment (endpoint, credentials, region); only the parsed models are
    # shared.
    session = botocore.session.Session()
    session.register_component("data_loader", loader)
    boto3.setup_default_session(botocore_session=session)
    status = aws_cli_shim.run(request["argv"])
    sys.stdout.flush()
    sys.stderr.flush()
    conn.sendall(HEADER.pack(status))
    os._exit(0)


def serve(address: str) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import aws_cli_shim  # noqa: F401  (imported once here: boto3 and the shim, shared by every forked call)

    loader = _warm_loader()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # calls report over their connection; the kernel reaps them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(_socket_name(address))
    listener.listen(64)
    print("ready", flush=True)  # to the starter's pipe, then nothing more on stdout
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    while True:
        conn, _ = listener.accept()
        sys.stderr.flush()
        if os.fork() == 0:
            listener.close()
            try:
                _serve_call(conn, loader)
            except BaseException as error:  # noqa: BLE001 (reported, never back into the server loop)
                print(f"aws shim server: {type(error).__name__}: {error}", file=sys.stderr)
            finally:
                os._exit(255)
        conn.close()


def _socket_name(address: str) -> str:
    """An address in Linux's abstract socket namespace: no file to clean up, no limit from a long directory."""
    return "\0" + address


class ShimServer:
    """The server of one worker fleet, in a process of its own; ``aws_command`` is the `aws` its workers run."""

    def __init__(self, log_path) -> None:
        import subprocess
        import uuid

        address = f"efs-backup-aws-shim-{os.getpid()}-{uuid.uuid4().hex}"
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), address], stdout=subprocess.PIPE,
                                     stderr=self.log)
        if self.proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError(f"the aws shim server did not start; see {log_path}")
        self.proc.stdout.close()
        self.aws_command = f'exec "{sys.executable}" -I -S "{os.path.abspath(__file__)}" --client {address} "$@"'

    def stop(self) -> None:
        stop_server(self.proc, self.log)


def stop_server(proc, log) -> None:
    """Stop a test's helper server (this one, moto's): terminate, kill after 10 s, reap it, close its log."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


if __name__ == "__main__":
    if sys.argv[1] == "--client":
        sys.exit(client(sys.argv[2], sys.argv[3:]))
    serve(sys.argv[1])
