# vi:filetype=perl
#
# A real Redis Cluster (3 masters, 3 replicas on ports from
# TEST_NGINX_CLUSTER_PORT) whose nodes announce hostnames
# (cluster-announce-hostname n<port>.redis.test,
# cluster-preferred-endpoint-type hostname) and, as their "ip", 127.0.0.2;
# a DNS server (t/lib/MockDNS.pm, on TEST_NGINX_DNS_PORT or the cluster's
# first port + 53) answers the names with 127.0.0.1, and one of them with
# 200 addresses.  With nginx's "resolver", the nodes are reached at the
# addresses DNS gave, the names asked once in a while and not per
# request; MOVED and ASK naming a hostname are followed; a name that does
# not resolve and one too long are logged and skipped, their slots kept
# where they were.  Without "resolver", the nodes are reached by their
# "ip", and that is logged once.
#
# A plain script: it starts its own cluster, DNS server and nginx.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);

use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

plan skip_all => 't/lib/RedisTopology.pm is not there'
    unless eval { require RedisTopology; RedisTopology->import;
                  require MockDNS; 1 };

my $base = cluster_base();
my $dns_port = $ENV{TEST_NGINX_DNS_PORT} || $base + 53;
my $workers = 2;

my $conf = <<"END";
worker_processes $workers;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    resolver 127.0.0.1:$dns_port valid=1s;
    resolver_timeout 2s;
    history_redis 127.0.0.1:$base cluster timeout=500ms;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            return 200 "product \$1\\n";
        }
        location ~ ^/tagged/(\\d+)\$ {
            history_key "m{\$arg_t}\$arg_v";
            history_key_pattern "^m\\{[a-z0-9]+\\}[0-9]+\$";
            history_record \$1;
            return 200 "tagged \$1\\n";
        }
        location = /stats {
            history_stats;
        }
    }
}
END

my %p = proc_setup(name => 'cluster-hostnames', offset => 22,
                   conf => $conf);

sub name_of { "n$_[0].redis.test" }

my $c = start_cluster(dir => "$p{root}/redis-cluster",
                      announce_hostname => 'n%d.redis.test',
                      endpoint_type => 'hostname',
                      announce_ip => '127.0.0.2');

my ($ma, $mb, $mc) = $c->masters;

# the third master's name has 200 addresses, 127.0.0.1 the lowest, not
# the first: nothing else listens on the others
my @many = map { "127.0.1.$_" } 1 .. 199;
splice @many, 100, 0, '127.0.0.1';

my $dns = MockDNS->start(port => $dns_port, log => "$p{root}/dns.log",
                         names => { (map { name_of($_) => '127.0.0.1' }
                                     $c->ports),
                                    name_of($mc) => \@many });

# what the cluster answers clients: hostnames

my $shards = join ' ', flat($c->call($ma, 'CLUSTER', 'SHARDS'));
like($shards, qr/endpoint ${\ name_of($ma)} hostname ${\ name_of($ma)}/,
     'CLUSTER SHARDS gives the hostname as the endpoint');
like($shards, qr/ip 127\.0\.0\.2 /, 'and 127.0.0.2 as the ip');

nginx_start();

sub flat { map { ref eq 'ARRAY' ? flat(@$_) : $_ } @_ }

sub stats { (get_body('/stats'))[1] }

sub get_body {
    my $uri = shift;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return (0, '');
    print $s "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($body) = $resp =~ m{\r\n\r\n(.*)\z}s;
    return ($status // 0, $body // '');
}

sub total {
    my $name = shift;
    my ($v) = stats() =~ /"total":\{.*?"$name":(\d+)/;
    return $v // -1;
}

# the masters history_stats shows connected, as "addr:port" => count

sub connected_masters {
    my %m;
    $m{$_}++ for stats() =~ /\{"address":"([\d.]+:\d+)","role":"master","slots":\d+,"connected":1/g;
    return \%m;
}

# how many visitors' lists are whole on the master owning their slot

sub on_owners {
    my ($want, @keys) = @_;
    my $good = 0;
    for my $key (@keys) {
        my $l = $c->call($c->key_owner($key), 'LRANGE', $key, 0, -1);
        $good++ if ref $l eq 'ARRAY' && "@$l" eq $want->($key);
    }
    return $good;
}

# a view of product $product->(i) by visitor <tag>i for each i up to $n,
# then, once they are in: (how many answered, how many landed, the keys)

sub views_landed {
    my ($tag, $n, $product) = @_;
    my $ok = 0;

    for my $i (1 .. $n) {
        my ($status) = get('/product/' . $product->($i) . "?v=$tag$i");
        $ok++ if $status == 200;
    }

    my @keys = map { "history:$tag$_" } 1 .. $n;
    my $want = sub { my ($i) = $_[0] =~ /(\d+)$/; $product->($i) };
    my $good = 0;

    wait_for(sub { ($good = on_owners($want, @keys)) == $n }, 10);

    return ($ok, $good, @keys);
}

sub asking_calls {
    my $port = shift;
    return ($c->node($port)->info('cmdstat_asking') // '') =~ /calls=(\d+)/
           ? $1 : 0;
}

my $t0 = time;


# 1. a few hundred visitors land on their masters, reached at the
# addresses DNS gave; the names are asked, and not per request

my $n = 300;
my ($ok, $good, @keys) = views_landed('h', $n, sub { $_[0] % 30 });

is($ok, $n, "$n views answered");
is($good, $n, "each of the $n lists is on the master owning its slot");

my %per_master;
$per_master{ $c->key_owner($_) }++ for @keys;
is(scalar keys %per_master, 3, 'the visitors are spread over the 3 masters');

my $m;
wait_for(sub { $m = connected_masters(); keys %$m >= 3 }, 5);
is(join(' ', sort keys %$m),
   join(' ', sort map { "127.0.0.1:$_" } $ma, $mb, $mc),
   'the masters are reached at the addresses DNS gave, 127.0.0.1, '
   . 'the lowest of 200 among them');
unlike(stats(), qr/127\.0\.0\.2/, 'never at their "ip"');

my $elapsed = time - $t0;
my $asked = $dns->queries;

for my $port ($ma, $mb, $mc) {
    cmp_ok($dns->queries(qr/^1 \Q${\ name_of($port)}\E$/), '>=', 1,
           "the name of master $port was asked (A)");
}

is($dns->queries(qr/^1 \Q${\ name_of($c->replica_of($ma))}\E$/), 0,
   'a replica\'s name is not asked');

# each worker asks each master's name (A and AAAA) when a map names it
# and the answer is older than valid=1s: maps come at start, a second on,
# then every 10 s
my $bound = $workers * 3 * 2 * (int($elapsed) + 2);
cmp_ok($asked, '<=', $bound,
       "$asked DNS queries for $n requests in "
       . sprintf('%.1f s', $elapsed) . " (at most $bound): cached");
diag(sprintf '%d requests, %d DNS queries in %.1f s', $n, $asked,
             $elapsed);

is(log_count(qr/\[error\]|\[warn\]/), 0, 'nothing logged');


# 2. ASK and MOVED naming a hostname are followed: a slot migrated

my $tag = 'mv';
my $slot = key_slot($tag);
my $from = $c->slot_owner($slot);
my ($to) = grep { $_ != $from } $ma, $mb, $mc;

for my $v (1 .. 10) {
    get("/tagged/1?t=$tag&v=$v");
}

wait_for(sub { $c->call($from, 'EXISTS', "history:m{$tag}10") == 1 }, 5);

my ($asking0, $asked_during) = (asking_calls($to), 0);

$c->migrate_slot($slot, $to, hook => sub {
    my ($step) = @_;
    return unless $step eq 'migrating';
    # a new list: the old owner answers ASK naming the new one
    get("/tagged/3?t=$tag&v=100");
    $asked_during = defined wait_for(sub {
        asking_calls($to) > $asking0 }, 3);
});

ok($asked_during, 'while the slot moves, ASK naming a hostname is followed '
                  . '(ASKING on the new owner)');

my $redirected0 = total('redirected');

for my $v (1 .. 10) {
    get("/tagged/2?t=$tag&v=$v");
}

my @mv = map { "history:m{$tag}$_" } 1 .. 10;
$good = 0;
wait_for(sub {
    $good = grep { my $l = $c->call($to, 'LRANGE', $_, 0, -1);
                   ref $l eq 'ARRAY' && "@$l" eq '2 1' } @mv;
    $good == 10 }, 5);
is($good, 10, 'after it moved, the views went to its new owner');

my $l = $c->call($to, 'LRANGE', "history:m{$tag}100", 0, -1);
is(ref $l ? "@$l" : $l, '3', 'and so did the view sent while it moved');
cmp_ok(total('redirected') - $redirected0, '>=', 1,
       'through MOVED naming the new owner by hostname');
is(log_count(qr/skipped|\[error\]/), 0, 'no node skipped');


# 3. a name that does not resolve, and one too long to be a DNS name: the
# masters announcing them keep their slots in the map, logged, no harm

my ($bad, $long) = grep { $_ != $to } $ma, $mb, $mc;
my $long_name = 'a' x 255;

$c->call($bad, 'CONFIG', 'SET', 'cluster-announce-hostname',
         'nowhere.redis.test');
$c->call($long, 'CONFIG', 'SET', 'cluster-announce-hostname', $long_name);

ok(defined RedisTopology::wait_until(sub {
       for my $port ($c->ports) {
           my $s = join ' ', flat($c->call($port, 'CLUSTER', 'SHARDS'));
           return 0 unless $s =~ /endpoint nowhere\.redis\.test /
                           && $s =~ /endpoint $long_name /;
       }
       return 1 }, 10),
   'every node announces the new names');

# a map is asked again 10 s after the last, or at once after a MOVED:
# move a slot of the bad node's to the good one, and send a view there

my ($ttag) = grep { $c->slot_owner(key_slot($_)) == $bad }
             map { "t$_" } 1 .. 1000;
$c->migrate_slot(key_slot($ttag), $to);
get("/tagged/4?t=$ttag&v=1");

ok(defined wait_for(sub {
       log_count(qr/\[error\].*"nowhere\.redis\.test" could not be resolved/)
       >= 1 }, 12),
   'the name that does not resolve is logged');
cmp_ok($dns->queries(qr/^1 nowhere\.redis\.test$/), '>=', 1,
       'after it was asked');
ok(defined wait_for(sub {
       log_count(qr/\[error\].*host of 255 bytes is neither an address nor/)
       >= 1 }, 3),
   'the name too long is logged');
is($dns->queries(qr/aaaaaaaa/), 0, 'and never asked');

(undef, $good, my @late) = views_landed('late', 60, sub { 5 });
is($good, 60, 'views still land on every master, those two included');

my %late_owner;
$late_owner{ $c->key_owner($_) }++ for @late;
ok($late_owner{$bad} && $late_owner{$long},
   'some of them on each of the two');

cmp_ok(log_count(qr/could not be resolved/), '<=', $workers,
       'the failure logged at most once per worker');


# 4. the same cluster without "resolver": the nodes by their "ip",
# logged once per worker

$c->call($bad, 'CONFIG', 'SET', 'cluster-announce-hostname', name_of($bad));
$c->call($long, 'CONFIG', 'SET', 'cluster-announce-hostname',
         name_of($long));

(my $plain = slurp("$p{root}/conf/nginx.conf")) =~ s/^\s*resolver\b.*\n//mg;
open my $fh, '>', "$p{root}/conf/nginx.conf" or die $!;
print $fh $plain, "\n";
close $fh;

my $reached0 = log_count(qr/reached by its "ip"/);
is($reached0, 0, 'with a resolver, no node was reached by its ip');

nginx_signal('HUP');

ok(defined wait_for(sub {
       my $s = stats();
       my @a = $s =~ /"address":"127\.0\.0\.2:\d+","role":"master"/g;
       @a == 3 * $workers && $s !~ /"address":"127\.0\.0\.1:\d+","role":"master"/
   }, 10),
   'without resolver, each new worker reaches the 3 masters at their ip');

my $asked_before = $dns->queries;

(undef, $good) = views_landed('p', 60, sub { 6 });
is($good, 60, 'and the views land on their masters');

is(log_count(qr/\[warn\].*redis cluster node "127\.0\.0\.2:\d+" reached by its "ip": its endpoint is a hostname, which needs "resolver"/),
   $workers, 'that is logged once per worker');
is($dns->queries, $asked_before, 'no name is asked');

is(log_count(qr/\[alert\]|\[crit\]|exited on signal/), 0,
   'no alert, no crash');

diag(sprintf 'the script took %.1f s', time - $t0);

$dns->stop;
$c->stop;

done_testing();
