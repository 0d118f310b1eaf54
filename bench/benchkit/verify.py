"""Correctness: after the last round every snapshot daily.k of a contender with history is compared with the
source listing of round (last - k) (metadata and content; the snapshot root's own mtime is not compared); the mirror
with the last round."""

import os

import treegen
from benchkit.contenders import INTERVAL

SKIP = (".efs-backup",)     # the engine's hidden state is never inside a snapshot


def verify_snapshots(contenders, lists, retain, last, notes):
    verify = []
    for c in contenders:
        for k in range(retain if c.history else 1):
            if last - k in lists:
                verify.append(_check(c, k, lists[last - k], last - k))
        if c.history:
            _note_extra_snapshots(c, retain, notes)
    return verify


def _check(c, k, source_listing, rnd):
    d = c.snapshot_dir(k)
    if d is None or not os.path.isdir(d):
        return {"key": c.key, "label": c.label, "snapshot": "%s.%d" % (INTERVAL, k),
                "round": rnd, "ok": False, "counts": {"snapshot missing": 1}, "examples": []}
    r = treegen.compare(source_listing, treegen.listing(d, skip_top=SKIP))
    name = "%s.%d" % (INTERVAL, k) if c.history else "mirror"
    return {"key": c.key, "label": c.label, "snapshot": name, "round": rnd,
            "ok": r["ok"], "counts": r["counts"], "examples": r["examples"]}


def _note_extra_snapshots(c, retain, notes):
    parent = os.path.dirname(c.snapshot_dir(0))
    extra = sorted(n for n in os.listdir(parent) if n.startswith(INTERVAL + ".")
                   and n not in ["%s.%d" % (INTERVAL, k) for k in range(retain)])
    if extra:
        notes.append("%s keeps extra snapshot directories: %s" % (c.label, ", ".join(extra)))
