"""Promote a finished work tree to <interval>.0, shift older snapshots and expire the surplus — crash-safely.

Every change is a rename (O(1), no file is copied or deleted on this path). The complete list of renames is
written to a journal before the first one happens, and the journal's `done` counter advances after each, so
a run killed at any instant leaves: every promoted snapshot complete under some name, the new tree either
still in the work area or already promoted, and a journal that the next run (or `finalize`) completes before
it does anything else. The surplus beyond retention becomes the interval's *spare* (recycled as the next work
tree, which is what keeps an incremental run proportional to change) or goes to trash/ for lazy deletion.
"""

import os
import uuid

from efs_backup_engine.errors import EngineError
from efs_backup_engine.fsutil import makedirs, read_json, remove_tree, write_json_atomic
from efs_backup_engine.layout import STATE, snapshot_name


def plan(layout, interval, retain, run_dir_rel):
    """The renames (relative to the backup-id directory) that promote runs/<interval>/tree."""
    existing = layout.snapshots(interval)  # oldest last
    keep, surplus = existing[:retain - 1], existing[retain - 1:]
    steps = []
    spare_rel = os.path.relpath(layout.spare(interval), layout.id_dir)
    spare_free = not os.path.lexists(layout.spare(interval))
    for _interval, _index, name in surplus:  # newest surplus first: it is the cheapest to recycle
        if spare_free:
            target = spare_rel
            spare_free = False
        else:
            target = os.path.join(STATE, "trash", "%s-%s" % (name, uuid.uuid4().hex[:12]))
        steps.append(("rename", name, target))
        if os.path.exists(layout.manifest(name)):
            steps.append(("rename", _manifest_rel(name), os.path.join(STATE, "trash", "%s-%s.json"
                                                                          % (name, uuid.uuid4().hex[:12]))))
    moves = [(name, snapshot_name(interval, i + 1)) for i, (_iv, _idx, name) in enumerate(keep)]
    present = {name for _iv, _idx, name in keep}
    for src, dst in _safe_order([m for m in moves if m[0] != m[1]], present):
        steps.append(("rename", src, dst))
        if os.path.exists(layout.manifest(src)) or any(s[2] == _manifest_rel(src) for s in steps):
            steps.append(("rename", _manifest_rel(src), _manifest_rel(dst)))
    newest = snapshot_name(interval, 0)
    steps.append(("rename", os.path.join(run_dir_rel, "manifest.json"), _manifest_rel(newest)))
    steps.append(("rename", os.path.join(run_dir_rel, "tree"), newest))
    return steps


def _manifest_rel(name):
    return os.path.join(STATE, "manifests", name + ".json")


def _safe_order(moves, present):
    """Order renames so no target exists when it is renamed onto; break cycles through a temporary name."""
    ordered = []
    pending = list(moves)
    present = set(present)
    while pending:
        for move in pending:
            src, dst = move
            if dst not in present:
                ordered.append(move)
                present.discard(src)
                present.add(dst)
                pending.remove(move)
                break
        else:
            src, dst = pending.pop(0)
            temp = "%s.rotating-%s" % (src, uuid.uuid4().hex[:8])
            ordered.append((src, temp))
            present.discard(src)
            present.add(temp)
            pending.append((temp, dst))
    return ordered


def execute(layout, run_id, steps):
    makedirs(os.path.join(layout.state, "manifests"))
    makedirs(layout.trash)
    journal = {"run_id": run_id, "steps": [list(step) for step in steps], "done": 0}
    write_json_atomic(layout.journal, journal)
    _replay(layout, journal)


def recover(layout):
    """Finish a promotion that a killed run left half done. Returns the run id it belonged to, or None."""
    journal = read_json(layout.journal)
    if journal is None:
        return None
    _replay(layout, journal)
    return journal["run_id"]


def _replay(layout, journal):
    steps = journal["steps"]
    for index in range(journal["done"], len(steps)):
        kind, src, dst = steps[index]
        assert kind == "rename"
        src_abs = os.path.join(layout.id_dir, src)
        dst_abs = os.path.join(layout.id_dir, dst)
        src_there = os.path.lexists(src_abs)
        dst_there = os.path.lexists(dst_abs)
        if src_there and not dst_there:
            makedirs(os.path.dirname(dst_abs))
            os.rename(src_abs, dst_abs)
        elif src_there and dst_there:
            raise EngineError("promotion journal step %d (%s -> %s): both exist; refusing to guess. Inspect %s"
                              % (index, src, dst, layout.journal))
        # neither there: an optional step (a manifest that never existed); dst only: already done.
        journal["done"] = index + 1
        write_json_atomic(layout.journal, journal)
    os.unlink(layout.journal)


def empty_trash(layout):
    """Lazy expiry: delete what promotion moved to trash/. Safe to interrupt; the next run continues."""
    try:
        names = os.listdir(layout.trash)
    except FileNotFoundError:
        return 0
    for name in names:  # after promotion, on the run's critical path: a latency-bound removal, overlapped
        remove_tree(os.path.join(layout.trash, name), overlapped=True)
    return len(names)
