"""``python -m efs_backup_cli``: the same as the ``efs-backup`` console script."""

import sys

from efs_backup_cli.main import main

sys.exit(main())
