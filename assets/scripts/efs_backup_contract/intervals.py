"""The snapshot intervals: ``<backup-root>/<backup-id>/<interval>.<n>``, in rotation order."""

INTERVALS = ("hourly", "daily", "weekly", "monthly")

# The nominal length of each interval (a month counted as 31 days): how old a snapshot may get before it is stale.
INTERVAL_SECONDS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 31 * 86400}
