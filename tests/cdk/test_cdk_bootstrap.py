"""The README's bootstrap command, run with the pinned CDK CLI against a local moto server (issue 11, item 10c).

`cdk bootstrap` synthesizes the app whenever cdk.json names one (to glob the stacks' environments), so the bare
`aws://ACCOUNT/REGION` form fails in this repository; `npx cdk bootstrap -c env=NAME` bootstraps the account and
region of that environment's stack. moto stands in for the account (it deploys the CDKToolkit stack: its bucket,
roles and the version parameter the deploy checks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import boto3
import pytest
import requests

from cdk_helpers import REPO_ROOT
from test_cdk_cli import CDK_BIN

ACCOUNT = "111111111111"  # the "example" environment's account
REGION = "us-east-1"


def readme_bootstrap_command():
    docs = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "deploy.md"]  # the brief and the full deploy guide
    (command,) = {c for doc in docs for c in re.findall(r"^npx cdk bootstrap .*$", doc.read_text(), re.MULTILINE)}
    return command.split()


@pytest.fixture
def moto_account(tmp_path):
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "moto.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                            env=dict(os.environ, MOTO_ACCOUNT_ID=ACCOUNT), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"  # the CDK CLI needs "localhost", not 127.0.0.1
    deadline = time.time() + 30
    while True:
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            break
        except requests.RequestException:
            assert time.time() < deadline and proc.poll() is None, "moto server did not start"
            time.sleep(0.2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # A fresh access key id: the CLI caches the account per key id (~/.cdk/cache/accounts_partitions.json).
    env.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "AKID" + uuid.uuid4().hex[:16].upper(),
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
                "CDK_DISABLE_VERSION_CHECK": "1"})
    try:
        yield url, env
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def cdk(args, env, outdir):
    if not CDK_BIN.exists():
        pytest.fail("the pinned CDK CLI is not installed: run tools/setup.sh (npm ci)")
    return subprocess.run([*args, "--no-notices", "--output", str(outdir)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_readme_bootstrap_command_bootstraps_the_environments_account(moto_account, tmp_path):
    url, env = moto_account
    command = readme_bootstrap_command()
    assert command[:3] == ["npx", "cdk", "bootstrap"] and any(a.startswith("env=") for a in command)
    # The README names the production environment; run the same command for the example one (moto's account).
    command = [("env=example" if a.startswith("env=") else a) for a in command]

    bare = cdk(["npx", "cdk", "bootstrap", f"aws://{ACCOUNT}/{REGION}"], env, tmp_path / "bare")
    assert bare.returncode != 0
    assert "no environment selected" in bare.stderr and "npx cdk bootstrap -c env=<name>" in bare.stderr

    result = cdk(command, env, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Environment aws://{ACCOUNT}/{REGION} bootstrapped" in result.stdout + result.stderr
    kwargs = dict(region_name=REGION, endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing")
    stack = boto3.client("cloudformation", **kwargs).describe_stacks(StackName="CDKToolkit")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    version = boto3.client("ssm", **kwargs).get_parameter(Name="/cdk-bootstrap/hnb659fds/version")["Parameter"]
    assert int(version["Value"]) >= 6  # what `cdk deploy` of assets requires
    buckets = [b["Name"] for b in boto3.client("s3", **kwargs).list_buckets()["Buckets"]]
    assert f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}" in buckets
