# vi:filetype=perl
#
# Redis Sentinel (history_redis ... sentinel=NAME) against real processes:
# a master, a replica and three Sentinels from t/lib/RedisTopology.pm.
# Views are recorded on and served from the master the Sentinels name; a
# SENTINEL FAILOVER and a kill -9 of the master under load: every page is
# answered, recording resumes on the new master within seconds, and every
# view is on the new master, since what the old master acknowledged in its
# last seconds is sent again (replay=); the counts it acknowledged then
# (INCR, not sent again) are counted as maybe lost, and as many at least
# are missing; the figures (time to the first view on the new master,
# views lost, units replayed) are printed; a dead first Sentinel is
# skipped; a Sentinel that names a replica is not believed (ROLE); a
# -READONLY reply sends the link to ask again; a bad configuration fails
# nginx -t naming the directive.
#
# TEST_NGINX_SENTINEL_REPLAY=off (or a time) sets replay= of the failover
# runs: with off, views acknowledged by the old master are lost and the
# test fails.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use HistoryProc;
use RedisTopology;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $root = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
           . '-redis-sentinel';
my $base = sentinel_base();
my $fake_port = $base + 5;
my $replay = defined $ENV{TEST_NGINX_SENTINEL_REPLAY}
             ? " replay=$ENV{TEST_NGINX_SENTINEL_REPLAY}" : '';
my ($window) = ($ENV{TEST_NGINX_SENTINEL_REPLAY} // '5s') =~ /^(\d+)s$/;
$window //= 5;
my %p;

# when each view of the failover runs was sent, for the replay= window
my @sent_all;


# a Sentinel that names whatever its file says: "ip port" (or nothing)

sub fake_sentinel {
    my ($port, $file) = @_;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Listen => 16,
                                       ReuseAddr => 1)
        or die "fake sentinel: listen on $port: $!";

    my $pid = fork // die "fork: $!";

    if ($pid) {
        close $listen;
        return $pid;
    }

    $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($listen);
    my %buf;

    while (1) {
        for my $fh ($sel->can_read) {
            if ($fh == $listen) {
                my $c = $listen->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                next;
            }

            my $n = sysread $fh, $buf{$fh}, 4096, length $buf{$fh};

            if (!$n) {
                $sel->remove($fh);
                delete $buf{$fh};
                close $fh;
                next;
            }

            while (1) {
                my $pos = 0;
                my $cmd = RedisTopology::Conn::_parse(\$buf{$fh}, \$pos);
                last unless $pos;
                substr($buf{$fh}, 0, $pos) = '';

                my $name = uc $cmd->[0];
                my $out = "+OK\r\n";

                if ($name eq 'SENTINEL') {
                    my $addr = HistoryProc::slurp($file);
                    my ($ip, $p) = split ' ', $addr;
                    $out = $addr
                        ? "*2\r\n\$" . length($ip) . "\r\n$ip\r\n\$"
                          . length($p) . "\r\n$p\r\n"
                        : "*-1\r\n";

                } elsif ($name eq 'SUBSCRIBE') {
                    $out = "*3\r\n\$9\r\nsubscribe\r\n\$14\r\n"
                           . "+switch-master\r\n:1\r\n";

                } elsif ($name eq 'PING') {
                    $out = "*2\r\n\$4\r\npong\r\n\$0\r\n\r\n";
                }

                syswrite $fh, $out;
            }
        }
    }
}

sub put {
    my ($file, $text) = @_;
    open my $fh, '>', "$file.new" or die $!;
    print $fh $text;
    close $fh;
    rename "$file.new", $file or die $!;
}


# nginx with a history_redis line of its own: started anew each time

sub nginx_with {
    my ($redis) = @_;

    if (%p && nginx_running()) {
        nginx_signal('QUIT');
        wait_for(sub { !nginx_running() }, 10);
    }

    %p = proc_setup(name => 'sentinel-nginx', offset => 21,
                    conf => <<"END");
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis $redis;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        keepalive_requests 100000;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            history_count \$1;
            return 200 "product \$1\\n";
        }
        location = /_history {
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
    return $resp =~ /\r\n\r\n(.*)\z/s ? $1 : '';
}

sub worker_stats {
    my ($w) = body('/stats') =~ /"workers":\[\{([^}]*)\}/;
    return { ($w // '') =~ /"(\w+)":"?([^",]*)"?/g };
}

# on one node: which of the visitors $tag$from .. $tag$to have a history

sub present {
    my ($node, $tag, $from, $to) = @_;
    my @r = $node->pipeline(map { ['EXISTS', "history:$tag$_"] } $from .. $to);
    my %have;
    @have{$from .. $to} = @r;
    return \%have;
}

# on one node: how many of the counts of products $from .. $to are missing

sub counts_missing {
    my ($node, $from, $to) = @_;
    return scalar grep { !$_ }
        $node->pipeline(map { ['EXISTS', "history:views:$_"] } $from .. $to);
}

# what a worker's figures did between two readings

sub delta {
    my ($before, $after) = @_;
    return { map { $_ => ($after->{$_} // 0) - ($before->{$_} // 0) }
             qw(failed dropped errors replayed maybe_lost) };
}

# views on one keep-alive connection, about 100 a second, for $secs
# seconds, with $fault->() run after $at seconds; view $i is of product
# $off + $i, counted with INCR.  Meanwhile the new master
# is watched: when it says ROLE master, and when the last view sent, if
# sent after that, is on it (it no longer replicates the old master: that
# view was written there).  Returns the statuses, the views sent, the
# time of the fault, the seconds from the fault to the first view on the
# new master and the send time of each view.

sub load {
    my ($tag, $secs, $at, $fault, $new, $off) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}")
        or die "connect: $!";
    my (@sent, %status, $t_fault, $t_promoted, $landed);
    my $t0 = time;
    my $i = 0;

    while (time - $t0 < $secs) {
        if (!defined $t_fault && time - $t0 >= $at) {
            $t_fault = time;
            $fault->();
        }

        if (defined $t_fault && !defined $landed) {
            if (defined $t_promoted && $sent[$i] > $t_promoted
                && $new->call('EXISTS', "history:$tag$i"))
            {
                $landed = time - $t_fault;
            }

            $t_promoted //= time if (eval { $new->role } // '') eq 'master';
        }

        $i++;
        $sent[$i] = time;
        push @sent_all, $sent[$i];
        my $id = $off + $i;
        print $s "GET /product/$id?v=$tag$i HTTP/1.1\r\nHost: x\r\n\r\n";

        local $/ = "product $id\n";
        my $resp = <$s> // '';
        my ($code) = $resp =~ m{^HTTP/1.1 (\d+)}m;
        $status{$code // 0}++;

        sleep 0.01;
    }

    return (\%status, $i, $t_fault, $landed, \@sent);
}

# views lost (not on the new master): in all, and of those sent more
# than a second after the first view landed there

sub lost {
    my ($have, $n, $sent, $t_fault, $landed) = @_;
    my ($lost, $late) = (0, 0);

    for my $i (1 .. $n) {
        next if $have->{$i};
        $lost++;
        $late++ if defined $landed && $sent->[$i] > $t_fault + $landed + 1;
    }

    return ($lost, $late);
}


# after a failover under load: every view on the new master, the counts
# the old master acknowledged and lost all counted, the figures printed

sub check_failover {
    my ($label, $node, $tag, $off, $n, $sent, $t_fault, $landed, $before)
        = @_;
    my $after = worker_stats();
    my $d = delta($before, $after);
    my ($lost, $late) = lost(present($node, $tag, 1, $n), $n, $sent,
                             $t_fault, $landed);
    my $missing = counts_missing($node, $off + 1, $off + $n);
    my $switch = defined $landed ? $t_fault + $landed : 0;

    # at most the views sent in the replay= window (and a 64th) before
    # the switch: each is one transaction and one count
    my $acked = grep { $_ < $switch && $_ > $switch - $window * 1.02 - 0.1 }
                @sent_all;

    is($late, 0, "$label: no view lost once it has resumed");
    is($lost, 0, "$label: every view is on the new master");
    ok($d->{replayed} > 0 && $d->{replayed} <= $acked,
       "$label: the old master's last views sent again "
       . "($d->{replayed}, of $acked sent in the window)");
    ok($d->{maybe_lost} + $d->{failed} >= $missing,
       "$label: each count missing is counted ($missing missing, "
       . "$d->{maybe_lost} maybe lost, $d->{failed} failed)");
    ok($d->{maybe_lost} <= $acked,
       "$label: no more counted than were sent in the window");

    diag sprintf '%s: first view on the new master %.2f s after, %d of %d'
                 . ' views lost, %d replayed, %d counts missing, %d maybe'
                 . ' lost, failed %d, dropped %d',
                 $label, $landed // -1, $lost, $n, $d->{replayed},
                 $missing, $d->{maybe_lost}, $d->{failed}, $d->{dropped};

    return $missing;
}


my $s = start_sentinels(dir => "$root/topology");
my ($m, $r) = $s->data;
my @S = $s->sentinels;
my $sentinels = join ' ', map { "127.0.0.1:$_" } @S;


# records and serves through the master the Sentinels name

nginx_with("$sentinels sentinel=mymaster$replay");

my ($ok) = views(1, 30, 'a');
push @sent_all, (time) x 30;
is($ok, 30, 'pages answered');
ok(wait_for(sub { $s->node($m)->call('DBSIZE') == 60 }, 5),
   'the views and their counts are on the master');
is_deeply($s->node($m)->call('LRANGE', 'history:a7', 0, -1), ['7'],
          'a history as recorded');
is(body('/_history?v=a7'), '["7"]', 'served from the master');

my $st = worker_stats();
is($st->{master}, "127.0.0.1:$m", 'history_stats: the master');
is($st->{sentinel}, "127.0.0.1:$S[0]", 'history_stats: the Sentinel');
is($st->{failovers}, 0, 'history_stats: no failover yet');
is($st->{replayed}, 0, 'history_stats: nothing replayed yet');
is($st->{maybe_lost}, 0, 'history_stats: nothing maybe lost yet');


# SENTINEL FAILOVER under load

my ($status, $n, $t_fault, $landed, $sent) = load('f', 6, 1, sub {
    $s->call($S[0], 'SENTINEL', 'FAILOVER', 'mymaster');
}, $s->node($r), 1000);

is_deeply([keys %$status], [200], "SENTINEL FAILOVER: all $n pages 200");
ok(defined $s->wait_switch($m, 10), 'the Sentinels name the replica');
ok(defined $landed && $landed < 5,
   'recording resumes on the new master within 5 s');

sleep 1;
my $missing = check_failover('SENTINEL FAILOVER', $s->node($r), 'f', 1000,
                             $n, $sent, $t_fault, $landed, $st);
ok($missing > 0, 'the old master did lose what it acknowledged last: '
                 . 'counts are missing');
my $replayed = 'redis master changed: [1-9]\d* units the old one '
               . 'acknowledged in its last ' . $window * 1000
               . ' ms sent again';
is(log_count(qr/$replayed/), 1, 'the replay is logged');

$st = worker_stats();
is($st->{master}, "127.0.0.1:$r", 'history_stats: the new master');
is($st->{failovers}, 1, 'history_stats: one failover followed');
my $prom = body('/stats?format=prometheus');
my $labels = qr/\{worker="0",pid="\d+"\}/;
like($prom, qr/^nginx_history_sentinel_replayed_total$labels $st->{replayed}$/m,
     'Prometheus: the units replayed');
like($prom,
     qr/^nginx_history_sentinel_maybe_lost_total$labels $st->{maybe_lost}$/m,
     'Prometheus: the units maybe lost');

# the text format: each family once, with its TYPE, its samples together

my (%typed, %seen, @split, $last);

for (split /\n/, $prom) {
    if (/^# TYPE (\w+) /) {
        $typed{$1} = 1;
        next;
    }
    next if /^#/ || !/^(\w+)[{ ]/;
    push @split, $1 if $seen{$1} && $1 ne $last;
    $seen{$1} = 1;
    $last = $1;
}

is(join(' ', grep { !$typed{$_} } sort keys %seen), '',
   'Prometheus: every family has its TYPE line');
is("@split", '', 'Prometheus: the samples of a family are together');


# kill -9 of the master under load

ok(defined $s->wait_ready(30), 'the old master is a replica again');

$st = worker_stats();

($status, $n, $t_fault, $landed, $sent) = load('k', 8, 1,
                                              sub { $s->kill($r) },
                                              $s->node($m), 2000);

is_deeply([keys %$status], [200], "kill -9: all $n pages 200");
ok(defined $s->wait_switch($r, 10), 'the Sentinels name the old master');
ok(defined $landed && $landed < 7,
   'recording resumes on the promoted replica within 7 s');

sleep 1;
check_failover('kill -9 of the master', $s->node($m), 'k', 2000, $n, $sent,
               $t_fault, $landed, $st);

$st = worker_stats();
is($st->{master}, "127.0.0.1:$m", 'history_stats: the promoted replica');
is($st->{failovers}, 2, 'history_stats: two failovers followed');

$s->restart($r);


# the Sentinel the subscription is on dies; a failover through another

ok(defined $s->wait_ready(30), 'the killed master is back as a replica');
ok(wait_for(sub {
    my $reps = $s->call($S[1], 'SENTINEL', 'REPLICAS', 'mymaster');
    return grep { my %h = @$_; $h{port} == $r && $h{flags} eq 'slave'
                  && $h{'master-link-status'} eq 'ok' } @$reps;
}, 20), 'the Sentinels see it');

$s->kill($S[0]);
sleep 0.5;

$st = worker_stats();

($status, $n, $t_fault, $landed, $sent) = load('s', 6, 1, sub {
    $s->call($S[1], 'SENTINEL', 'FAILOVER', 'mymaster');
}, $s->node($r), 3000);

is_deeply([keys %$status], [200], "Sentinel dead: all $n pages 200");
ok(defined $s->wait_switch($m, 10), 'the Sentinels left name the replica');
ok(defined $landed && $landed < 5,
   'the subscription moved to another Sentinel: resumed within 5 s');

sleep 1;
check_failover('SENTINEL FAILOVER, first Sentinel dead', $s->node($r), 's',
               3000, $n, $sent, $t_fault, $landed, $st);
is(worker_stats()->{master}, "127.0.0.1:$r", 'history_stats: followed');

$s->restart($S[0]);
($m, $r) = ($r, $m);
ok(defined $s->wait_ready(30), 'all three Sentinels again');


# the first Sentinel dead at start

my $dead = $base + 6;

nginx_with("127.0.0.1:$dead $sentinels sentinel=mymaster");

($ok) = views(1, 10, 'd');
is($ok, 10, 'first Sentinel dead: pages answered');
ok(wait_for(sub { ${ present($s->node($m), 'd', 1, 10) }{10} }, 5),
   'first Sentinel dead: views on the master');
is(worker_stats()->{sentinel}, "127.0.0.1:$S[0]",
   'the second Sentinel named it');
is(log_count(qr/connect\(\) .*failed.* sentinel: 127\.0\.0\.1:$dead,/), 1,
   'the dead Sentinel logged once');


# a Sentinel that names a node that is not the master

my $file = "$root/fake-answer";
my $replica = $s->replica_port;
put($file, "127.0.0.1 $replica");
my $fake = fake_sentinel($fake_port, $file);

nginx_with("127.0.0.1:$fake_port $sentinels sentinel=mymaster");

($ok) = views(1, 10, 'n');
is($ok, 10, 'a Sentinel naming a replica: pages answered');
ok(wait_for(sub { ${ present($s->node($s->master_port), 'n', 1, 10) }{10} },
            5), 'the views are on the master all the same');
ok(log_count(qr/redis is not the master \(ROLE "slave"\)/) >= 1,
   'the replica is refused, logged');

nginx_with("127.0.0.1:$fake_port sentinel=mymaster timeout=300ms");

($ok) = views(1, 10, 'o');
is($ok, 10, 'only that Sentinel: pages answered');
sleep 1;
is(${ present($s->node($replica), 'o', 1, 10) }{1}, 0,
   'nothing is written to the replica');
is(worker_stats()->{connected}, 0, 'not connected');

put($file, "127.0.0.1 " . $s->master_port);
ok(wait_for(sub { ${ present($s->node($s->master_port), 'o', 1, 10) }{10} },
            8), 'once it names the master, the waiting views land');


# -READONLY: the master became a replica; the Sentinel names another

my $dir = "$root/readonly";
my $a = start_server(port => $base + 7, dir => "$dir/a");
my $b = start_server(port => $base + 8, dir => "$dir/b");
put($file, "127.0.0.1 " . $a->port);

nginx_with("127.0.0.1:$fake_port sentinel=mymaster");

views(1, 5, 'r');
ok(wait_for(sub { $a->call('EXISTS', 'history:r5') }, 5), 'views on A');

put($file, "127.0.0.1 " . $b->port);
$a->call('REPLICAOF', '127.0.0.1', $b->port);
wait_for(sub { ($a->info('master_link_status') // '') eq 'up' }, 5);

views(6, 6, 'r');
views(7, 20, 'r');
ok(wait_for(sub { $b->call('EXISTS', 'history:r20') }, 5),
   'after READONLY from A, the link asks again and writes to B');
ok(log_count(qr/READONLY/) >= 1, 'the READONLY reply is logged');

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 10);
kill 'KILL', $fake;
waitpid $fake, 0;
$a->stop;
$b->stop;


# a reload and a graceful stop: the subscription keeps no worker

nginx_with("$sentinels sentinel=mymaster");
views(1, 5, 'q');
ok(wait_for(sub { ${ present($s->node($s->master_port), 'q', 1, 5) }{5} },
            5), 'views recorded');

my ($old) = nginx_workers();
nginx_signal('HUP');
ok(wait_for(sub { !kill 0, $old }, 5), 'reload: the old worker exits');
views(6, 10, 'q');
ok(wait_for(sub { ${ present($s->node($s->master_port), 'q', 6, 10) }{10} },
            5), 'the new worker records');

nginx_signal('QUIT');
ok(wait_for(sub { !nginx_running() }, 5), 'graceful stop: nginx exits');


# passwords: sentinel_password= for the Sentinels, password= for the master

$s->stop;
$s = start_sentinels(dir => "$root/auth", password => 'dpw',
                     sentinel_password => 'spw');

nginx_with("$sentinels sentinel=mymaster sentinel_password=spw"
           . " password=dpw");
views(1, 5, 'p');
ok(wait_for(sub { ${ present($s->node($s->master_port), 'p', 1, 5) }{5} },
            5), 'with passwords: views on the master');

nginx_with("$sentinels sentinel=mymaster sentinel_password=wrong"
           . " password=dpw timeout=300ms");
my ($n_ok) = views(1, 5, 'w');
is($n_ok, 5, 'a wrong Sentinel password: pages answered');
sleep 1.5;
is(${ present($s->node($s->master_port), 'w', 1, 5) }{1}, 0,
   'nothing recorded');
my $refused = log_count(qr/sentinel refused AUTH: "WRONGPASS/);
ok($refused >= 1 && $refused <= 2, "the refusal logged once ($refused)");

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 10);


# bad configuration fails nginx -t, naming the directive

for my $case (
    ["127.0.0.1:1 127.0.0.1:2",
     qr/several addresses in "history_redis" directive need "sentinel="/],
    ["127.0.0.1:1 sentinel=",
     qr/invalid value "sentinel=" in "history_redis" directive/],
    ["127.0.0.1:1 sentinel_password=x",
     qr/"sentinel_password=" needs "sentinel=" in "history_redis"/],
    ["127.0.0.1:1 sentinel=m sentinel_password=",
     qr/invalid value "sentinel_password=" in "history_redis"/],
    ["sentinel=m db=1", qr/no address in "history_redis" directive/],
    ["127.0.0.1:1 127.0.0.1:x sentinel=m",
     qr/invalid port in "127.0.0.1:x" of the "history_redis" directive/],
    ["127.0.0.1:1 replay=5s",
     qr/"replay=" needs "sentinel=" in "history_redis" directive/],
    ["127.0.0.1:1 sentinel=m replay=soon",
     qr/invalid value "replay=soon" in "history_redis" directive, @{[
        'it must be a time up to 1m, or off' ]}/],
    ["127.0.0.1:1 sentinel=m replay=2m",
     qr/invalid value "replay=2m" in "history_redis" directive/])
{
    my ($line, $re) = @$case;
    my %q = proc_setup(name => 'sentinel-conf', offset => 21, conf => <<"END");
events { }
http { history_redis $line; }
END
    my $out = `$q{nginx} -t -p $q{root}/ -c conf/nginx.conf 2>&1`;
    like($out, $re, "nginx -t: history_redis $line");
}

for my $line ("127.0.0.1:1 sentinel=m replay=off",
              "127.0.0.1:1 sentinel=m replay=0",
              "127.0.0.1:1 sentinel=m replay=500ms",
              "127.0.0.1:1 sentinel=m replay=1m")
{
    my %q = proc_setup(name => 'sentinel-conf', offset => 21, conf => <<"END");
events { }
http {
    history_redis $line;
}
END
    my $out = `$q{nginx} -t -p $q{root}/ -c conf/nginx.conf 2>&1`;
    like($out, qr/test is successful/, "nginx -t: history_redis $line");
}

done_testing;
