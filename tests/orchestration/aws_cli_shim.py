"""A stand-in for the AWS CLI in the moto end-to-end tests, covering exactly the calls the worker makes.

The real AWS CLI is not a test dependency (CI machines may not have it). The worker simulator puts a tiny ``aws``
first on the PATH of the worker processes it starts, and nowhere else: a client of aws_cli_server.py, which runs
each call as a process forked from a server that has imported this file (``run``, what ``python3 aws_cli_shim.py
ARG...`` runs too). Each call is made with boto3 against moto (``AWS_ENDPOINT_URL``), with the CLI's argument names,
so worker.sh and the user data run unchanged. Supported: ``s3 cp --recursive s3://B/P DIR``, ``s3api get-object|delete-object``, ``stepfunctions send-task-success|send-task-failure|
send-task-heartbeat``, ``logs create-log-stream|put-log-events`` (``file://`` values). Anything else fails loudly.
With ``AWS_SHIM_CALL_LOG`` set (the simulator sets it per instance), every call is appended there as a JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict, List, Tuple

import boto3

TASK_OUTPUT_LIMIT = 256 * 1024


def parse(argv: List[str]) -> Tuple[List[str], Dict[str, object]]:
    positional, options = [], {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("--"):
            name = arg[2:]
            if index + 1 < len(argv) and not argv[index + 1].startswith("--"):
                value = argv[index + 1]
                if value.startswith("file://"):
                    with open(value[len("file://"):]) as handle:
                        value = json.load(handle)
                options[name] = value
                index += 2
                continue
            options[name] = True
        else:
            positional.append(arg)
        index += 1
    return positional, options


def client(service: str, options: Dict[str, object]):
    return boto3.client(service, region_name=str(options.get("region") or os.environ.get("AWS_DEFAULT_REGION")))


def record(positional: List[str], options: Dict[str, object]) -> None:
    """With AWS_SHIM_CALL_LOG set, append one JSON line per call (time, command, log stream), for ordering checks."""
    path = os.environ.get("AWS_SHIM_CALL_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"time": time.time(), "call": " ".join(positional[:2]),
                                     "stream": options.get("log-stream-name")}) + "\n")


def main(argv: List[str]) -> int:
    positional, options = parse(argv)
    record(positional, options)
    service, command = positional[0], positional[1]
    if (service, command) == ("s3", "cp") and options.get("recursive"):
        source, destination = positional[2], positional[3]
        bucket, _, prefix = source[len("s3://"):].partition("/")
        s3 = client("s3", options)
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                target = os.path.join(destination, item["Key"][len(prefix):].lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # One GET per object (boto3's download_file adds a HEAD and a transfer thread pool per file: a
                # third of the moto requests of the end-to-end tests, for the 40 files each simulated boot fetches).
                with open(target, "wb") as handle:
                    handle.write(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                count += 1
        if not count:
            print(f"fatal: nothing under {source}", file=sys.stderr)
            return 1
        return 0
    if service == "s3api" and command == "get-object":
        s3 = client("s3", options)
        response = s3.get_object(Bucket=options["bucket"], Key=options["key"])
        with open(positional[2], "wb") as handle:
            handle.write(response["Body"].read())
        print(json.dumps({k: response[k] for k in ("VersionId", "ContentLength", "ETag") if k in response}))
        return 0
    if service == "s3api" and command == "delete-object":
        s3 = client("s3", options)
        extra = {"VersionId": options["version-id"]} if "version-id" in options else {}
        print(json.dumps({k: v for k, v in s3.delete_object(Bucket=options["bucket"], Key=options["key"],
                                                            **extra).items() if k != "ResponseMetadata"}))
        return 0
    if service == "stepfunctions":
        sfn = client("stepfunctions", options)
        token = options["task-token"]
        if command == "send-task-success":
            # AWS refuses task output over 256 KiB; moto does not check it, the shim does (quota: "Maximum input or
            # output size for a task, state, or execution", https://docs.aws.amazon.com/step-functions/latest/dg/
            # service-quotas.html).
            if len(options["task-output"].encode("utf-8")) > TASK_OUTPUT_LIMIT:
                raise SystemExit("aws shim: send-task-success: the task output exceeds the 256 KiB quota")
            sfn.send_task_success(taskToken=token, output=options["task-output"])
        elif command == "send-task-failure":
            sfn.send_task_failure(taskToken=token, error=options.get("error", ""), cause=options.get("cause", ""))
        elif command == "send-task-heartbeat":
            sfn.send_task_heartbeat(taskToken=token)
        else:
            raise SystemExit(f"aws shim: unsupported stepfunctions {command}")
        return 0
    if service == "logs":
        logs = client("logs", options)
        group, stream = options["log-group-name"], options["log-stream-name"]
        if command == "create-log-stream":
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        elif command == "put-log-events":
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=options["log-events"])
        else:
            raise SystemExit(f"aws shim: unsupported logs {command}")
        return 0
    raise SystemExit(f"aws shim: unsupported command {' '.join(positional[:2])}")


def run(argv: List[str]) -> int:
    """One call, as a process running this file would end it: its exit status (a SystemExit message is printed to
    stderr and exits 1, like Python's; any other error is printed and exits 255, like the CLI's)."""
    try:
        return main(argv)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except Exception as error:  # the CLI prints the error and exits 254/255
        print(f"aws shim: {type(error).__name__}: {error}", file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
