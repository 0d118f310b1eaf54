import sys

from efs_backup_engine.cli import main

sys.exit(main())
