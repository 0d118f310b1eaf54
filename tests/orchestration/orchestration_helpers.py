"""Helpers for the orchestration tests (a uniquely named module: each tests/ folder has its own helpers)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = REPO_ROOT / "node_modules" / ".bin" / "asl-validator"


def state_machine_resource(template: Mapping[str, Any], kind: str = "backup") -> Dict[str, Any]:
    """The state machine named ``<stack>-<kind>`` (backup or restore)."""
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
                  and r["Properties"].get("StateMachineName", "").endswith(f"-{kind}")]
    return machine


def resolve_intrinsic(value: Any, resolve: Callable[[Any], str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (name, argument), = value.items()
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(resolve_intrinsic(part, resolve) for part in parts)
        return resolve(value)
    raise ValueError(f"cannot resolve {value!r}")


def placeholder(value: Mapping[str, Any]) -> str:
    """Tokens → readable placeholders; pseudo parameters → plausible values (as asl-validator needs ARNs)."""
    (name, argument), = value.items()
    if name == "Ref":
        return {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "111111111111",
                "AWS::URLSuffix": "amazonaws.com"}.get(argument, f"REF-{argument}")
    if name == "Fn::GetAtt":
        return f"GETATT-{argument[0]}-{argument[1]}"
    raise ValueError(f"unexpected intrinsic {name}")


def definition_of(template: Mapping[str, Any], resolve: Optional[Callable[[Any], str]] = None,
                  kind: str = "backup") -> Dict[str, Any]:
    """A state machine's ASL: DefinitionString joined, tokens replaced (placeholders, or ``resolve``)."""
    text = resolve_intrinsic(state_machine_resource(template, kind)["Properties"]["DefinitionString"],
                             resolve or placeholder)
    return json.loads(text)


def validate_asl(definition: Mapping[str, Any], tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "definition.asl.json"
    path.write_text(json.dumps(definition))
    return subprocess.run([str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True,
                          timeout=120)
