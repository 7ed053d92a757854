# vi:filetype=perl
#
# TLS to Redis: Debian's redis-server with --tls-port only, certificates
# made here by openssl (t/lib/RedisTopology.pm).  Views are recorded and
# served over TLS, verified against the test CA and the IP address of the
# server, or a name set by history_redis_ssl_name; a certificate of another
# CA, of another name, or expired, is refused, logged once however often
# the link tries again, and pages are answered as with Redis down;
# tls-auth-clients yes with and without a client certificate; a Redis
# killed and restarted mid-traffic is reconnected with a new handshake,
# and a connection Redis drops resumes the TLS session; close_notify is
# sent on reload and stop (Redis logs "unexpected eof" otherwise); views
# that end together leave in one SSL_write(); a server that never answers
# the handshake times out within connect_timeout; history_stats shows it
# all.
#
# A plain script with its own redis-servers (TEST_NGINX_TLS_PORT and the
# next ports) and nginx (TEST_NGINX_SERVER_PORT + 20).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use HistoryProc;
use RedisTopology;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $base = tls_base();
my $root = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot") . '-tls';
my $certs = make_certs("$root-certs");
my $n = 0;
my %p;

# one nginx per case: history_redis is one per configuration

sub nginx_with {
    my ($port, $more, $level) = @_;

    if (%p) {
        nginx_signal('QUIT');
        wait_for(sub { !nginx_running() }, 5);
    }

    $n++;
    %p = proc_setup(name => "tls$n", offset => 20, conf => <<"END");
worker_processes 1;
error_log logs/error.log ${\ ($level || 'info')};
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$port tls connect_timeout=2s timeout=2s;
    history_redis_ssl_trusted_certificate $certs->{ca};
    $more
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            return 200 "product \$1\\n";
        }
        location = /history {
            history_key \$arg_v;
            history_serve;
        }
        location = /stats {
            history_stats;
        }
    }
}
END

    nginx_start();
}

sub body {
    my $uri = shift;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return '';
    print $s "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    $resp =~ s/^.*?\r\n\r\n//s;
    return $resp;
}

sub stat_of {
    my $name = shift;
    my $s = body('/stats');
    return $s =~ /"total":\{.*?"\Q$name\E":(\d+)/ ? $1 : -1;
}

sub list {
    my ($srv, $key) = @_;
    my $r = eval {
        RedisTopology::connect_to(port => $srv->port, tls => $certs,
                                  noverify => 1)->call('LRANGE', $key, 0, -1)
    };
    return ref $r eq 'ARRAY' ? join(',', @$r) : '';
}

sub server {
    my (%a) = @_;
    return start_tls_server(dir => "$root-redis-$a{port}", certs => $certs,
                            args => ['--loglevel', 'verbose'], %a);
}


# 1. recorded and served over TLS, the certificate verified by IP address

my $good = server(port => $base, auth_clients => 'no');

nginx_with($base, '', 'debug');

my ($ok, $slowest) = views(1, 20, 'tls');
is($ok, 20, 'pages answered');
ok(wait_for(sub { list($good, 'history:tls7') eq '7' }, 3),
   'a view landed in the TLS-only Redis');

get('/product/8?v=tls7');
ok(wait_for(sub { list($good, 'history:tls7') eq '8,7' }, 3),
   'and the next one');
is(body('/history?v=tls7'), qq{["8","7"]}, 'served over TLS');

is(stat_of('tls'), 1, 'history_stats: tls 1');
is(stat_of('tls_handshakes'), 1, 'history_stats: one handshake');
is(stat_of('tls_failures'), 0, 'history_stats: no failure');
is(log_count(qr/\[(error|alert|crit|emerg)\]/), 0, 'nothing logged');


# 1b. coalesced: ten views that end in one turn of the event loop (ten
# keep-alive clients' requests read at once: the worker was stopped while
# they arrived) are written with one SSL_write(), through nginx's SSL
# buffer

sub ask {
    my ($s, $uri) = @_;
    print $s "GET $uri HTTP/1.1\r\nHost: localhost\r\n\r\n";
}

sub answer {
    my $s = shift;
    my $got = '';
    while ($got !~ /\r\n\r\n.*\n/s) {
        sysread($s, $got, 4096, length $got) or last;
    }
    return $got =~ /^HTTP\/1\.1 200/ ? 1 : 0;
}

my @c = map {
    IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}", Timeout => 5)
        or die "connect: $!";
} 1 .. 10;
ask($c[$_ - 1], "/product/$_?v=warm$_") for 1 .. 10;
my $answered = grep { answer($_) } @c;

my ($worker) = nginx_workers();
my $before = slurp("$p{root}/logs/error.log");
kill 'STOP', $worker;
ask($c[$_ - 1], "/product/$_?v=burst") for 1 .. 10;
sleep 0.3;
kill 'CONT', $worker;
$answered += grep { answer($_) } @c;
close $_ for @c;

is($answered, 20, 'ten keep-alive clients answered twice');
ok(wait_for(sub { my @l = split /,/, list($good, 'history:burst');
                  @l == 5 }, 3),
   'their views landed (history_length 5)');

my $log = substr(slurp("$p{root}/logs/error.log"), length $before);
my @writes = $log =~ /SSL_write: (\d+)/g;
my ($largest) = sort { $b <=> $a } @writes;
cmp_ok($largest // 0, '>=', 10 * 150,
       'written together: one SSL_write() of ten units');
diag("SSL_write() sizes: @writes");


# 2. a connection Redis drops: a new handshake that resumes the session

$good->call('CLIENT', 'KILL', 'TYPE', 'normal');
views(30, 30, 'drop');
ok(wait_for(sub { list($good, 'history:drop30') eq '30' }, 3),
   'recorded again after Redis dropped the connection');
ok(wait_for(sub { stat_of('tls_handshakes') == 2 }, 3), 'a new handshake');
is(stat_of('tls_reused'), 1, 'which resumed the TLS session');


# 3. Redis killed and restarted mid-traffic: pages go on, the views made
# meanwhile land, with a full handshake (a new process knows no session)

$good->kill;
($ok, $slowest) = views(1, 30, 'killed');
is($ok, 30, 'all pages answered while Redis is dead');
cmp_ok($slowest, '<', 0.5, 'no page waited for it');

$good->start;
ok(wait_for(sub { list($good, 'history:killed30') eq '30' }, 6),
   'views made while Redis was dead landed after the restart');
ok(wait_for(sub { stat_of('tls_handshakes') == 3 }, 3),
   'a new handshake');
is(stat_of('tls_reused'), 1, 'a full one: no session to resume');
is(stat_of('tls'), 1, 'TLS is up again');


# 4. close_notify on reload and on stop: Redis logs no "unexpected eof"
# (nothing else talks to Redis meanwhile, and the test's own connections,
# which close without close_notify, are logged before the mark)

sleep 0.5;
my $mark = -s "$root-redis-$base/redis.log";

views(40, 40, 'reload');
sleep 0.5;
nginx_signal('HUP');
sleep 1;
views(41, 41, 'reload');
sleep 0.5;
nginx_signal('QUIT');
ok(wait_for(sub { !nginx_running() }, 5), 'nginx stops');
sleep 0.3;

my $rlog = substr(slurp("$root-redis-$base/redis.log"), $mark);
my $closes = () = $rlog =~ /Reading from client|Client closed connection/g;
is($closes, 2, 'Redis saw the two workers\' connections close');
unlike($rlog, qr/unexpected eof/, 'with close_notify: no "unexpected eof"');

is(list($good, 'history:reload40'), '40', 'recorded before the reload');
is(list($good, 'history:reload41'), '41', 'recorded by the new worker');
%p = ();


# 5. history_redis_ssl_name: a DNS name of the certificate, sent as SNI

nginx_with($base, "history_redis_ssl_name localhost;\n"
                  . "    history_redis_ssl_server_name on;");
views(50, 50, 'name');
ok(wait_for(sub { list($good, 'history:name50') eq '50' }, 3),
   'history_redis_ssl_name localhost: verified, recorded');
is(log_count(qr/\[(error|alert|crit|emerg)\]/), 0,
   'history_redis_ssl_name localhost: nothing logged');

nginx_with($base, 'history_redis_ssl_name redis.example;');
views(51, 51, 'name');
ok(wait_for(sub { stat_of('tls_failures') >= 1 }, 3),
   'history_redis_ssl_name redis.example: refused');
is(log_count(qr/certificate does not match "redis\.example"/), 1,
   'history_redis_ssl_name redis.example: logged');
is(list($good, 'history:name51'), '', 'history_redis_ssl_name redis.example: '
                                      . 'nothing written');
nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 5);
%p = ();


# 6. refused certificates: another CA, another name, expired; each
# logged once however often the link tries, pages as with Redis down

my @bad = (
    [ 'other', qr/certificate verify error: \(21:unable to verify the/,
      'a certificate of another CA' ],
    [ 'wrongname', qr/certificate does not match "127\.0\.0\.1"/,
      'a certificate of another name' ],
    [ 'expired', qr/certificate verify error: \(10:certificate has expired/,
      'an expired certificate' ],
);

my $port = $base + 1;

for my $b (@bad) {
    my ($cert, $re, $what) = @$b;

    my $srv = server(port => $port, cert => $cert, auth_clients => 'no');

    nginx_with($port, '');

    my $t0 = time;
    ($ok) = views(1, 10, $cert);
    is($ok, 10, "$what: pages answered");
    is(body("/history?v=${cert}1"), '[]', "$what: the fallback at once");
    cmp_ok(time - $t0, '<', 2, "$what: no request waited");

    ok(wait_for(sub { stat_of('tls_failures') >= 3 }, 5),
       "$what: refused again and again");
    is(stat_of('tls_handshakes'), 0, "$what: never used");
    is(stat_of('tls'), 0, "$what: TLS is not up");
    is(log_count($re), 1, "$what: logged once, with the reason");
    is(RedisTopology::connect_to(port => $port, tls => $certs, noverify => 1)
           ->call('DBSIZE'), 0, "$what: nothing written");

    $srv->stop;
    $port++;
}


# 7. verify off: the certificate of another CA is taken

my $other = server(port => $port, cert => 'other', auth_clients => 'no');

nginx_with($port, 'history_redis_ssl_verify off;');
views(5, 5, 'noverify');
ok(wait_for(sub { list($other, 'history:noverify5') eq '5' }, 3),
   'history_redis_ssl_verify off: recorded');
$other->stop;
$port++;


# 8. tls-auth-clients yes: refused without a client certificate,
# recorded with one

my $mtls = server(port => $port, auth_clients => 'yes');

nginx_with($port, '');
($ok) = views(1, 10, 'nocert');
is($ok, 10, 'no client certificate: pages answered');
sleep 1;
is($mtls->call('DBSIZE'), 0, 'no client certificate: nothing written');
is(stat_of('connected'), 0, 'no client certificate: the link is not up');
cmp_ok(stat_of('connects'), '>=', 3, 'no client certificate: tried again');
# Redis refuses after the handshake: its alert is read ("certificate
# required"), or the connection was reset first
is(log_count(qr/\[(error|crit)\].*(certificate required|reset by peer)/), 1,
   'no client certificate: logged once');
is(log_count(qr/\[(error|crit)\]/), 1, 'no client certificate: nothing else');

nginx_with($port, "history_redis_ssl_certificate $certs->{client_crt};\n"
                  . "    history_redis_ssl_certificate_key "
                  . "$certs->{client_key};");
views(3, 3, 'cert');
ok(wait_for(sub { list($mtls, 'history:cert3') eq '3' }, 3),
   'with the client certificate: recorded');
is(log_count(qr/\[(error|alert|crit|emerg)\]/), 0,
   'with the client certificate: nothing logged');

$mtls->stop;
$port++;


# 9. a server that takes the connection and never answers the handshake:
# it times out within connect_timeout, pages are not kept waiting

my $mute = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
                                 Listen => 5, ReuseAddr => 1)
    or die "listen on $port: $!";

nginx_with($port, '');
my $t0 = time;
($ok, $slowest) = views(1, 5, 'mute');
is($ok, 5, 'a mute server: pages answered');
cmp_ok($slowest, '<', 0.5, 'a mute server: no page waited');
is(body('/history?v=mute1'), '[]', 'a mute server: the fallback');
ok(wait_for(sub { log_count(qr/redis SSL handshake timed out/) == 1 }, 4),
   'a mute server: the handshake timed out, logged');
cmp_ok(time - $t0, '>=', 1.5, 'a mute server: after connect_timeout');
is(stat_of('tls_failures'), 1, 'a mute server: counted');
close $mute;

nginx_signal('QUIT');
ok(wait_for(sub { !nginx_running() }, 5), 'nginx stops');

done_testing();
