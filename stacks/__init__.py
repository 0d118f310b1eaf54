"""The efs-backup CloudFormation stacks and their typed configuration."""
