"""Clickstream over real systems: clicks from a Redis stream, page views per ten minutes,
into a PostgreSQL table, exactly once.

    python examples/clickstream_pipeline.py            # Redis on 6379, PostgreSQL on 5432
    python examples/clickstream_pipeline.py --clicks 20000 --redis redis://host:6379/0 \\
        --postgres postgresql://app@db/app

It writes the synthetic clicks of ``examples/clickstream.py`` into a Redis stream (as a web
front end would), then runs the flow: ``RedisStreamSource`` (a consumer group; entries
acknowledged once a checkpoint holding them commits) → keyed by page → tumbling windows
of ten minutes of event time, counting views → ``PostgresTable`` (rows committed with the
checkpoints, exactly once). The run checkpoints every second into an SQLite store; kill it
and run ``riverbed runs resume RUN --store ...`` or this script with ``--resume RUN``, and
the table still gets every window once. The source stops once the stream is idle for a
second (``idle_timeout``); without it, the flow would wait for more clicks forever.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any

import riverbed as rb
from riverbed.connectors import PostgresTable, RedisStreamSource

try:
    from examples.clickstream import CLICKS, SEED, STRAGGLE, TEN_MINUTES, clicks, page_of, time_of
except ImportError:  # run as a script: examples/ is on the path, not the repository
    from clickstream import (  # type: ignore[no-redef]
        CLICKS,
        SEED,
        STRAGGLE,
        TEN_MINUTES,
        clicks,
        page_of,
        time_of,
    )

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
STREAM = "riverbed-example-clicks"
TABLE = "riverbed_example_page_views"


def produce(redis_url: str, n: int, seed: int) -> None:
    """Write ``n`` clicks into the stream, afresh (as the site's front end would)."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.delete(STREAM)
    pipe = conn.pipeline(transaction=False)
    for click in clicks(n, seed):
        pipe.xadd(STREAM, {"data": json.dumps(click)})
    pipe.execute()
    conn.close()


def create_table(postgres_url: str) -> None:
    """The table of page views per window, empty."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(
            f"CREATE TABLE {TABLE} (page TEXT, window_start DOUBLE PRECISION, views INTEGER, "
            "PRIMARY KEY (page, window_start))"
        )


def as_row(item: Any) -> dict[str, Any] | None:
    """A window's count as a row; a click too late to count (``rb.Late``) as None."""
    page, result = item
    if not isinstance(result, tuple):
        return None
    window, count = result
    return {"page": page, "window_start": window.start, "views": count}


def is_row(row: dict[str, Any] | None) -> bool:
    """Keep the rows, drop the late clicks."""
    return row is not None


def build(redis_url: str, postgres_url: str) -> rb.Flow:
    """Redis stream → page views per ten minutes → PostgreSQL table."""
    flow = rb.Flow("clickstream-pipeline")
    source = RedisStreamSource(redis_url, STREAM, group="page-views", idle_timeout=1.0)
    views = (
        flow.source(source, name="clicks")
        .key_by(page_of, name="by_page")
        .window(
            rb.Tumbling(TEN_MINUTES),
            rb.Count(),
            event_time=time_of,
            max_delay=STRAGGLE,
            late=rb.LatePolicy.SIDE,
            name="views",
        )
    )
    table = PostgresTable(
        postgres_url, TABLE, ["page", "window_start", "views"], upsert_on=["page", "window_start"]
    )
    views.map(as_row, name="row").filter(is_row, name="counted").sink(table, name="table")
    return flow


def report(postgres_url: str) -> dict[str, int]:
    """Views per page, as the table holds them."""
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(f"SELECT page, sum(views) FROM {TABLE} GROUP BY page").fetchall()
    return {page: int(total) for page, total in sorted(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=CLICKS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--redis", default=REDIS, help=f"Redis URL ({REDIS})")
    parser.add_argument("--postgres", default=POSTGRES, help=f"PostgreSQL URL ({POSTGRES})")
    parser.add_argument("--store", help="the run's store (default: a new SQLite file)")
    parser.add_argument("--resume", help="resume this run instead of starting afresh")
    args = parser.parse_args()
    store = args.store or f"sqlite:///{tempfile.mkdtemp()}/runs.db"
    if args.resume is None:
        produce(args.redis, args.clicks, args.seed)
        create_table(args.postgres)
    flow = build(args.redis, args.postgres)
    result = flow.run(store=store, checkpoint_interval=1.0, resume=args.resume)
    print("views per page:", report(args.postgres))
    print(result.summary())


if __name__ == "__main__":
    main()
