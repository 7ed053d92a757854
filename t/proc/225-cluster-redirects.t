# vi:filetype=perl
#
# Scripted cluster nodes (t/lib/MockCluster.pm) for the exact answers a
# cluster gives: MOVED, ASK, TRYAGAIN, CLUSTERDOWN, EXECABORT, CROSSSLOT,
# a redirect loop.  Two nodes, A (slots 0-8191, the only seed) and B
# (8192-16383), on ports from TEST_NGINX_MOCK_PORT.
#
# A plain script: it starts its own mocks and nginx.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);

use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

plan skip_all => 't/lib/MockCluster.pm is not there'
    unless eval { require MockCluster; require RedisTopology;
                  RedisTopology->import; 1 };

my $pa = $ENV{TEST_NGINX_MOCK_PORT} || 17100;
my $pb = $pa + 1;

my %p = proc_setup(name => 'cluster-mock', offset => 15, conf => <<"END");
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$pa cluster timeout=500ms;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            history_count \$1;
            return 200 "product \$1\\n";
        }
        location = /stats {
            history_stats;
        }
    }
}
END

my %slots = ($pa => [[0, 8191]], $pb => [[8192, 16383]]);

my $a = MockCluster->start(port => $pa, slots => \%slots,
                           log => "$p{root}/a.log");
my $b = MockCluster->start(port => $pb, slots => \%slots,
                           log => "$p{root}/b.log");

nginx_start();

ok(defined wait_for(sub { scalar $a->commands(qr/ CLUSTER SHARDS$/) }, 3),
   'the seed is asked for CLUSTER SHARDS') or diag(join "\n", $a->commands);
sleep 0.2;

# a visitor (or a product id) whose key is in a slot below or above 8192

my $next = 0;

sub name_in {
    my ($prefix, $low) = @_;

    while (1) {
        my $v = 'v' . ++$next;
        my $slot = key_slot("$prefix$v");
        return ($v, $slot) if ($slot < 8192) == $low;
    }
}

sub cmd { RedisTopology::command(@_) }

sub stat_of {
    my $name = shift;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}") or die;
    print $s "GET /stats HTTP/1.0\r\n\r\n";
    local $/;
    my $resp = <$s>;
    my ($v) = $resp =~ /"total":\{.*?"$name":(\d+)/;
    return $v;
}


# 1. MOVED: the slot moved from A to B; the unit follows, the map learns

my ($v, $slot) = name_in('history:', 1);

$a->control('SLOTS', $slot, $slot, $pb);
$b->control('SLOTS', $slot, $slot, $pb);
$a->clear_log;
$b->clear_log;

get("/product/1?v=$v");

ok(defined wait_for(sub {
       my $l = cmd($pb, 'LRANGE', "history:$v", 0, -1);
       ref $l eq 'ARRAY' && "@$l" eq '1' }, 3),
   'MOVED: the view lands on the new owner');
is(scalar $a->commands(qr/ EXEC$/) >= 1
   && scalar $b->commands(qr/ EXEC$/) >= 1, 1,
   'the transaction went to A (MOVED, EXECABORT), then whole to B');

$a->clear_log;
get("/product/2?v=$v");
wait_for(sub {
    my $l = cmd($pb, 'LRANGE', "history:$v", 0, -1);
    ref $l eq 'ARRAY' && "@$l" eq '2 1' }, 3);
is(scalar $a->commands(qr/history:\Q$v\E/), 0,
   'the next view of that key goes straight to B');
ok(defined wait_for(sub { $a->commands(qr/ CLUSTER SHARDS$/)
                          || $b->commands(qr/ CLUSTER SHARDS$/) }, 3),
   'and MOVED asked for a fresh map');


# 2. ASK: the slot is migrating from A to B, the key already on B

($v, $slot) = name_in('history:', 1);

$a->control('MIGRATING', $slot, $pb);
$b->control('IMPORTING', $slot, $pa);
$a->clear_log;
$b->clear_log;

get("/product/3?v=$v");

ok(defined wait_for(sub {
       my @l = $b->names;
       my $i = 0;
       $i++ while $i < @l && $l[$i] ne 'ASKING';
       $i + 1 < @l && $l[$i + 1] eq 'MULTI' }, 3),
   'ASK: the unit is sent to B after ASKING');
ok(scalar $a->commands(qr/ MULTI$/), 'after A answered ASK');

$b->clear_log;
get("/product/4?v=$v");
ok(defined wait_for(sub { scalar $b->commands(qr/ ASKING$/) }, 3),
   'ASK changes no map: the next view asks A again, then B with ASKING');

$a->control('STABLE', $slot);
$b->control('STABLE', $slot);
$a->control('SLOTS', $slot, $slot, $pb);
$b->control('SLOTS', $slot, $slot, $pb);


# 3. TRYAGAIN: INCR is retried a little later, and counted once

my ($id) = grep { key_slot("history:views:$_") < 8192 } 100 .. 200;

$a->control('RULE', 'INCR',
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            2);
$a->clear_log;

my $t0 = time;
get("/product/$id?v=try");

ok(defined wait_for(sub { (cmd($pa, 'GET', "history:views:$id") // '')
                          eq '1' }, 3),
   'TRYAGAIN: the INCR is done, once');
is(scalar $a->commands(qr/ INCR history:views:$id$/), 3,
   'after two TRYAGAIN answers');
cmp_ok(time - $t0, '>=', 0.25, 'each retry after a delay (100, 200 ms)');


# 4. CLUSTERDOWN: held back until the cluster is up, nothing doubled

($id) = grep { key_slot("history:views:$_") < 8192 } 201 .. 300;

$a->control('DOWN', 1);
get("/product/$id?v=down$_") for 1 .. 3;
sleep 0.5;
my $r = cmd($pa, 'GET', "history:views:$id");
like(ref $r ? "$$r" : $r // 'none', qr/^CLUSTERDOWN/,
     'CLUSTERDOWN: the cluster is down');
$a->control('DOWN', 0);
is(cmd($pa, 'GET', "history:views:$id") // 'none', 'none',
   'nothing landed while it was');

ok(defined wait_for(sub { (cmd($pa, 'GET', "history:views:$id") // '')
                          eq '3' }, 4),
   'and all of it lands, once each, when it is up again');


# 5. CROSSSLOT: a bug, logged as an alert, never retried

($v) = name_in('history:', 1);

# what is still being retried lands first
wait_for(sub { stat_of('queue') == 0 }, 5);

$a->control('RULE', 'EXEC',
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n", 1);
$a->clear_log;

get("/product/5?v=$v");
sleep 0.5;

is(log_count(qr/\[alert\].*refused keys of several slots/), 1,
   'CROSSSLOT: an alert');
is(scalar $a->commands(qr/ EXEC$/), 1, 'not sent again');
is(scalar $a->commands(qr/ LPUSH history:\Q$v\E /), 1,
   'the transaction was the one refused');


# 6. a redirect loop: dropped after a few, counted

($id) = grep { key_slot("history:views:$_") < 8192 } 301 .. 400;
my $s = key_slot("history:views:$id");

wait_for(sub { stat_of('queue') == 0 }, 5);
my $dropped = stat_of('dropped');

$a->control('RULE', "/^INCR history:views:$id\$/",
            "-MOVED $s 127.0.0.1:$pa\r\n", 0);
$a->clear_log;

get("/product/$id?v=loop");

ok(defined wait_for(sub { stat_of('dropped') == $dropped + 1 }, 3),
   'a unit redirected over and over is dropped and counted');
is(scalar $a->commands(qr/ INCR history:views:$id$/), 6,
   'after 5 redirects');
is(log_count(qr/redirected too often, dropped/), 1, 'and logged');

like(stat_of('redirected'), qr/^\d+$/, 'history_stats counts redirects');
cmp_ok(stat_of('redirected'), '>=', 10, 'all of them');



# 7. before Redis 7: CLUSTER SHARDS refused, CLUSTER SLOTS instead; a node
# announced by hostname only is skipped and logged, its slots reached
# through MOVED from the node that answered

my ($pc, $pd) = ($pa + 2, $pa + 3);
my %old = ($pc => [[0, 8191]], $pd => [[8192, 16383]]);

my $c = MockCluster->start(port => $pc, slots => \%old,
                           log => "$p{root}/c.log",
                           endpoint => { $pd => 'node-d.example' },
                           script => [
    { when => qr/^CLUSTER SHARDS/i, times => 0,
      reply => "-ERR unknown subcommand 'SHARDS'\r\n" } ]);
my $d = MockCluster->start(port => $pd, slots => \%old,
                           log => "$p{root}/d.log");

my $conf = slurp("$p{root}/conf/nginx.conf");
$conf =~ s/127\.0\.0\.1:$pa cluster/127.0.0.1:$pc cluster/ or die;
open my $fh, '>', "$p{root}/conf/nginx.conf" or die;
print $fh $conf;
close $fh;

nginx_signal('HUP');

ok(defined wait_for(sub { scalar $c->commands(qr/ CLUSTER SLOTS$/) }, 5),
   'CLUSTER SHARDS refused: CLUSTER SLOTS asked');
ok(defined wait_for(sub {
       log_count(qr/\[error\].*node-d\.example:$pd" skipped/) >= 1 }, 3),
   'a node named by hostname only is skipped and logged');

($v) = name_in('history:', 0);
sleep 0.3;
get("/product/9?v=$v");

ok(defined wait_for(sub {
       my $l = cmd($pd, 'LRANGE', "history:$v", 0, -1);
       ref $l eq 'ARRAY' && "@$l" eq '9' }, 3),
   'its slots are reached through MOVED from the node that answered');

is(log_count(qr/\[crit\]|exited on signal/), 0, 'no crash');

$a->stop;
$b->stop;
$c->stop;
$d->stop;

done_testing();
