"""The benchmark's latency model (bench/latency_shim.c, bench/latency.py) and its benchmark (bench/latency_bench.py).

The shim's counts are validated against strace for the same run: strace -f -y sees every system call of every
process with its file descriptors decoded to paths, and bench/latency.py classifies them by prefix on its own
(independently of the shim's path tracking).  Tolerance: per kind, within 1% or 2 calls, whichever is larger.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import latency  # bench/ (pytest.ini pythonpath)
import latency_bench
import treegen

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")

ENGINE = os.path.join(REPO, "assets", "scripts", "efs-backup-engine")


def _strace_works():
    if not shutil.which("strace"):
        return False
    return subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


needs_cc = pytest.mark.skipif(not latency.compiler(), reason="needs a C compiler (tools/setup.sh installs gcc)")
needs_strace = pytest.mark.skipif(not (_strace_works() and shutil.which("rsync")),
                                  reason="needs rsync and a working strace (ptrace allowed)")


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return latency.build(str(tmp_path_factory.mktemp("shim")))


def _both(shim, tmp_path, prefixes, cmd, latency_us=0, cwd=None):
    """Run cmd once, under the shim AND strace; returns (shim counts, strace counts, process)."""
    counts = tmp_path / ("counts-%d" % len(list(tmp_path.iterdir())))
    counts.mkdir()
    trace = str(counts) + ".strace"
    env = latency.shim_env(shim, prefixes, latency_us, str(counts))
    proc = subprocess.run(latency.strace_argv(trace) + cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode in (0, 2), proc.stderr[-3000:]
    with open(trace, encoding="utf-8", errors="replace") as f:
        seen = latency.strace_counts(f, prefixes, cwd or os.getcwd())
    return latency.read_counts(str(counts)), seen, proc


def _assert_match(mine, seen):
    for kind in latency.KINDS:
        a, b = mine["kinds"][kind], seen["kinds"][kind]
        assert abs(a - b) <= max(2, 0.01 * b), (kind, a, b, mine["kinds"], seen["kinds"])
    assert mine["total"] > 0


# --------------------------------------------------------------------------- units

def test_strace_classifier_resolves_fds_cwd_forks_and_unfinished_calls():
    lines = [
        '10 chdir("/data/dst") = 0',
        '10 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>',
        '11 mkdir("new", 0700) = 0',                                  # child: inherits /data/dst
        '10 <... clone resumed>) = 11',
        '10 newfstatat(AT_FDCWD</data/dst>, "a/b", {st_mode=S_IFREG|0644, ...}, AT_SYMLINK_NOFOLLOW) = 0',
        '10 fchdir(3</data/src> <unfinished ...>',
        '10 <... fchdir resumed>) = 0',
        '10 unlinkat(4</data/dst/x>, "gone", AT_REMOVEDIR) = 0',
        '10 getdents64(5</data/src/d>, 0x55 /* 3 entries */, 32768) = 80',
        '10 openat(AT_FDCWD</data/src>, "/elsewhere/f", O_RDONLY) = 6</elsewhere/f>',
        '10 symlinkat("/data/src/target", 9</tmp>, "link") = 0',       # the target is content, not a path
        '10 renameat(AT_FDCWD</data/src>, "/tmp/t", 7</data/dst>, "t") = 0',
        '10 fstat(8<pipe:[1]>, {st_mode=S_IFIFO|0600, ...}) = 0',
        '10 lstat("rel") = 0',                                           # cwd is now /data/src
    ]
    got = latency.strace_counts(lines, ["/data/src", "/data/dst"], "/")
    k = got["kinds"]
    assert (k["chdir"], k["mkdir"], k["stat"], k["rmdir"], k["getdents"]) == (2, 1, 2, 1, 1)
    assert (k["open"], k["symlink"], k["rename"]) == (0, 0, 1)
    assert got["total"] == 8


def test_strace_classifier_follows_proc_self_fd_paths_to_the_inherited_directory():
    """rsync.run_listed names rsync's sources /proc/self/fd/N/./PATH, N inherited from the engine: the link and
    a path below it are the directory fd N is (in the process, or its parent before the fork); readlink of the
    link reads procfs's link (the shim's own lookup, for one), and an fd strace never showed resolves nothing."""
    lines = [
        '10 openat(AT_FDCWD</>, "/data/src/part", O_RDONLY|O_DIRECTORY) = 3</data/src/part>',
        '10 clone(child_stack=NULL, flags=SIGCHLD) = 11',
        '10 close(3</data/src/part>) = 0',
        '11 newfstatat(AT_FDCWD</elsewhere>, "/proc/self/fd/3/./a/f", {st_mode=S_IFREG|0644, ...}, 0) = 0',
        '11 readlink("/proc/self/fd/3", "/data/src/part", 4095) = 14',
        '11 openat(AT_FDCWD</elsewhere>, "/proc/self/fd/3", O_RDONLY|O_PATH|O_DIRECTORY) = 5</data/src/part>',
        '11 openat(5</data/src/part>, "g", O_RDONLY|O_NOFOLLOW) = 6</data/src/part/g>',
        '11 newfstatat(AT_FDCWD</elsewhere>, "/proc/self/fd/9/x", 0x7f, 0) = -1 ENOENT (No such file or directory)',
    ]
    k = latency.strace_counts(lines, ["/data/src"], "/")["kinds"]
    assert (k["open"], k["stat"], k["readlink"]) == (3, 1, 0)


def test_deal_balances_top_level_directories():
    groups = latency_bench.deal({"a": 10, "b": 7, "c": 5, "d": 3, "e": 2}, 2)
    assert groups == [["a", "d"], ["b", "c", "e"]]          # loads 13 and 14
    assert latency_bench.deal({"a": 1}, 3) == [["a"], [], []]


def test_shim_env_refuses_a_count_dir_under_a_prefix(tmp_path):
    with pytest.raises(ValueError):
        latency.shim_env("/x.so", [str(tmp_path)], 1000, str(tmp_path / "counts"))


# --------------------------------------------------------------------------- the shim vs strace

@needs_cc
@needs_strace
def test_shim_counts_match_strace_for_rsync_full_and_incremental(shim, tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    treegen.generate(src, 300, seed=4)
    cmd = ["rsync", "-a", "--delete", "--numeric-ids", src + "/", dst + "/"]
    mine, seen, _ = _both(shim, tmp_path, [src, dst], cmd)
    _assert_match(mine, seen)
    assert mine["kinds"]["open"] >= 300 and mine["kinds"]["rename"] >= 290      # every file copied
    treegen.mutate(src, 0.05, seed=4, round_no=1)
    mine, seen, _ = _both(shim, tmp_path, [src, dst], cmd)
    _assert_match(mine, seen)
    assert mine["kinds"]["stat"] >= 2 * 300 and mine["kinds"]["getdents"] > 0
    assert mine["processes"] >= 2 and mine["unresolved"] == 0


@needs_cc
@needs_strace
@pytest.mark.skipif(not os.path.exists(ENGINE), reason="engine not present")
def test_shim_counts_match_strace_for_the_engine_with_workers(shim, tmp_path):
    src, root = str(tmp_path / "src"), str(tmp_path / "root")
    treegen.generate(src, 300, seed=6)
    os.makedirs(root)
    subprocess.run([sys.executable, ENGINE, "init", "--backup-root", root], check=True, stdout=subprocess.PIPE)
    cmd = [sys.executable, ENGINE, "backup", "--source", src, "--backup-root", root, "--id", "b",
           "--interval", "daily", "--retain", "3", "--workers", "2", "--json"]
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    treegen.mutate(src, 0.05, seed=6, round_no=1)
    mine, seen, _ = _both(shim, tmp_path, [src, root], cmd)
    _assert_match(mine, seen)
    assert set(mine["by_exe"]) >= {"rsync"} and mine["processes"] >= 3     # runner, 2 workers, their rsyncs
    assert mine["kinds"]["link"] > 0 and mine["kinds"]["mkdir"] > 0


SCRIPT = textwrap.dedent("""
    import os, sys
    inside, outside = sys.argv[1], sys.argv[2]
    for top in (inside, outside):
        os.chdir(top)
        os.mkdir("d")
        with open("d/f", "w") as f:
            f.write("x")
            os.fstat(f.fileno())
        os.link("d/f", "d/g")
        os.symlink("f", "d/l")
        os.readlink("d/l")
        os.rename("d/g", "d/h")
        os.chmod("d/f", 0o600)
        os.chown("d/f", os.getuid(), os.getgid())
        os.utime("d/f", ns=(1, 1))
        os.access("d/f", os.R_OK)
        os.statvfs("d")
        fd = os.open("d", os.O_RDONLY)
        os.stat("f", dir_fd=fd, follow_symlinks=False)
        os.fchmod(fd, 0o755)
        dup = os.dup(fd)
        os.stat("h", dir_fd=dup)
        with os.scandir(fd) as it:
            names = sorted(e.name for e in it)
        assert names == ["f", "h", "l"], names
        os.close(dup)
        os.close(fd)
        pid = os.fork()
        if pid == 0:
            os.unlink("d/h")
            os._exit(0)
        os.waitpid(pid, 0)
        sorted(os.listdir("d"))
        for n in ("f", "l"):
            os.unlink(os.path.join("d", n))
        os.rmdir("d")
    """)


@needs_cc
@needs_strace
def test_shim_sees_every_python_call_under_the_prefix_and_nothing_outside(shim, tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    script = tmp_path / "calls.py"
    script.write_text(SCRIPT)
    mine, seen, _ = _both(shim, tmp_path, [str(inside)], [sys.executable, str(script), str(inside), str(outside)])
    _assert_match(mine, seen)
    k = mine["kinds"]
    # each call once, inside only (the same calls outside are not counted)
    for kind in ("mkdir", "link", "symlink", "readlink", "rename", "chown", "rmdir", "chdir"):
        assert k[kind] == 1, (kind, k)
    assert k["unlink"] == 3 and k["chmod"] == 2 and k["statfs"] == 1 and k["access"] == 1
    assert k["utimes"] == 1 and k["getdents"] >= 4 and k["stat"] >= 4
    assert mine["processes"] == 2          # the forked child has its own count file


INHERITS = textwrap.dedent("""
    import os, subprocess, sys
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
    child = "import os, sys; fd = int(sys.argv[1]); [os.stat(n, dir_fd=fd, follow_symlinks=False) for n in os.listdir(fd)]"
    subprocess.run([sys.executable, "-c", child, str(fd)], pass_fds=(fd,), check=True)
""")


@needs_cc
@needs_strace
def test_shim_counts_calls_through_a_directory_fd_inherited_over_exec(shim, tmp_path):
    """The engine's source lister works through the part's directory fd, inherited from the walk: its calls are
    calls on the source like any other (strace decodes the fd; the shim looks its path up once)."""
    inside = tmp_path / "in"
    inside.mkdir()
    for index in range(5):
        (inside / ("f%d" % index)).write_text("x")
    script = tmp_path / "inherits.py"
    script.write_text(INHERITS)
    mine, seen, _ = _both(shim, tmp_path, [str(inside)], [sys.executable, str(script), str(inside)])
    _assert_match(mine, seen)
    assert mine["kinds"]["stat"] >= 5 and mine["kinds"]["getdents"] >= 1, mine["kinds"]
    assert mine["unresolved"] == 0


@needs_cc
def test_a_known_sequence_of_calls_sleeps_its_latency_without_spending_cpu(shim, tmp_path):
    n = 300
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""
        import os, sys, time, json
        path, n = sys.argv[1], int(sys.argv[2])
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            os.lstat(path)
        print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
        """))
    target = tmp_path / "remote"
    target.mkdir()
    proc, wall, cpu, counts = latency.run([sys.executable, str(probe), str(target), str(n)], shim,
                                          [str(target)], 1000)
    assert proc.returncode == 0, proc.stderr
    loop = json.loads(proc.stdout)
    assert counts["kinds"]["stat"] == n and counts["total"] == n
    assert loop["wall"] >= n * 0.001                 # >= N ms for N calls at 1 ms
    assert loop["cpu"] < 0.25 * loop["wall"]         # waiting, not working
    assert abs(counts["slept_s"] - n * 0.001) < 1e-6
    # and with the model off, the same loop is fast
    proc, _, _, counts = latency.run([sys.executable, str(probe), str(target), str(n)], shim, [str(target)], 0)
    assert json.loads(proc.stdout)["wall"] < n * 0.001 and counts["total"] == n


# --------------------------------------------------------------------------- the benchmark, smoke size

@needs_cc
@pytest.mark.skipif(not shutil.which("rsync"), reason="needs rsync")
@pytest.mark.skipif(not os.path.exists(ENGINE), reason="engine not present")
def test_latency_benchmark_smoke(tmp_path):
    results = tmp_path / "results"
    # small and few (full suite time): 3 contenders, retain 2, one measured round; `deal` and K=1 are unit-tested
    cmd = [sys.executable, os.path.join(BENCH, "latency_bench.py"), "--files", "300", "--dirs", "24",
           "--top-dirs", "8", "--rounds", "1", "--retain", "2", "--workers", "2", "--streams", "2",
           "--latency-ms", "1", "--workdir", str(tmp_path / "work"), "--results", str(results)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (results / "latency.md").read_text()
    assert md == proc.stdout
    res = json.loads((results / "latency.json").read_text())
    s = res["summary"]
    assert set(s) == {"rsync-x1", "rsync-x2", "engine-x2"}
    for key, v in s.items():
        assert v["ops_mean"] > 0 and v["wall_median"] > 0, key
        assert "| %s |" % v["label"] in md
    assert s["rsync-x1"]["wall_x_rsync"] == 1.0 and s["rsync-x1"]["ops_x_rsync"] == 1.0
    assert 0.8 < s["rsync-x2"]["ops_x_rsync"] < 1.3                 # the same work, split
    assert s["rsync-x2"]["wall_median"] < s["rsync-x1"]["wall_median"]   # parallel streams overlap their waits
    assert s["engine-x2"]["split_key"] == "rsync-x2" and s["engine-x2"]["wall_x_split"] > 0
    assert s["engine-x2"]["status"] == ["success"] and not s["engine-x2"]["stderr_problem"]
    assert "| engine, 2 workers: wall <= 1.25 x rsync split over 2 streams |" in md
    checked = {(v["key"], v["snapshot"]) for v in res["verify"] if v["ok"]}
    assert {("engine-x2", "daily.0"), ("engine-x2", "daily.1"), ("rsync-x2", "mirror")} <= checked
    assert all(v["ok"] for v in res["verify"])
    assert not os.path.exists(tmp_path / "work")
