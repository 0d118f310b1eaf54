"""The source side of a big part's walk, read ahead by a second process.

A part's walk (treediff.py) reads every directory of the source and of the work tree and lstat's every entry of
both. In one process those reads take turns; on a local disk or a warm cache they are most of a run's time. So
once a part turns out big (LIST_AHEAD_AFTER entries), the walk hands the rest of its source side to a lister
process: the lister reads the source directories the walk will enter, in the order it will enter them, while the
walk reads the work tree. The two run on two cores, as rsync's sender and receiver do; on EFS the lister's round
trips overlap the walk's.

What the lister may do, and why it cannot change a walk's outcome:
- it only reads: it lists directories and lstat's their entries through the walk's own directory fd (inherited,
  the part's source directory) and safefs (component by component, never following a symlink);
- it sends, for each directory, what the walk's own listing would have given (the same safefs.listing, the same
  fields of each lstat), in the walk's order: depth first, subdirectories in listing order, the same rule for what
  to enter (a directory on the source's file system);
- the walk takes a listing only when it is for exactly the directory it is about to compare. For a directory
  the lister could not read, the walk lists it and its subtree itself; after anything unexpected (an order that
  differs, a lister that died, a message cut short) it lists everything itself, as it always did: the lister can
  make a walk faster, never different.

Protocol (each message a 4-byte little-endian length, then marshal data):
  lister -> walk  ("ready",)                                    started, waiting for its request
  walk -> lister  (device, [subtree root, ...])                 paths relative to the part's directory, in order
  lister -> walk  (path, "ok", [(name, (mode, ino, dev, nlink, uid, gid, size, atime_ns, mtime_ns, rdev)), ...])
                  (path, "error", errno)                        that directory could not be opened or listed
                  (None, "end", None)
Started as `python3 -S -m efs_backup_engine.source_lister FD` (standard library only, no site packages).
"""

import collections
import marshal
import os
import stat
import struct
import sys

from efs_backup_engine import child_env, safefs

# A part's walk starts its lister once it has scanned this many source entries: about 20 ms of walking on a local
# disk, a few hundred round trips on EFS. Smaller parts (most parts of a run with many workers) never pay for a
# process start.
LIST_AHEAD_AFTER = 2000
# Tests set EFS_BACKUP_OVERLAP_ALWAYS=1 (parallel.py): every recursive walk then uses a lister from its first
# subdirectory on, so the model-based test runs the code that big parts run.
ALWAYS = os.environ.get("EFS_BACKUP_OVERLAP_ALWAYS") == "1"
PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ: lets the lister run a few thousand entries ahead
_F_SETPIPE_SZ = 1031  # <linux/fcntl.h>; the fcntl module names it only from Python 3.10
_LENGTH = struct.Struct("<I")

# The lstat fields the walk reads (treediff, safefs.set_dir_attributes), under their os.stat_result names.
Listed = collections.namedtuple("Listed", "st_mode st_ino st_dev st_nlink st_uid st_gid st_size st_atime_ns "
                                          "st_mtime_ns st_rdev")
_new = tuple.__new__


def _within(path, prefixes):
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


class Lister:
    """The walk's side: one lister process for one part's walk. start() it, hand_over() the rest of the walk once
    it is ready(), take() each directory's listing, skip() a subtree the walk does not enter, close() at the end
    (always: it stops the process)."""

    def __init__(self, part_fd):
        import subprocess  # here, not at the top: the lister process itself never needs it, and starts faster

        self.proc = subprocess.Popen([sys.executable, "-S", "-m", "efs_backup_engine.source_lister", str(part_fd)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(part_fd,),
                                     env=child_env(), bufsize=PIPE_BYTES)
        self.state = "starting"   # -> "listing" (handed over) -> "off" (ended, failed or out of step)
        self.skipped = []         # subtrees the walk does not enter: their listings are dropped
        self.local = []           # directories the lister could not read: the walk lists them and their subtrees
        self.taken = 0            # listings the walk used (tests check that the lister was exercised)

    @classmethod
    def start(cls, part_fd):
        """A lister for the part whose source directory is part_fd, or None if no process could be started."""
        try:
            return cls(part_fd)
        except OSError:
            return None

    def ready(self, wait=False):
        """Whether the lister has started and waits for its request (wait: block until it has, or has failed)."""
        if self.state != "starting":
            return False
        import select

        if not wait and not select.select([self.proc.stdout], [], [], 0)[0]:
            return False
        if self._receive() != ("ready",):
            self._off()
            return False
        return True

    def hand_over(self, device, roots):
        """Ask for the listings of the subtrees at roots (in the walk's order), entering directories on device."""
        try:
            self._send((device, list(roots)))
        except OSError:
            self._off()
            return
        self.state = "listing"

    def take(self, path):
        """The listing {name: Listed} of directory path (relative to the part's directory), or None: the walk lists
        it itself (the lister could not, or is off), and lists its subtree itself too."""
        if self.state != "listing" or _within(path, self.local):
            return None
        while True:
            message = self._receive()
            if not isinstance(message, tuple) or len(message) != 3:
                return self._off()
            listed_path, kind, payload = message
            if listed_path == path:
                if kind != "ok":
                    self.local.append(path)
                    return None
                self.taken += 1
                return {name: _new(Listed, fields) for name, fields in payload}
            if listed_path is None or not _within(listed_path, self.skipped):
                return self._off()  # out of step with the walk: the walk lists the rest itself

    def skip(self, path):
        """The walk does not enter path (it vanished, or cannot be opened): drop its listings."""
        if self.state == "listing":
            self.skipped.append(path)

    def close(self):
        self._off()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self.proc.wait()

    def _off(self):
        if self.state != "off":
            self.state = "off"
            if self.proc.poll() is None:
                self.proc.kill()
        return None

    def _send(self, message):
        self.proc.stdin.write(_framed(message))
        self.proc.stdin.flush()

    def _receive(self):
        try:
            return _read_message(self.proc.stdout)
        except (OSError, ValueError, EOFError, TypeError):
            return None


def _framed(message):
    data = marshal.dumps(message)
    return _LENGTH.pack(len(data)) + data


def _read_message(stream):
    head = stream.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        return None
    size = _LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) != size:
        return None
    return marshal.loads(data)


# -- the lister process -------------------------------------------------------------------------------------------
def _fields(st):
    return (st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size, st.st_atime_ns,
            st.st_mtime_ns, st.st_rdev)


class _Output:
    def __init__(self):
        self.out = os.fdopen(1, "wb", buffering=1 << 16)
        try:
            import fcntl

            fcntl.fcntl(1, _F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # the default pipe size: the lister runs less far ahead

    def send(self, message):
        self.out.write(_framed(message))
        self.out.flush()  # the walk may be waiting for this very listing


def _list(dir_fd, path, device, output):
    """Send dir_fd's listing; return its subdirectories to enter, in listing order."""
    try:
        listing = safefs.listing(dir_fd)
    except OSError as exc:
        output.send((path, "error", exc.errno or 0))
        return []
    output.send((path, "ok", [(name, _fields(st)) for name, st in listing.items()]))
    return [name for name, st in listing.items() if stat.S_ISDIR(st.st_mode) and st.st_dev == device]


def _list_subtree(part_fd, root, device, output):
    """Send the listings of root and every directory below it, depth first (the walk's order: treediff's
    PartDiff._descend)."""
    try:
        fd = safefs.open_dir(part_fd, os.fsencode(root))
    except OSError as exc:
        output.send((root, "error", exc.errno or 0))
        return
    stack = [(fd, root, iter(_list(fd, root, device, output)))]
    try:
        while stack:
            fd, path, pending = stack[-1]
            name = next(pending, None)
            if name is None:
                stack.pop()
                os.close(fd)
                continue
            child = safefs.join(path, name)
            try:
                child_fd = safefs.open_child(fd, name)
            except OSError as exc:
                output.send((child, "error", exc.errno or 0))
                continue
            stack.append((child_fd, child, iter(_list(child_fd, child, device, output))))
    finally:
        for fd, _path, _pending in stack:
            os.close(fd)


def main(argv):
    part_fd = int(argv[1])
    output = _Output()
    output.send(("ready",))
    request = _read_message(os.fdopen(0, "rb"))
    if request is None:
        return 0  # the walk ended before it needed the lister
    device, roots = request
    for root in roots:
        _list_subtree(part_fd, root, device, output)
    output.send((None, "end", None))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:  # the walk stopped reading: it ended, failed or listed the rest itself
        os._exit(0)
