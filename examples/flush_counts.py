#!/usr/bin/python3
"""Move the page view counts that nginx keeps in Redis into a database.

ngx_http_history_module counts views with INCR <prefix>views:<id>.  Run
this job periodically (cron, a systemd timer, a Celery beat task): it adds
what was counted since the last run to a table and removes it from Redis,
so that each view reaches the table exactly once, even when nginx keeps
counting while it runs and even if the job dies halfway.

How:

1. each counter is RENAMEd to a staging key of this run (atomic: an INCR
   that comes after it starts a new counter, left for the next run);
2. the staged counts are added to the table, and the run's id recorded,
   in one database transaction;
3. the staging keys are deleted.

A run that died before step 2 committed left staging keys whose run id is
not in the table: the next run adds them.  One that died after it left
staging keys whose run id is there: the next run only deletes them.

The database here is SQLite, standing in for the application's own; in
Django the same transaction is Page.objects.filter(pk=id).update(
view_count=F('view_count') + n) and a row for the run, under
transaction.atomic().

    python3 flush_counts.py --redis-port 6379 --db counts.sqlite3

Against a Redis Cluster, name any node and add --cluster: the counters are
scanned on every master, and each staging key is made to hash to its
counter's slot (RENAME needs both keys in one slot), by naming the counter
in a hash tag: <prefix>flushing:<run>:{<prefix>views:<id>}.

    python3 flush_counts.py --cluster --redis-port 7000 --db counts.sqlite3

Needs redis-py (Debian: python3-redis; 4.x for --cluster).
"""

import argparse
import os
import re
import sqlite3
import sys
import uuid

import redis


DAILY = re.compile(rb':\d{4}-\d{2}-\d{2}$')


def connect_db(path):
    db = sqlite3.connect(path)
    db.execute('CREATE TABLE IF NOT EXISTS page_views ('
               ' page_id TEXT PRIMARY KEY, views INTEGER NOT NULL)')
    db.execute('CREATE TABLE IF NOT EXISTS flushed_runs ('
               ' run_id TEXT PRIMARY KEY)')
    db.commit()
    return db


def has_tag(key):
    """Whether a key has a hash tag, which fixes its cluster slot."""
    start = key.find(b'{')
    return start >= 0 and key.find(b'}', start + 2) > start


def staging_key(prefix, run_id, page_id, cluster):
    """The staging key of a counter, in its slot when in a cluster."""
    counter = prefix + b'views:' + page_id
    head = prefix + b'flushing:' + run_id.encode() + b':'
    if cluster and not has_tag(counter):
        return head + b'{' + counter + b'}'
    return head + page_id


def staged(r, prefix):
    """Staging keys left by runs, as {run_id: {page_id: key}}."""
    runs = {}
    tagged = b'{' + prefix + b'views:'
    for key in r.scan_iter(match=prefix + b'flushing:*', count=1000):
        rest = key[len(prefix) + len(b'flushing:'):]
        run_id, _, page_id = rest.partition(b':')
        if page_id.startswith(tagged) and page_id.endswith(b'}'):
            page_id = page_id[len(tagged):-1]
        runs.setdefault(run_id.decode(), {})[page_id] = key
    return runs


def stage(r, prefix, run_id, cluster):
    """Step 1: rename each total counter to a staging key of this run."""
    views = prefix + b'views:'
    for key in r.scan_iter(match=views + b'*', count=1000):
        page_id = key[len(views):]
        if DAILY.search(page_id):
            continue  # per-day counters expire by themselves
        target = staging_key(prefix, run_id, page_id, cluster)
        try:
            r.rename(key, target)
        except redis.ResponseError:
            pass  # gone meanwhile: nothing to move


def flush_run(r, db, run_id, keys):
    """Steps 2 and 3 for one run's staging keys."""
    done = db.execute('SELECT 1 FROM flushed_runs WHERE run_id = ?',
                      (run_id,)).fetchone()
    if not done:
        page_ids = list(keys)
        names = [keys[p] for p in page_ids]
        if not page_ids:
            values = []
        elif hasattr(r, 'mget_nonatomic'):
            values = r.mget_nonatomic(names)  # a cluster: per slot
        else:
            values = r.mget(names)
        with db:
            for page_id, value in zip(page_ids, values):
                if value is None:
                    continue
                db.execute('INSERT INTO page_views (page_id, views)'
                           ' VALUES (?, ?) ON CONFLICT(page_id) DO UPDATE'
                           ' SET views = views + excluded.views',
                           (page_id.decode(), int(value)))
            db.execute('INSERT INTO flushed_runs (run_id) VALUES (?)',
                       (run_id,))
    if os.environ.get('FLUSH_COUNTS_DIE') == 'after-commit':
        os._exit(3)
    if keys:
        r.delete(*keys.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--redis-host', default='127.0.0.1')
    parser.add_argument('--redis-port', type=int, default=6379)
    parser.add_argument('--redis-db', type=int, default=0)
    parser.add_argument('--cluster', action='store_true',
                        help='the Redis node named is part of a cluster')
    parser.add_argument('--prefix', default='history:',
                        help='history_prefix of nginx (default: history:)')
    parser.add_argument('--db', required=True, help='SQLite database file')
    args = parser.parse_args()

    if args.cluster:
        from redis.cluster import RedisCluster
        r = RedisCluster(host=args.redis_host, port=args.redis_port)
    else:
        r = redis.Redis(host=args.redis_host, port=args.redis_port,
                        db=args.redis_db)
    db = connect_db(args.db)
    prefix = args.prefix.encode()

    # what earlier runs left behind first, then this run
    for run_id, keys in staged(r, prefix).items():
        flush_run(r, db, run_id, keys)

    run_id = uuid.uuid4().hex
    stage(r, prefix, run_id, args.cluster)

    if os.environ.get('FLUSH_COUNTS_DIE') == 'after-stage':
        os._exit(3)

    flush_run(r, db, run_id, staged(r, prefix).get(run_id, {}))

    return 0


if __name__ == '__main__':
    sys.exit(main())
