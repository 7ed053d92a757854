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

Keys are bytes throughout, as Redis has them: a page id is whatever nginx
counted (with history_id_pattern off, any bytes but control bytes,
spaces and commas), and goes into the table as text when it is UTF-8,
as a BLOB when it is not.  What the job did not write is left alone: a
key under <prefix>views: that is not a counter (another writer's), and a
key under <prefix>flushing: whose run id is not one of the job's.

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
RUN_ID = re.compile(rb'[0-9a-f]{32}')
INTEGER = re.compile(rb'-?[0-9]{1,19}')


def glob_escape(prefix):
    """The prefix as a literal in a SCAN MATCH pattern."""
    return re.sub(rb'([*?\[\]\\])', rb'\\\1', prefix)


def page_key(page_id):
    """The table's key of a page: text if it is UTF-8, bytes if not."""
    try:
        return page_id.decode('utf-8')
    except UnicodeDecodeError:
        return page_id


def is_counter(r, key):
    """A counter as nginx keeps it: a string holding an integer."""
    if r.type(key) != b'string':
        return False
    return INTEGER.fullmatch(r.get(key) or b'') is not None


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
    flushing = prefix + b'flushing:'
    tagged = b'{' + prefix + b'views:'
    for key in r.scan_iter(match=glob_escape(flushing) + b'*', count=1000):
        run_id, sep, page_id = key[len(flushing):].partition(b':')
        if not sep or not RUN_ID.fullmatch(run_id):
            continue  # not a staging key of this job: not ours to touch
        if page_id.startswith(tagged) and page_id.endswith(b'}'):
            page_id = page_id[len(tagged):-1]  # a cluster's staging key
        runs.setdefault(run_id.decode('ascii'), {})[page_id] = key
    return runs


def stage(r, prefix, run_id, cluster):
    """Step 1: rename each total counter to a staging key of this run."""
    views = prefix + b'views:'
    for key in r.scan_iter(match=glob_escape(views) + b'*', count=1000):
        page_id = key[len(views):]
        if DAILY.search(page_id):
            continue  # per-day counters expire by themselves
        if not is_counter(r, key):
            continue  # another writer's key: not ours to move
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
                if not INTEGER.fullmatch(value):
                    print('flush_counts: %r holds %r, not a count: left out'
                          % (keys[page_id], value[:64]), file=sys.stderr)
                    continue
                db.execute('INSERT INTO page_views (page_id, views)'
                           ' VALUES (?, ?) ON CONFLICT(page_id) DO UPDATE'
                           ' SET views = views + excluded.views',
                           (page_key(page_id), int(value)))
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
