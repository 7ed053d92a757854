# vi:filetype=perl
#
# Redis absent at start, started later, then killed (kill -9) and shut
# down (SHUTDOWN NOSAVE) mid-traffic, and restarted each time:
# pages are answered at once throughout, views queued while Redis was away
# land when it returns, and the error log gets one line per outage.
#
# A plain script: it starts its own redis-server and nginx on ports of
# its own, so it runs the same with any Test::Nginx.

use strict;
use warnings;

use Test::More;
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my %p = proc_setup(name => 'restart', offset => 11, conf => <<'END');
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$REDIS_PORT timeout=500ms;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location ~ ^/product/(\d+)$ {
            history_key $arg_v;
            history_record $1;
            return 200 "product $1\n";
        }
    }
}
END

nginx_start();

# 1. Redis is not there

my ($ok, $slowest) = views(1, 50, 'down');
is($ok, 50, 'all 50 pages answered while Redis is down');
cmp_ok($slowest, '<', 0.5, 'no page waited for Redis');
diag(sprintf 'slowest page while Redis is down: %.1f ms', $slowest * 1000);

sleep 1;

is(log_count(qr/\[error\].*connect\(\) failed/), 1,
   'one error line for the outage, however many attempts');

# 2. Redis comes back: what was queued lands

redis_start();

my $recovery = wait_for(sub { redis('DBSIZE') == 50 }, 6);
ok(defined $recovery, 'the 50 views queued while Redis was down landed');
diag(sprintf 'queued views landed %.2f s after Redis started',
             $recovery // -1);

is(redis('LRANGE', 'history:down7', 0, -1), '7', 'in the right list');
is(log_count(qr/\[notice\].*redis connection restored/), 1,
   'the recovery is logged');

# 3. Redis is killed mid-traffic and restarted

redis_kill();
($ok, $slowest) = views(1, 30, 'killed');
is($ok, 30, 'all 30 pages answered after Redis was killed');
cmp_ok($slowest, '<', 0.5, 'no page waited for the dead Redis');

redis_start();

$recovery = wait_for(sub { redis('DBSIZE') == 30 }, 6);
ok(defined $recovery, 'the views made while Redis was dead landed');
diag(sprintf 'landed %.2f s after the restart', $recovery // -1);

($ok) = views(100, 100, 'after');
ok(wait_for(sub { redis('LRANGE', 'history:after100', 0, -1) eq '100' }, 2),
   'a new view lands at once');

# 4. Redis is shut down (SHUTDOWN NOSAVE) mid-traffic and restarted

redis('FLUSHALL');
redis('SHUTDOWN', 'NOSAVE');
($ok, $slowest) = views(1, 30, 'shutdown');
is($ok, 30, 'all 30 pages answered after SHUTDOWN NOSAVE');
cmp_ok($slowest, '<', 0.5, 'no page waited');

redis_start();

$recovery = wait_for(sub { redis('DBSIZE') == 30 }, 6);
ok(defined $recovery, 'the views made while Redis was shut down landed');
diag(sprintf 'landed %.2f s after the restart', $recovery // -1);

# 5. nothing worse than errors was logged

is(log_count(qr/\[(alert|crit|emerg)\]/), 0, 'no alert, crit or emerg');

nginx_signal('QUIT');
ok(wait_for(sub { !nginx_running() }, 5), 'nginx stops at once');

done_testing();
