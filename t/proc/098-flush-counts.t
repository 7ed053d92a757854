# vi:filetype=perl
#
# examples/flush_counts.py against the real Redis, while nginx counts: the
# job runs again and again during the traffic, dies once after staging and
# once after committing, and in the end the table holds every view exactly
# once.  Among the counters, some the module keeps for ids that are not
# UTF-8 (history_id_pattern off), and keys of other writers under the
# job's patterns, which it leaves alone.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $python = '/usr/bin/python3';

plan skip_all => 'python3-redis is not installed'
    unless system("$python -c 'import redis' 2>/dev/null") == 0;

my %p = proc_setup(name => 'flush', offset => 14, conf => <<'END');
worker_processes 2;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$REDIS_PORT;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location ~ ^/page/(\d+)$ {
            history_count $1 daily;
            return 200 "page $1\n";
        }
        location ~ ^/odd/(.+)$ {
            history_id_pattern off;
            history_count $1;
            return 200 "odd\n";
        }
    }
}
END

redis_start();
nginx_start();

my $db = "$p{root}/counts.sqlite3";
my $job = "$python examples/flush_counts.py --redis-port $p{rport} --db $db";

sub flush {
    my $die = shift;
    local $ENV{FLUSH_COUNTS_DIE} = $die // '';
    return system("$job 2>>$p{root}/flush.log") >> 8;
}

# page ids as the table has them: text, or "blob:" and the bytes in hex

sub table {
    my %views = map { split /\t/ } split /\n/,
        `$python -c 'import sqlite3, sys; [sys.stdout.buffer.write(b"%s\\t%d\\n" % (p.encode() if isinstance(p, str) else b"blob:" + p.hex().encode(), v)) for p, v in sqlite3.connect("$db").execute("SELECT page_id, views FROM page_views")]'`;
    return \%views;
}

my $views = 2000;
my %expected;
$expected{$_ % 20 + 1}++ for 1 .. $views;

# counters of ids that are not UTF-8, or are

for (['%FF', 'blob:ff', 3], ['caf%C3%A9', "caf\xc3\xa9", 2]) {
    my ($path, $page, $n) = @$_;
    for (1 .. $n) {
        my ($status) = get("/odd/$path");
        is($status, 200, "/odd/$path counted");
    }
    $expected{$page} = $n;
    $views += $n;
}

# keys of other writers where the job looks: a list, a string that is no
# count, a staging key of no run of the job's

redis('RPUSH', 'history:views:list', 'x');
redis('SET', 'history:views:junk', 'abc');
redis('SET', "history:flushing:\xff\xfe:1", '5');

my $pid = fork // die "fork: $!";

if ($pid == 0) {
    # the child must not run the END blocks that stop Redis and nginx
    for my $i (1 .. 2000) {
        my ($status) = get('/page/' . ($i % 20 + 1));
        $status == 200 or POSIX::_exit(1);
        sleep 0.004 if $i % 4 == 0;
    }
    POSIX::_exit(0);
}

my ($died, $during) = (0, 0);

for my $run (1 .. 8) {
    my $die = $run == 3 ? 'after-stage' : $run == 6 ? 'after-commit' : '';
    $died++ if flush($die) == 3;
    $during++ if kill 0, $pid;
}

waitpid($pid, 0);

is($?, 0, "2000 pages answered while the job ran");
cmp_ok($during, '>=', 6, "$during of 8 runs of the job during the traffic");
is($died, 2, 'it died twice, after staging and after committing');

# the last views land in Redis asynchronously: flush until all are counted

my $total = 0;

for (1 .. 50) {
    flush();
    $total = 0;
    $total += $_ for values %{ table() };
    last if $total >= $views;
    sleep 0.1;
}

is($total, $views, 'every view reached the table');
is_deeply(table(), \%expected, 'each page exactly once per view');
is(redis('KEYS', 'history:flushing:*'), "history:flushing:\xff\xfe:1",
   'no staging keys of the job left, the other one untouched');
is(redis('GET', "history:flushing:\xff\xfe:1"), 5, 'its value too');
is(redis('LRANGE', 'history:views:list', 0, -1), 'x', 'the list left alone');
is(redis('GET', 'history:views:junk'), 'abc', 'the string left alone');
is(join(' ', sort grep { !/^history:views:\d+:\d{4}-\d\d-\d\d$/ }
                      split /\n/, redis('KEYS', 'history:views:*')),
   join(' ', sort { $a cmp $b } map { "history:views:$_" } qw(junk list)),
   'only the per-day counters and the other keys stay in Redis');

done_testing();
