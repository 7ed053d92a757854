package RedisTopology;

# Real Redis topologies on loopback ports for the tests under t/: a Redis
# Cluster of 3 masters and 3 replicas, a master and a replica watched by
# three Sentinels, TLS-only servers with certificates made by openssl, and
# the Redis Cluster key slot function.
#
# Every process is a daemonized redis-server with its own directory and
# pidfile under the directory the caller gives; each is stopped by the pid
# in its pidfile, never by name, and all that are still running are killed
# when the script ends, even when it dies.  Ports are given by the caller;
# the defaults come from TEST_NGINX_CLUSTER_PORT (six nodes from it),
# TEST_NGINX_SENTINEL_PORT (Sentinels at +0, +10, +20, master +1, replica
# +2) and TEST_NGINX_TLS_PORT.
#
#   my $c = start_cluster(dir => "$root/cluster");
#   my $port = $c->slot_owner(key_slot('history:abc'));
#   $c->kill($port);  $c->wait_master($c->replica_of($port), 10);
#
#   my $s = start_sentinels(dir => "$root/sentinel");
#   my $secs = $s->failover;          # until the Sentinels name the replica
#
#   my $certs = make_certs("$root/certs");
#   my $t = start_tls_server(dir => "$root/tls", certs => $certs);
#   $t->cli('PING');                  # redis-cli --tls ...

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(key_slot crc16 command pipeline wait_until gone
                 start_server start_cluster start_sentinels
                 make_certs start_tls_server
                 cluster_base sentinel_base tls_base);

our $TIMEOUT = 5;

my %running;            # pidfile => 1, for the END block
my $owner = $$;         # forked children never clean up


sub cluster_base  { return $ENV{TEST_NGINX_CLUSTER_PORT}  || 17000 }
sub sentinel_base { return $ENV{TEST_NGINX_SENTINEL_PORT} || 17379 }
sub tls_base      { return $ENV{TEST_NGINX_TLS_PORT}      || 17600 }


# The hash slot of a key as Redis Cluster computes it: CRC16 (XMODEM:
# polynomial 0x1021, initial value 0) of the key, or of its hash tag (the
# bytes between the first "{" and the first "}" after it, if there is at
# least one), modulo 16384.

sub crc16 {
    my $data = shift;
    my $crc = 0;

    for my $byte (unpack 'C*', $data) {
        $crc ^= $byte << 8;

        for (1 .. 8) {
            $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) : $crc << 1;
            $crc &= 0xffff;
        }
    }

    return $crc;
}

sub key_slot {
    my $key = shift;

    utf8::encode($key) if utf8::is_utf8($key);

    my $open = index $key, '{';

    if ($open >= 0) {
        my $close = index $key, '}', $open + 1;

        if ($close > $open + 1) {
            $key = substr $key, $open + 1, $close - $open - 1;
        }
    }

    return crc16($key) % 16384;
}


# RESP over a socket (TCP, or TLS with IO::Socket::SSL when "tls" is
# given): one command or a pipeline.  Replies decode to strings, integers,
# undef for nil, array refs, and RedisTopology::Error objects for errors;
# a connection that fails or times out dies.

sub connect_to {
    my (%a) = @_;
    my $sock;

    if ($a{tls}) {
        require IO::Socket::SSL;
        my $certs = $a{tls};

        $sock = IO::Socket::SSL->new(
            PeerAddr => $a{host} // '127.0.0.1',
            PeerPort => $a{port},
            Timeout => $TIMEOUT,
            SSL_verify_mode => $a{noverify}
                               ? IO::Socket::SSL::SSL_VERIFY_NONE()
                               : IO::Socket::SSL::SSL_VERIFY_PEER(),
            SSL_ca_file => $certs->{ca},
            SSL_verifycn_name => 'localhost',
            SSL_verifycn_scheme => 'default',
            ($certs->{client_crt}
             ? (SSL_cert_file => $certs->{client_crt},
                SSL_key_file => $certs->{client_key})
             : ()))
            or die "tls connect to $a{port}: "
                   . (IO::Socket::SSL::errstr() || $!) . "\n";

    } else {
        $sock = IO::Socket::INET->new(PeerAddr => $a{host} // '127.0.0.1',
                                      PeerPort => $a{port},
                                      Timeout => $TIMEOUT)
            or die "connect to $a{port}: $!\n";
    }

    $sock->autoflush(1);

    my $conn = bless { sock => $sock, buf => '', port => $a{port} },
                     'RedisTopology::Conn';

    if (defined $a{password}) {
        my $r = $conn->call('AUTH', $a{password});
        die "AUTH on $a{port}: $r\n" if ref $r eq 'RedisTopology::Error';
    }

    return $conn;
}

sub command {
    my ($port, @cmd) = @_;
    my %opt = ref $port ? %$port : (port => $port);
    return connect_to(%opt)->call(@cmd);
}

sub pipeline {
    my ($port, @cmds) = @_;
    my %opt = ref $port ? %$port : (port => $port);
    return connect_to(%opt)->pipeline(@cmds);
}

sub wait_until {
    my ($cond, $limit, $step) = @_;
    my $t0 = time;

    while (1) {
        my $ok = eval { $cond->() };
        return time - $t0 if $ok;
        return undef if time - $t0 >= $limit;
        sleep $step // 0.05;
    }
}


# A redis-server daemonized with its own directory, pidfile and log; the
# object starts it again with the same arguments after a kill.

sub start_server {
    my (%a) = @_;

    my $self = bless {
        port => $a{port},
        dir => $a{dir},
        args => $a{args} || [],
        conf => $a{conf},
        tls => $a{tls},
        password => $a{password},
        sentinel => $a{sentinel},
    }, 'RedisTopology::Server';

    remove_tree($a{dir}) unless $a{keep};
    make_path($a{dir});

    $self->start;

    return $self;
}


# Test certificates, made once per directory:
#   ca.crt/ca.key             the CA the servers and clients trust
#   server.crt/server.key     signed by it, DNS:localhost, IP:127.0.0.1
#   client.crt/client.key     signed by it, for tls-auth-clients yes
#   other-ca.crt              another CA
#   other.crt/other.key       signed by the other CA, the same names
#   wrongname.crt/.key        signed by the CA, DNS:wrong.example only
#   expired.crt/expired.key   signed by the CA, no longer valid
#   named.crt/named.key       signed by the CA, DNS:*.redis.test,
#                             DNS:localhost, IP:127.0.0.2 (not 127.0.0.1)
# Returns a hash of the paths (ca, ca_key, server_crt, server_key, ...).

sub make_certs {
    my $dir = shift;
    my %c;

    make_path($dir);

    for my $name (qw(ca server client other-ca other wrongname expired
                     named)) {
        (my $k = $name) =~ s/-/_/g;
        if ($name =~ /ca$/) {
            $c{$k} = "$dir/$name.crt";
            $c{"${k}_key"} = "$dir/$name.key";
        } else {
            $c{"${k}_crt"} = "$dir/$name.crt";
            $c{"${k}_key"} = "$dir/$name.key";
        }
    }

    $c{dir} = $dir;

    return \%c if -s "$dir/expired.crt" && -s "$dir/named.crt";

    my $key = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';
    my $log = "$dir/openssl.log";

    my $run = sub {
        system("@_ >>$log 2>&1") == 0
            or die "openssl failed: @_ (see $log)\n";
    };

    for my $ca (qw(ca other-ca)) {
        $run->("openssl req -x509 $key -keyout $dir/$ca.key"
               . " -out $dir/$ca.crt -days 3650 -subj /CN=test-$ca");
    }

    my %leaf = (
        server => ['ca', 'DNS:localhost,IP:127.0.0.1', 3650],
        client => ['ca', 'DNS:client', 3650],
        other => ['other-ca', 'DNS:localhost,IP:127.0.0.1', 3650],
        wrongname => ['ca', 'DNS:wrong.example', 3650],
        expired => ['ca', 'DNS:localhost,IP:127.0.0.1', -1],
        named => ['ca', 'DNS:*.redis.test,DNS:localhost,IP:127.0.0.2', 3650],
    );

    for my $name (sort keys %leaf) {
        my ($ca, $san, $days) = @{ $leaf{$name} };

        open my $ext, '>', "$dir/$name.ext" or die $!;
        print $ext "subjectAltName=$san\n";
        close $ext;

        $run->("openssl req $key -keyout $dir/$name.key"
               . " -out $dir/$name.csr -subj /CN=$name");

        # a negative -days gives a notAfter before notBefore: expired
        $run->("openssl x509 -req -in $dir/$name.csr -CA $dir/$ca.crt"
               . " -CAkey $dir/$ca.key -CAcreateserial -days $days"
               . " -extfile $dir/$name.ext -out $dir/$name.crt");
    }

    chmod 0644, glob "$dir/*.key";

    return \%c;
}


# A TLS-only redis-server (--port 0 --tls-port P).
#   certs          from make_certs
#   cert           which server certificate: server (default), other,
#                  wrongname, expired
#   auth_clients   yes (default, as Redis), no or optional
#   args           more redis-server arguments

sub start_tls_server {
    my (%a) = @_;
    my $certs = $a{certs} or die "start_tls_server: no certs\n";
    my $cert = $a{cert} || 'server';
    my $port = $a{port} // tls_base();

    return start_server(
        port => $port,
        dir => $a{dir},
        password => $a{password},
        tls => { %$certs, auth_clients => $a{auth_clients} || 'yes' },
        args => [tls_args($certs, $port, $cert, $a{auth_clients}),
                 @{ $a{args} || [] }]);
}

sub tls_args {
    my ($certs, $port, $cert, $auth) = @_;
    $cert ||= 'server';

    return ('--port', 0, '--tls-port', $port,
            '--tls-cert-file', $certs->{"${cert}_crt"},
            '--tls-key-file', $certs->{"${cert}_key"},
            '--tls-ca-cert-file', $certs->{ca},
            '--tls-auth-clients', $auth || 'yes');
}


# A Redis Cluster of six nodes, 3 masters and 3 replicas, created with
# redis-cli --cluster create and waited for (see RedisTopology::Cluster).
#   dir            its directory (emptied first), a subdirectory per port
#   ports          six ports (default: six from cluster_base)
#   node_timeout   cluster-node-timeout in ms (default 2000)
#   password       requirepass and masterauth on every node
#   tls            certs from make_certs: TLS only, --tls-cluster yes,
#                  --tls-replication yes (tls-auth-clients no unless
#                  auth_clients says otherwise)
#   cert           which server certificate the nodes have (default server)
#   args           more redis-server arguments for every node
#   announce_hostname  a format of the node's port ('n%d.redis.test'):
#                  each node announces that hostname
#   endpoint_type  cluster-preferred-endpoint-type (ip, hostname,
#                  unknown-endpoint; Redis's default: ip)
#   announce_ip    the address each node announces as its "ip"; it
#                  listens there too, as well as on 127.0.0.1

sub start_cluster {
    my (%a) = @_;
    my $base = $a{base} // cluster_base();
    my @ports = $a{ports} ? @{ $a{ports} } : map { $base + $_ } 0 .. 5;

    my $self = bless {
        dir => $a{dir},
        ports => \@ports,
        password => $a{password},
        tls => $a{tls} ? { %{ $a{tls} },
                           auth_clients => $a{auth_clients} || 'no' }
                       : undef,
        nodes => {},
    }, 'RedisTopology::Cluster';

    remove_tree($a{dir});
    make_path($a{dir});

    for my $port (@ports) {
        my $d = "$a{dir}/$port";
        my @args = ('--cluster-enabled', 'yes',
                    '--cluster-config-file', "$d/nodes.conf",
                    '--cluster-node-timeout', $a{node_timeout} // 2000);

        if ($a{tls}) {
            push @args, tls_args($a{tls}, $port, $a{cert} || 'server',
                                 $a{auth_clients} || 'no'),
                        '--tls-cluster', 'yes',
                        '--tls-replication', 'yes';
        }

        if (defined $a{password}) {
            push @args, '--requirepass', $a{password},
                        '--masterauth', $a{password};
        }

        if (defined $a{announce_hostname}) {
            push @args, '--cluster-announce-hostname',
                        sprintf($a{announce_hostname}, $port);
        }

        if (defined $a{endpoint_type}) {
            push @args, '--cluster-preferred-endpoint-type',
                        $a{endpoint_type};
        }

        if (defined $a{announce_ip}) {
            push @args, '--bind', '127.0.0.1', $a{announce_ip},
                        '--cluster-announce-ip', $a{announce_ip};
        }

        $self->{nodes}{$port} = start_server(
            port => $port, dir => $d, tls => $self->{tls},
            password => $a{password},
            args => [@args, @{ $a{args} || [] }]);
    }

    my $log = "$a{dir}/create.log";

    system(join(' ', 'redis-cli', $self->{nodes}{ $ports[0] }->cli_opts,
                '--cluster', 'create', map({ "127.0.0.1:$_" } @ports),
                '--cluster-replicas', 1, '--cluster-yes',
                ">$log 2>&1")) == 0
        or die "redis-cli --cluster create failed, see $log\n";

    defined $self->wait_ok($a{wait} // 30)
        or die "cluster on @ports: not ok, see $a{dir}\n";

    return $self;
}


# A master, a replica and Sentinels watching them, with a fresh Sentinel
# config file each run (see RedisTopology::Sentinel).
#   dir               its directory (emptied first)
#   master, replica   data node ports (default sentinel_base + 1, + 2)
#   sentinels         Sentinel ports (default sentinel_base + 0, 10, 20)
#   name              the master's name (default mymaster)
#   quorum            default 2
#   down_after        down-after-milliseconds (default 1000)
#   failover_timeout  failover-timeout (default 5000)
#   password          requirepass/masterauth on the data nodes
#   sentinel_password requirepass on the Sentinels

sub start_sentinels {
    my (%a) = @_;
    my $base = sentinel_base();
    my $m = $a{master} // $base + 1;
    my $r = $a{replica} // $base + 2;
    my @s = $a{sentinels} ? @{ $a{sentinels} }
                          : ($base, $base + 10, $base + 20);
    my $name = $a{name} || 'mymaster';

    my $self = bless {
        dir => $a{dir},
        name => $name,
        data => [$m, $r],
        sentinels => \@s,
        password => $a{password},
        sentinel_password => $a{sentinel_password},
        nodes => {},
    }, 'RedisTopology::Sentinel';

    remove_tree($a{dir});
    make_path($a{dir});

    my @auth = defined $a{password}
               ? ('--requirepass', $a{password}, '--masterauth', $a{password})
               : ();

    $self->{nodes}{$m} = start_server(port => $m, dir => "$a{dir}/$m",
                                      password => $a{password},
                                      args => [@auth]);
    $self->{nodes}{$r} = start_server(port => $r, dir => "$a{dir}/$r",
                                      password => $a{password},
                                      args => [@auth, '--replicaof',
                                               '127.0.0.1', $m]);

    for my $port (@s) {
        my $d = "$a{dir}/$port";
        my $conf = join "\n",
            "port $port",
            'bind 127.0.0.1',
            "dir $d",
            "sentinel monitor $name 127.0.0.1 $m " . ($a{quorum} || 2),
            "sentinel down-after-milliseconds $name "
                . ($a{down_after} || 1000),
            "sentinel failover-timeout $name "
                . ($a{failover_timeout} || 5000),
            (defined $a{password}
             ? "sentinel auth-pass $name $a{password}" : ()),
            (defined $a{sentinel_password}
             ? "requirepass $a{sentinel_password}" : ()),
            '';

        $self->{nodes}{$port} = start_server(
            port => $port, dir => $d, conf => $conf, sentinel => 1,
            password => $a{sentinel_password});
    }

    defined $self->wait_ready($a{wait} // 30)
        or die "sentinels on @s: not ready, see $a{dir}\n";

    return $self;
}


sub _kill_pidfile {
    my ($pidfile, $sig) = @_;

    open my $fh, '<', $pidfile or return 0;
    my $pid = <$fh>;
    close $fh;

    return 0 unless $pid && $pid =~ /^(\d+)/;
    $pid = $1;

    kill $sig || 'KILL', $pid;

    my $t0 = time;
    sleep 0.01 while !gone($pid) && time - $t0 < 10;

    unlink $pidfile;
    delete $running{$pidfile};

    return 1;
}

# a process that has exited: no such pid, or a zombie (what init here
# reaps only after a while)

sub gone {
    my $pid = shift;

    return 1 unless kill 0, $pid;

    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh> // '';

    return $stat =~ /^\d+ \(.*\) Z/s ? 1 : 0;
}

sub _cleanup {
    return unless $$ == $owner;
    _kill_pidfile($_, 'KILL') for keys %running;
}

END {
    my $rc = $?;
    _cleanup();
    $? = $rc;
}

# a script killed by a signal runs its END blocks too
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { _cleanup(); POSIX::_exit(1) }
        if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}


package RedisTopology::Error;

use overload '""' => sub { ${ $_[0] } }, fallback => 1;

sub new { my ($class, $text) = @_; return bless \$text, $class }


package RedisTopology::Conn;

use Time::HiRes qw(time);

sub call {
    my ($self, @cmd) = @_;
    my ($r) = $self->pipeline(\@cmd);
    return $r;
}

sub send {
    my ($self, @cmds) = @_;
    my $out = '';

    for my $cmd (@cmds) {
        $out .= '*' . @$cmd . "\r\n";
        $out .= '$' . length($_) . "\r\n$_\r\n" for @$cmd;
    }

    my $sock = $self->{sock};

    while (length $out) {
        my $n = syswrite $sock, $out;
        die "write to $self->{port}: $!\n" unless defined $n && $n > 0;
        substr($out, 0, $n) = '';
    }
}

sub pipeline {
    my ($self, @cmds) = @_;
    $self->send(@cmds);
    return map { $self->read_reply } @cmds;
}

# the next reply; with a timeout, undef when none came in time

sub read_reply {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // $RedisTopology::TIMEOUT);

    while (1) {
        my $pos = 0;
        my $r = _parse(\$self->{buf}, \$pos);

        if ($pos) {
            substr($self->{buf}, 0, $pos) = '';
            return $r;
        }

        my $left = $deadline - time;
        my $sock = $self->{sock};

        if (!($sock->can('pending') && $sock->pending)) {
            return undef if $left <= 0 && defined $timeout;
            die "timeout reading from $self->{port}\n" if $left <= 0;
            next unless IO::Select->new($sock)->can_read($left);
        }

        my $n = sysread $sock, $self->{buf}, 65536, length $self->{buf};
        die "read from $self->{port}: " . ($n // $!) . " (closed)\n"
            unless $n;
    }
}

# one reply from $$buf at $$pos; $$pos stays 0 while it is incomplete

sub _parse {
    my ($buf, $pos) = @_;
    my $start = $$pos;

    my $end = index $$buf, "\r\n", $start;
    return undef if $end < 0;

    my $type = substr $$buf, $start, 1;
    my $line = substr $$buf, $start + 1, $end - $start - 1;
    my $next = $end + 2;

    if ($type eq '+') {
        $$pos = $next;
        return $line;
    }

    if ($type eq '-') {
        $$pos = $next;
        return RedisTopology::Error->new($line);
    }

    if ($type eq ':') {
        $$pos = $next;
        return $line + 0;
    }

    if ($type eq '$') {
        if ($line < 0) {
            $$pos = $next;
            return undef;
        }

        return undef if length($$buf) < $next + $line + 2;
        $$pos = $next + $line + 2;
        return substr $$buf, $next, $line;
    }

    if ($type eq '*') {
        if ($line < 0) {
            $$pos = $next;
            return undef;
        }

        my @list;
        my $p = $next;

        for (1 .. $line) {
            my $q = $p;
            my $item = _parse($buf, \$q);
            return undef if $q == $p;
            push @list, $item;
            $p = $q;
        }

        $$pos = $p;
        return \@list;
    }

    die "not RESP: " . substr($$buf, $start, 40) . "\n";
}

# a blocking read of the next pub/sub message: [kind, channel, payload]

sub message {
    my ($self, $timeout) = @_;
    my $m = $self->read_reply($timeout // 10);
    return $m;
}

sub close {
    my $self = shift;
    CORE::close($self->{sock});
}


package RedisTopology::Server;

use Time::HiRes qw(time sleep);

sub port    { $_[0]{port} }
sub dir     { $_[0]{dir} }
sub pidfile { "$_[0]{dir}/redis.pid" }

sub pid {
    my $self = shift;
    open my $fh, '<', $self->pidfile or return undef;
    my $pid = <$fh>;
    return $pid && $pid =~ /^(\d+)/ ? $1 : undef;
}

sub alive {
    my $self = shift;
    my $pid = $self->pid;
    return $pid && !RedisTopology::gone($pid);
}

sub start {
    my $self = shift;
    my $d = $self->{dir};
    my @cmd = ('redis-server');

    if (defined $self->{conf}) {
        # Sentinel rewrites its file: a fresh one on every start
        # unless it is a restart of the same run
        my $file = "$d/sentinel.conf";

        if (!-e $file) {
            open my $fh, '>', $file or die "$file: $!\n";
            print $fh $self->{conf};
            close $fh;
        }

        push @cmd, $file;
        push @cmd, '--sentinel' if $self->{sentinel};
        push @cmd, '--daemonize', 'yes', '--pidfile', $self->pidfile,
                   '--logfile', "$d/redis.log";

    } else {
        # a replica's first sync without the 5 s wait for more replicas
        push @cmd, '--port', $self->{port}, '--bind', '127.0.0.1',
                   '--save', '', '--appendonly', 'no', '--dir', $d,
                   '--repl-diskless-sync-delay', 0,
                   '--daemonize', 'yes', '--pidfile', $self->pidfile,
                   '--logfile', "$d/redis.log";
    }

    # the TLS arguments carry "--port 0" that must come after "--port P"
    push @cmd, @{ $self->{args} };

    unlink $self->pidfile;

    system(@cmd) == 0 or die "redis-server on $self->{port} failed\n";

    my $ok = RedisTopology::wait_until(sub {
        return 0 unless $self->alive;
        $running{ $self->pidfile } = 1;
        # the certificate may be a bad one on purpose
        my $r = RedisTopology::connect_to(port => $self->{port},
                                          tls => $self->{tls},
                                          noverify => 1,
                                          password => $self->{password})
                ->call('PING');
        return !ref $r && $r eq 'PONG';
    }, 10);

    $running{ $self->pidfile } = 1 if $self->alive;

    die "redis-server on $self->{port} did not start, see $d/redis.log\n"
        unless defined $ok;

    return $self;
}

# kill -9 (or another signal) by the pid in the pidfile, wait until gone

sub kill {
    my ($self, $sig) = @_;
    return RedisTopology::_kill_pidfile($self->pidfile, $sig || 'KILL');
}

sub stop { $_[0]->kill('KILL') }

sub conn {
    my $self = shift;
    return RedisTopology::connect_to(port => $self->{port},
                                     tls => $self->{tls},
                                     password => $self->{password});
}

sub call {
    my ($self, @cmd) = @_;
    return $self->conn->call(@cmd);
}

sub pipeline {
    my ($self, @cmds) = @_;
    return $self->conn->pipeline(@cmds);
}

# the options redis-cli needs for this node, as a list of words

sub cli_opts {
    my $self = shift;
    my @o = ('-h', '127.0.0.1', '-p', $self->{port});

    if (my $t = $self->{tls}) {
        push @o, '--tls', '--cacert', $t->{ca};
        push @o, '--cert', $t->{client_crt}, '--key', $t->{client_key}
            if $t->{client_crt};
    }

    push @o, '-a', $self->{password}, '--no-auth-warning'
        if defined $self->{password};

    return @o;
}

# redis-cli with these options: its output, chomped

sub cli {
    my ($self, @args) = @_;
    my $cmd = join ' ', map { _quote($_) } 'redis-cli', $self->cli_opts,
                                           @args;
    my $out = `$cmd 2>&1`;
    chomp $out;
    return $out;
}

sub _quote {
    my $s = shift;
    return $s if $s =~ m{^[\w./:=@,+-]+$};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

# a field of INFO (any section)

sub info {
    my ($self, $field) = @_;
    my $info = $self->call('INFO', 'all');
    return undef if ref $info;
    return $info =~ /^\Q$field\E:(.*?)\r?$/m ? $1 : undef;
}

sub role {
    my $self = shift;
    my $r = eval { $self->call('ROLE') };
    return ref $r eq 'ARRAY' ? $r->[0] : undef;
}


package RedisTopology::Cluster;

use Time::HiRes qw(time sleep);

sub ports { @{ $_[0]{ports} } }
sub node  { $_[0]{nodes}{ $_[1] } }

sub live_ports {
    my $self = shift;
    return grep { $self->{nodes}{$_}->alive } $self->ports;
}

sub call {
    my ($self, $port, @cmd) = @_;
    return $self->{nodes}{$port}->call(@cmd);
}

# CLUSTER NODES as one node sees it: a list of
#   { id, host, port, flags => {master, slave, myself, fail, ...},
#     role => master|replica, master_id, link, epoch,
#     slots => [[from, to], ...] }

sub nodes {
    my ($self, $port) = @_;
    ($port) = $self->live_ports unless defined $port;

    my $text = $self->call($port, 'CLUSTER', 'NODES');
    die "CLUSTER NODES on $port: $text\n" if ref $text;

    my @nodes;

    for my $line (split /\n/, $text) {
        my ($id, $addr, $flags, $master, undef, undef, $epoch, $link,
            @slots) = split ' ', $line;
        my ($host, $p) = $addr =~ /^(.*):(\d+)@/;
        my %f = map { $_ => 1 } split /,/, $flags;

        push @nodes, {
            id => $id, host => $host, port => $p, flags => \%f,
            role => $f{master} ? 'master' : 'replica',
            master_id => $master eq '-' ? undef : $master,
            link => $link, epoch => $epoch,
            slots => [map { /^(\d+)(?:-(\d+))?$/ ? [$1, $2 // $1] : () }
                      @slots],
        };
    }

    return @nodes;
}

sub node_id {
    my ($self, $port) = @_;
    my $id = $self->call($port, 'CLUSTER', 'MYID');
    die "CLUSTER MYID on $port: $id\n" if ref $id;
    return $id;
}

sub port_of_id {
    my ($self, $id) = @_;
    my ($n) = grep { $_->{id} eq $id } $self->nodes;
    return $n ? $n->{port} : undef;
}

# masters with slots / replicas, as the first live node sees them

sub masters {
    my $self = shift;
    return map { $_->{port} }
           sort { $a->{slots}[0][0] <=> $b->{slots}[0][0] }
           grep { $_->{role} eq 'master' && @{ $_->{slots} }
                  && !$_->{flags}{fail} } $self->nodes;
}

sub replicas {
    my $self = shift;
    return map { $_->{port} }
           grep { $_->{role} eq 'replica' && !$_->{flags}{fail} }
           $self->nodes;
}

sub replica_of {
    my ($self, $port) = @_;
    my @n = $self->nodes;
    my ($m) = grep { $_->{port} == $port } @n;
    my ($r) = grep { ($_->{master_id} // '') eq $m->{id}
                     && !$_->{flags}{fail} } @n;
    return $r ? $r->{port} : undef;
}

sub master_of {
    my ($self, $port) = @_;
    my @n = $self->nodes;
    my ($r) = grep { $_->{port} == $port } @n;
    return undef unless $r->{master_id};
    my ($m) = grep { $_->{id} eq $r->{master_id} } @n;
    return $m ? $m->{port} : undef;
}

# slot => port of its master, for all 16384 slots (as one node sees it)

sub slot_map {
    my ($self, $port) = @_;
    my @map;

    for my $n ($self->nodes($port)) {
        next unless $n->{role} eq 'master';
        for my $range (@{ $n->{slots} }) {
            $map[$_] = $n->{port} for $range->[0] .. $range->[1];
        }
    }

    return \@map;
}

sub slot_owner {
    my ($self, $slot) = @_;
    return $self->slot_map->[$slot];
}

sub key_owner {
    my ($self, $key) = @_;
    return $self->slot_owner(RedisTopology::key_slot($key));
}

# slot ranges of a master, as [from, to] pairs

sub slots_of {
    my ($self, $port) = @_;
    my ($n) = grep { $_->{port} == $port } $self->nodes;
    return $n ? @{ $n->{slots} } : ();
}

# cluster_state:ok on every live node, every slot assigned and seen the
# same way by all of them, and every replica's master_link_status:up:
# the seconds it took, or undef after $limit seconds

sub wait_ok {
    my ($self, $limit) = @_;

    return RedisTopology::wait_until(sub { $self->ok }, $limit // 20, 0.1);
}

sub ok {
    my $self = shift;
    my $view;

    for my $port ($self->live_ports) {
        my $node = $self->{nodes}{$port};
        my $info = $node->call('CLUSTER', 'INFO');

        return 0 if ref $info || $info !~ /^cluster_state:ok/m
                    || $info !~ /^cluster_slots_assigned:16384/m;

        my @nodes = $self->nodes($port);
        my ($me) = grep { $_->{flags}{myself} } @nodes;

        if ($me->{role} eq 'replica') {
            return 0 unless ($node->info('master_link_status') // '')
                            eq 'up';
        }

        my $v = join ' ', map { "$_->{port}:" . join ',',
                                map { "$_->[0]-$_->[1]" } @{ $_->{slots} } }
                          sort { $a->{port} <=> $b->{port} }
                          grep { $_->{role} eq 'master'
                                 && @{ $_->{slots} } } @nodes;

        $view //= $v;
        return 0 if $v ne $view;

        # every live node known, each a master with slots or a replica
        my @up = grep { !$_->{flags}{fail} && !$_->{flags}{'fail?'} }
                 @nodes;

        return 0 if @up != $self->live_ports;
        return 0 if grep { $_->{role} eq 'master' ? !@{ $_->{slots} }
                                                  : !$_->{master_id} } @up;
    }

    return 1;
}

sub kill {
    my ($self, $port, $sig) = @_;
    return $self->{nodes}{$port}->kill($sig);
}

# a killed node again, with its nodes.conf (it rejoins the cluster)

sub restart {
    my ($self, $port) = @_;
    return $self->{nodes}{$port}->start;
}

# until $port is a master with slots in every live node's view (a failover
# after a kill, or a manual one): the seconds it took, or undef

sub wait_master {
    my ($self, $port, $limit) = @_;

    return RedisTopology::wait_until(sub {
        return 0 unless ($self->{nodes}{$port}->role // '') eq 'master';
        for my $p ($self->live_ports) {
            my ($n) = grep { $_->{port} == $port } $self->nodes($p);
            return 0 unless $n && $n->{role} eq 'master'
                            && @{ $n->{slots} };
        }
        return 1;
    }, $limit // 15, 0.05);
}

# CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica; waits until it is master
# everywhere and the cluster is ok: the seconds it took, or undef

sub failover {
    my ($self, $replica, $how, $limit) = @_;
    my $t0 = time;

    my $r = $self->call($replica, 'CLUSTER', 'FAILOVER', $how ? $how : ());
    die "CLUSTER FAILOVER on $replica: $r\n" if ref $r;

    return undef unless defined $self->wait_master($replica, $limit // 15);
    return undef unless defined $self->wait_ok($limit // 15);

    return time - $t0;
}

# Move one slot to another master by hand, as redis-cli --cluster reshard
# does.  The hook, if any, is called after each step with the step's name
# and the cluster, so a test can send traffic in between:
#   importing   CLUSTER SETSLOT s IMPORTING <src> done on the target
#   migrating   CLUSTER SETSLOT s MIGRATING <dst> done on the source
#   key         one key moved with MIGRATE (third argument: the key);
#               with batch => N, N keys per MIGRATE ... KEYS
#   migrated    no key left in the slot on the source
#   node        CLUSTER SETSLOT s NODE <dst> done on every master
# Returns the number of keys moved.

sub migrate_slot {
    my ($self, $slot, $to, %a) = @_;
    my $hook = $a{hook} || sub {};
    my $from = $self->slot_owner($slot);

    die "slot $slot: already on $to\n" if $from == $to;

    my $src = $self->node_id($from);
    my $dst = $self->node_id($to);

    my $must = sub {
        my ($port, @cmd) = @_;
        my $r = $self->call($port, @cmd);
        die "@cmd on $port: $r\n" if ref $r eq 'RedisTopology::Error';
        return $r;
    };

    $must->($to, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $src);
    $hook->('importing', $self);

    $must->($from, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $dst);
    $hook->('migrating', $self);

    my $moved = 0;
    my @auth = defined $self->{password}
               ? ('AUTH', $self->{password}) : ();

    while (1) {
        my $keys = $must->($from, 'CLUSTER', 'GETKEYSINSLOT', $slot,
                           $a{batch} || 100);
        last unless @$keys;

        if ($a{batch}) {
            $must->($from, 'MIGRATE', '127.0.0.1', $to, '', 0, 5000,
                    @auth, 'KEYS', @$keys);
            $moved += @$keys;
            $hook->('key', $self, $keys);
            next;
        }

        for my $key (@$keys) {
            my $r = $self->call($from, 'MIGRATE', '127.0.0.1', $to, $key,
                                0, 5000, @auth);
            die "MIGRATE $key: $r\n" if ref $r;
            $moved++ if $r eq 'OK';
            $hook->('key', $self, $key);
        }
    }

    $hook->('migrated', $self);

    # the target first, then the source, then the other masters
    my @masters = grep { $_ != $to && $_ != $from } $self->masters;

    for my $port ($to, $from, @masters) {
        $must->($port, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $dst);
    }

    $hook->('node', $self);

    return $moved;
}

sub stop {
    my $self = shift;
    $_->stop for values %{ $self->{nodes} };
}


package RedisTopology::Sentinel;

use Time::HiRes qw(time sleep);

sub name      { $_[0]{name} }
sub sentinels { @{ $_[0]{sentinels} } }
sub data      { @{ $_[0]{data} } }
sub node      { $_[0]{nodes}{ $_[1] } }

sub live_sentinels {
    my $self = shift;
    return grep { $self->{nodes}{$_}->alive } $self->sentinels;
}

sub call {
    my ($self, $port, @cmd) = @_;
    return $self->{nodes}{$port}->call(@cmd);
}

# SENTINEL MASTER <name> as a hash, from one Sentinel

sub master_info {
    my ($self, $port) = @_;
    my $r = $self->call($port, 'SENTINEL', 'MASTER', $self->{name});
    return ref $r eq 'ARRAY' ? {@$r} : {};
}

# every live Sentinel sees the others and the replica, and the replica's
# link is up: the seconds it took, or undef

sub wait_ready {
    my ($self, $limit) = @_;
    my $others = $self->sentinels - 1;

    return RedisTopology::wait_until(sub {
        my $m = $self->master_port or return 0;
        for my $p ($self->live_sentinels) {
            my $i = $self->master_info($p);
            return 0 unless ($i->{'num-other-sentinels'} // -1) >= $others
                            && ($i->{'num-slaves'} // 0) >= 1
                            && $i->{port} == $m
                            && $i->{flags} eq 'master';
        }
        for my $p ($self->data) {
            next if $p == $m || !$self->{nodes}{$p}->alive;
            return 0 unless ($self->{nodes}{$p}->info('master_link_status')
                             // '') eq 'up';
        }
        return 1;
    }, $limit // 30, 0.1);
}

# SENTINEL get-master-addr-by-name from one Sentinel (default: the first
# live one): "host:port", or undef

sub master_addr {
    my ($self, $port) = @_;
    ($port) = $self->live_sentinels unless defined $port;

    my $r = eval {
        $self->call($port, 'SENTINEL', 'get-master-addr-by-name',
                    $self->{name});
    };
    return ref $r eq 'ARRAY' ? "$r->[0]:$r->[1]" : undef;
}

sub master_port {
    my ($self, $port) = @_;
    my $a = $self->master_addr($port) or return undef;
    return (split /:/, $a)[1];
}

sub replica_port {
    my $self = shift;
    my $m = $self->master_port;
    my ($r) = grep { $_ != $m } $self->data;
    return $r;
}

# until every live Sentinel names a master other than $old and that node
# says ROLE master: the seconds it took, or undef

sub wait_switch {
    my ($self, $old, $limit) = @_;

    return RedisTopology::wait_until(sub {
        my $new;
        for my $p ($self->live_sentinels) {
            my $m = $self->master_port($p) or return 0;
            return 0 if $m == $old || (defined $new && $m != $new);
            $new = $m;
        }
        return ($self->{nodes}{$new}->role // '') eq 'master';
    }, $limit // 20, 0.02);
}

# SENTINEL FAILOVER; waits for the switch: the seconds it took, or undef

sub failover {
    my ($self, $limit) = @_;
    my $old = $self->master_port;
    my ($port) = $self->live_sentinels;
    my $t0 = time;

    my $r = $self->call($port, 'SENTINEL', 'FAILOVER', $self->{name});
    die "SENTINEL FAILOVER: $r\n" if ref $r;

    return undef unless defined $self->wait_switch($old, $limit);
    return time - $t0;
}

# a connection SUBSCRIBEd to a channel (default +switch-master) on a
# Sentinel; read with $conn->message($timeout)

sub subscribe {
    my ($self, $port, @channels) = @_;
    my $conn = $self->{nodes}{$port}->conn;

    @channels = ('+switch-master') unless @channels;
    $conn->send(['SUBSCRIBE', @channels]);
    $conn->read_reply for @channels;

    return $conn;
}

sub kill {
    my ($self, $port, $sig) = @_;
    return $self->{nodes}{$port}->kill($sig);
}

sub restart {
    my ($self, $port) = @_;
    return $self->{nodes}{$port}->start;
}

sub stop {
    my $self = shift;
    $_->stop for values %{ $self->{nodes} };
}

1;
