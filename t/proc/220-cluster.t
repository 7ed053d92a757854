# vi:filetype=perl
#
# A real Redis Cluster (3 masters, 3 replicas on loopback ports from
# TEST_NGINX_CLUSTER_PORT): keys land on the node that owns their slot and
# are read back; every feature works across nodes; a master killed with
# kill -9 under load, a manual CLUSTER FAILOVER and a slot migrated under
# load are ridden through, pages answered at once throughout.  The first
# seed of history_redis is a port nothing listens on.
#
# A plain script: it starts its own cluster and nginx.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Compress::Zlib qw(crc32);
use Time::HiRes qw(time sleep);

use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

plan skip_all => 't/lib/RedisTopology.pm is not there'
    unless eval { require RedisTopology; RedisTopology->import; 1 };

my $base = cluster_base();
my $dead = $base + 9;

my %p = proc_setup(name => 'cluster', offset => 14, conf => <<"END");
worker_processes 2;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$dead 127.0.0.1:$base cluster timeout=500ms;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            history_count \$1 daily unique;
            history_last_action on;
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
            history_forget on;
        }
        location = /tagged-history {
            history_key "m{\$arg_t}\$arg_v";
            history_key_pattern "^m\\{[a-z]+\\}[0-9]+\$";
            history_serve json;
        }
        location = /header {
            history_key \$arg_v;
            history_fetch on;
            add_header X-History \$history;
            try_files /nothing =204;
        }
        location = /online {
            history_key \$arg_v;
            history_online;
        }
        location = /s/action {
            history_prefix s:;
            history_key \$arg_v;
            history_last_action on;
            history_online_shards 6;
            return 204;
        }
        location = /s/online {
            history_prefix s:;
            history_online_shards 6;
            history_online;
        }
        location = /views {
            history_views daily unique;
        }
        location = /stats {
            history_stats;
        }
    }
}
END

my $c = start_cluster(dir => "$p{root}/redis-cluster");

nginx_start();

# a request with its body: (status, body, seconds)

sub fetch {
    my ($uri, $method) = @_;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return (0, '', 0);
    print $s ($method // 'GET') . " $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($head, $body) = $resp =~ m{^(.*?)\r\n\r\n(.*)\z}s;
    return ($status // 0, $body // '', time - $t0, $head // '');
}

# a key read on the node the cluster says owns it, without redirects

sub owner_call {
    my ($key, @cmd) = @_;
    my $port = $c->key_owner($key);
    return $c->call($port, @cmd);
}

sub stats {
    my (undef, $body) = fetch('/stats');
    return $body;
}

sub total {
    my $name = shift;
    my ($v) = stats() =~ /"total":\{.*?"$name":(\d+)/;
    return $v // -1;
}


# 1. 1,000 visitors: each key on its slot's master, read back right

my $ok = 0;

for my $i (1 .. 1000) {
    my ($status) = get("/product/" . ($i % 50) . "?v=u$i");
    $ok++ if $status == 200;
}

is($ok, 1000, '1,000 views answered');

RedisTopology::wait_until(sub {
    owner_call('history:u1000', 'EXISTS', 'history:u1000') == 1 }, 10);
sleep 0.3;

my (%per_master, $right, $read);

$right = $read = 0;

for my $i (1 .. 1000) {
    my $key = "history:u$i";
    my $port = $c->key_owner($key);
    $per_master{$port}++;

    my $list = $c->call($port, 'LRANGE', $key, 0, -1);
    $right++ if ref $list eq 'ARRAY' && "@$list" eq $i % 50;

    my (undef, $body) = fetch("/history?v=u$i");
    $read++ if $body eq '["' . ($i % 50) . '"]';
}

is($right, 1000, "each visitor's list is on the master owning its slot");
is($read, 1000, 'and each is read back through the module');
is(scalar keys %per_master, 3, 'the visitors are spread over the 3 masters');

my $views = owner_call('history:views:7', 'GET', 'history:views:7');
is($views, 20, 'a counter on its own node: 20 views of product 7');

my (undef, $body) = fetch('/views?ids=7,8,9');
is($body, '{"7":{"total":20,"today":20,"unique":20},'
          . '"8":{"total":20,"today":20,"unique":20},'
          . '"9":{"total":20,"today":20,"unique":20}}',
   'history_views reads counts from several nodes at once');

is(owner_call('history:last_action:u7', 'EXISTS', 'history:last_action:u7'),
   1, "the last action is on its key's node");

(undef, $body) = fetch('/online?ids=u7,nobody');
like($body, qr/^\{"online":1000,"visitors":\{"u7":\{"online":true,"last_seen":\d+\},"nobody":\{"online":false,"last_seen":null\}\}\}$/,
     'the online answer from its node counts every visitor');

# an error inside EXEC's answer (a list key holding a string): the
# unit's own error, logged, not a success

owner_call('history:m{wt}9', 'SET', 'history:m{wt}9', 'x');
get('/tagged/1?t=wt&v=9');
ok(RedisTopology::wait_until(sub {
       log_count(qr/redis replied with an error: "WRONGTYPE/) >= 1 }, 5),
   "WRONGTYPE inside EXEC's answer is logged as the unit's error");
is(owner_call('history:m{wt}9', 'GET', 'history:m{wt}9'), 'x',
   'and the string is left as it was');

# the online set in six sets: spread over the masters, read from all

for my $i (1 .. 300) {
    get("/s/action?v=u$i");
}

my (%set_master, $in_set, $sets);

RedisTopology::wait_until(sub {
    $sets = 0;
    $sets += owner_call("s:online:$_", 'ZCARD', "s:online:$_") for 0 .. 5;
    $sets == 300 }, 10);
is($sets, 300, 'six online sets hold the 300 visitors between them');

$in_set = 0;

for my $i (1 .. 300) {
    my $set = 's:online:' . (crc32("u$i") % 6);
    $in_set++ if defined owner_call($set, 'ZSCORE', $set, "u$i");
}

$set_master{$c->key_owner("s:online:$_")}++ for 0 .. 5;

is($in_set, 300, "each visitor is in the set its key's CRC-32 names");
ok(keys %set_master >= 2, 'the sets are on ' . (keys %set_master)
                          . ' of the 3 masters');

(undef, $body) = fetch('/s/online?ids=u7,u8,nobody');
like($body, qr/^\{"online":300,"visitors":\{"u7":\{"online":true,"last_seen":\d+\},"u8":\{"online":true,"last_seen":\d+\},"nobody":\{"online":false,"last_seen":null\}\}\}$/,
     'history_online adds up the six sets from their nodes');

my (undef, undef, undef, $head) = fetch('/header?v=u8');
like($head, qr/^X-History: 8\r?$/m, '$history from the cluster');

my ($status) = fetch('/history?v=u8', 'DELETE');
ok($status == 200 || $status == 204, 'forget answered');
RedisTopology::wait_until(sub {
    owner_call('history:u8', 'EXISTS', 'history:u8') == 0 }, 3);
is(owner_call('history:u8', 'EXISTS', 'history:u8'), 0,
   'forget deleted the list on its node');

# examples/flush_counts.py --cluster moves the counts of every master

SKIP: {
    skip 'python3-redis 4.x is not installed', 3
        unless system('/usr/bin/python3 -c "import redis.cluster" '
                      . '2>/dev/null') == 0;

    my $db = "$p{root}/counts.sqlite3";
    my $job = '/usr/bin/python3 examples/flush_counts.py --cluster '
              . "--redis-port $base --db $db 2>&1";
    my $out = `$job`;
    is($?, 0, 'flush_counts.py --cluster ran') or diag($out);

    my $sum = `/usr/bin/python3 -c 'import sqlite3; print(sqlite3.connect("$db").execute("SELECT COUNT(*), SUM(views) FROM page_views").fetchone())'`;
    chomp $sum;
    is($sum, '(50, 1000)', 'the table has the 1,000 views of 50 products');

    my $left = 0;
    for my $port ($c->masters) {
        my $keys = $c->call($port, 'KEYS', 'history:views:*');
        $left += grep { !/:\d{4}-\d\d-\d\d$/ } @$keys;
    }
    is($left, 0, 'and no total counter is left on any master');
}

my $s = stats();
my @nodes = $s =~ /\{"address":"127\.0\.0\.1:(\d+)","role":"master","slots":(\d+),"connected":1/g;
my %slots = @nodes;
is(scalar keys %slots, 3, 'history_stats names 3 connected masters');
my $sum = 0;
$sum += $_ for values %slots;
ok($sum >= 16384, 'their slots cover the cluster');
like($s, qr/"address":"127\.0\.0\.1:$dead","role":"none","slots":0,"connected":0/,
     'the dead seed is named, with no slots');
is(log_count(qr/\[error\].*127\.0\.0\.1:$dead/), 2,
   'the dead first seed: one error per worker, then the next seed');


# 2. kill -9 of a master under load

my $victim = $c->key_owner('history:k1');
my $replica = $c->replica_of($victim);
ok($replica, "master $victim has a replica, $replica");

my ($before_failed, $before_dropped) = (total('failed'), total('dropped'));
my ($n, $answered, $slowest, $killed, $promoted) = (0, 0, 0, 0, undef);
my $t0 = time;

while (time - $t0 < 9 || !defined $promoted) {
    $n++;
    my ($st, $t) = get("/product/1?v=k$n");
    $answered++ if $st == 200;
    $slowest = $t if $t > $slowest;

    if (!$killed && time - $t0 > 1) {
        $c->kill($victim);
        $killed = time;
    }

    if ($killed && !defined $promoted
        && ($c->node($replica)->role // '') eq 'master')
    {
        $promoted = time - $killed;
    }

    last if time - $t0 > 20;
    sleep 0.01;
}

is($answered, $n, "all $n pages answered while a master died");
cmp_ok($slowest, '<', 0.3, 'no page waited for Redis');
diag(sprintf 'kill -9: %d views, slowest page %.1f ms, replica promoted '
             . '%.1f s after the kill', $n, $slowest * 1000,
             $promoted // -1);

$c->wait_master($replica, 10);

my $recorded;
my $lost = 0;

RedisTopology::wait_until(sub {
    $recorded = 0;
    for my $i (1 .. $n) {
        my $key = "history:k$i";
        my $r = $c->call($c->key_owner($key), 'EXISTS', $key);
        $recorded++ if !ref $r && $r == 1;
    }
    $lost = total('failed') - $before_failed
            + total('dropped') - $before_dropped;
    return $recorded + $lost >= $n;
}, 10);

cmp_ok($n - $recorded, '<=', $lost,
       "every view recorded, or counted among the units lost "
       . "($recorded of $n recorded, $lost units lost)");
cmp_ok($lost, '<=', 10, 'only what was in flight on the dead connection');

my $key = "history:k$n";
is($c->key_owner($key) == $replica || $c->key_owner('history:k1') == $replica,
   1, 'the promoted replica owns the dead master\'s slots');
is($c->call($replica, 'EXISTS', 'history:k1') // 0, 1,
   'a view of before the kill is on the promoted replica');

($status) = get('/product/2?v=k1');
RedisTopology::wait_until(sub {
    my $l = $c->call($replica, 'LRANGE', 'history:k1', 0, -1);
    ref $l eq 'ARRAY' && $l->[0] eq '2' }, 5);
my $l = $c->call($replica, 'LRANGE', 'history:k1', 0, -1);
is(ref $l eq 'ARRAY' ? "@$l" : "$l", '2 1',
   'recording resumes on the promoted replica');
diag("kill -9: $lost views lost");


# 3. a manual CLUSTER FAILOVER: the old master comes back as a replica

$c->restart($victim);
$c->wait_ok(20);

$before_failed = total('failed');
$before_dropped = total('dropped');

my $target = $c->key_owner('history:f1');
my $standby = $c->replica_of($target);

my $pid = fork // die;

if ($pid == 0) {
    sleep 0.3;
    $c->failover($standby);
    POSIX::_exit(0);
}

($n, $answered, $slowest) = (0, 0, 0);
$t0 = time;

while (time - $t0 < 3) {
    $n++;
    my ($st, $t) = get("/product/3?v=f$n");
    $answered++ if $st == 200;
    $slowest = $t if $t > $slowest;
    sleep 0.01;
}

waitpid $pid, 0;
$c->wait_master($standby, 10);

is($answered, $n, "all $n pages answered during a manual failover");

RedisTopology::wait_until(sub {
    $recorded = 0;
    for my $i (1 .. $n) {
        my $k = "history:f$i";
        my $r = $c->call($c->key_owner($k), 'EXISTS', $k);
        $recorded++ if !ref $r && $r == 1;
    }
    return $recorded == $n;
}, 10);

is($recorded, $n, 'a manual failover loses no view');
is(total('failed') - $before_failed + total('dropped') - $before_dropped, 0,
   'and none is counted as lost');
is($c->key_owner('history:f1'), $standby, 'the replica took over');


# 4. a slot migrated under load: ASK while it moves, MOVED after

my $tag = 'mig';
my $slot = key_slot($tag);
my $from = $c->slot_owner($slot);
my ($to) = grep { $_ != $from } $c->masters;

my ($sent, %expect) = (0);

for my $v (1 .. 20) {
    get("/tagged/1?t=$tag&v=$v");
    $expect{$v} = '1';
}

sleep 0.3;

my $asking0 = ($c->node($to)->info('cmdstat_asking') // '') =~ /calls=(\d+)/
              ? $1 : 0;

$c->migrate_slot($slot, $to, hook => sub {
    my ($step) = @_;
    return unless $step eq 'key' || $step eq 'migrating';
    # views of visitors whose lists have moved, and of ones that have not
    for my $v (1 .. 20) {
        my $id = ++$sent % 5 + 2;
        get("/tagged/$id?t=$tag&v=$v");
        $expect{$v} = $id . ' ' . join ' ', grep { $_ ne $id }
                      split ' ', $expect{$v};
    }
});

for my $v (1 .. 20) {
    my $id = ++$sent % 5 + 2;
    get("/tagged/$id?t=$tag&v=$v");
    $expect{$v} = $id . ' ' . join ' ', grep { $_ ne $id }
                  split ' ', $expect{$v};
}

my $good = 0;

RedisTopology::wait_until(sub {
    $good = 0;
    for my $v (1 .. 20) {
        my $k = "history:m{$tag}$v";
        my $list = $c->call($to, 'LRANGE', $k, 0, -1);
        my @want = (split ' ', $expect{$v})[0 .. 4];
        @want = grep { defined } @want;
        $good++ if ref $list eq 'ARRAY' && "@$list" eq "@want";
    }
    return $good == 20;
}, 10);

is($good, 20, 'every list of the migrated slot is whole on its new node');
is($c->call($from, 'CLUSTER', 'COUNTKEYSINSLOT', $slot), 0,
   'nothing left behind on the old node');

my $asking1 = ($c->node($to)->info('cmdstat_asking') // '') =~ /calls=(\d+)/
              ? $1 : 0;
cmp_ok($asking1 - $asking0, '>', 0,
       'views of lists already moved went with ASKING (ASK followed)');

(undef, $body) = fetch("/tagged-history?t=$tag&v=3");
is($body, '[' . join(',', map { "\"$_\"" }
                     grep { defined } (split ' ', $expect{3})[0 .. 4]) . ']',
   'the moved list is read back through the module (MOVED followed)');

like(stats(), qr/"redirects":[1-9]/, 'history_stats counts the redirects');

is(log_count(qr/\[alert\]|\[crit\]/), 0, 'no alert, no crash');

$c->stop;

done_testing();
