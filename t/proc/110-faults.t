# vi:filetype=perl
#
# Redis misbehaving, played by t/lib/MockRedis.pm: for each fault, pages
# are served as usual, a read gets the fallback within the timeout (or,
# for replies split at every byte, exactly the list), the link gets over
# it, and nothing worse than an error is logged, once.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use HistoryProc;
use MockRedis;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my %p = proc_setup(name => 'faults', offset => 15, conf => <<'END');
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$REDIS_PORT timeout=300ms;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location ~ ^/product/(\d+)$ {
            history_record $1;
            return 200 "product $1\n";
        }
        location = /_history {
            history_serve;
        }
        location = /stats {
            history_stats;
        }
    }
}
END

sub request {
    my $uri = shift;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return ('', 0);
    print $s "GET $uri HTTP/1.0\r\nHost: localhost\r\n"
             . "Cookie: sessionid=abc\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($body) = $resp =~ /\r\n\r\n(.*)\z/s;
    return ($body // '', time - $t0);
}

sub stat_of {
    my $name = shift;
    my ($body) = request('/stats');
    my ($v) = $body =~ /"total":\{.*"$name":(\d+)/;
    return $v // -1;
}

my %expect = (
    split     => { read => '["3","2","1"]', recovers => 1 },
    error     => { read => '[]', log => qr/redis replied with an error: "ERR mock failure"/, stat => 'errors' },
    wrongtype => { read => '[]', log => qr/WRONGTYPE/, stat => 'errors' },
    nil       => { read => '[]', log => qr/redis answered MULTI with a reply of the wrong shape, \+OK expected/, recovers => 1 },
    garbage   => { read => '[]', log => qr/redis sent an invalid reply/, recovers => 1 },
    # a close with commands still unread in the server's buffer is a reset
    close     => { read => '[]', log => qr/redis closed connection|recv\(\) failed \(104: Connection reset by peer\)/, recovers => 1 },
    silent    => { read => '[]', log => qr/redis (did not answer in time|timed out)/, recovers => 1 },
    huge      => { read => '[]', log => qr/redis sent an array of 2147483647 elements, more than the 2097152 bytes a reply may take/, recovers => 1 },
);

for my $mode (sort keys %expect) {
    my $e = $expect{$mode};

    # the handshake of a silent server times out too: keep it silent for
    # longer than nginx_start() waits, so that the read meets it
    my @modes = $mode eq 'silent' ? (($mode) x 3, 'normal') : ($mode, 'normal');

    my $mock = MockRedis->start(port => $p{rport}, modes => \@modes);
    nginx_start();

    my ($body, $t) = request('/product/5');
    is($body, "product 5\n", "$mode: the page is served");
    cmp_ok($t, '<', 0.25, "$mode: at once");

    ($body, $t) = request('/_history');
    is($body, $e->{read}, "$mode: the read gets " . $e->{read});
    cmp_ok($t, '<', 1, "$mode: within the timeout");

    if ($e->{recovers}) {
        ok(wait_for(sub { (request('/_history'))[0] eq '["3","2","1"]' }, 5),
           "$mode: the link gets over it");
    }

    if ($e->{stat}) {
        cmp_ok(stat_of($e->{stat}), '>', 0, "$mode: counted in $e->{stat}");
    }

    if ($e->{log}) {
        ok(wait_for(sub { log_count($e->{log}) >= 1 }, 2),
           "$mode: logged");
    }

    cmp_ok(log_count(qr/\[error\]/), '<=', 2, "$mode: not more than twice");
    is(log_count(qr/\[(alert|crit|emerg)\]/), 0, "$mode: no alert");

    nginx_signal('QUIT');
    wait_for(sub { !nginx_running() }, 5);
    $mock->stop;
    unlink "$p{root}/logs/error.log";
}

done_testing();
