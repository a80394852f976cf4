"""The capacity model: from measured figures, what each Heroku dyno size and Key-Value Store plan holds, and what
S3's requests cost. Pure arithmetic, so that the README's table follows from the numbers it states."""

from dataclasses import dataclass

from chatbot.live import FINISHED_TTL

# Heroku's dyno sizes: (name, memory quota in MB, vCPUs assumed). A dyno past its quota swaps (R14). Heroku gives
# compute in shares (devcenter.heroku.com/articles/dyno-types, 2024): 1x, 2x, 12x, 50x; Performance-L's 50x is
# its 8 dedicated vCPUs, so 1x is taken as 0.16 vCPU, the share a shared dyno is sure of (it may burst to 4x).
DYNOS = [
    ("Eco / Basic / Standard-1X", 512, 0.16),
    ("Standard-2X", 1024, 0.32),
    ("Performance-M", 2560, 2),
    ("Performance-L", 14336, 8),
]
# Heroku Key-Value Store plans: (name, connections, memory in MB).
REDIS_PLANS = [("mini", 20, 25), ("premium-0", 40, 50), ("premium-2", 200, 250)]
# Room left on a dyno for what the measurement does not see: fragmentation over days, a `heroku run` beside it.
HEADROOM = 0.15
# Connections kept free on a Redis plan: one `heroku run` console or `redis-cli`.
SPARE_CONNECTIONS = 1
# Finished logs stay in Redis this long.
FINISHED_MINUTES = FINISHED_TTL / 60
# S3 Standard list prices, us-east-1, as of 2025 (aws.amazon.com/s3/pricing): per 1,000 requests, in dollars.
S3_PRICES = {"PUT": 0.005, "LIST": 0.005, "GET": 0.0004, "DELETE": 0.0}
S3_PRICES_DATE = "2025 (us-east-1)"


@dataclass
class Measured:
    """The figures the model is built from (MB for process memory, bytes for Redis, seconds for time)."""

    master_mb: float  # gunicorn's master process
    worker_mb: float  # one idle worker, warmed by a reply
    stream_mb: float  # one more open stream while its reply is written (its thread and its job's)
    cpu_seconds: float  # the worker's CPU per message and its reply
    redis_live_bytes: float  # Redis memory per reply being written
    redis_finished_bytes: float  # Redis memory per finished reply, held FINISHED_MINUTES
    redis_base_bytes: float  # an idle Redis
    cap: int  # MAX_OPEN_STREAMS_PER_PROCESS
    connections: int  # Redis connections per process
    reply_seconds: float  # how long a reply streams (an assumption, stated with the table)


def streams_on(measured, quota_mb, processes):
    """How many streams `processes` worker processes hold within quota_mb: the lesser of their caps and what
    memory leaves once the master and the idle workers are counted."""
    free = quota_mb * (1 - HEADROOM) - measured.master_mb - processes * measured.worker_mb
    return max(0, min(processes * measured.cap, int(free / measured.stream_mb)))


def processes_for(vcpus):
    """Worker processes for a dyno (WEB_CONCURRENCY): one per vCPU (a process runs Python on one core at a
    time), and the default 2 at least."""
    return max(2, round(vcpus))


def messages_per_minute(measured, streams):
    """Messages a minute that `streams` open at once carry, each open for a reply's length."""
    return streams * 60 / measured.reply_seconds


def dyno_rows(measured):
    """One row per dyno size: (name, quota MB, vCPUs, processes, streams its memory holds at the default
    threads, messages a minute, what bounds them: "CPU" or "streams")."""
    rows = []
    for name, quota, vcpus in DYNOS:
        processes = processes_for(vcpus)
        streams = streams_on(measured, quota, processes)
        by_streams, by_cpu = messages_per_minute(measured, streams), vcpus * 60 / measured.cpu_seconds
        bound = "CPU" if by_cpu < by_streams else "streams"
        rows.append((name, quota, vcpus, processes, streams, min(by_streams, by_cpu), bound))
    return rows


def redis_rows(measured):
    """One row per Key-Value Store plan: (name, connections, MB, processes it connects, messages a minute its
    memory holds). At a steady rate r a minute, r × reply_seconds / 60 replies are being written and r ×
    FINISHED_MINUTES finished ones are held."""
    rows = []
    per_message = (
        measured.redis_live_bytes * measured.reply_seconds / 60 + measured.redis_finished_bytes * FINISHED_MINUTES
    )
    for name, connections, megabytes in REDIS_PLANS:
        processes = (connections - SPARE_CONNECTIONS) // measured.connections
        per_minute = (megabytes * 1024 * 1024 - measured.redis_base_bytes) / per_message
        rows.append((name, connections, megabytes, processes, per_minute))
    return rows


def s3_cost(requests):
    """Dollars per 1,000 messages for requests, a dict of operation (PUT, GET, LIST, DELETE) -> count per message."""
    return sum(S3_PRICES[operation] * count for operation, count in requests.items())


def tables(measured):
    """The two Markdown tables of the capacity model: dynos, and Key-Value Store plans."""
    lines = [
        "| dyno | memory | vCPU assumed | processes | streams open at once | messages a minute | bound by |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, quota, vcpus, processes, streams, per_minute, bound in dyno_rows(measured):
        lines.append(f"| {name} | {quota:,} MB | {vcpus:g} | {processes} | {streams:,} | {per_minute:,.0f} | {bound} |")
    lines += ["", "| Key-Value Store plan | connections | memory | processes it connects | messages a minute |"]
    lines.append("|---|---|---|---|---|")
    for name, connections, megabytes, processes, per_minute in redis_rows(measured):
        lines.append(f"| {name} | {connections} | {megabytes} MB | {processes} | {per_minute:,.0f} |")
    return "\n".join(lines)
