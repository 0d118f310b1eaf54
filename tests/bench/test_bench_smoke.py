"""Smoke tests of the benchmark in bench/: fast unit checks plus one small end-to-end run (--files 2000)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import syscount  # bench/ (pytest.ini pythonpath)
import treegen
from benchkit import balance

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")

ENGINE = os.path.join(REPO, "assets", "scripts", "efs-backup-engine")


def _strace_works():
    if not os.path.exists(syscount.STRACE):
        return False
    r = subprocess.run([syscount.STRACE, "-f", "-qq", "-o", os.devnull, "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


needs_tools = pytest.mark.skipif(
    not (shutil.which("rsync") and _strace_works()),
    reason="needs rsync and a working strace (ptrace allowed)")


# --------------------------------------------------------------------------- units

def test_generator_is_deterministic_and_mutator_too(tmp_path):
    lists = []
    for name in ("a", "b"):
        root = str(tmp_path / name)
        info = treegen.generate(root, 400, seed=7)
        stats = treegen.mutate(root, 0.05, seed=7, round_no=1)
        treegen.clear_hash_cache()
        lists.append(treegen.listing(root))
    assert info["files"] + info["symlinks"] == 400
    assert stats["changes"] >= 20 and stats["chmod"] >= 1 and stats["delete"] >= 1
    cmp = treegen.compare(lists[0], lists[1], ignore_root_mtime=False)
    assert cmp["ok"], cmp
    kinds = {e.type for e in lists[0].values()}
    assert {"f", "d", "l"} <= kinds
    depth = max(rel.count("/") for rel in lists[0])
    assert depth >= 3


def test_compare_sees_a_chmod_and_content(tmp_path):
    root = str(tmp_path / "t")
    treegen.generate(root, 200, seed=3)
    before = treegen.listing(root)
    rel = sorted(r for r, e in before.items() if e.type == "f")[5]
    os.chmod(os.path.join(root, rel), 0o600 if before[rel].mode != 0o600 else 0o644)
    res = treegen.compare(before, treegen.listing(root))
    assert not res["ok"] and res["counts"] == {"mode": 1}


def test_syscount_parse_counts_creates_failures_and_resumed_calls():
    lines = [
        '100  openat(AT_FDCWD, ""..., O_RDONLY|O_CLOEXEC) = 3',
        '100  openat(AT_FDCWD, ""..., O_WRONLY|O_CREAT|O_EXCL, 0600) = 4',
        '101  unlinkat(AT_FDCWD, ""..., 0 <unfinished ...>',
        '100  mkdir(""..., 0755) = -1 EEXIST (File exists)',
        '101  <... unlinkat resumed>) = -1 ENOENT (No such file or directory)',
        '101  utimensat(AT_FDCWD, ""..., [...], AT_SYMLINK_NOFOLLOW) = 0',
        '101  +++ exited with 0 +++',
        '100  renameat2(AT_FDCWD, ""..., AT_FDCWD, ""..., RENAME_NOREPLACE) = 0',
    ]
    c = syscount.parse(lines)
    assert c["calls"] == {"mkdir": 1, "open(O_CREAT)": 1, "renameat2": 1, "unlinkat": 1, "utimensat": 1}
    assert c["ns"] == 4 and c["attr"] == 1 and c["total"] == 5
    assert c["errors"] == {"mkdir": 1, "unlinkat": 1} and c["failed"] == 2


def test_old_split_is_line_number_mod_n():
    E = treegen.Entry
    lst = {".": E("d", 0o755, 0, 0, 0, 0, "", ""),
           "a": E("d", 0o755, 0, 0, 0, 0, "", ""),
           "a/x": E("f", 0o644, 0, 0, 10, 0, "", "h"),
           "a/y": E("f", 0o644, 0, 0, 10, 0, "", "h"),
           "b": E("f", 0o644, 0, 0, 5, 0, "", "h"),
           "c": E("d", 0o755, 0, 0, 0, 0, "", ""),
           "c/z": E("f", 0o644, 0, 0, 1, 0, "", "h")}
    assert balance.old_split(lst, 2) == [[3, 21], [1, 5]]      # a and c on worker 0, b on worker 1
    assert balance.max_over_ideal([3, 1]) == 1.5
    assert balance.max_over_ideal([4], 4) == 4.0


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_bench_shell_scripts_are_shellcheck_clean():
    subprocess.run(["shellcheck", os.path.join(BENCH, "old_rotate_sync.sh")], check=True)


@needs_tools
def test_old_rotate_sync_shares_inodes_and_rotates(tmp_path):
    src, dest = str(tmp_path / "src"), str(tmp_path / "old")
    treegen.generate(src, 150, seed=5)
    script = os.path.join(BENCH, "old_rotate_sync.sh")
    for rnd in range(4):
        if rnd:
            treegen.mutate(src, 0.1, seed=5, round_no=rnd)
        subprocess.run(["bash", script, "--source", src, "--dest", dest, "--retain", "3"], check=True)
    assert sorted(os.listdir(dest)) == ["daily.0", "daily.1", "daily.2"]
    rel = next(r for r, e in sorted(treegen.listing(src).items()) if e.type == "f")
    a, b = (os.lstat(os.path.join(dest, d, rel)) for d in ("daily.0", "daily.1"))
    assert a.st_ino == b.st_ino   # cp -al: unchanged files share one inode across snapshots


# --------------------------------------------------------------------------- end to end

@needs_tools
@pytest.mark.skipif(not os.path.exists(ENGINE), reason="engine not built yet")
def test_small_benchmark_end_to_end(tmp_path):
    results = tmp_path / "results"
    cmd = [sys.executable, os.path.join(BENCH, "run_bench.py"), "--files", "2000", "--rounds", "2",
           "--workdir", str(tmp_path / "work"), "--results", str(results)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (results / "latest.md").read_text()
    assert md == proc.stdout
    for label in ("(a) efs-backup engine", "(b) old rotate+sync", "(c) rsync mirror (floor)"):
        assert "| %s |" % label in md
    res = json.loads((results / "latest.json").read_text())
    C = res["contenders"]
    assert set(C) == {"a", "b", "c"}
    for key in "abc":
        assert C[key]["writes_mean"] > 0
        assert C[key]["wall_median"] > 0
    files = res["tree_files_mean"]
    # the old algorithm links every file (cp -al) and unlinks every file of the expired snapshot
    assert C["b"]["writes_mean"] > 1.5 * files
    # the floor: a handful of writes per changed file
    assert 2 <= C["c"]["writes_mean"] / res["changes_mean"] <= 12
    verify = {(v["key"], v["snapshot"]): v for v in res["verify"]}
    for k in range(3):
        assert verify[("a", "daily.%d" % k)]["ok"], verify[("a", "daily.%d" % k)]
    assert verify[("c", "mirror")]["ok"]
    assert verify[("b", "daily.0")]["ok"]
    # cp -al shares inodes: today's chmod/chown shows up in older snapshots -- and only metadata is wrong
    older = [verify[("b", "daily.%d" % k)] for k in (1, 2)]
    assert not all(v["ok"] for v in older)
    for v in older:
        assert set(v["counts"]) <= {"mode", "owner"}, v
    bal = res["balance"]
    assert bal["old"]["files_ratio"] > 2          # the big directory lands on one worker
    assert bal["engine"] and bal["engine"][0]["workers"]
    assert os.path.isdir(tmp_path / "work") is False   # scratch removed without --keep
