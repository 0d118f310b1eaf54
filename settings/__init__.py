"""efs-backup's settings: CDK context in, one frozen, validated configuration out.

A leaf of the app: it imports the standard library and the contract (efs_backup_contract) only -- never aws_cdk,
stacks/ or constructs/ -- so the CDK app, the tests and tools can all read it.

- ``model``: the typed, frozen settings, the limits and choices they obey, ``ConfigError``;
- ``parsers``: the generic value parsers (strings, numbers, booleans, choices, the one list parser);
- ``identifiers``, ``network``, ``storage``, ``workers``, ``runs``: the parsers of each concern's keys;
- ``keys``: the key catalogue ``KEYS`` (the configuration reference is generated from it);
- ``checks``: the rules between keys;
- ``load``: ``load_config(context)``, the only reader of CDK context.
"""
