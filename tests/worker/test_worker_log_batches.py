"""efs_backup_worker.log_batches: the worker's log cut into PutLogEvents batches, from a real log file on disk.

Shipping all batches until none is left must send every line exactly once, in order, whatever the lines (long,
empty, undecodable, multibyte), and each batch must stay within CloudWatch's limits
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html)."""

import json

import pytest

from efs_backup_worker.log_batches import (EVENT_OVERHEAD, MAX_BYTES, MAX_EVENTS, MAX_MESSAGE_BYTES, message_of,
                                           next_batch, read_offset, write_batch)

# PutLogEvents: 10,000 events and 1,048,576 bytes a batch (messages in UTF-8 + 26 bytes an event), 256 KB an event.
API_MAX_EVENTS, API_MAX_BYTES, API_MAX_EVENT_BYTES = 10000, 1048576, 256 * 1024
NOW = 1764288000000


@pytest.fixture
def files(tmp_path):
    return tmp_path / "worker.log", tmp_path / "shipped.offset", tmp_path / "events.json"


def ship_all(files, final=False, **limits):
    """Ships batches as worker.sh does (the offset moves after each 'put'); returns the batches."""
    log, offsets, events = files
    batches = []
    while True:
        next_offset, count = write_batch(log, offsets, events, final=final, now_ms=NOW, **limits)
        batch = json.loads(events.read_text())
        assert len(batch) == count
        if not count:
            return batches
        batches.append(batch)
        offsets.write_text("%d\n" % next_offset)


def messages(batches):
    return [event["message"] for batch in batches for event in batch]


def test_complete_lines_are_shipped_once_and_a_partial_line_waits(files):
    log, offsets, _ = files
    log.write_bytes(b"one\ntwo\nthr")
    assert messages(ship_all(files)) == ["one", "two"]
    assert offsets.read_text() == "8\n"
    with open(log, "ab") as handle:
        handle.write(b"ee\nfour\n")
    assert messages(ship_all(files)) == ["three", "four"]
    assert messages(ship_all(files)) == [], "nothing twice"


def test_the_final_flush_ships_the_last_partial_line(files):
    log, offsets, _ = files
    log.write_bytes(b"done\nno newline at the end")
    assert messages(ship_all(files, final=True)) == ["done", "no newline at the end"]
    assert int(offsets.read_text()) == log.stat().st_size


def test_every_event_has_the_tick_time_and_a_non_empty_message(files):
    log, _, _ = files
    log.write_bytes(b"a\n\n\nb\n")
    (batch,) = ship_all(files)
    assert batch == [{"timestamp": NOW, "message": m} for m in ("a", " ", " ", "b")]


def test_batches_respect_the_event_and_byte_limits_and_lose_nothing(files):
    log, _, _ = files
    lines = ["line %05d %s" % (number, "x" * (number % 300)) for number in range(5000)]
    log.write_text("".join(line + "\n" for line in lines))
    batches = ship_all(files, max_events=700, max_bytes=60000)
    assert messages(batches) == lines
    for batch in batches:
        assert len(batch) <= 700
        assert sum(len(e["message"].encode()) + EVENT_OVERHEAD for e in batch) <= 60000


def test_the_default_limits_are_within_the_api_limits(files):
    assert MAX_EVENTS <= API_MAX_EVENTS and MAX_BYTES <= API_MAX_BYTES
    assert MAX_MESSAGE_BYTES + EVENT_OVERHEAD <= API_MAX_EVENT_BYTES
    log, _, _ = files
    log.write_text("".join("%d\n" % n for n in range(2500)))
    batches = ship_all(files)
    assert [len(b) for b in batches] == [1000, 1000, 500]


def test_a_line_longer_than_the_window_is_shipped_in_pieces_never_stuck(files):
    log, _, _ = files
    log.write_bytes(b"a" * 25 + b"\nnext\n")
    batches = ship_all(files, max_bytes=10)
    assert messages(batches) == ["a" * 10, "a" * 10, "a" * 5, "next"]


def test_an_overlong_multibyte_line_is_cut_to_the_message_limit_in_bytes():
    line = ("€" * 100000).encode() + b"\n"  # 300,000 bytes, 100,000 characters
    message = message_of(line)
    assert len(message.encode("utf-8")) <= MAX_MESSAGE_BYTES
    assert message == "€" * (MAX_MESSAGE_BYTES // 3), "cut on a character boundary"


def test_undecodable_bytes_are_replaced_not_fatal(files):
    log, _, _ = files
    log.write_bytes(b"ok\n\xff\xfe broken\ncaf\xc3\xa9\n")
    assert messages(ship_all(files)) == ["ok", "\ufffd\ufffd broken", "café"]


def test_a_line_of_invalid_bytes_still_fits_one_event():
    message = message_of(b"\xff" * 300000 + b"\n")  # each replacement character takes 3 bytes
    assert len(message.encode("utf-8")) <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize("content, offset", [
    (None, 0), ("", 0), ("12\n", 12), ("-5\n", 0), ("abc", 0), ("1e3", 0), ("١٢", 0), ("\xff", 0),
])
def test_an_offset_file_that_is_missing_or_not_an_offset_means_from_the_start(tmp_path, content, offset):
    path = tmp_path / "shipped.offset"
    if content is not None:
        path.write_bytes(content.encode("utf-8", "surrogateescape") if content != "\xff" else b"\xff")
    assert read_offset(path) == offset


def test_a_corrupt_offset_ships_again_rather_than_skipping(files):
    log, offsets, _ = files
    log.write_bytes(b"one\ntwo\n")
    offsets.write_text("garbage")
    assert messages(ship_all(files)) == ["one", "two"]


def test_an_offset_past_the_end_ships_nothing(files):
    log, offsets, events = files
    log.write_bytes(b"one\n")
    offsets.write_text("100")
    assert write_batch(log, offsets, events, final=True, now_ms=NOW) == (100, 0)


def test_next_batch_counts_the_bytes_it_took():
    used, events = next_batch(b"ab\ncd\nef", final=False, window=100, now_ms=NOW)
    assert used == 6 and [e["message"] for e in events] == ["ab", "cd"]
