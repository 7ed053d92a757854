# vi:filetype=perl
#
# Redis Cluster over TLS: a real TLS-only cluster (3 masters, 3 replicas,
# --port 0 --tls-port P --tls-cluster yes --tls-replication yes, from
# TEST_NGINX_TLS_PORT + 40) and certificates made by openssl
# (t/lib/RedisTopology.pm).  The map comes from the nodes' TLS ports
# ("tls-port" of CLUSTER SHARDS: a TLS-only node has no "port"), so
# views go straight to the master of their slot; each node's connection
# is verified against its IP address and resumes its own TLS session;
# a slot migrated (ASK, then MOVED) and a master killed with kill -9 are
# ridden through over TLS; history_stats shows TLS per node; a
# certificate of another CA is refused and logged for every seed.  Then
# scripted nodes (t/lib/MockCluster.pm) for a plain link: "port" is
# used, and a master that offers only a TLS port is skipped and logged
# once, however often the map is asked again.
#
# A plain script with its own cluster, mocks and nginx
# (TEST_NGINX_SERVER_PORT + 22).

use strict;
use warnings;

use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);

use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

plan skip_all => 't/lib/RedisTopology.pm is not there'
    unless eval { require RedisTopology; RedisTopology->import;
                  require MockCluster; 1 };

my $t0 = time;
my $base = tls_base() + 40;
my $root = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
           . '-cluster-tls';
my $certs = make_certs("$root-certs");
my $n = 0;
my %p;

sub nginx_with {
    my ($redis, $more) = @_;

    if (%p) {
        nginx_signal('QUIT');
        wait_for(sub { !nginx_running() }, 5);
    }

    $n++;
    %p = proc_setup(name => "cluster-tls$n", offset => 22, conf => <<"END");
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis $redis timeout=1s connect_timeout=1s;
    $more
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            return 200 "product \$1\\n";
        }
        location ~ ^/tagged/(\\d+)\$ {
            history_key "m{\$arg_t}\$arg_v";
            history_key_pattern "^m\\{[a-z]+\\}[0-9]+\$";
            history_record \$1;
            return 200 "tagged \$1\\n";
        }
        location = /history {
            history_key \$arg_v;
            history_serve json;
        }
        location = /tagged-history {
            history_key "m{\$arg_t}\$arg_v";
            history_key_pattern "^m\\{[a-z]+\\}[0-9]+\$";
            history_serve json;
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
    return (get(shift))[2];
}

# the worker's figures, and its nodes by port

sub stats {
    my $s = eval { JSON::PP::decode_json(body('/stats')) } || {};
    return $s->{workers} ? $s->{workers}[0] : {};
}

sub nodes {
    my %n;
    for my $node (@{ stats()->{nodes} || [] }) {
        $n{$1} = $node if $node->{address} =~ /:(\d+)$/;
    }
    return %n;
}

# LINDEX key 0 of each key on the node that owns its slot, with
# redis-cli --tls (no -c: a node that does not own the key says MOVED)

sub first_elements {
    my ($c, @keys) = @_;
    my (%by, %got);

    push @{ $by{ $c->key_owner($_) } }, $_ for @keys;

    for my $port (sort keys %by) {
        my $cmd = join ' ', 'redis-cli', $c->node($port)->cli_opts;
        my $in = "$root-in";
        open my $fh, '>', $in or die "$in: $!";
        print $fh "LINDEX $_ 0\n" for @{ $by{$port} };
        close $fh;
        my @out = split /\n/, `$cmd < $in 2>&1`, -1;
        @got{ @{ $by{$port} } } = @out;
    }

    return %got;
}


# 0. the cluster, and nginx with two of its masters as seeds

my $c = start_cluster(dir => "$root-redis", base => $base, tls => $certs);
my @masters = $c->masters;
diag(sprintf 'TLS cluster up: %.1f s, masters %s', time - $t0,
             join ' ', @masters);

nginx_with("127.0.0.1:$masters[0] 127.0.0.1:$masters[1] cluster tls",
           "history_redis_ssl_trusted_certificate $certs->{ca};");


# 1. the map: every slot to its master's TLS port, before any view

my %nodes;

ok(wait_for(sub {
       %nodes = nodes();
       my $sum = 0;
       $sum += ($nodes{$_} || {})->{slots} // 0 for @masters;
       $sum == 16384 }, 5),
   'CLUSTER SHARDS over TLS gives the 3 masters, at their TLS ports, '
   . 'all 16384 slots');

my $map = $c->slot_map;
my %want;
$want{ $map->[$_] }++ for 0 .. 16383;
is(join(' ', map { ($nodes{$_} || {})->{slots} // 0 } @masters),
   join(' ', map { $want{$_} } @masters),
   'each master has the slots the cluster gives it');
is(log_count(qr/skipped/), 0, 'no master skipped');


# 2. 300 visitors over TLS: each list on its slot's master, read back

my ($ok) = views(1, 300, 'u');
is($ok, 300, '300 pages answered');

my @keys = map { "history:u$_" } 1 .. 300;
my %per = map { $c->key_owner($_) => 1 } @keys;
is(scalar keys %per, 3, 'the visitors are spread over the 3 masters');

my %got;
ok(wait_for(sub {
       %got = first_elements($c, $keys[-1]);
       ($got{ $keys[-1] } // '') eq '300' }, 5),
   'the last view landed');

%got = first_elements($c, @keys);
is(scalar(grep { ($got{"history:u$_"} // '') eq $_ } 1 .. 300), 300,
   "each visitor's view is on the master owning its slot "
   . '(redis-cli --tls, no -c)');

my $read = grep { body("/history?v=u$_") eq qq{["$_"]} } 1 .. 300;
is($read, 300, 'and each is read back through the module over TLS');

my $st = stats();
is($st->{redirected}, 0, 'no view needed a MOVED: the map was right');
is($st->{tls_failures}, 0, 'no TLS handshake failed');


# 3. history_stats: TLS per node, each verified

%nodes = nodes();

for my $m (@masters) {
    my $ns = $nodes{$m} || {};
    is(join(',', map { $ns->{$_} // '-' }
                 qw(role connected tls tls_failures)),
       'master,1,1,0', "master $m: connected over TLS, verified");
    cmp_ok($ns->{tls_handshakes} // 0, '>=', 1, "master $m: a handshake");
}

is($st->{tls}, 3, 'history_stats: 3 TLS connections up');
is(log_count(qr/\[(error|alert|crit)\]/), 0, 'nothing logged');


# 4. each node resumes its own session: Redis drops every connection,
# the next views reconnect to each master

my %before = map { $_ => $nodes{$_}{tls_handshakes} } @masters;

for my $m (@masters) {
    $c->node($m)->cli('CLIENT', 'KILL', 'TYPE', 'normal');
}

views(301, 330, 'u');

ok(wait_for(sub {
       %nodes = nodes();
       !grep { ($nodes{$_}{tls_handshakes} // 0) <= $before{$_} }
             @masters }, 5),
   'a new handshake with each master');
is(join(' ', map { ($nodes{$_}{tls_reused} // 0) >= 1 ? 'reused' : 'new' }
             @masters),
   'reused reused reused', "each resumed its own node's TLS session");


# 5. a slot migrated over TLS: ASK while it moves, MOVED after

my $tag = 'mig';
my $slot = key_slot($tag);
my $from = $c->slot_owner($slot);
my ($to) = grep { $_ != $from } @masters;
my ($sent, %expect) = (0);

for my $v (1 .. 20) {
    get("/tagged/1?t=$tag&v=$v");
    $expect{$v} = '1';
}

sleep 0.3;

sub asking {
    my $port = shift;
    return ($c->node($port)->info('cmdstat_asking') // '') =~ /calls=(\d+)/
           ? $1 : 0;
}

sub tagged_view {
    my $v = shift;
    my $id = ++$sent % 5 + 2;
    get("/tagged/$id?t=$tag&v=$v");
    $expect{$v} = join ' ', $id, grep { $_ ne $id } split ' ', $expect{$v};
}

my $asking0 = asking($to);

$c->migrate_slot($slot, $to, hook => sub {
    my ($step) = @_;
    return unless $step eq 'key' || $step eq 'migrating';
    tagged_view($_) for 1 .. 20;
});

tagged_view($_) for 1 .. 20;

my $good = 0;

RedisTopology::wait_until(sub {
    $good = 0;
    for my $v (1 .. 20) {
        my $list = $c->call($to, 'LRANGE', "history:m{$tag}$v", 0, -1);
        my @want = grep { defined } (split ' ', $expect{$v})[0 .. 4];
        $good++ if ref $list eq 'ARRAY' && "@$list" eq "@want";
    }
    return $good == 20;
}, 10);

is($good, 20, 'every list of the migrated slot is whole on its new node');
is($c->call($from, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 0,
   'nothing left behind on the old node');
cmp_ok(asking($to) - $asking0, '>', 0,
       'views of lists already moved went with ASKING (ASK over TLS)');
is(body("/tagged-history?t=$tag&v=3"),
   '[' . join(',', map { qq{"$_"} }
                   grep { defined } (split ' ', $expect{3})[0 .. 4]) . ']',
   'the moved list is read back through the module (MOVED over TLS)');
cmp_ok(stats()->{redirected}, '>', 0, 'the redirects are counted');


# 6. kill -9 of a master under light load: its replica is promoted and
# the views of its slots land there, over TLS

my $victim = $masters[2];
my $heir = $c->replica_of($victim);
ok($heir, "master $victim has a replica, $heir");

my ($vkey) = grep { $c->key_owner($_) == $victim } @keys;
(my $vid = $vkey) =~ s/^history://;

my ($pages, $answered, $slowest, $killed, $landed) = (0, 0, 0, 0, undef);
my $at_kill;
my $t1 = time;

while (time - $t1 < 25) {
    $pages++;
    my ($status, $t) = get("/product/" . (1000 + $pages) . "?v=$vid");
    $answered++ if $status >= 200 && $status < 300;
    $slowest = $t if $t > $slowest;

    if (!$killed && time - $t1 > 0.5) {
        $c->kill($victim);
        $killed = time;
        $at_kill = 1000 + $pages;
    }

    if ($killed && !defined $landed
        && ($c->node($heir)->role // '') eq 'master')
    {
        # the newest view, made after the kill
        my $l = eval { $c->call($heir, 'LINDEX', $vkey, 0) };
        $landed = time - $killed
            if defined $l && !ref $l && $l =~ /^\d+$/ && $l > $at_kill;
    }

    last if defined $landed && time - $killed > $landed + 0.5;
    sleep 0.02;
}

is($answered, $pages, "all $pages pages answered (2xx) while a master died");
cmp_ok($slowest, '<', 0.3, 'no page waited for Redis');
ok(defined $landed, 'recording resumes on the promoted replica, over TLS');
diag(sprintf 'kill -9: %d pages, slowest %.1f ms, views land on the '
             . 'promoted replica %.1f s after the kill', $pages,
             $slowest * 1000, $landed // -1);

ok(wait_for(sub {
       %nodes = nodes();
       my $ns = $nodes{$heir} || {};
       ($ns->{role} // '') eq 'master' && $ns->{slots} > 0
       && $ns->{connected} && $ns->{tls} }, 5),
   'history_stats: the promoted replica is a master, connected over TLS');
is(($nodes{$victim} || {})->{tls} // -1, 0,
   'history_stats: the dead master is not');
is(log_count(qr/\[(alert|crit)\]/), 0, 'no alert, no crash');


# 7. a certificate of another CA: every seed refuses, each logged once,
# pages answered as with Redis down

nginx_with("127.0.0.1:$masters[0] 127.0.0.1:$masters[1] cluster tls",
           "history_redis_ssl_trusted_certificate $certs->{other_ca};");

my $t2 = time;
($ok) = views(1, 10, 'ca');
is($ok, 10, 'another CA: pages answered');
is(body('/history?v=ca1'), '[]', 'another CA: the fallback');
cmp_ok(time - $t2, '<', 2, 'another CA: no request waited');

ok(wait_for(sub {
       %nodes = nodes();
       !grep { ($nodes{$_}{tls_failures} // 0) < 2 }
             @masters[0, 1] }, 5),
   'another CA: each seed refused, again and again');
is(join(' ', map { $nodes{$_}{tls_handshakes} // -1 } @masters[0, 1]),
   '0 0', 'another CA: no handshake done');
is(stats()->{tls}, 0, 'another CA: TLS is not up');
for my $m (@masters[0, 1]) {
    is(log_count(qr/\[error\]\ .*redis\ SSL\ certificate\ verify\ error:
                    \ \(\d+:.*redis:\ 127\.0\.0\.1:$m$/x),
       1, "another CA: seed $m logged once, with the reason");
}
my %ca = first_elements($c, map { "history:ca$_" } 1 .. 10);
is(join('', values %ca), '', 'another CA: nothing written');

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 5);
%p = ();
$c->stop;


# 8. a plain link: "port", not "tls-port"; a master with a TLS port only
# is skipped, logged once however often the map is asked again, and its
# slots are reached through MOVED

my ($pa, $pb) = ($base + 10, $base + 11);
my %slots = ($pa => [[0, 8191]], $pb => [[8192, 16383]]);

sub resp_node {
    my ($role, %ports) = @_;
    my $B = \&MockCluster::Node::bulk;
    my $I = \&MockCluster::Node::int_;
    return MockCluster::Node::arr(
        $B->('id'), $B->(MockCluster::node_id($ports{port}
                                              // $ports{'tls-port'})),
        (map { ($B->($_), $I->($ports{$_})) } sort keys %ports),
        $B->('ip'), $B->('127.0.0.1'), $B->('endpoint'), $B->('127.0.0.1'),
        $B->('role'), $B->($role), $B->('replication-offset'), $I->(0),
        $B->('health'), $B->('online'));
}

sub resp_shard {
    my ($from, $to, $node) = @_;
    return MockCluster::Node::arr(
        MockCluster::Node::bulk('slots'),
        MockCluster::Node::arr(MockCluster::Node::int_($from),
                               MockCluster::Node::int_($to)),
        MockCluster::Node::bulk('nodes'), MockCluster::Node::arr($node));
}

# A has a plain port and a TLS port nothing listens on; B a TLS port only
my $shards = MockCluster::Node::arr(
    resp_shard(0, 8191, resp_node('master', port => $pa,
                                  'tls-port' => $pa + 5)),
    resp_shard(8192, 16383, resp_node('master', 'tls-port' => $pb)));

my $ma = MockCluster->start(port => $pa, slots => \%slots, shards => $shards,
                            log => "$root-mock-a.log");
my $mb = MockCluster->start(port => $pb, slots => \%slots, shards => $shards,
                            log => "$root-mock-b.log");

nginx_with("127.0.0.1:$pa cluster", '');

my (@low, @high);

for my $i (1 .. 400) {
    my $s = key_slot("history:p$i");
    push @{ $s < 8192 ? \@low : \@high }, $i;
    last if @low >= 3 && @high >= 3;
}

ok(wait_for(sub { ({ nodes() }->{$pa} || {})->{slots} == 8192 }, 3),
   'a plain link: A\'s slots at its "port"');

# views of B's slots (sent to A, or to B once B has answered for a map)
# and of A's

get("/product/$_?v=p$_") for @high, @low;

sub on {
    my ($port, @ids) = @_;
    return !grep { my $l = RedisTopology::command($port, 'LRANGE',
                                                  "history:p$_", 0, -1);
                   !(ref $l eq 'ARRAY' && "@$l" eq $_) } @ids;
}

ok(wait_for(sub { on($pb, @high) }, 3),
   'the views of B\'s slots land on B, through MOVED');
ok(on($pa, @low), 'the views of A\'s slots on A');

# three MOVED a second apart: a slot of A's moved to B, a view of it;
# each MOVED asks for the map again

my $asked0 = $ma->commands(qr/ CLUSTER SHARDS$/)
             + $mb->commands(qr/ CLUSTER SHARDS$/);

for my $i (@low) {
    my $s = key_slot("history:p$i");
    $_->control('SLOTS', $s, $s, $pb) for $ma, $mb;
    get("/product/$i?v=p$i");
    sleep 1.1;
}

ok(wait_for(sub { on($pb, @low) }, 3),
   'the views of the slots moved to B land on B');
cmp_ok($ma->commands(qr/ CLUSTER SHARDS$/)
       + $mb->commands(qr/ CLUSTER SHARDS$/) - $asked0, '>=', 3,
       'the map was asked for again after each MOVED');
is(log_count(qr/\[error\] .*redis\ cluster\ master\ "127\.0\.0\.1"\ skipped:
                \ CLUSTER\ SHARDS\ gives\ it\ no\ "port"/x),
   1, 'the master with a TLS port only: skipped, logged once');
is(log_count(qr/\[(alert|crit)\]/), 0, 'no alert, no crash');

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 5);
$ma->stop;
$mb->stop;


# 9. a map that names every slot 1,000 times (within the reply limit):
# refused whole, not applied
# (applying it would be 16 million slot stores per refresh)

my $pc = $base + 12;
my $dup = MockCluster::Node::arr(map { resp_shard(0, 16383,
                                                  resp_node('master',
                                                            port => $pc)) }
                                     1 .. 1000);
my $mc = MockCluster->start(port => $pc, slots => { $pc => [[0, 16383]] },
                            shards => $dup, log => "$root-mock-c.log");

nginx_with("127.0.0.1:$pc cluster", '');

ok(wait_for(sub { log_count(qr/redis sent an invalid cluster map/) >= 1 },
            5),
   'a map naming each slot 1,000 times is refused as invalid');
is(({ nodes() }->{$pc} || {})->{slots} // 0, 0, 'and gives no slot');
is(log_count(qr/\[(alert|crit)\]/), 0, 'no alert, no crash');

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 5);
$mc->stop;

diag(sprintf 'total: %.1f s', time - $t0);

done_testing();
