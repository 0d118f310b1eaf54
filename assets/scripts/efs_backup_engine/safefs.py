"""Operations inside one tree (a work tree, a snapshot, a restore target) that can never leave it.

Every path below a tree's root is resolved one component at a time relative to an open directory fd, with
O_NOFOLLOW|O_DIRECTORY: a symlink or a non-directory anywhere on the way is an error (or, where the caller asks for
it, is repaired), never followed. Entries are removed, linked and created with the *at() calls (`dir_fd=`,
`follow_symlinks=False`). Only a tree's root is opened by path: it is given by the engine or the operator.

Paths are bytes, relative to the tree root, components separated by b"/" (b"" or b"." is the root itself).
"""

import errno
import os
import stat

from efs_backup_engine.parallel import map_in_parallel

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# What opening a component with O_NOFOLLOW|O_DIRECTORY raises when it is not a real directory: ENOTDIR (a file,
# a special, a dangling symlink) or ELOOP (a symlink to a directory).
NOT_A_DIR = (errno.ENOTDIR, errno.ELOOP)


class NotADirectory(OSError):
    """A component of a path inside a tree is not a real directory (a file, a special or a symlink)."""


def components(rel):
    rel = os.fsencode(rel)
    return [part for part in rel.split(b"/") if part and part != b"."]


def open_root(path):
    """Open a tree's root (by path: the one place a path is trusted). Its last component must not be a symlink."""
    return os.open(path, O_DIR)


def open_child(dir_fd, name, force=False):
    """Open the real directory `name` inside dir_fd; NotADirectory if it is anything else.

    force (trees the engine owns): a directory the engine may not read (mode 000 for an engine without
    CAP_DAC_OVERRIDE) is opened up for its owner first; the caller sets its attributes again afterwards."""
    try:
        fd = os.open(name, O_DIR, dir_fd=dir_fd)
    except PermissionError:
        if not force:
            raise
        _open_up(dir_fd, name)
        return open_child(dir_fd, name)
    except OSError as exc:
        if exc.errno in NOT_A_DIR:
            raise NotADirectory(exc.errno, "not a directory (or a symlink)", os.fsdecode(name)) from None
        raise
    if force:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700 and not os.access(name, os.R_OK | os.W_OK | os.X_OK, dir_fd=dir_fd,
                                                    effective_ids=True):
            # readable but not searchable or writable for this engine (no CAP_DAC_OVERRIDE): opened up; the
            # caller owns the directory's attributes and sets them back
            try:
                os.fchmod(fd, mode | 0o700)
            except PermissionError:
                pass  # not ours: the operation that needs it says so
    return fd


def _open_up(dir_fd, name):
    """chmod u+rwx the directory `name` of dir_fd, never through a symlink: it is pinned with O_PATH|O_NOFOLLOW
    and changed through its /proc/self/fd link (chmod has no no-follow form on Linux)."""
    pinned = os.open(name, os.O_PATH | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    try:
        st = os.fstat(pinned)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectory(errno.ENOTDIR, "not a directory (or a symlink)", os.fsdecode(name))
        os.chmod("/proc/self/fd/%d" % pinned, stat.S_IMODE(st.st_mode) | 0o700)
    finally:
        os.close(pinned)


def open_dir(root_fd, rel, create=False, replace=False, force=False, mode=0o700):
    """Open the real directory rel below root_fd, component by component, never following a symlink.

    create: make missing components (mode `mode`; the caller sets their final attributes).
    replace: a component that is not a real directory (file, symlink, special) is removed and made a
    directory. Both are for trees the engine owns (work trees, restore scopes the caller checked), and imply
    force (see open_child) for the last component.
    """
    force = force or create or replace
    fd = os.dup(root_fd)
    parts = components(rel)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                # Only the last component may be opened up (force): its attributes are the caller's to set
                # back; a directory above it belongs to someone else.
                child = open_child(fd, part, force=force and last)
            except FileNotFoundError:
                if not create:
                    raise
                _mkdir(fd, part, mode)
                child = open_child(fd, part, force=force and last)
            except NotADirectory:
                if not replace:
                    raise
                try:
                    unlink_at(fd, part)
                except IsADirectoryError:
                    pass  # made the directory it must be meanwhile (the part listing its parent repairs it too)
                _mkdir(fd, part, mode)
                child = open_child(fd, part, force=force and last)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _mkdir(dir_fd, name, mode):
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile (another worker); open_child checks what it is


def make_dir(dir_fd, name, mode=0o700):
    """Create the directory `name` in dir_fd (private until the caller sets its attributes); existing is fine."""
    _retry_writable(dir_fd, lambda: _mkdir(dir_fd, name, mode))


def join(path, name):
    """A walk's relative path of an entry of directory path ("" is the walk's top; an empty name is path itself)."""
    if not name:
        return path
    return path + "/" + name if path else name


def split(rel):
    """(parent components, last name) of a relative path."""
    parts = components(rel)
    if not parts:
        raise ValueError("the tree root has no parent inside the tree")
    return b"/".join(parts[:-1]), parts[-1]


def ancestors(path):
    """The ancestors of a relative bytes path, outermost first (b"a/b/c" -> [b"a", b"a/b"])."""
    parts = path.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def lstat_at(dir_fd, name):
    """lstat of an entry of dir_fd, or None if it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def listing(dir_fd, only=None):
    """{name: lstat} of a directory's entries (only: just these names), never following a symlink. An entry that
    disappears between the listing and its lstat (another part's rsync renaming its temporary file) is not
    listed. Names are str here (os.fsdecode: surrogate escapes keep every byte), as the walk uses them."""
    with os.scandir(dir_fd) as entries:
        names = [entry.name for entry in entries if only is None or entry.name in only]
    stats = map_in_parallel(lambda name: lstat_at(dir_fd, name), names)  # round trips overlapped (EFS)
    return {name: st for name, st in zip(names, stats) if st is not None}


def lstat_rel(root_fd, rel):
    """lstat of rel below root_fd (parents resolved without following symlinks), or None if any part is missing
    or a parent is not a real directory."""
    parts = components(rel)
    if not parts:
        return os.fstat(root_fd)
    parent, name = b"/".join(parts[:-1]), parts[-1]
    try:
        fd = open_dir(root_fd, parent)
    except (FileNotFoundError, NotADirectory):
        return None
    try:
        return lstat_at(fd, name)
    finally:
        os.close(fd)


def _retry_writable(dir_fd, operation):
    """Run operation(); on EACCES (a read-only directory, for an unprivileged engine) make dir_fd writable for its
    owner and try once more. The caller restores the directory's attributes afterwards."""
    try:
        return operation()
    except PermissionError as denied:
        st = os.fstat(dir_fd)
        try:
            os.fchmod(dir_fd, stat.S_IMODE(st.st_mode) | 0o700)
        except OSError:
            raise denied from None  # not ours to open up: the original error says what was refused
        return operation()


def unlink_at(dir_fd, name):
    """Remove a non-directory entry (missing is fine)."""
    try:
        _retry_writable(dir_fd, lambda: os.unlink(name, dir_fd=dir_fd))
    except FileNotFoundError:
        pass


def remove_at(dir_fd, name, overlapped=False):
    """Remove the entry `name` of dir_fd, recursively if it is a directory, never following a symlink.
    Missing is fine. Returns the number of entries removed.

    overlapped: the entries of each directory that are not directories are removed several at a time
    (parallel.py: each removal is a round trip on NFS); subdirectories are still removed one after another."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        unlink_at(dir_fd, name)
        return 1
    removed = 0
    try:
        child = open_child(dir_fd, name, force=True)  # it is about to go
    except (FileNotFoundError, NotADirectory):
        return remove_at(dir_fd, name) if lstat_at(dir_fd, name) is not None else 0
    try:
        with os.scandir(child) as entries:
            listed = [(os.fsencode(entry.name), entry.is_dir(follow_symlinks=False)) for entry in entries]
        if overlapped:  # what is not a directory now is removed by remove_at too (it checks again)
            others = [entry for entry, is_dir in listed if not is_dir]
            removed += sum(map_in_parallel(lambda entry: remove_at(child, entry), others))
            listed = [(entry, is_dir) for entry, is_dir in listed if is_dir]
        for entry, _ in listed:
            removed += remove_at(child, entry, overlapped)
    finally:
        os.close(child)
    try:
        _retry_writable(dir_fd, lambda: os.rmdir(name, dir_fd=dir_fd))
    except FileNotFoundError:
        pass
    return removed + 1


def remove_rel(root_fd, rel):
    """Remove rel below root_fd (recursively), never following a symlink on the way or at the end. A parent that
    is missing or not a real directory means rel is not there: nothing to remove. Returns the count removed."""
    parent, name = split(rel)
    try:
        fd = open_dir(root_fd, parent)
    except (FileNotFoundError, NotADirectory):
        return 0
    try:
        return remove_at(fd, name)
    finally:
        os.close(fd)


def set_dir_attributes(fd, st):
    """Give an open directory the owner, group, permission bits and times of st (an lstat result). Directories are
    never shared between trees, so changing one in place is safe. An unprivileged engine keeps its own owner (as
    rsync does without root)."""
    have = os.fstat(fd)
    if (have.st_uid, have.st_gid) != (st.st_uid, st.st_gid):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            pass
        have = os.fstat(fd)  # chown may clear set-id bits
    if stat.S_IMODE(have.st_mode) != stat.S_IMODE(st.st_mode):
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    if have.st_mtime_ns != st.st_mtime_ns:
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def link_at(src_dir_fd, src_name, dst_dir_fd, dst_name):
    """Hard-link an entry of one directory into another (never following a symlink)."""
    _retry_writable(dst_dir_fd, lambda: os.link(src_name, dst_name, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
                                                follow_symlinks=False))


def clone_tree(src_fd, dst_fd):
    """Make the (empty) directory dst_fd a copy of src_fd that shares every file with it (hard links), as
    `cp -al` would: directories are created with their attributes, symlinks and specials recreated. Returns the
    number of entries made."""
    made = 0
    with os.scandir(src_fd) as entries:
        listing = [(os.fsencode(entry.name), entry.stat(follow_symlinks=False)) for entry in entries]
    for name, st in listing:
        if stat.S_ISDIR(st.st_mode):
            _mkdir(dst_fd, name, 0o700)
            src_child, dst_child = open_child(src_fd, name), open_child(dst_fd, name)
            try:
                made += clone_tree(src_child, dst_child)
                set_dir_attributes(dst_child, st)
            finally:
                os.close(src_child)
                os.close(dst_child)
        else:
            link_at(src_fd, name, dst_fd, name)
        made += 1
    return made


class DirCache:
    """Open directory fds of one tree by relative path, resolved safely (open_dir), a bounded number at a time."""

    def __init__(self, root_fd, create=False, limit=64, owns_root=False, owned=False):
        """owned: a tree the engine owns (a work tree): unreadable directories are opened up (see open_child).
        Every directory below root_fd is then the caller's, not only the last one of a path: a part's work-tree
        cache (treediff) holds directories of the part, which its walk entered, opened up where needed, and whose
        attributes it sets back at the end."""
        self.root_fd = root_fd
        self.owned = owned
        self.owns_root = owns_root
        self.create = create
        self.limit = limit
        self.fds = {}

    def get(self, rel):
        """The fd of directory rel, or None if it is missing or not a real directory.

        A directory is opened from its parent's cached fd (the parent is got the same way, so it is cached too):
        the directories of one neighbourhood cost one open each, not one per component of their paths."""
        rel = b"/".join(components(rel))
        if rel in self.fds:
            fd = self.fds.pop(rel)
            self.fds[rel] = fd  # most recently used last
            return fd
        if rel:
            parent, _sep, name = rel.rpartition(b"/")
            parent_fd = self.get(parent)  # the most recently used now: not the one evicted below
            if parent_fd is None:
                return None
            try:
                fd = open_dir(parent_fd, name, create=self.create, force=self.owned)
            except (FileNotFoundError, NotADirectory, PermissionError):
                return None
        else:
            fd = os.dup(self.root_fd)
        if len(self.fds) >= self.limit:
            oldest = next(iter(self.fds))
            os.close(self.fds.pop(oldest))
        self.fds[rel] = fd
        return fd

    def forget(self, rel):
        """Drop cached fds of rel and everything below it (it was removed or replaced)."""
        rel = b"/".join(components(rel))
        for key in [key for key in self.fds if key == rel or key.startswith(rel + b"/") or not rel]:
            os.close(self.fds.pop(key))

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        if self.owns_root and self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
