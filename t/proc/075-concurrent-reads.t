# vi:filetype=perl
#
# Many visitors read at once: all requests are sent before any answer is
# read, so the reads of each worker share its pipelined Redis connection;
# every visitor must get exactly their own list.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $visitors = 500;

my %p = proc_setup(name => 'concurrent', offset => 13, conf => <<'END');
worker_processes 2;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 2048; accept_mutex off; }
http {
    access_log off;
    history_redis 127.0.0.1:$REDIS_PORT;
    server {
        listen 127.0.0.1:$HTTP_PORT backlog=2048;
        location = /_history {
            history_serve text;
        }
        location = /page {
            history_fetch on;
            add_header X-History $history;
            try_files /nonexistent =204;
        }
    }
}
END

redis_start();

open my $pipe, '|-', "redis-cli -p $p{rport} >/dev/null" or die $!;
for my $v (1 .. $visitors) {
    print $pipe "RPUSH history:v$v $v-a $v-b $v-c\n";
}
close $pipe;

is(redis('DBSIZE'), $visitors, "$visitors lists in Redis");

nginx_start();

my @socks;

for my $v (1 .. $visitors) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5)
        or die "connect: $!";
    print $s "GET /_history HTTP/1.0\r\nHost: localhost\r\n"
             . "Cookie: sessionid=v$v\r\n\r\n";
    push @socks, $s;
}

my ($right, $wrong) = (0, 0);

for my $v (1 .. $visitors) {
    my $s = $socks[$v - 1];
    local $/;
    my $resp = <$s> // '';
    my ($body) = $resp =~ /\r\n\r\n(.*)\z/s;

    if (defined $body && $body eq "$v-a,$v-b,$v-c") {
        $right++;

    } else {
        $wrong++;
        diag("visitor v$v got: " . ($body // $resp)) if $wrong < 5;
    }
}

is($right, $visitors, "each of $visitors concurrent visitors got their own list");
is($wrong, 0, 'nobody got another list or none');
# visitors who leave while their reads are in flight: Redis is paused, the
# clients close, the requests go away; the replies that come later must
# find nothing to call, and the next reads must still be matched right

redis('CLIENT', 'PAUSE', 500, 'ALL');

my @gone;

for my $v (1 .. 100) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}")
        or die "connect: $!";
    print $s "GET /" . ($v % 2 ? 'page' : '_history') . " HTTP/1.0\r\n"
             . "Host: localhost\r\nCookie: sessionid=v$v\r\n\r\n";
    push @gone, $s;
}

select undef, undef, undef, 0.1;
close $_ for @gone;
select undef, undef, undef, 0.7;

($right, $wrong) = (0, 0);

for my $v (1 .. 50) {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}")
        or die "connect: $!";
    print $s "GET /page HTTP/1.0\r\nHost: localhost\r\n"
             . "Cookie: sessionid=v$v\r\n\r\n";
    local $/;
    my $resp = <$s> // '';

    if ($resp =~ /^X-History: \Q$v-a,$v-b,$v-c\E\r$/m) {
        $right++;

    } else {
        $wrong++;
    }
}

is($right, 50, 'after 100 abandoned reads, the next 50 are answered right');
is(log_count(qr/\[(error|alert|crit|emerg)\]/), 0, 'nothing logged');

done_testing();
