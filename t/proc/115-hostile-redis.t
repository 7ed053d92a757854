# vi:filetype=perl
#
# A hostile Redis, or a broken proxy in front of one, played by
# t/lib/MockRedis.pm:
#
#   - servers that accept and close, greet with -ERR, stall, or answer
#     only PING: pages are served at once, reads get the fallback within
#     the timeout, the link is never counted as up, it reconnects with
#     backoff (a few attempts, not hundreds), logs one line, writes no
#     view into a dead connection, and recovers when Redis is back; the
#     same with a real redis-server paused (SIGSTOP), whose kernel still
#     accepts connections;
#   - a string of 256 MB and an array of 60000 strings of 1 KB: refused at
#     their header, the read gets the fallback in time, a static page does
#     not wait, the worker's memory is what it was;
#   - a reply nothing asked for, a reply left out, replies of the wrong
#     shape: the connection is dropped, no request gets another's answer;
#   - units in flight when a connection dies: those that may run twice are
#     sent again, once, the others counted as failed.
#
# Nothing worse than [error] is logged in any of them.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use HistoryProc;
use MockRedis;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my %p = proc_setup(name => 'hostile', offset => 16, conf => <<'END');
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
        location = /static {
            return 200 "static\n";
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

my $asan = $p{nginx} =~ /nginx-san$/;

# HOSTILE_MODES=accept_close,big_bulk: only those
my %only = map { $_ => 1 } split /,/, $ENV{HOSTILE_MODES} // '';

sub wanted {
    return !%only || $only{$_[0]};
}

sub send_request {
    my $uri = shift;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return undef;
    print $s "GET $uri HTTP/1.0\r\nHost: localhost\r\n"
             . "Cookie: sessionid=abc\r\n\r\n";
    return $s;
}

sub read_response {
    my $s = shift or return '';
    local $/;
    my $resp = <$s> // '';
    my ($body) = $resp =~ /\r\n\r\n(.*)\z/s;
    return $body // '';
}

# (body, seconds)

sub request {
    my $uri = shift;
    my $t0 = time;
    my $body = read_response(send_request($uri));
    return ($body, time - $t0);
}

sub stats {
    my ($body) = request('/stats');
    my ($total) = $body =~ /"total":\{([^}]*)\}/;
    return { ($total // '') =~ /"(\w+)":(\d+)/g };
}

# the worker's resident memory in kB (VmHWM: the most it has had)

sub rss {
    my $field = shift // 'VmRSS';
    my ($worker) = nginx_workers();
    my ($kb) = HistoryProc::slurp("/proc/$worker/status") =~ /$field:\s+(\d+)/;
    return $kb // 0;
}

# the error lines, shown when a check of the log fails

sub show_log {
    diag(join "\n", grep { /\[(error|notice|alert|crit)\]/ }
                    split /\n/, HistoryProc::slurp("$p{root}/logs/error.log"));
}

sub stop_nginx {
    nginx_signal('QUIT');
    wait_for(sub { !nginx_running() }, 5);
    unlink "$p{root}/logs/error.log";
}


# 1. Servers that never answer as Redis does, for 6 seconds of traffic
#    (HOSTILE_SECONDS=60 for the figures of docs/reliability.md)

my $window = $ENV{HOSTILE_SECONDS} || 6;

# the backoff: 100 ms doubling to 3 s, each delay at least half of it
my $attempts = 8 + int($window / 1.5);

# one line for the first failure, then one a minute
my $lines = 1 + int($window / 60);

my %never = (
    accept_close => qr/redis closed connection|recv\(\) failed/,
    err_greet    => qr/redis refused PING: "ERR max number of clients/,
    silent       => qr/redis timed out/,
    ping_only    => qr/redis timed out/,
);

for my $mode (grep { wanted($_) } sort keys %never) {
    my $mock = MockRedis->start(port => $p{rport}, modes => [$mode]);
    nginx_start();

    my ($pages, $slowest_page, $reads, $slowest_read) = (0, 0, 0, 0);
    my $t0 = time;
    my $i = 0;

    while (time - $t0 < $window) {
        my ($body, $t) = request('/product/' . ++$i);
        $pages++ if $body eq "product $i\n";
        $slowest_page = $t if $t > $slowest_page;

        if ($i % 20 == 0) {
            ($body, $t) = request('/_history');
            $reads++ if $body eq '[]';
            $slowest_read = $t if $t > $slowest_read;
        }

        sleep 0.03;
    }

    my $st = stats();

    is($pages, $i, "$mode: all $i pages served");
    cmp_ok($slowest_page, '<', 0.25, "$mode: no page waited");
    is($reads, int($i / 20), "$mode: every read got the fallback");
    cmp_ok($slowest_read, '<', 1, "$mode: within the timeout");
    is($st->{connected}, 0, "$mode: the link is not counted as up");
    cmp_ok($st->{connects}, '<=', $attempts,
           "$mode: $st->{connects} connection attempts in $window s: "
           . "backoff");
    is($st->{failed}, $mode eq 'ping_only' ? $st->{failed} : 0,
       "$mode: no view written into a connection that then died");
    cmp_ok(log_count(qr/\[error\]/), '<=', $lines,
           "$mode: one error line, then one a minute");
    ok(log_count($never{$mode}), "$mode: it says what happened")
        or show_log();
    is(log_count(qr/restored/), 0, "$mode: no false recovery");

    diag("$mode: $st->{connects} attempts, "
         . log_count(qr/\[error\]/) . " error lines, $st->{failed} failed, "
         . "in $window s; slowest page "
         . sprintf('%.1f', $slowest_page * 1000)
         . " ms, slowest read " . sprintf('%.0f', $slowest_read * 1000)
         . " ms");

    # Redis is back

    $mock->stop;
    $mock = MockRedis->start(port => $p{rport}, modes => ['normal']);

    my $back = wait_for(sub { (request('/_history'))[0] eq '["3","2","1"]' },
                        5);
    ok(defined $back, "$mode: the link recovers when Redis is back");
    ok(wait_for(sub { log_count(qr/\[notice\].*redis connection restored/)
                      == 1 }, 2),
       "$mode: the recovery is logged once") or show_log();

    if ($mode eq 'ping_only') {
        ok(log_count(qr/restored after \d+ s, \d+ commands dropped, [1-9]/),
           "$mode: the views lost in flight are logged") or show_log();
    }

    is(log_count(qr/\[(alert|crit|emerg)\]/), 0, "$mode: no alert");

    stop_nginx();
    $mock->stop;
}


# 1b. A real Redis paused (SIGSTOP): the kernel still accepts connections

if (wanted('paused')) {
    redis_start();
    nginx_start();

    ok(wait_for(sub { (request('/_history'))[0] eq '[]' }, 2),
       'paused: Redis answers first');

    my $pid = HistoryProc::slurp("$p{root}/redis/pid");
    kill 'STOP', $pid;

    my ($pages, $i, $t0) = (0, 0, time);

    while (time - $t0 < 6) {
        my ($body) = request('/product/' . ++$i);
        $pages++ if $body eq "product $i\n";
        request('/_history') if $i % 20 == 0;
        sleep 0.03;
    }

    my $st = stats();
    is($pages, $i, "paused: all $i pages served");
    is($st->{connected}, 0, 'paused: the link is not counted as up');
    is(log_count(qr/\[error\]/), 1, 'paused: one error line');
    is(log_count(qr/restored/), 0, 'paused: no false recovery');

    diag("paused: $st->{connects} attempts, "
         . log_count(qr/\[error\]/) . " error line, "
         . log_count(qr/restored/) . " recovery notices in 6 s");

    kill 'CONT', $pid;

    ok(wait_for(sub { redis('LRANGE', 'history:abc', 0, 0) eq $i }, 5),
       'paused: Redis resumed, the newest view lands');
    ok(wait_for(sub { log_count(qr/\[notice\].*redis connection restored/)
                      == 1 }, 2),
       'paused: the recovery is logged once');
    is(log_count(qr/\[(alert|crit|emerg)\]/), 0, 'paused: no alert');

    stop_nginx();
    redis_kill();
}


# 2. Replies far larger than anything asked for

my %huge = (
    big_bulk  => qr/redis sent a string of 268435456 bytes, more than the /,
    big_array => qr/redis sent an array of 60000 elements/,
);

for my $mode (grep { wanted($_) } sort keys %huge) {
    my $mock = MockRedis->start(port => $p{rport}, modes => [$mode, 'normal']);
    nginx_start();

    # the worker's memory once it has served a few pages
    request('/static') for 1 .. 20;
    my $before = rss();

    # static pages, one every 10 ms for 1.5 s, while the read waits

    pipe(my $from, my $to) or die "pipe: $!";
    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        close $from;
        my ($ok, $slowest, $t0) = (0, 0, time);

        while (time - $t0 < 1.5) {
            my ($body, $t) = request('/static');
            $ok++ if $body eq "static\n";
            $slowest = $t if $t > $slowest;
            sleep 0.01;
        }

        print $to "$ok $slowest\n";
        close $to;
        POSIX::_exit(0);
    }

    close $to;
    sleep 0.05;

    my ($body, $tr) = request('/_history');
    is($body, '[]', "$mode: the read gets the fallback");
    cmp_ok($tr, '<', 1, "$mode: within the timeout");

    my ($static, $ts) = split ' ', <$from> // '0 9';
    waitpid $pid, 0;
    cmp_ok($static, '>', 50, "$mode: $static static pages served meanwhile");
    cmp_ok($ts, '<', 0.25, "$mode: none of them waited");

    ok(wait_for(sub { log_count($huge{$mode}) == 1 }, 2),
       "$mode: refused at its header, logged") or show_log();

    ok(wait_for(sub { (request('/_history'))[0] eq '["3","2","1"]' }, 5),
       "$mode: the link recovers");

    my ($after, $peak) = (rss(), rss('VmHWM'));

    SKIP: {
        skip 'RSS under AddressSanitizer includes its quarantine', 2
            if $asan;
        cmp_ok($peak - $before, '<', 8192,
               "$mode: the reply never took the worker's memory");
        cmp_ok($after - $before, '<', 2048,
               "$mode: the worker's memory is back to its level");
    }

    diag(sprintf "%s: read answered in %.0f ms, slowest static page "
                 . "meanwhile %.1f ms; worker RSS %d kB before, %d kB at "
                 . "most, %d kB after",
                 $mode, $tr * 1000, $ts * 1000, $before, $peak, $after);

    is(log_count(qr/\[(alert|crit|emerg)\]/), 0, "$mode: no alert");

    stop_nginx();
    $mock->stop;
}


# 3. A stream that cannot be trusted: injected, missing, misshapen replies

my %untrusted = (
    inject       => qr/answered PING with a reply of the wrong shape, the s/,
    swallow      => qr/answered MULTI with a reply of the wrong shape, \+OK/,
    shape_lrange => qr/answered LRANGE with a reply of the wrong shape, an a/,
    shape_queued => qr/answered LREM with a reply of the wrong shape, \+QUE/,
    shape_exec   => qr/answered EXEC with a reply of the wrong shape, an a/,
);

for my $mode (grep { wanted($_) } sort keys %untrusted) {
    my $mock = MockRedis->start(port => $p{rport}, modes => [$mode, 'normal']);
    nginx_start();

    # the record first, then the read
    my ($body) = request('/product/5');
    is($body, "product 5\n", "$mode: the page is served");

    if ($mode eq 'inject') {
        # the read is the first unit: the injected reply comes first
        stop_nginx();
        $mock->stop;
        $mock = MockRedis->start(port => $p{rport},
                                 modes => [$mode, 'normal']);
        nginx_start();
    }

    my $t;
    ($body, $t) = request('/_history');
    ok($body eq '[]' || $body eq '["3","2","1"]',
       "$mode: the read gets its own list or the fallback ($body)");
    cmp_ok($t, '<', 1, "$mode: within the timeout");

    ok(wait_for(sub { log_count($untrusted{$mode}) == 1 }, 2),
       "$mode: the connection is dropped, why is logged") or show_log();

    ok(wait_for(sub { (request('/_history'))[0] eq '["3","2","1"]' }, 5),
       "$mode: the link recovers");

    is(log_count(qr/\[(alert|crit|emerg)\]/), 0, "$mode: no alert");

    stop_nginx();
    $mock->stop;
}



# 4. Units in flight on a connection that dies: those that may run twice
#    (a last action: SET; the online set: ZADD, ZREMRANGEBYSCORE, EXPIRE;
#    the recorded view, a transaction that leaves the same list however
#    often it runs) are sent again, once; a counted view (INCR) is not, it
#    is counted as failed

if (wanted('resend')) {
    %p = proc_setup(name => 'hostile', offset => 16, conf => <<'END');
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
            history_last_action on;
            history_record $1;
            history_count $1;
            return 200 "product $1\n";
        }
        location = /stats {
            history_stats;
        }
    }
}
END

    my $mock = MockRedis->start(port => $p{rport},
                                modes => ['ping_only', 'normal']);
    nginx_start();

    my ($body) = request('/product/5');
    is($body, "product 5\n", 'resend: the page is served');

    ok(wait_for(sub { stats()->{replied} == 3 }, 3),
       'resend: the view and the last action are answered on the next '
       . 'connection');

    my $st = stats();
    is($st->{queued}, 4, 'resend: four units, the view, the count, the '
                         . 'last action and the online set');
    is($st->{failed}, 1, 'resend: the count is counted as failed');
    is($st->{queue}, 0, 'resend: nothing left');
    ok(log_count(qr/restored after \d+ s, 0 commands dropped, 1 failed/),
       'resend: the recovery says so') or show_log();
    is(log_count(qr/\[(alert|crit|emerg)\]/), 0, 'resend: no alert');

    stop_nginx();
    $mock->stop;
}

done_testing();
