# vi:filetype=perl
#
# The real Redis topologies the Cluster, TLS and Sentinel tests run
# against (t/lib/RedisTopology.pm) behave as those tests rely on: the slot
# function agrees with CLUSTER KEYSLOT, a created cluster is ok with a
# replica per master, a manual failover and a kill -9 promote the replica,
# a slot moved by hand is answered with ASK during and MOVED after, the
# Sentinels report a failover and publish +switch-master, TLS-only servers
# accept the test certificates and refuse the bad ones, and every process
# is gone after a stop or a script that dies.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use RedisTopology;
use MockCluster;

for my $tool (qw(redis-server redis-cli openssl)) {
    plan skip_all => "$tool is not installed"
        unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

my $root = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
           . '-topology';

my $t0 = time;


# the slot function

{
    my $c = start_cluster(dir => "$root/cluster");
    diag sprintf "cluster up: %.1f s", time - $t0;
    my @ports = $c->ports;

    my @keys = ('', 'a', '{', '}', '{}', '{}a', 'a{}', '}{a}', '{a}x',
                'x{a}', '{a}{b}', '{{a}}', 'foo{}{bar}', 'foo{{bar}}zap',
                'foo{bar}{zap}', "\x00\xff{\x01}", "h\x{e9}ll\x{f6}",
                'history:{abc}', 'history:abc', 'online');

    push @keys, map { "history:v$_" } 1 .. 600;
    push @keys, map { "{user$_}:views" } 1 .. 200;
    push @keys, map { 'x' x ($_ % 7) . "{t$_}" . '}' x ($_ % 3) } 1 .. 180;

    my @cmds = map { my $k = $_; utf8::encode($k) if utf8::is_utf8($k);
                     ['CLUSTER', 'KEYSLOT', $k] } @keys;
    my @redis = $c->node($ports[0])->pipeline(@cmds);
    my @bad = grep { key_slot($keys[$_]) != $redis[$_] } 0 .. $#keys;

    cmp_ok(scalar @keys, '>=', 1000, 'slots checked for 1,000 keys');
    is_deeply(\@bad, [], 'key_slot equals CLUSTER KEYSLOT for all')
        or diag explain [map { [$keys[$_], key_slot($keys[$_]), $redis[$_]] }
                         @bad[0 .. 4]];
    is(key_slot('{a}x'), key_slot('a'), '{a}x hashes as a');
    is(key_slot('{}a'), crc16('{}a') % 16384, 'an empty tag is no tag');


    # the cluster as created

    my @m = $c->masters;
    my @r = $c->replicas;

    is(scalar @m, 3, 'three masters');
    is(scalar @r, 3, 'three replicas');
    is_deeply([sort map { $c->master_of($c->replica_of($_)) } @m],
              [sort @m], 'every master has its own replica');

    my $map = $c->slot_map;
    is(scalar(grep { defined } @$map), 16384, 'all slots have an owner');

    for my $p (@ports) {
        like($c->node($p)->info('master_link_status') // 'master',
             qr/^(up|master)$/, "node $p: replica link up or a master");
    }

    my $key = '{abc}:history';
    my $slot = key_slot($key);
    my $owner = $c->key_owner($key);
    my ($other) = grep { $_ != $owner } @m;

    is($c->call($owner, 'SET', $key, 'v'), 'OK', 'the owner takes a write');
    is("" . $c->call($other, 'SET', $key, 'v'),
       "MOVED $slot 127.0.0.1:$owner", 'another master answers MOVED');


    # a slot moved by hand

    my $from = $owner;
    my $to = $other;
    my ($ask, $keys_during, $moved_after) = ('', 0, '');
    my @steps;

    $c->call($from, 'SET', "{abc}:$_", $_) for 1 .. 5;

    my $moved = $c->migrate_slot($slot, $to, hook => sub {
        my ($step, undef, $k) = @_;
        push @steps, $step;

        if ($step eq 'key' && !$ask) {
            # one key is on the target now: asking the source for it
            # gets ASK, the target answers it only after ASKING
            my $conn = $c->node($to)->conn;
            (undef, $keys_during) = $conn->pipeline(['ASKING'],
                ['CLUSTER', 'COUNTKEYSINSLOT', $slot]);
            $ask = "" . $c->call($from, 'GET', $k);
            my @r = $conn->pipeline(['GET', $k], ['ASKING'], ['GET', $k]);
            $ask .= " / @r[0 .. 1] / " . (defined $r[2] ? 'value' : 'nil');
        }
    });

    is($moved, 6, 'six keys migrated');
    is_deeply([grep { $_ ne 'key' } @steps],
              [qw(importing migrating migrated node)], 'hook steps in order');
    is($keys_during, 1, 'the hook ran after the first key');
    is($ask, "ASK $slot 127.0.0.1:$to / MOVED $slot 127.0.0.1:$from OK"
             . ' / value',
       'during the move: ASK from the source, the target after ASKING');
    is("" . $c->call($from, 'GET', $key), "MOVED $slot 127.0.0.1:$to",
       'after the move: MOVED to the target');
    is($c->call($to, 'GET', '{abc}:3'), 3, 'the keys are on the target');
    ok(defined $c->wait_ok(10), 'cluster ok after the move');
    is($c->slot_owner($slot), $to, 'slot map updated');


    # the scripted node answers in the shapes the real nodes do

    my $mport = cluster_base() + 100;
    my $mock = MockCluster->start(port => $mport, slots => {
        $mport => [[0, 16383]] }, replicas => { $mport => $mport + 1 },
        health => { $mport + 1 => 'loading' }, log => "$root/mock-shape.log");

    for my $sub (qw(SHARDS SLOTS)) {
        my $real = $c->call($m[0], 'CLUSTER', $sub);
        my $fake = RedisTopology::command($mport, 'CLUSTER', $sub);
        is_deeply(shape($fake->[0]), shape($real->[0]),
                  "CLUSTER $sub: the mock's reply has the real shape");
    }

    $mock->stop;


    # a manual failover and a kill -9

    my $replica = $c->replica_of($m[0]);
    my $secs = $c->failover($replica);
    ok(defined $secs, "CLUSTER FAILOVER promotes $replica");
    is($c->node($replica)->role, 'master', 'ROLE says master');
    is($c->node($m[0])->role, 'slave', 'the old master is its replica');
    diag sprintf 'manual failover: %.2f s', $secs // -1;

    my $victim = $m[1];
    my $heir = $c->replica_of($victim);
    my $pid = $c->node($victim)->pid;
    my $k0 = time;

    ok($c->kill($victim), "kill -9 of master $victim");
    ok(gone($pid), 'its process is gone');
    my $took = $c->wait_master($heir, 15);
    ok(defined $took, "its replica $heir is promoted");
    ok(defined $c->wait_ok(10), 'the cluster is ok without it');
    diag sprintf 'kill -9 to promoted: %.2f s', time - $k0;

    my @pids = map { $c->node($_)->pid } $c->live_ports;
    $c->stop;
    is(scalar(grep { !gone($_) } @pids), 0, 'stop: all nodes gone');
}


# a shard or slot range: names kept, values as their kinds; slot lists
# (CLUSTER SHARDS) as one kind

sub shape {
    my $v = shift;

    # a list of slot ranges, however many
    return 'ranges' if ref $v eq 'ARRAY' && @$v % 2 == 0
                       && !grep { ref || !/^\d+$/ } @$v;

    return [map { shape($_) } @$v] if ref $v eq 'ARRAY';
    return 'int' if $v =~ /^\d+$/;
    return $v if $v =~ /^(slots|nodes|id|port|tls-port|ip|endpoint|role
                          |replication-offset|health|hostname)$/x;
    return 'string';
}


# the scripted cluster node: redirects as a real node sends them

{
    my $pa = cluster_base() + 100;
    my $pb = $pa + 1;
    my %slots = ($pa => [[0, 8191]], $pb => [[8192, 16383]]);

    my $ma = MockCluster->start(port => $pa, slots => \%slots,
                               log => "$root/mock-a.log");
    my $mb = MockCluster->start(port => $pb, slots => \%slots,
                               log => "$root/mock-b.log", script => [
        { when => 'EXEC', reply => MockCluster::clusterdown() },
        { when => qr/^GET close/, reply => 'close' },
    ]);

    my ($ka, $ka2) = grep { key_slot($_) < 8192 } 'a' .. 'z';
    my ($kb) = grep { key_slot($_) >= 8192 } 'a' .. 'z';
    my $sa = key_slot($ka);
    my $sb = key_slot($kb);

    my @r = map { "$_" } pipeline($pa,
        ['SET', $ka, 'va'], ['SET', $kb, 'vb'],
        ['MULTI'], ['LPUSH', $kb, 'x'], ['EXPIRE', $kb, 9], ['EXEC'],
        ['MULTI'], ['SET', $ka, 1], ['SET', $ka2, 2], ['EXEC'],
        ['MGET', $ka, $ka2]);

    is_deeply(\@r, ['OK', "MOVED $sb 127.0.0.1:$pb",
                    'OK', ("MOVED $sb 127.0.0.1:$pb") x 2,
                    'EXECABORT Transaction discarded because of previous'
                    . ' errors.',
                    'OK', 'QUEUED', 'QUEUED',
                    "CROSSSLOT Keys in request don't hash to the same slot",
                    "CROSSSLOT Keys in request don't hash to the same slot"],
              'mock: MOVED, EXECABORT, CROSSSLOT as a real node');

    $ma->control('MIGRATING', $sa, $pb);
    $mb->control('IMPORTING', $sa, $pa);
    $ma->control('SLOTS', $sa, $sa, $pa);
    $mb->control('SLOTS', $sa, $sa, $pa);

    my $miss = "{$ka}m";
    @r = map { defined $_ ? "$_" : 'nil' } pipeline($pa,
        ['GET', $ka], ['GET', $miss], ['MGET', $ka, $miss]);
    is_deeply(\@r, ['va', "ASK $sa 127.0.0.1:$pb",
                    'TRYAGAIN Multiple keys request during rehashing of'
                    . ' slot'], 'mock: ASK and TRYAGAIN while migrating');

    @r = map { ref $_ eq 'ARRAY' ? "[@$_]" : defined $_ ? "$_" : 'nil' }
         pipeline($pb, ['GET', $miss], ['ASKING'], ['GET', $miss],
                  ['GET', $miss], ['ASKING'], ['MULTI'],
                  ['SET', $miss, 1], ['GET', $miss], ['EXEC']);
    is_deeply(\@r, ["MOVED $sa 127.0.0.1:$pa", 'OK', 'nil',
                    "MOVED $sa 127.0.0.1:$pa", 'OK', 'OK', 'QUEUED',
                    'QUEUED', 'CLUSTERDOWN The cluster is down'],
              'mock: ASKING covers one command or one transaction;'
              . ' the scripted EXEC');

    my $conn = RedisTopology::connect_to(port => $pb);
    $conn->send(['GET', 'close']);
    ok(!eval { $conn->read_reply(2); 1 } && $@ =~ /closed/,
       'mock: a scripted close');

    is_deeply([$mb->names], ['GET ' . $miss, 'ASKING', "GET $miss",
                            "GET $miss", 'ASKING', 'MULTI', "SET $miss 1",
                            "GET $miss", 'EXEC', 'GET close'],
              'mock: every command in the log');

    my $pid = $ma->pid;
    $ma->stop;
    $mb->stop;
    ok(!kill(0, $pid), 'mock stopped');
}


# Sentinels

{
    diag sprintf 'cluster done: %.1f s', time - $t0;
    my $s = start_sentinels(dir => "$root/sentinel");
    my ($m, $r) = $s->data;
    my @sent = $s->sentinels;

    is($s->master_port, $m, 'the Sentinels name the master');
    is($s->master_info($sent[1])->{'num-other-sentinels'}, 2,
       'the Sentinels see each other');

    my $sub = $s->subscribe($sent[2]);
    my $secs = $s->failover;

    ok(defined $secs, 'SENTINEL FAILOVER reported by all Sentinels');
    is($s->master_port, $r, 'get-master-addr-by-name names the replica');
    is($s->node($r)->role, 'master', 'the new master says ROLE master');
    diag sprintf 'SENTINEL FAILOVER to switched: %.2f s', $secs // -1;

    my $msg = $sub->message(10);
    is_deeply($msg, ['message', '+switch-master',
                     "mymaster 127.0.0.1 $m 127.0.0.1 $r"],
              '+switch-master published');

    ok(defined $s->wait_ready(30), 'ready again, the old master a replica');

    $s->kill($r);
    my $took = $s->wait_switch($r, 20);
    ok(defined $took, 'kill -9 of the master: the Sentinels switch back');
    diag sprintf 'kill -9 to switched: %.2f s', $took // -1;

    my @pids = map { $s->node($_)->pid } $m, @sent;
    $s->stop;
    is(scalar(grep { !gone($_) } @pids), 0, 'stop: all gone');
}


# TLS

{
    diag sprintf 'sentinel done: %.1f s', time - $t0;
    my $certs = make_certs("$root/certs");
    my $port = tls_base();

    ok(-s $certs->{$_}, "certificate file $_")
        for qw(ca server_crt server_key client_crt other_crt expired_crt
               wrongname_crt);

    like(`openssl x509 -in $certs->{server_crt} -noout -ext subjectAltName`,
         qr/DNS:localhost, IP Address:127\.0\.0\.1/, 'server SANs');
    like(`openssl verify -CAfile $certs->{ca} $certs->{expired_crt} 2>&1`,
         qr/expired/, 'the expired certificate is expired');
    like(`openssl verify -CAfile $certs->{ca} $certs->{other_crt} 2>&1`,
         qr/unable to get local issuer/, 'the other CA is not trusted');

    my $t = start_tls_server(dir => "$root/tls", port => $port,
                             certs => $certs);

    is($t->cli('PING'), 'PONG', 'redis-cli --tls with a client certificate');
    is($t->call('SET', 'k', 'v'), 'OK', 'a command over TLS from Perl');

    my $nocert = "redis-cli -p $port --tls --cacert $certs->{ca} PING 2>&1";
    unlike(`$nocert`, qr/PONG/, 'tls-auth-clients yes: no cert, refused');
    unlike(`redis-cli -p $port PING 2>&1`, qr/PONG/, 'plain TCP refused');
    my $other = "redis-cli -p $port --tls --cacert $certs->{other_ca}"
                . " --cert $certs->{client_crt} --key $certs->{client_key}"
                . ' PING 2>&1';
    like(`$other`, qr/verify failed/, 'another CA: refused');
    $t->stop;

    for my $case (['expired', qr/verify failed|expired/],
                  ['wrongname', qr/verify failed|hostname|mismatch/])
    {
        my ($cert, $err) = @$case;
        my $u = start_tls_server(dir => "$root/tls-$cert", port => $port + 1,
                                 certs => $certs, cert => $cert,
                                 auth_clients => 'no');
        ok($u->alive, "a server with the $cert certificate runs");
        my $r = eval { RedisTopology::command({ port => $port + 1,
                                                tls => $certs }, 'PING') };
        like($@, $err, "$cert certificate: the client refuses it");
        $u->stop;
    }

    my $open = start_tls_server(dir => "$root/tls-open", port => $port + 2,
                                certs => $certs, auth_clients => 'no');
    like(`redis-cli -p ${\($port + 2)} --tls --cacert $certs->{ca} PING`,
         qr/^PONG/, 'tls-auth-clients no: no client certificate needed');
    $open->stop;

    diag sprintf 'tls servers done: %.1f s', time - $t0;

    # a cluster over TLS: the bus and CLUSTER SHARDS use TLS ports
    my $c = start_cluster(dir => "$root/tls-cluster", base => $port + 10,
                          tls => $certs);
    ok($c->ok, 'a TLS cluster is ok');
    my $shards = $c->call($port + 10, 'CLUSTER', 'SHARDS');
    my %node = @{ $shards->[0][3][0] };
    ok(exists $node{'tls-port'} && !exists $node{port},
       'CLUSTER SHARDS names TLS ports only');

    # what the module relies on: CLUSTER SLOTS and MOVED over TLS name
    # the TLS ports; replicas sync over TLS
    my %tls = map { $_ => 1 } $c->ports;
    my $slots = $c->call($port + 10, 'CLUSTER', 'SLOTS');
    is(scalar(grep { $tls{ $_->[2][1] } } @$slots), 3,
       'CLUSTER SLOTS over TLS: the masters at their TLS ports');
    my $key = 'k0';
    $key++ while $c->key_owner($key) == $port + 10;
    my $moved = $c->call($port + 10, 'SET', $key, 'v');
    like("$moved", qr/^MOVED \d+ 127\.0\.0\.1:(\d+)$/, 'MOVED over TLS');
    ok("$moved" =~ /:(\d+)$/ && $tls{$1}, 'naming a TLS port');
    my $owner = $c->node($c->key_owner($key));
    is($owner->cli('SET', $key, 'v'), 'OK', 'redis-cli --tls on the owner');
    is($c->node($c->replica_of($owner->port))->info('master_link_status'),
       'up', 'a replica linked to its master over TLS');

    my @pids = map { $c->node($_)->pid } $c->live_ports;
    is(scalar @pids, 6, 'six TLS nodes with pids');
    $c->stop;
    is(scalar(grep { !gone($_) } @pids), 0, 'stop: all TLS nodes gone');
}


# a script that dies leaves no server behind

{
    my $port = tls_base() + 30;
    my $pidfile = "$root/dies/redis.pid";

    open my $stderr, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    system($^X, (map { "-I$_" } @INC), '-MRedisTopology', '-e',
           "start_server(port => $port, dir => '$root/dies'); die 'x'");
    open STDERR, '>&', $stderr or die $!;

    ok(!-e $pidfile, 'a script that dies: pidfile removed');
    ok(system("redis-cli -p $port PING >/dev/null 2>&1") != 0,
       'a script that dies: its server is gone');
}

diag sprintf 'total: %.1f s', time - $t0;

done_testing;
