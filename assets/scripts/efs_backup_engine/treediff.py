"""Compare one part of the source with the work tree and repair the work tree so that only copies are left.

The walk goes through directory fds on both sides (safefs), never following a symlink, and reads each directory
of the source and of the work tree once. For every entry it decides:

- same on both sides (type, permission bits, numeric owner, size, ns mtime, symlink target, device number):
  kept, untouched;
- only in the work tree, or another type there: removed (recursively, without following symlinks);
- a differing non-directory: unlinked from the work tree, never modified in place (its inode may be shared with
  newer snapshots); then a regular file identical in the newest snapshot is hard-linked from there (rsync's
  --link-dest rule), anything else is listed for rsync to copy;
- a new directory: created; a directory whose attributes differ, or whose entries change: its attributes are set
  from the source at the end (directories are never shared between trees).

Hard-link groups are exact within a part: source names of one inode must be one inode in the work tree, and
names that share an inode in the work tree must share one in the source. A group that is not exactly right is
unlinked and listed whole, so rsync -H recreates it; a file is never linked from the newest snapshot to an inode
that another name of the part already uses.

A source directory that cannot be read (a permission error: root squashing on NFS) is never taken for an empty
one: its copy becomes the newest snapshot's copy (hard links), and the part reports the path.

A big part's source side is listed ahead by a second process (source_lister.py) while the walk lists the work
tree: the walk uses a listing from it only for exactly the directory it is about to compare, and lists for
itself whatever the lister does not give.
"""

import contextlib
import errno
import gc
import os
import stat

from efs_backup_engine import safefs, source_lister

OWNER_MATTERS = os.geteuid() == 0  # an unprivileged engine cannot give files their owner (rsync neither)


class Vanished(Exception):
    """The part's source directory is gone or no longer a directory."""


class SourceUnreadable(Exception):
    """A source directory could be opened but not listed (a permission error on the source side only)."""


class Trees:
    """The open roots: the source, the work tree and the link destinations (run.link_dests: the newest snapshot of
    the run's interval, then the newest of all when that is another one)."""

    def __init__(self, source, work_tree, link_dests):
        self.paths = (source, work_tree, list(link_dests))
        self.src = self.dst = None
        self.links = []

    def __enter__(self):
        source, work_tree, link_dests = self.paths
        self.src = safefs.open_root(source)
        try:
            self.dst = safefs.open_root(work_tree)
            for path in link_dests:
                try:
                    self.links.append(safefs.open_root(path))
                except OSError:
                    continue  # expired or renamed meanwhile: one link destination fewer
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for fd in [self.src, self.dst] + self.links:
            if fd is not None:
                os.close(fd)
        self.src = self.dst = None
        self.links = []


def _owner_differs(a, b):
    return OWNER_MATTERS and (a.st_uid != b.st_uid or a.st_gid != b.st_gid)


def dir_differs(src, dst):
    return (stat.S_IMODE(src.st_mode) != stat.S_IMODE(dst.st_mode) or _owner_differs(src, dst)
            or src.st_mtime_ns != dst.st_mtime_ns)


def same_file(src, dst):
    """A regular file that rsync -a would leave alone, and whose inode can be shared: same size, ns mtime,
    permission bits and (as root) owner."""
    return (stat.S_ISREG(dst.st_mode) and src.st_mode == dst.st_mode and src.st_size == dst.st_size
            and src.st_mtime_ns == dst.st_mtime_ns and not _owner_differs(src, dst))


def same_entry(src, dst, src_fd, dst_fd, name):
    """Whether a non-directory entry is the same on both sides (see same_file; symlinks: same target and times,
    devices: same number)."""
    if src.st_mode != dst.st_mode or src.st_mtime_ns != dst.st_mtime_ns or _owner_differs(src, dst):
        return False
    if stat.S_ISREG(src.st_mode):
        return src.st_size == dst.st_size
    if stat.S_ISLNK(src.st_mode):
        try:
            return os.readlink(name, dir_fd=src_fd) == os.readlink(name, dir_fd=dst_fd)
        except OSError:
            return False
    if stat.S_ISCHR(src.st_mode) or stat.S_ISBLK(src.st_mode):
        return src.st_rdev == dst.st_rdev
    return True


def _remove_other_type(dst_fd, name, dst_st, kind):
    """Remove a work-tree entry whose type (dst_st, as listed) differs from the source's (kind). Returns the count
    removed.

    A source directory that is a part's root is also an entry of its parent's part: both repair the entry, in
    either order. What was listed as a non-directory is therefore only ever unlinked: if it is a directory by now,
    the other part made it the directory the source has and may have copied into it already, so it stays (a
    recursive removal here would silently empty that part's copy)."""
    if stat.S_ISDIR(dst_st.st_mode):
        return safefs.remove_at(dst_fd, name)
    try:
        safefs.unlink_at(dst_fd, name)
    except IsADirectoryError:
        if kind != stat.S_IFDIR:
            raise
        return 0
    return 1


def compare_part(trees, rel, names, recursive):
    """Walk the part (rel: its directory below the roots; names: a batch of rel's entries, or None for rel itself;
    recursive: whole subtrees, or only rel's own entries) and repair the work tree. Returns the PartDiff, whose
    transfer list rsync copies and whose finish() sets the directories' attributes."""
    with _collector_paused():
        return _compare_part(trees, rel, names, recursive)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a part is walked and settled (and back on after, if it was).

    The walk allocates a few tuples and dict entries per entry and keeps most of them until the part ends (the
    listings it holds, the kept files, the hard-link groups). The collector runs after every few hundred new
    objects and traverses the survivors again each time: about a tenth of the walk's time at 100,000 files
    (bench/README.md). The walk makes no reference cycles for it to find; memory is freed by reference counting
    as before, and a cycle made meanwhile (an exception and its traceback) is collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compare_part(trees, rel, names, recursive):
    part = PartDiff(trees, rel)
    try:
        part.open(names is None)
        if part.src_fd is None:  # the part's own directory cannot be read: it keeps the newest copy
            if names is None:
                own = safefs.lstat_rel(trees.src, rel)  # its own attributes can be read (search on the parent)
                if own is not None and stat.S_ISDIR(own.st_mode):
                    part.dir_st[""] = own
                part._replace_with_newest(part.dst_fd, "")
            else:
                for name in names:
                    if safefs.lstat_at(part.dst_fd, name) is not None:
                        part._unreadable_dir(part.dst_fd, name, name)
        elif names is None:
            part.compare_root(recursive)
        else:
            part.walk("", set(names), True)
        part.settle()
    except BaseException:
        part.close()
        raise
    return part


class PartDiff:
    def __init__(self, trees, rel):
        self.trees = trees
        self.rel = rel
        self.dev = os.fstat(trees.src).st_dev
        self.src_fd = self.dst_fd = None
        self.dst_cache = None
        self.link_caches = []
        self.dest_existed = False
        self.transfer = []
        self.unreadable = []
        self.messages = []
        self.vanished = False
        self.scanned = self.dirs = self.bytes_total = self.special = 0
        self.deleted = self.changed = self.linked = self.made = 0
        self.lister = None      # the source_lister reading ahead of a big part's walk
        self.list_ahead = True  # a lister may still be started (one attempt per part)
        self.listed_ahead = 0   # source directories whose listing the lister gave
        self.dir_st = {}        # path -> source lstat of every directory walked (paths relative to the part's dir)
        self.dir_attrs = {}     # path -> source lstat: directories whose attributes are set at the end
        self.groups = {}        # source inode -> [(path, src st, dst st or None)]: files with links > 1
        self.candidates = []    # (path, src st): regular files to link from the newest snapshot, else copy
        self.holder_mode = None  # (mode before, mode opened up) of a batch part's directory this part opened up
        self.kept = {}          # work-tree inode -> (directory, name, src st): regular files left as they are
        self.shared = {}        # work-tree inode -> [(directory, name, src st)]: kept under several names

    # -- opening the part ------------------------------------------------------------------------------------
    def open(self, whole_dir):
        trees, rel = self.trees, self.rel
        try:
            self.src_fd = safefs.open_dir(trees.src, rel)
        except PermissionError:
            if not safefs.components(rel):
                raise  # the source itself: nothing to back up
            self.src_fd = None  # compare_part keeps the newest snapshot's copy
        except (FileNotFoundError, safefs.NotADirectory):
            if not whole_dir or not safefs.components(rel):
                raise
            self._drop_vanished_dir()
            raise Vanished("source directory %s vanished before it was copied; removed from the snapshot"
                           % rel) from None
        before = safefs.lstat_rel(trees.dst, rel)
        self.dst_fd = safefs.open_dir(trees.dst, rel, create=True, replace=True)
        if not whole_dir and before is not None and stat.S_ISDIR(before.st_mode):
            opened = stat.S_IMODE(os.fstat(self.dst_fd).st_mode)
            if opened != stat.S_IMODE(before.st_mode):  # this part opened it up (safefs.open_child): set back
                self.holder_mode = (stat.S_IMODE(before.st_mode), opened)
        if before is not None and stat.S_ISDIR(before.st_mode):
            with os.scandir(self.dst_fd) as entries:
                self.dest_existed = next(entries, None) is not None
        self.dst_cache = safefs.DirCache(self.dst_fd, owned=True)
        for link_root in trees.links:
            try:
                fd = safefs.open_dir(link_root, rel)
            except (FileNotFoundError, safefs.NotADirectory):
                continue
            self.link_caches.append(safefs.DirCache(fd, limit=32, owns_root=True))

    def _drop_vanished_dir(self):
        """The part's source directory is gone: so is its copy, when it is a directory (the entry itself, and a
        non-directory that replaced it, belong to the parent's part)."""
        parent, name = safefs.split(self.rel)
        try:
            fd = safefs.open_dir(self.trees.dst, parent)
        except (FileNotFoundError, safefs.NotADirectory):
            return
        try:
            st = safefs.lstat_at(fd, name)
            if st is not None and stat.S_ISDIR(st.st_mode):
                safefs.remove_at(fd, name)
        finally:
            os.close(fd)

    def compare_root(self, recursive):
        """The part's own directory, then its entries. Its attributes are set at the end (finish) in every case:
        what it has now says nothing about what it will have then, since the parts of its subdirectories may
        create their directories in it meanwhile (PartDiff.open) after this part listed it and found nothing to
        change (set_dir_attributes changes only what differs)."""
        src_st = os.fstat(self.src_fd)
        self.scanned += 1
        self.dirs += 1
        self.dir_st[""] = src_st
        self.dir_attrs[""] = src_st
        self.walk("", None, recursive)

    # -- the walk ----------------------------------------------------------------------------------------------
    def walk(self, top, only, recursive):
        """Depth first, two fds per level open at a time. A big part's source side is read ahead by a lister
        process (source_lister) from the point where the part turns out big."""
        subdirs = self._compare_dir(self.src_fd, self.dst_fd, top, only, recursive)
        stack = [(self.src_fd, self.dst_fd, top, iter(subdirs), False)]
        try:
            self._descend(stack)
        finally:
            if self.lister is not None:
                self.lister.close()
                self.listed_ahead = self.lister.taken
                self.lister = None
            for src_fd, dst_fd, _path, _pending, owned in stack:  # left by an error
                if owned:
                    os.close(src_fd)
                    os.close(dst_fd)

    def _hand_over(self, stack):
        """Once the part has scanned LIST_AHEAD_AFTER entries, start a lister; once it is ready, ask it for every
        subtree the walk has yet to enter, in the order the walk will enter them (the pending subdirectories of
        the deepest level first: the walk finishes a level's subtrees before it returns to the level above)."""
        if self.lister is None:
            if self.scanned < source_lister.LIST_AHEAD_AFTER and not source_lister.ALWAYS:
                return
            self.list_ahead = False
            self.lister = source_lister.Lister.start(self.src_fd)
            if self.lister is None:
                return
        if not self.lister.ready(wait=source_lister.ALWAYS):
            self.list_ahead = self.lister.state == "starting"
            return
        roots = []
        for level in range(len(stack) - 1, -1, -1):
            src_fd, dst_fd, path, pending, owned = stack[level]
            rest = list(pending)
            stack[level] = (src_fd, dst_fd, path, iter(rest), owned)
            roots += [safefs.join(path, name) for name in rest]
        self.lister.hand_over(self.dev, roots)
        self.list_ahead = False

    def _source_listing(self, src_fd, path, only):
        """The source directory's listing: from the lister when it has read it ahead, else read here."""
        if self.lister is not None and only is None:
            listed = self.lister.take(path)
            if listed is not None:
                return listed
        return safefs.listing(src_fd, only)

    def _not_entered(self, path):
        if self.lister is not None:
            self.lister.skip(path)

    def _descend(self, stack):
        while stack:
            if self.list_ahead:
                self._hand_over(stack)
            src_fd, dst_fd, path, pending, owned = stack[-1]
            name = next(pending, None)
            if name is None:
                stack.pop()
                if owned:
                    os.close(src_fd)
                    os.close(dst_fd)
                continue
            child = safefs.join(path, name)
            try:
                child_src = safefs.open_child(src_fd, name)
            except PermissionError:
                self._not_entered(child)
                self._unreadable_dir(dst_fd, child, name)
                continue
            except (FileNotFoundError, safefs.NotADirectory):
                self._not_entered(child)
                self.messages.append("%s vanished from the source during the walk" % self._shown(child))
                self.vanished = True
                continue
            try:
                child_dst = safefs.open_child(dst_fd, name, force=True)
            except BaseException:
                os.close(child_src)
                raise
            try:
                subdirs = self._compare_dir(child_src, child_dst, child, None, True)
            except SourceUnreadable:
                os.close(child_src)
                os.close(child_dst)
                self._unreadable_dir(dst_fd, child, name)
                continue
            except BaseException:
                os.close(child_src)
                os.close(child_dst)
                raise
            stack.append((child_src, child_dst, child, iter(subdirs), True))

    @contextlib.contextmanager
    def _naming(self, path):
        """An error of an *at() call names only the entry: give it its full path in the work tree, so a failed
        part's reason says which file could not be written."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc.filename, (str, bytes)) and "/" not in os.fsdecode(exc.filename):
                exc.filename = os.path.join(self.trees.paths[1], self.rel, path, os.fsdecode(exc.filename))
            raise

    def _compare_dir(self, src_fd, dst_fd, path, only, recursive):
        """Compare one directory's entries (only: the names in scope, None for all); returns the subdirectories
        to descend into."""
        with self._naming(path):
            return self._compare_entries(src_fd, dst_fd, path, only, recursive)

    def _compare_entries(self, src_fd, dst_fd, path, only, recursive):
        """_compare_dir's work. The common case (an unchanged single-link file) takes the first branch."""
        try:
            src = self._source_listing(src_fd, path, only)
        except PermissionError as exc:
            raise SourceUnreadable(str(exc)) from None
        dst = safefs.listing(dst_fd, only)
        for name in sorted((only or set()) - set(src)):
            self.messages.append("%s vanished from the source before it was copied; removed from the snapshot"
                                 % self._shown(safefs.join(path, name)))
            self.vanished = True
        touched = False
        subdirs = []
        for name in dst.keys() - src.keys():
            self.deleted += safefs.remove_at(dst_fd, name)
            touched = True
        kept, owner = self.kept, OWNER_MATTERS
        scanned = bytes_total = 0
        for name, src_st in src.items():
            dst_st = dst.get(name)
            mode = src_st.st_mode
            scanned += 1
            if (dst_st is not None and dst_st.st_mode == mode and stat.S_ISREG(mode) and src_st.st_nlink == 1
                    and dst_st.st_size == src_st.st_size and dst_st.st_mtime_ns == src_st.st_mtime_ns
                    and not (owner and (dst_st.st_uid != src_st.st_uid or dst_st.st_gid != src_st.st_gid))):
                bytes_total += src_st.st_size
                if dst_st.st_ino in kept:
                    self.shared.setdefault(dst_st.st_ino, [kept[dst_st.st_ino]]).append((path, name, src_st))
                else:
                    kept[dst_st.st_ino] = (path, name, src_st)
                continue
            entry = safefs.join(path, name)
            kind = stat.S_IFMT(mode)
            if dst_st is not None and stat.S_IFMT(dst_st.st_mode) != kind:
                self.deleted += _remove_other_type(dst_fd, name, dst_st, kind)  # never written through
                dst_st = None
                touched = True
            if kind == stat.S_IFDIR:
                touched = self._compare_subdir(dst_fd, name, entry, src_st, dst_st) or touched
                if recursive:
                    if src_st.st_dev != self.dev:
                        self.messages.append("%s is another file system: not descended into (as rsync -x)"
                                             % self._shown(entry))
                    else:
                        subdirs.append(name)
                continue
            if kind in (stat.S_IFREG, stat.S_IFLNK):
                bytes_total += src_st.st_size
            else:
                self.special += 1
            touched = self._compare_other(src_fd, dst_fd, name, entry, src_st, dst_st, kind) or touched
        self.scanned += scanned
        self.bytes_total += bytes_total
        if touched:
            self._touch(path)
        return subdirs

    def _compare_subdir(self, dst_fd, name, entry, src_st, dst_st):
        """A source directory (dst_st: the work tree's, None if it has none): made if missing, its attributes
        set after the walk if they differ (or if the walk opened it up). True if the work tree's directory was
        made."""
        self.dirs += 1
        self.dir_st[entry] = src_st
        if dst_st is None:
            safefs.make_dir(dst_fd, name)
            self.made += 1
            self.changed += 1
            self.dir_attrs[entry] = src_st
            return True
        if dir_differs(src_st, dst_st):
            self.changed += 1
            self.dir_attrs[entry] = src_st
        elif stat.S_IMODE(dst_st.st_mode) & 0o700 != 0o700:
            self.dir_attrs[entry] = src_st  # opened up for the walk (safefs.open_child): set back after
        return False

    def _compare_other(self, src_fd, dst_fd, name, entry, src_st, dst_st, kind):
        """A non-directory that is not an unchanged single-link file (those take _compare_entries' first
        branch): a hard-linked file joins its group (settled after the walk), an unchanged symlink or special is
        kept, anything else is unlinked from the work tree (never modified in place) and listed: a regular file
        as a candidate for linking from the newest snapshot, others for rsync. True if the work tree changed."""
        if kind == stat.S_IFREG and src_st.st_nlink > 1:
            self.groups.setdefault(src_st.st_ino, []).append((entry, src_st, dst_st))
            return False
        if dst_st is not None and same_entry(src_st, dst_st, src_fd, dst_fd, name):
            return False  # an unchanged symlink or special
        self.changed += 1
        if dst_st is not None:
            safefs.unlink_at(dst_fd, name)
        if kind == stat.S_IFREG:
            self.candidates.append((entry, src_st))
        else:
            self.transfer.append(entry)
        return True

    def _touch(self, path):
        """The directory path's entries change: its attributes are set again at the end (if it is in the part)."""
        if path in self.dir_st:
            self.dir_attrs[path] = self.dir_st[path]

    def _shown(self, path):
        return safefs.join(self.rel, path)

    def _unreadable_dir(self, dst_parent_fd, path, name):
        """A source directory that cannot be opened or read: never an empty directory (that would delete its
        backup), but the newest snapshot's copy of it, and a warning naming it."""
        # The directory entry itself stays (the walk made it a directory; its parent may belong to a part that
        # has finished): only its contents are replaced.
        fd = safefs.open_child(dst_parent_fd, name, force=True)
        try:
            self._replace_with_newest(fd, path)
        finally:
            os.close(fd)

    def _replace_with_newest(self, fd, path):
        """Make the work-tree directory fd (path in the part) the most recent snapshot's copy of it."""
        self.unreadable.append(safefs.join(self.rel, path))
        with os.scandir(fd) as entries:
            stale = [entry.name for entry in entries]
        for entry in stale:
            safefs.remove_at(fd, entry)
        newest = self._newest_copy(path)
        if newest is not None:
            try:
                safefs.clone_tree(newest, fd)  # a copy this engine cannot read fails the part: never half kept
            finally:
                os.close(newest)
        if path in self.dir_st:
            self.dir_attrs[path] = self.dir_st[path]

    def _newest_copy(self, path):
        """An fd of the most recent snapshot's copy of directory path (the newest of all comes last in the link
        destinations), or None when no snapshot has it. A copy that exists but cannot be opened raises
        PermissionError: the part fails rather than keep an empty directory and call it the newest copy."""
        for cache in reversed(self.link_caches):
            try:
                return safefs.open_dir(cache.root_fd, path)  # never opened up: snapshots are not changed
            except (FileNotFoundError, safefs.NotADirectory):
                continue
        return None

    # -- hard links and links from the newest snapshot ----------------------------------------------------------
    def settle(self):
        """Decide hard-link groups, break work-tree groups the source no longer has, link from the newest
        snapshot. Runs after the whole part was walked: it needs every name of every inode.

        kept: work-tree inode -> (directory, name, source lstat) of a file left as it is; shared: the inodes kept
        under several names. Inode numbers are compared within one file system (the backup file system; the
        source's with rsync -x semantics)."""
        broken = []
        for key, members in self.groups.items():
            if len(members) == 1:
                path, src_st, dst_st = members[0]
                if dst_st is not None and same_file(src_st, dst_st):
                    self._keep(dst_st.st_ino, path, src_st)
                else:
                    self._drop(path, present=dst_st is not None)
                    self.candidates.append((path, src_st))
                continue
            inodes = {dst.st_ino for _p, _s, dst in members if dst is not None}
            if len(inodes) == 1 and all(dst is not None and same_file(src, dst) for _p, src, dst in members):
                dst_ino = inodes.pop()
                for path, src_st, _dst in members:
                    self._keep(dst_ino, path, src_st)
            else:
                broken.append(key)
        for dst_ino, names in list(self.shared.items()):
            if len({src.st_ino for _dir, _name, src in names}) == 1:
                continue  # one source inode under several names: a group that is right
            del self.kept[dst_ino]  # names the source split apart
            for directory, name, src_st in names:
                path = safefs.join(directory, name)
                if len(self.groups.get(src_st.st_ino, ())) > 1:
                    if src_st.st_ino not in broken:
                        broken.append(src_st.st_ino)
                    continue
                self._drop(path, present=True)
                self.candidates.append((path, src_st))
        for key in broken:
            for path, _src, dst_st in self.groups[key]:
                self._drop(path, present=dst_st is not None)
                self.transfer.append(path)
        for path, src_st in sorted(self.candidates, key=lambda item: item[0]):
            if not self._link_from_newest(path, src_st, self.kept):
                self.transfer.append(path)
        self.transfer.sort()

    def _keep(self, dst_ino, path, src_st):
        directory, _sep, name = path.rpartition("/")
        if dst_ino in self.kept:
            self.shared.setdefault(dst_ino, [self.kept[dst_ino]]).append((directory, name, src_st))
        else:
            self.kept[dst_ino] = (directory, name, src_st)

    def _drop(self, path, present):
        """Unlink a work-tree file that is about to be replaced (present: it is there)."""
        self.changed += 1
        parent, _sep, name = path.rpartition("/")
        self._touch(parent)
        with self._naming(parent):
            self._unlink(parent, name, present)

    def _unlink(self, parent, name, present):
        if present:
            fd = self.dst_cache.get(parent)
            if fd is None:  # never leave it for rsync: rsync would chmod/chown a shared inode in place
                raise safefs.NotADirectory(errno.ENOTDIR, "work-tree directory unreachable", self._shown(parent))
            safefs.unlink_at(fd, name)

    def _link_from_newest(self, path, src_st, used):
        """Hard-link path from the first link destination holding an identical file (rsync's --link-dest rule:
        regular file, same size, ns mtime, mode and owner), unless its inode is already used by another name of
        this part (that would merge files the source keeps apart). Any error (EMLINK...) leaves it to rsync."""
        parent, _sep, name = path.rpartition("/")
        for cache in self.link_caches:
            fd = cache.get(parent)
            if fd is None:
                continue
            candidate = safefs.lstat_at(fd, name)
            if candidate is None or not same_file(src_st, candidate):
                continue
            if candidate.st_ino in used:
                return False
            dst_fd = self.dst_cache.get(parent)
            if dst_fd is None:
                return False
            try:
                safefs.link_at(fd, name, dst_fd, name)
            except OSError:
                return False
            used[candidate.st_ino] = (parent, name, src_st)
            self.linked += 1
            return True
        return False

    # -- the end ------------------------------------------------------------------------------------------------
    def counts(self):
        return {"files_scanned": self.scanned, "dirs": self.dirs, "bytes_total": self.bytes_total,
                "special": self.special, "deleted": self.deleted, "changed": self.changed, "linked": self.linked,
                "created": self.made + self.linked}

    def finish(self):
        """Set the attributes of every directory created or changed, deepest first (their entries are final)."""
        try:
            for path in sorted(self.dir_attrs, key=lambda p: (-p.count("/"), p)):
                try:
                    fd = safefs.open_dir(self.dst_fd, path, force=True) if path else os.dup(self.dst_fd)
                except (FileNotFoundError, safefs.NotADirectory):
                    continue  # removed meanwhile by the part that owns it
                try:
                    safefs.set_dir_attributes(fd, self.dir_attrs[path])
                finally:
                    os.close(fd)
            if self.holder_mode is not None:
                original, opened = self.holder_mode
                # only if nobody set it since: the part that owns it (the parent's) may have finished meanwhile
                if stat.S_IMODE(os.fstat(self.dst_fd).st_mode) == opened:
                    os.fchmod(self.dst_fd, original)
        finally:
            self.close()

    def close(self):
        for cache in [self.dst_cache] + self.link_caches:
            if cache is not None:
                cache.close()
        self.link_caches = []
        self.dst_cache = None
        for fd in (self.src_fd, self.dst_fd):
            if fd is not None:
                os.close(fd)
        self.src_fd = self.dst_fd = None
