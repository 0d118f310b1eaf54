#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c env=<name> [-c key=value ...]``.

The configuration is parsed (and fully validated) once, before any construct is built; cdk-nag's AWS Solutions
checks run as a policy-validation plugin, so synth fails on any finding that is not acknowledged in the code.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Optional

# jsii prints an end-of-life banner for Node 20 on every run; the CLI pin and this app are tested on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# The contract (efs_backup_contract) ships to the workers inside assets/scripts/; the app reads the same files, so a
# synth needs nothing installed beyond requirements.txt.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "scripts"))

import aws_cdk as cdk  # noqa: E402  (after the environment tweak above)
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from settings.load import load_config  # noqa: E402
from settings.model import ConfigError, EfsBackupConfig  # noqa: E402
from stacks.efs_backup_stack import EfsBackupStack  # noqa: E402


def config_from_node_context(node: Any) -> EfsBackupConfig:
    """Read every context value visible at a construct node (the App: cdk.json plus ``-c`` values) and parse it."""
    return load_config(dict(node.get_all_context()))


def build_app(context: Optional[Mapping[str, Any]] = None, outdir: Optional[str] = None) -> cdk.App:
    """Build the app. Tests pass the context ``npx cdk synth`` would (cdk.json plus ``-c`` values)."""
    app = cdk.App(context=dict(context) if context is not None else None, outdir=outdir)
    config: EfsBackupConfig = config_from_node_context(app.node)
    EfsBackupStack(app, config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> int:
    try:
        app = build_app()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
