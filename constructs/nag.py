"""cdk-nag helpers shared by the constructs that acknowledge findings on their own resources.

cdk-nag 3 reports through CDK policy validation (``Validations.of(app).add_plugins(AwsSolutionsChecks(app))`` in
app.py); a construct acknowledges a finding on itself with ``Validations.of(construct).acknowledge(Acknowledgment(
id=f"{NAG_PACK}AwsSolutions-<rule>[<finding>]", reason=...))``. ``nag_resource`` renders an ARN the way a finding id
names it, so an acknowledgment names exactly one resource pattern rather than a whole rule.
"""

from __future__ import annotations

from aws_cdk import Stack

# Acknowledgment ids name the plugin, then the rule (finding), as `cdk synth` prints them.
NAG_PACK = "AwsSolutions::"


def nag_resource(stack: Stack, value: str) -> str:
    """Render a (possibly tokenized) ARN the way cdk-nag names it in a finding id, e.g. ``<BucketAB12.Arn>/*``."""

    def render(part) -> str:
        if isinstance(part, str):
            return part
        if isinstance(part, dict) and len(part) == 1:
            (intrinsic, argument), = part.items()
            if intrinsic == "Ref":
                return f"<{argument}>"
            if intrinsic == "Fn::GetAtt":
                return f"<{argument[0]}.{argument[1]}>"
            if intrinsic == "Fn::Join":
                separator, parts = argument
                return separator.join(render(p) for p in parts)
        raise ValueError(f"cannot render {part!r} as a cdk-nag finding")

    return render(stack.resolve(value))
