"""The optional verification pass compares a snapshot with the source: metadata of every entry, and the
content of a sample or of every file."""

import json
import os

from treeops import TreeMutator


def test_backup_with_verification_reports_a_clean_snapshot(engine):
    TreeMutator(engine.source, 4).build()
    summary = engine.backup(retain=2, extra=("--verify", "full"))
    assert summary["status"] == "success"
    assert summary["verify"]["mismatch_count"] == 0
    assert summary["verify"]["checksummed"] > 10 and summary["verify"]["compared"] > 10


def test_verify_finds_silent_corruption_and_metadata_drift(engine):
    TreeMutator(engine.source, 4).build()
    engine.backup(retain=2)
    snapshot = engine.snapshot("daily.0")
    victims = []
    for dirpath, _dirs, files in os.walk(snapshot):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) > 10:
                victims.append(path)
    corrupt, chmodded = victims[0], victims[1]
    st = os.stat(corrupt)
    with open(corrupt, "r+b") as handle:  # same size, same mtime: only a checksum can tell
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 1]))
    os.utime(corrupt, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(chmodded, 0o111)
    proc = engine.cli("verify", "--source", engine.source, "--backup-root", engine.root, "--id", "prod",
                      "--snapshot", "daily.0", "--checksum", "full", "--json", check=2)
    report = json.loads(proc.stdout)
    assert report["mismatch_count"] == 2
    text = "\n".join(report["mismatches"])
    assert "content differs" in text and "differs in mode" in text
    clean = engine.cli("verify", "--source", engine.source, "--backup-root", engine.root, "--id", "prod",
                       "--snapshot", "daily.0", "--checksum", "none", "--json", check=2)
    assert json.loads(clean.stdout)["mismatch_count"] == 1, "without checksums only the metadata drift shows"
