# vi:filetype=perl
#
# Reload (HUP) and graceful stop (QUIT) while views are still queued:
# Redis is paused (CLIENT PAUSE) so that nothing is answered, the pages are
# answered anyway, nginx is told to reload or stop, and once Redis resumes
# every view lands and the old workers exit promptly.  Also: a worker that
# is killed is replaced by one that records.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my %p = proc_setup(name => 'reload', offset => 12, conf => <<'END');
worker_processes 2;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; accept_mutex off; }
http {
    access_log off;
    history_redis 127.0.0.1:$REDIS_PORT timeout=5s;
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

redis_start();
nginx_start();

my @old = nginx_workers();
is(scalar @old, 2, 'two workers');

for my $case (['HUP', 'reload'], ['QUIT', 'stop']) {
    my ($sig, $tag) = @$case;

    redis('FLUSHALL');
    redis('CLIENT', 'PAUSE', 2000, 'ALL');
    my $paused = time;

    my ($ok, $slowest) = views(1, 100, $tag);
    is($ok, 100, "$tag: 100 pages answered while Redis is paused");
    cmp_ok($slowest, '<', 0.5, "$tag: no page waited for the paused Redis");

    @old = nginx_workers();
    nginx_signal($sig);
    my $sent = time;

    # Redis answers nothing while paused: the views are still queued
    cmp_ok(time - $paused, '<', 2, "$tag: $sig sent while Redis is paused");

    my $landed = wait_for(sub { redis('DBSIZE') == 100 }, 5);
    ok(defined $landed, "$tag: all 100 queued views landed, 0 lost");
    diag(sprintf "$tag: got %s of 100 views, the last %.2f s after $sig",
                 redis('DBSIZE'), time - $sent);

    my $gone = wait_for(sub { !grep { kill 0, $_ } @old }, 5);
    ok(defined $gone, "$tag: the old workers exited");
    diag(sprintf "$tag: old workers gone %.2f s after $sig", time - $sent);

    if ($sig eq 'HUP') {
        my ($status) = get('/product/5?v=new');
        is($status, 200, 'the new workers answer');
        ok(wait_for(sub { redis('LRANGE', 'history:new', 0, -1) eq '5' }, 2),
           'the new workers record');
    }
}

ok(wait_for(sub { !nginx_running() }, 5), 'nginx has stopped');

# a killed worker is replaced, and its replacement records

redis('FLUSHALL');
nginx_start();

my @w = nginx_workers();
kill 'KILL', $w[0];
ok(wait_for(sub { my @n = nginx_workers(); @n == 2 && !grep { $_ == $w[0] } @n },
            5), 'the killed worker is replaced');

my ($ok) = views(1, 40, 'after-kill');
is($ok, 40, '40 pages answered after the kill');
ok(wait_for(sub { redis('DBSIZE') == 40 }, 3),
   'all views recorded, by both workers');

is(log_count(qr/\[(alert|crit|emerg)\]/), 1,
   'the only alert is nginx reporting the killed worker');
like(HistoryProc::slurp("$p{root}/logs/error.log"),
     qr/exited on signal 9/, 'which was the killed one');

done_testing();
