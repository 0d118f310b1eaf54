"""moto_server with EC2 launch faults injected: the emulator has no capacity, AWS does (a seam on the emulator only).

Run instead of ``python -m moto.server`` (same arguments). ``MOTO_FAULTS_FILE`` names a JSON file, read on every
RunInstances, holding a list of rules ``{"subnet_id"?, "instance_type"?, "code", "message", "times"}``: the first
rule that matches the request (absent fields match anything) and has ``times`` left (-1: always) makes RunInstances
fail with that EC2 error code and message, as EC2 answers (e.g. InsufficientInstanceCapacity, HTTP 500), and
creates nothing; its ``times`` is counted down in the file. Every RunInstances is appended to ``<file>.calls`` as
a JSON line ``{"subnet_id", "instance_type", "failed"}``.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import InstanceBackend
from moto.server import main

FAULTS_FILE = os.environ["MOTO_FAULTS_FILE"]
_lock = threading.Lock()
_original = InstanceBackend.run_instances


class LaunchFault(EC2ClientError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def _inject(self, image_id, count, user_data, security_group_names, **kwargs):
    subnet = next((nic.get("SubnetId") for nic in kwargs.get("nics") or [] if nic.get("SubnetId")),
                  kwargs.get("subnet_id"))
    request = {"subnet_id": subnet, "instance_type": kwargs.get("instance_type")}
    with _lock:
        try:
            with open(FAULTS_FILE) as handle:
                rules = json.load(handle)
        except FileNotFoundError:
            rules = []
        fault = None
        for rule in rules:
            if rule.get("times", 0) != 0 and all(rule[k] == v for k, v in request.items() if k in rule):
                fault = rule
                if rule["times"] > 0:
                    rule["times"] -= 1
                break
        with open(FAULTS_FILE, "w") as handle:
            json.dump(rules, handle)
        with open(FAULTS_FILE + ".calls", "a") as handle:
            handle.write(json.dumps(dict(request, failed=fault["code"] if fault else None)) + "\n")
    if fault:
        raise LaunchFault(fault["code"], fault["message"])
    return _original(self, image_id, count, user_data, security_group_names, **kwargs)


InstanceBackend.run_instances = _inject

if __name__ == "__main__":
    main(sys.argv[1:])
