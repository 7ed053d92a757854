# vi:filetype=perl
#
# Redis away for a long run of traffic: pages are all answered, the worker's
# memory stays bounded by queue=, the oldest work is dropped and counted,
# the log does not flood; when Redis comes back, the newest work lands.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $queue = 1000;

my %p = proc_setup(name => 'outage', offset => 17, conf => <<"END");
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:\$REDIS_PORT queue=$queue;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        keepalive_requests 100000;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            return 200 "product \$1\\n";
        }
        location = /stats {
            history_stats;
        }
    }
}
END

nginx_start();

my ($worker) = nginx_workers();

sub rss {
    my ($kb) = HistoryProc::slurp("/proc/$worker/status") =~ /VmRSS:\s+(\d+)/;
    return $kb;
}

# views of product i by visitor vi, pipelined 100 at a time on one
# keep-alive connection: (answered)

sub views {
    my ($from, $to) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}")
        or die "connect: $!";
    my $ok = 0;

    for (my $i = $from; $i <= $to; $i += 100) {
        my $last = $i + 99 > $to ? $to : $i + 99;
        print $s map { "GET /product/$_?v=v$_ HTTP/1.1\r\nHost: x\r\n\r\n" }
                 $i .. $last;

        for ($i .. $last) {
            local $/ = "product $_\n";
            my $resp = <$s> // last;
            $ok++ if $resp =~ m{^HTTP/1.1 200 }m;
        }
    }

    return $ok;
}

sub stats {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}");
    print $s "GET /stats HTTP/1.0\r\nHost: x\r\n\r\n";
    local $/;
    my ($total) = <$s> =~ /"total":\{([^}]*)\}/;
    return { $total =~ /"(\w+)":(\d+)/g };
}

my $total = 30000;

is(views(1, 2000), 2000, '2000 pages answered with Redis away');
my $before = rss();

is(views(2001, $total), $total - 2000,
   ($total - 2000) . ' more pages answered');
my $after = rss();

diag("worker RSS: $before kB after 2000 views, $after kB after $total");

SKIP: {
    # AddressSanitizer keeps freed memory in quarantine (256 MB): the RSS
    # of a worker under "make test SAN=1" grows with every request
    skip 'RSS under AddressSanitizer includes its quarantine', 1
        if $p{nginx} =~ /nginx-san$/;

    cmp_ok($after - $before, '<', 1024, 'memory bounded by the queue');
}

my $st = stats();
is($st->{queued}, $total, "$total units accepted");
is($st->{queue}, $queue, "$queue waiting");
is($st->{dropped}, $total - $queue, ($total - $queue) . ' dropped, counted');

cmp_ok(log_count(qr/\[error\]/), '<=', 3, 'the log did not flood');
ok(log_count(qr/redis queue is full \($queue commands\), dropping the oldest/),
   'the drops are logged');

redis_start();

ok(wait_for(sub { redis('DBSIZE') == $queue }, 6),
   "Redis back: the $queue newest views land");
is(redis('LRANGE', "history:v$total", 0, -1), $total, 'the newest is there');
is(redis('EXISTS', 'history:v1'), 0, 'the oldest was dropped');

done_testing();
