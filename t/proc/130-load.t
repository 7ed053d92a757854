# vi:filetype=perl
#
# Faults under load (wrk): Redis killed (kill -9) and shut down (SHUTDOWN
# NOSAVE) while pages are served, then nginx reloaded (HUP) and stopped
# (QUIT) while pages are served.  Prints the figures docs/reliability.md
# reports: pages answered, recovery time, units accepted / answered /
# dropped / failed, views lost on HUP and QUIT.
#
# A view is counted twice: in the access log (written by nginx for every
# request) and in Redis (history_count); with Redis up, the two must agree.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};
plan skip_all => 'wrk is not installed' unless `which wrk` =~ /wrk/;

my %p = proc_setup(name => 'load', offset => 18, conf => <<'END');
worker_processes 2;
error_log logs/error.log notice;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    log_format views '$status';
    history_redis 127.0.0.1:$REDIS_PORT;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location ~ ^/product/(\d+)$ {
            access_log logs/views.log views;
            history_count $1;
            return 200 "product $1\n";
        }
        location = /stats {
            access_log off;
            history_stats;
        }
    }
}
END

my $url = "http://127.0.0.1:$p{hport}/product/7";

sub wrk {
    my ($seconds, $out) = @_;
    my $pid = fork // die;
    if ($pid == 0) {
        exec "wrk -t2 -c50 -d${seconds}s --timeout 2s $url > $out 2>&1";
    }
    return $pid;
}

sub wrk_result {
    my $out = HistoryProc::slurp(shift);
    my ($requests) = $out =~ /(\d+) requests in/;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    my ($errors) = $out =~ /Socket errors: (.*)/;
    return ($requests // 0, $non2xx // 0, $errors // 'none', $out);
}

sub stats {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}")
        or return {};
    print $s "GET /stats HTTP/1.0\r\nHost: x\r\n\r\n";
    local $/;
    my ($total) = (<$s> // '') =~ /"total":\{([^}]*)\}/;
    return { ($total // '') =~ /"(\w+)":(\d+)/g };
}

sub views_logged {
    return log_lines("$p{root}/logs/views.log", qr/^200$/);
}

sub log_lines {
    my ($file, $re) = @_;
    return scalar grep { /$re/ } split /\n/, HistoryProc::slurp($file);
}

sub counted { return redis('GET', 'history:views:7') || 0 }

redis_start();
nginx_start();

# 1. Redis killed, then shut down, while wrk runs

my $wrk = wrk(12, "$p{root}/wrk1.txt");
my (@recovery, $t0);

for my $fault ('kill -9', 'SHUTDOWN NOSAVE') {
    sleep 2.5;

    if ($fault eq 'kill -9') {
        redis_kill();
    } else {
        redis('SHUTDOWN', 'NOSAVE');
    }

    sleep 2;
    redis_start();
    $t0 = time;
    wait_for(sub { (stats()->{connected} // 0) == 2 }, 5);
    push @recovery, time - $t0;
}

waitpid $wrk, 0;
wait_for(sub { (stats()->{queue} // 1) == 0 }, 5);

my ($requests, $non2xx, $errors) = wrk_result("$p{root}/wrk1.txt");
my $st = stats();

cmp_ok($requests, '>', 1000, "wrk made $requests requests");
is($non2xx, 0, 'every page answered 200 through two Redis failures');
is($errors, 'none', 'no connection errors') or diag($errors);
cmp_ok($_, '<', 3.5, sprintf 'recovered %.2f s after Redis restarted', $_)
    for @recovery;

is($st->{queued}, views_logged(),
   "units accepted = views served ($st->{queued})");
is($st->{replied} + $st->{errors} + $st->{dropped} + $st->{failed}
   + $st->{queue}, $st->{queued},
   'accepted = answered + dropped + failed + waiting');

diag(sprintf "faults under load: %d requests, %d non-2xx, recovery %s s; "
             . "units accepted %d, answered %d, errors %d, dropped %d, "
             . "failed %d", $requests, $non2xx,
             join('/', map { sprintf '%.2f', $_ } @recovery),
             @$st{qw(queued replied errors dropped failed)});

# 2. reloads (HUP) under load with Redis up: 0 lost

redis('FLUSHALL');
unlink "$p{root}/logs/views.log";
nginx_signal('USR1');
sleep 0.2;

$wrk = wrk(6, "$p{root}/wrk2.txt");
my @old;

for (1 .. 2) {
    sleep 2;
    push @old, nginx_workers();
    nginx_signal('HUP');
}

waitpid $wrk, 0;

my $gone = wait_for(sub { !grep { kill 0, $_ } @old }, 10);
ok(defined $gone, 'the old workers exited');

ok(wait_for(sub { counted() == views_logged() }, 5),
   'HUP: every view served was counted in Redis');
diag(sprintf 'HUP under load: %d views served, %d counted, lost %d',
             views_logged(), counted(), views_logged() - counted());

# 3. graceful stop (QUIT) under load: 0 lost

$wrk = wrk(4, "$p{root}/wrk3.txt");
sleep 2;
nginx_signal('QUIT');
my $stopped = wait_for(sub { !nginx_running() }, 10);
waitpid $wrk, 0;

ok(defined $stopped, sprintf 'QUIT: nginx stopped in %.2f s', $stopped // -1);
is(counted(), views_logged(), 'QUIT: every view served was counted');
diag(sprintf 'QUIT under load: %d views served, %d counted, lost %d',
             views_logged(), counted(), views_logged() - counted());

is(log_count(qr/\[(alert|crit|emerg)\]/), 0, 'no alert, crit or emerg');
is(log_count(qr/exited on signal/), 0, 'no worker crashed');

done_testing();
