"""The next batch of the worker's log for CloudWatch Logs.

worker.sh streams its log while it runs (a worker that dies keeps what it logged): every tick it asks for the next
batch of unshipped lines, puts it with ``aws logs put-log-events`` and, only when the put succeeded, stores the new
offset. The offset file holds how many bytes of the log are shipped, so nothing is sent twice (unless a put
succeeds and its answer is lost) and nothing is skipped.

PutLogEvents limits (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html):
at most 10,000 events and 1,048,576 bytes a batch (the messages in UTF-8 plus 26 bytes an event), each event at
most 256 KB. A batch here stays well inside: MAX_EVENTS events, MAX_BYTES bytes, MAX_MESSAGE_BYTES a message.
"""

import json
import time

MAX_EVENTS = 1000
MAX_BYTES = 800000  # also the most read from the log at once
EVENT_OVERHEAD = 26
MAX_MESSAGE_BYTES = 200000  # a longer line is cut (on a character boundary)


def read_offset(path):
    """How many bytes of the log are shipped: the offset file's number, or 0 if it is missing or not an offset
    (then the log is shipped again from its start: a duplicate beats a gap)."""
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return 0
    return int(text) if text.isdigit() and text.isascii() else 0


def message_of(line):
    """The event message of one log line (bytes, its newline included): UTF-8 (undecodable bytes replaced), at most
    MAX_MESSAGE_BYTES, never empty (CloudWatch refuses an empty message)."""
    message = line.rstrip(b"\n").decode("utf-8", "replace")
    encoded = message.encode("utf-8")
    if len(encoded) > MAX_MESSAGE_BYTES:
        message = encoded[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
    return message or " "


def next_batch(data, *, final, window, now_ms, max_events=MAX_EVENTS, max_bytes=MAX_BYTES):
    """(bytes of ``data`` shipped, events) for ``data``: the log from the shipped offset, at most ``window`` bytes.

    Only complete lines are shipped, unless ``final`` (the worker is stopping: the last partial line goes too) or
    the window is full without a newline (a line longer than the window is shipped in pieces, never stuck)."""
    if not final or len(data) == window:
        cut = data.rfind(b"\n")
        if cut >= 0 or len(data) < window:
            data = data[:cut + 1]
    events, used, size = [], 0, 0
    for line in data.splitlines(keepends=True):
        message = message_of(line)
        cost = len(message.encode("utf-8")) + EVENT_OVERHEAD
        if events and (len(events) >= max_events or size + cost > max_bytes):
            break
        events.append({"timestamp": now_ms, "message": message})
        used += len(line)
        size += cost
    return used, events


def write_batch(log_file, offset_file, events_file, *, final, max_events=MAX_EVENTS, max_bytes=MAX_BYTES,
                now_ms=None):
    """Writes the next batch of ``log_file`` (from the offset in ``offset_file``) to ``events_file`` as the JSON
    list put-log-events takes; returns (the offset once it is shipped, the number of events)."""
    offset = read_offset(offset_file)
    with open(log_file, "rb") as handle:
        handle.seek(offset)
        data = handle.read(max_bytes)
    used, events = next_batch(data, final=final, window=max_bytes, max_events=max_events, max_bytes=max_bytes,
                              now_ms=int(time.time() * 1000) if now_ms is None else now_ms)
    with open(events_file, "w") as handle:
        json.dump(events, handle)
    return offset + used, len(events)
