"""The benchmarks' shared pieces (bench/run_bench.py and bench/latency_bench.py), one responsibility per module:

    progress       progress messages on stderr
    workdir        the scratch directory: refused unless it is a bench workdir, wiped, removed
    engine_source  which engine runs: the repository's commit, or an engine exported from a revision
    machine        what a run ran on: machine, tools, the bench dir's file system, the commit
    contenders     the backup methods of run_bench (engine, old rotate+sync, rsync mirror) and the engine's output
    measure        one contender's run, timed or under strace, and the CPU the rest of the machine used meanwhile
    rounds         run_bench's rounds: mutate the source, list it, run every contender in rotating order
    verify         every snapshot against the source listing of its round
    balance        the skewed tree: the engine's per-worker figures and the old mod-N split
    targets        run_bench's targets (write and wall ratios, correctness, balance)
    report         run_bench's markdown table
    results        the one writer of results (<name>.md, printed too, and <name>.json) and the number formats

The scripts run by path (``python3 bench/run_bench.py``), so bench/ is on sys.path and this package imports as
``benchkit``, next to treegen, syscount and latency.  Python 3.9+, stdlib only.
"""

import os

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH_DIR)
DEFAULT_ENGINE = os.path.join(REPO, "assets", "scripts", "efs-backup-engine")
DEFAULT_RESULTS = os.path.join(BENCH_DIR, "results")
