package MockCluster;

# A scripted Redis Cluster node for exact redirect sequences.  Each mock is
# one forked process listening on a loopback port; several mocks given the
# same slot map make a cluster.  A mock keeps a small in-memory store
# (strings, lists, sorted sets, HyperLogLogs kept as plain sets) and
# answers as a Redis 7 cluster node does:
#
#   a key of a slot another node owns          -MOVED <slot> 127.0.0.1:<port>
#   a missing key of a slot it is migrating    -ASK <slot> 127.0.0.1:<port>
#   an importing slot after ASKING             the command (one command, or
#                                              up to EXEC inside MULTI)
#   a multi-key command, keys partly moved     -TRYAGAIN ...
#   keys of two slots in one command           -CROSSSLOT ... (queued
#                                              commands: at EXEC)
#   an error while queueing in MULTI           -EXECABORT ... at EXEC
#   an unowned slot, or "down" set             -CLUSTERDOWN ...
#   CLUSTER SHARDS / SLOTS / NODES / KEYSLOT / MYID / INFO, from the map
#
# Before all that, the script: rules tried in order for every command,
#
#   { when => 'LPUSH',              # a command name, a regex matched
#                                   # against "NAME arg arg", or a sub
#                                   # ($cmd array, connection number)
#     reply => MockCluster::tryagain(),   # raw RESP, 'close' (close the
#                                   # connection unanswered), 'silent'
#                                   # (no answer), or a sub returning one
#     times => 1,                   # how often (default once; 0: always)
#     conn => 2 }                   # only on the Nth connection accepted
#
# Every command received is appended to the log file, one line each:
# "<connection number> NAME arg ..." (bytes outside printable ASCII as
# \xHH), for the test to check what was sent where.  A test changes a
# running mock with control(): SLOTS from to port, MIGRATING slot port,
# IMPORTING slot port, STABLE slot, DOWN 0|1, RULE name-or-/regex/ reply
# [times], FLUSH.
#
#   my $a = MockCluster->start(port => 17100, log => "$dir/a.log",
#               slots => { 17100 => [[0, 8191]], 17101 => [[8192, 16383]] });

use strict;
use warnings;

use Digest::SHA qw(sha1_hex);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use RedisTopology ();

use Exporter 'import';

our @EXPORT_OK = qw(moved ask tryagain clusterdown execabort crossslot
                    readonly_error);


sub moved     { return "-MOVED $_[0] 127.0.0.1:$_[1]\r\n" }
sub ask       { return "-ASK $_[0] 127.0.0.1:$_[1]\r\n" }
sub tryagain  { "-TRYAGAIN Multiple keys request during rehashing of slot\r\n" }
sub clusterdown    { "-CLUSTERDOWN The cluster is down\r\n" }
sub execabort {
    return "-EXECABORT Transaction discarded because of previous errors.\r\n";
}
sub crossslot { "-CROSSSLOT Keys in request don't hash to the same slot\r\n" }
sub readonly_error {
    return "-READONLY You can't write against a read only replica.\r\n";
}

sub node_id { return sha1_hex("mock-node-$_[0]") }


sub start {
    my ($class, %a) = @_;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $a{port},
                                       Listen => 64, ReuseAddr => 1)
        or die "mock cluster: listen on $a{port}: $!\n";

    my $log = $a{log} // "/tmp/mock-cluster-$a{port}.log";
    open my $fh, '>', $log or die "$log: $!\n";
    close $fh;

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        my $node = bless { %a, log => $log, listen => $listen },
                         'MockCluster::Node';
        eval { $node->run };
        POSIX::_exit(0);
    }

    close $listen;

    return bless { pid => $pid, port => $a{port}, log => $log }, $class;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

sub stop {
    my $self = shift;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $self->{pid};
}

sub DESTROY {
    my $self = shift;
    $self->stop if $self->{pid};
}

# the commands received, as log lines, those matching a regex if given

sub commands {
    my ($self, $re) = @_;
    open my $fh, '<', $self->{log} or return ();
    my @lines = map { chomp; $_ } <$fh>;
    return $re ? grep { /$re/ } @lines : @lines;
}

# only the command part (without the connection number)

sub names {
    my ($self, $re) = @_;
    return map { s/^\d+ //r } $self->commands($re);
}

sub clear_log {
    my $self = shift;
    open my $fh, '>', $self->{log} or die "$self->{log}: $!\n";
    close $fh;
}

sub control {
    my ($self, @args) = @_;
    my $r = RedisTopology::command($self->{port}, 'MOCK', @args);
    die "MOCK @args: $r\n" if ref $r eq 'RedisTopology::Error';
    return $r;
}


package MockCluster::Node;

use IO::Select;

sub run {
    my $self = shift;

    $self->{map} = [];
    $self->{db} = {};
    $self->{rules} = [map { { times => 1, %$_ } } @{ $self->{script} || [] }];
    $self->{migrating} = { %{ $self->{migrating} || {} } };
    $self->{importing} = { %{ $self->{importing} || {} } };

    while (my ($port, $ranges) = each %{ $self->{slots} || {} }) {
        for my $r (@$ranges) {
            $self->{map}[$_] = $port for $r->[0] .. $r->[1];
        }
    }

    while (my ($k, $v) = each %{ $self->{data} || {} }) {
        $self->{db}{$k} = ref $v ? { type => 'list', v => [@$v] }
                                 : { type => 'string', v => $v };
    }

    my $sel = IO::Select->new($self->{listen});
    my %conns;
    my $n = 0;

    while (1) {
        for my $fh ($sel->can_read) {
            if ($fh == $self->{listen}) {
                my $c = $self->{listen}->accept or next;
                $c->autoflush(1);
                $conns{$c} = { sock => $c, no => ++$n, buf => '',
                               multi => undef, asking => 0 };
                $sel->add($c);
                next;
            }

            my $conn = $conns{$fh};
            my $got = sysread $fh, $conn->{buf}, 65536, length $conn->{buf};
            my $open = $got;

            while ($open) {
                my $cmd = MockCluster::Node::parse(\$conn->{buf}) or last;
                $open = $self->handle($conn, $cmd);
            }

            if (!$open) {
                $sel->remove($fh);
                delete $conns{$fh};
                close $fh;
            }
        }
    }
}

# one command: 0 when the connection is to be closed

sub handle {
    my ($self, $conn, $cmd) = @_;
    my $name = uc $cmd->[0];

    if ($name eq 'MOCK') {
        $self->out($conn, $self->mock(@$cmd[1 .. $#$cmd]));
        return 1;
    }

    $self->log_command($conn, $cmd);

    my $reply = $self->scripted($conn, $cmd);

    if (defined $reply) {
        return 0 if $reply eq 'close';
        return 1 if $reply eq 'silent';

        if ($conn->{multi} && $name ne 'EXEC' && $name ne 'DISCARD'
            && $name ne 'MULTI')
        {
            $conn->{dirty} = 1 if $reply =~ /^-/;
        }

        if ($name eq 'EXEC' || $name eq 'DISCARD') {
            $conn->{multi} = undef;
        }

        $conn->{asking} = 0 unless $conn->{multi};
        $self->out($conn, $reply);
        return 1;
    }

    $self->out($conn, $self->command($conn, $cmd));
    return 1;
}

sub scripted {
    my ($self, $conn, $cmd) = @_;
    my $line = join ' ', @$cmd;

    for my $rule (@{ $self->{rules} }) {
        next if defined $rule->{times} && $rule->{times} < 0;
        next if $rule->{conn} && $rule->{conn} != $conn->{no};

        my $w = $rule->{when};
        my $hit = ref $w eq 'CODE' ? $w->($cmd, $conn->{no})
                : ref $w eq 'Regexp' ? $line =~ $w
                : uc $cmd->[0] eq uc $w;
        next unless $hit;

        if ($rule->{times}) {
            $rule->{times} = -1 if --$rule->{times} == 0;
        }

        my $r = $rule->{reply};
        return ref $r eq 'CODE' ? $r->($cmd, $conn->{no}) : $r;
    }

    return undef;
}

sub log_command {
    my ($self, $conn, $cmd) = @_;
    my $line = join ' ', map {
        (my $a = $_) =~ s/([^\x21-\x7e])/sprintf '\\x%02X', ord $1/ge;
        $a;
    } @$cmd;

    open my $fh, '>>', $self->{log} or return;
    print $fh "$conn->{no} $line\n";
    close $fh;
}

sub out {
    my ($self, $conn, $data) = @_;
    my $sock = $conn->{sock};

    while (length $data) {
        my $n = syswrite $sock, $data;
        return unless $n;
        substr($data, 0, $n) = '';
    }
}

sub mock {
    my ($self, $what, @a) = @_;
    $what = uc $what;

    if ($what eq 'SLOTS') {
        $self->{map}[$_] = $a[2] for $a[0] .. $a[1];
    } elsif ($what eq 'MIGRATING') {
        $self->{migrating}{ $a[0] } = $a[1];
    } elsif ($what eq 'IMPORTING') {
        $self->{importing}{ $a[0] } = $a[1];
    } elsif ($what eq 'STABLE') {
        delete $self->{migrating}{ $a[0] };
        delete $self->{importing}{ $a[0] };
    } elsif ($what eq 'DOWN') {
        $self->{down} = $a[0];
    } elsif ($what eq 'RULE') {
        my $when = $a[0] =~ m{^/(.*)/$} ? qr/$1/ : $a[0];
        (my $reply = $a[1]) =~ s/\\r\\n/\r\n/g;
        push @{ $self->{rules} }, { when => $when, reply => $reply,
                                    times => $a[2] // 1 };
    } elsif ($what eq 'FLUSH') {
        $self->{db} = {};
    } else {
        return "-ERR unknown MOCK $what\r\n";
    }

    return "+OK\r\n";
}


# RESP out

sub bulk { defined $_[0] ? '$' . length($_[0]) . "\r\n$_[0]\r\n" : "\$-1\r\n" }
sub int_ { ":$_[0]\r\n" }
sub arr  { '*' . @_ . "\r\n" . join '', @_ }
sub ok   { "+OK\r\n" }


# the keys of a command

my %all_keys = map { $_ => 1 } qw(MGET DEL EXISTS PFCOUNT UNLINK TOUCH);
my %keyless = map { $_ => 1 } qw(PING ECHO AUTH SELECT READONLY READWRITE
    ASKING MULTI EXEC DISCARD INFO ROLE CLUSTER CLIENT QUIT DBSIZE
    FLUSHALL FLUSHDB HELLO COMMAND);

sub keys_of {
    my $cmd = shift;
    my $name = uc $cmd->[0];

    return () if $keyless{$name} || @$cmd < 2;
    return @$cmd[1 .. $#$cmd] if $all_keys{$name};
    return @$cmd[map { 2 * $_ + 1 } 0 .. int($#$cmd / 2) - 1]
        if $name eq 'MSET';
    return ($cmd->[1]);
}

sub command {
    my ($self, $conn, $cmd) = @_;
    my $reply = $self->command_in($conn, $cmd);

    # the ASKING flag covers the next command, or a transaction (ASKING
    # before MULTI) up to its EXEC, as Redis clears it
    $conn->{asking} = 0
        unless $conn->{multi} || uc $cmd->[0] eq 'ASKING';

    return $reply;
}

sub command_in {
    my ($self, $conn, $cmd) = @_;
    my $name = uc $cmd->[0];
    my $asking = $conn->{asking};

    if ($name eq 'ASKING') {
        $conn->{asking} = 1;
        return ok();
    }

    if ($name eq 'MULTI') {
        return "-ERR MULTI calls can not be nested\r\n" if $conn->{multi};
        $conn->{multi} = [];
        $conn->{dirty} = 0;
        $conn->{tx_slot} = undef;
        $conn->{cross} = 0;
        return ok();
    }

    if ($name eq 'EXEC' || $name eq 'DISCARD') {
        my $queued = $conn->{multi};
        $conn->{multi} = undef;
        $conn->{asking} = 0;

        return "-ERR $name without MULTI\r\n" unless $queued;
        return ok() if $name eq 'DISCARD';
        return MockCluster::execabort() if $conn->{dirty};
        return MockCluster::crossslot() if $conn->{cross};
        return arr(map { $self->execute($_) } @$queued);
    }

    my $err = $self->route($conn, $cmd, $asking);

    if ($conn->{multi}) {
        if ($err) {
            $conn->{dirty} = 1;
            return $err;
        }

        push @{ $conn->{multi} }, $cmd;
        return "+QUEUED\r\n";
    }

    return $err if $err;
    return $self->execute($cmd);
}

# the cluster's answer to where a command's keys are: an error reply, or
# undef to run it here

sub route {
    my ($self, $conn, $cmd, $asking) = @_;
    my @keys = keys_of($cmd);

    return undef unless @keys;

    my %slots = map { RedisTopology::key_slot($_) => 1 } @keys;
    return MockCluster::crossslot() if keys %slots > 1;

    my ($slot) = keys %slots;

    if ($conn->{multi}) {
        $conn->{tx_slot} //= $slot;
        $conn->{cross} = 1 if $conn->{tx_slot} != $slot;
    }

    return MockCluster::clusterdown() if $self->{down};

    my $owner = $self->{map}[$slot];
    return "-CLUSTERDOWN Hash slot not served\r\n" unless defined $owner;

    my $missing = grep { !exists $self->{db}{$_} } @keys;

    if ($owner != $self->{port}) {
        if ($asking && exists $self->{importing}{$slot}) {
            return MockCluster::tryagain() if @keys > 1 && $missing
                                              && $missing < @keys;
            return undef;
        }
        return MockCluster::moved($slot, $owner);
    }

    if (my $to = $self->{migrating}{$slot}) {
        return MockCluster::ask($slot, $to) if $missing == @keys;
        return MockCluster::tryagain() if $missing;
    }

    return undef;
}

sub execute {
    my ($self, $cmd) = @_;
    my ($n, @a) = @$cmd;
    my $name = uc $n;
    my $db = $self->{db};

    my $get = sub {
        my ($key, $type) = @_;
        my $e = $db->{$key} or return undef;
        return $e->{type} eq $type ? $e : 'WRONGTYPE';
    };
    my $wrongtype = "-WRONGTYPE Operation against a key holding the wrong"
                    . " kind of value\r\n";

    return "+PONG\r\n" if $name eq 'PING' && !@a;
    return bulk($a[0]) if $name eq 'PING' || $name eq 'ECHO';
    return ok() if $name =~ /^(AUTH|READONLY|READWRITE|CLIENT|FLUSH\w*)$/;
    return "-ERR SELECT is not allowed in cluster mode\r\n"
        if $name eq 'SELECT';
    return arr(bulk('master'), int_(0), arr()) if $name eq 'ROLE';
    return bulk("# Server\r\nredis_version:7.0.15\r\n"
                . "# Cluster\r\ncluster_enabled:1\r\n") if $name eq 'INFO';
    return int_(scalar keys %$db) if $name eq 'DBSIZE';
    return $self->cluster(@a) if $name eq 'CLUSTER';

    if ($name eq 'SET') {
        $db->{ $a[0] } = { type => 'string', v => $a[1] };
        return ok();
    }

    if ($name eq 'GET') {
        my $e = $get->($a[0], 'string');
        return $wrongtype if defined $e && !ref $e;
        return bulk($e ? $e->{v} : undef);
    }

    if ($name eq 'MGET') {
        return arr(map { my $e = $get->($_, 'string');
                         bulk(ref $e ? $e->{v} : undef) } @a);
    }

    if ($name eq 'INCR' || $name eq 'INCRBY') {
        my $e = $get->($a[0], 'string');
        return $wrongtype if defined $e && !ref $e;
        $e ||= $db->{ $a[0] } = { type => 'string', v => 0 };
        $e->{v} += $name eq 'INCR' ? 1 : $a[1];
        return int_($e->{v});
    }

    if ($name eq 'DEL' || $name eq 'UNLINK' || $name eq 'EXISTS') {
        my $n = grep { exists $db->{$_} } @a;
        delete @$db{@a} unless $name eq 'EXISTS';
        return int_($n);
    }

    if ($name eq 'EXPIRE' || $name eq 'PEXPIRE') {
        return int_(0) unless $db->{ $a[0] };
        $db->{ $a[0] }{ttl} = $name eq 'EXPIRE' ? $a[1] : int($a[1] / 1000);
        return int_(1);
    }

    if ($name eq 'TTL') {
        my $e = $db->{ $a[0] } or return int_(-2);
        return int_($e->{ttl} // -1);
    }

    if ($name =~ /^[LR](PUSH|REM|TRIM|RANGE|LEN)$/) {
        my $e = $get->($a[0], 'list');
        return $wrongtype if defined $e && !ref $e;

        if ($name eq 'LPUSH' || $name eq 'RPUSH') {
            $e ||= $db->{ $a[0] } = { type => 'list', v => [] };
            if ($name eq 'LPUSH') {
                unshift @{ $e->{v} }, $_ for @a[1 .. $#a];
            } else {
                push @{ $e->{v} }, @a[1 .. $#a];
            }
            return int_(scalar @{ $e->{v} });
        }

        my @l = $e ? @{ $e->{v} } : ();

        return int_(scalar @l) if $name eq 'LLEN';

        if ($name eq 'LREM') {
            my $before = @l;
            my $count = $a[1];
            my $left = $count == 0 ? -1 : abs $count;
            my @keep;
            my @order = $count < 0 ? reverse @l : @l;
            for my $x (@order) {
                if ($x eq $a[2] && $left != 0) { $left--; next }
                push @keep, $x;
            }
            @keep = reverse @keep if $count < 0;
            $e->{v} = \@keep if $e;
            delete $db->{ $a[0] } if $e && !@keep;
            return int_($before - @keep);
        }

        my ($from, $to) = ($a[1], $a[2]);
        $from += @l if $from < 0;
        $to += @l if $to < 0;
        $from = 0 if $from < 0;
        $to = $#l if $to > $#l;
        my @sub = $from <= $to ? @l[$from .. $to] : ();

        return arr(map { bulk($_) } @sub) if $name eq 'LRANGE';

        $e->{v} = \@sub if $e;
        delete $db->{ $a[0] } if $e && !@sub;
        return ok();
    }

    if ($name =~ /^Z/) {
        my $e = $get->($a[0], 'zset');
        return $wrongtype if defined $e && !ref $e;
        my $z = $e ? $e->{v} : {};

        if ($name eq 'ZADD') {
            my @p = @a[1 .. $#a];
            shift @p while @p && $p[0] =~ /^[A-Za-z]+$/;
            $e ||= $db->{ $a[0] } = { type => 'zset', v => $z };
            my $new = 0;
            while (my ($score, $m) = splice @p, 0, 2) {
                $new++ unless exists $z->{$m};
                $z->{$m} = $score;
            }
            return int_($new);
        }

        my $in = sub {
            my ($s, $min, $max) = @_;
            my $lo = $min eq '-inf' ? -9**9**9 : $min =~ s/^\(//r;
            my $hi = $max eq '+inf' ? 9**9**9 : $max =~ s/^\(//r;
            return ($min =~ /^\(/ ? $s > $lo : $s >= $lo)
                   && ($max =~ /^\(/ ? $s < $hi : $s <= $hi);
        };

        if ($name eq 'ZCOUNT') {
            return int_(scalar grep { $in->($_, $a[1], $a[2]) }
                        values %$z);
        }

        if ($name eq 'ZREMRANGEBYSCORE') {
            my @gone = grep { $in->($z->{$_}, $a[1], $a[2]) } keys %$z;
            delete @$z{@gone};
            delete $db->{ $a[0] } if $e && !%$z;
            return int_(scalar @gone);
        }

        return arr(map { bulk($z->{$_}) } @a[1 .. $#a])
            if $name eq 'ZMSCORE';
        return bulk($z->{ $a[1] }) if $name eq 'ZSCORE';
        return int_(scalar keys %$z) if $name eq 'ZCARD';
    }

    if ($name eq 'PFADD' || $name eq 'PFCOUNT') {
        my %all;

        for my $key ($name eq 'PFADD' ? $a[0] : @a) {
            my $e = $get->($key, 'hll');
            return $wrongtype if defined $e && !ref $e;
            %all = (%all, %{ $e->{v} }) if $e;
        }

        return int_(scalar keys %all) if $name eq 'PFCOUNT';

        my $e = $db->{ $a[0] } ||= { type => 'hll', v => {} };
        my $before = keys %{ $e->{v} };
        $e->{v}{$_} = 1 for @a[1 .. $#a];
        return int_(keys %{ $e->{v} } != $before || !$before ? 1 : 0);
    }

    return "-ERR unknown command '$n', with args beginning with: \r\n";
}


# CLUSTER subcommands, from the slot map: the nodes are the ports in it
# and the replicas given; ids are made from the ports

sub ranges {
    my ($self, $port) = @_;
    my @r;

    for my $s (0 .. 16383) {
        next unless ($self->{map}[$s] // -1) == $port;
        if (@r && $r[-1][1] == $s - 1) {
            $r[-1][1] = $s;
        } else {
            push @r, [$s, $s];
        }
    }

    return @r;
}

sub masters {
    my $self = shift;
    my %seen;
    my @m = grep { defined && !$seen{$_}++ } @{ $self->{map} };
    return sort { ($self->ranges($a))[0][0] <=> ($self->ranges($b))[0][0] }
           @m;
}

sub cluster {
    my ($self, $sub, @a) = @_;
    $sub = uc($sub // '');

    my $rep = $self->{replicas} || {};
    my $health = $self->{health} || {};
    my $endpoint = $self->{endpoint} || {};

    if ($sub eq 'KEYSLOT') {
        return int_(RedisTopology::key_slot($a[0]));
    }

    if ($sub eq 'MYID') {
        return bulk(MockCluster::node_id($self->{port}));
    }

    if ($sub eq 'INFO') {
        my $state = $self->{down} ? 'fail' : 'ok';
        return bulk("cluster_state:$state\r\ncluster_slots_assigned:"
                    . scalar(grep { defined } @{ $self->{map} }) . "\r\n"
                    . 'cluster_known_nodes:' . $self->masters . "\r\n");
    }

    if ($sub eq 'SHARDS') {
        return $self->{shards} if defined $self->{shards};

        my $node = sub {
            my ($port, $role) = @_;
            my $ep = exists $endpoint->{$port} ? $endpoint->{$port}
                                               : '127.0.0.1';
            return arr(bulk('id'), bulk(MockCluster::node_id($port)),
                       bulk('port'), int_($port),
                       bulk('ip'), bulk('127.0.0.1'),
                       bulk('endpoint'), bulk($ep),
                       ($self->{hostname}{$port}
                        ? (bulk('hostname'),
                           bulk($self->{hostname}{$port})) : ()),
                       bulk('role'), bulk($role),
                       bulk('replication-offset'), int_(0),
                       bulk('health'),
                       bulk($health->{$port} // 'online'));
        };

        return arr(map {
            my $m = $_;
            arr(bulk('slots'),
                arr(map { (int_($_->[0]), int_($_->[1])) }
                    $self->ranges($m)),
                bulk('nodes'),
                arr($node->($m, 'master'),
                    map { $node->($_, 'replica') }
                    grep { defined } $rep->{$m}));
        } $self->masters);
    }

    if ($sub eq 'SLOTS') {
        return $self->{slots_reply} if defined $self->{slots_reply};

        my $node = sub {
            my $port = shift;
            my $ep = exists $endpoint->{$port} ? $endpoint->{$port}
                                               : '127.0.0.1';
            return arr(bulk($ep), int_($port),
                       bulk(MockCluster::node_id($port)), arr());
        };

        return arr(map {
            my $m = $_;
            map { arr(int_($_->[0]), int_($_->[1]), $node->($m),
                      map { $node->($_) }
                      grep { defined && ($health->{$_} // 'online')
                                        eq 'online' } $rep->{$m}) }
            $self->ranges($m);
        } $self->masters);
    }

    if ($sub eq 'NODES') {
        my $text = '';

        for my $m ($self->masters) {
            my $me = $m == $self->{port} ? 'myself,' : '';
            $text .= MockCluster::node_id($m) . " 127.0.0.1:$m\@"
                     . ($m + 10000) . " ${me}master - 0 0 1 connected "
                     . join(' ', map { $_->[0] == $_->[1] ? $_->[0]
                                                          : "$_->[0]-$_->[1]" }
                            $self->ranges($m))
                     . "\n";

            if (defined(my $r = $rep->{$m})) {
                $text .= MockCluster::node_id($r) . " 127.0.0.1:$r\@"
                         . ($r + 10000) . ' slave ' . MockCluster::node_id($m)
                         . " 0 0 1 connected\n";
            }
        }

        return bulk($text);
    }

    return "-ERR unknown subcommand '$sub'. Try CLUSTER HELP.\r\n";
}


# one command in RESP (an array of bulk strings, or an inline command), or
# undef while incomplete

sub parse {
    my $buf = shift;

    if ($$buf =~ /\A([^*][^\r\n]*)\r?\n/) {
        my $line = $1;
        substr($$buf, 0, length $&) = '';
        my @w = split ' ', $line;
        return @w ? \@w : parse($buf);
    }

    return undef unless $$buf =~ /\A\*(\d+)\r\n/;

    my $n = $1;
    my $pos = length "*$n\r\n";
    my @args;

    for (1 .. $n) {
        return undef unless substr($$buf, $pos) =~ /\A\$(\d+)\r\n/;

        my $len = $1;
        my $start = $pos + length("\$$len\r\n");

        return undef if length($$buf) < $start + $len + 2;

        push @args, substr($$buf, $start, $len);
        $pos = $start + $len + 2;
    }

    substr($$buf, 0, $pos) = '';

    return \@args;
}

1;
