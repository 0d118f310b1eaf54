#!/usr/bin/env bash
# Acceptance test in a real account: tests/integ/integ.backup_restore.py (see its header and docs/deploy.md,
# "Acceptance test in your account"). Deploys the test's stacks into the account and region of your credentials
# with the pinned CDK CLI; the assertions (two backups, a dry-run and a real restore, a comparison of the restored
# tree) run during the deploy and fail it if any does not hold. Whatever happens, every stack is destroyed again.
#
# Usage: AWS_REGION=eu-west-1 tools/acceptance-test.sh      (credentials as for any cdk deploy)
# Exit status: 0 when every assertion held and everything was destroyed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

app=".venv/bin/python tests/integ/integ.backup_restore.py"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

npx cdk bootstrap --app "$app" --output "$out"
status=0
npx cdk deploy --app "$app" --output "$out" --all --require-approval never || status=$?
if [[ "$status" -ne 0 ]]; then
  echo "acceptance test FAILED (deploy exit $status): see the failed stack's events; tearing down" >&2
fi
if ! npx cdk destroy --app "$app" --output "$out" --all --force; then
  echo "teardown failed: delete the stacks EfsBackupAcceptance* by hand (CloudFormation console)" >&2
  exit 1
fi
exit "$status"
