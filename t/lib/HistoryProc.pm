package HistoryProc;

# Real processes for the scripts under t/ that kill, pause and reload:
# a private redis-server and a private nginx, each on its own port and
# directory, stopped when the script ends.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(proc_setup nginx_start nginx_signal nginx_running
                 nginx_workers redis_start redis_kill redis get views
                 wait_for log_count slurp);

my %p;

sub proc_setup {
    my (%args) = @_;

    $p{nginx} = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    $p{module} = $ENV{TEST_NGINX_LOAD_MODULES};
    $p{rport} = ($ENV{TEST_NGINX_REDIS_PORT} || 16379) + $args{offset};
    # the block-format runner's port (t/lib/Test/Nginx/Util.pm), so that
    # TEST_NGINX_PORT moves the scripts' nginx too
    $p{hport} = ($ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                 || 1984) + $args{offset};
    $p{root} = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
               . "-$args{name}";

    remove_tree($p{root});
    make_path("$p{root}/conf", "$p{root}/logs", "$p{root}/redis");

    my $conf = $args{conf};
    $conf =~ s/\$REDIS_PORT\b/$p{rport}/g;
    $conf =~ s/\$HTTP_PORT\b/$p{hport}/g;

    # workers run as the block-format runner's do (t/lib/Test/Nginx/Util.pm):
    # as TEST_NGINX_WORKER_USER, or, under root, as root, since nginx's
    # default, nobody, cannot enter a checkout in a mode 700 directory
    # such as /root; a script that names its own user keeps it
    my $user = '';
    if ($conf !~ /^\s*user\s/m) {
        if (defined $ENV{TEST_NGINX_WORKER_USER}) {
            $user = "user $ENV{TEST_NGINX_WORKER_USER};\n";
        } elsif ($> == 0) {
            $user = "user root;\n";
        }
    }

    # nginx's default access log is /var/log/nginx/access.log, which only
    # root may open: the scripts' nginx logs in its own prefix, as the
    # block-format runner's does, unless a script says otherwise (a later
    # access_log of the http block adds to it, "off" turns it off)
    $conf =~ s/^(\s*http\s*\{[^\n]*\n)/$1    access_log logs\/access.log;\n/m;

    open my $fh, '>', "$p{root}/conf/nginx.conf" or die $!;
    print $fh "load_module $p{module};\n", $user, $conf;
    close $fh;

    return %p;
}

sub nginx_start {
    system("$p{nginx} -p $p{root}/ -c conf/nginx.conf 2>>$p{root}/stderr")
        == 0 or die "nginx did not start";
    sleep 0.3;
}

sub nginx_signal {
    my $sig = shift;
    my $pid = slurp("$p{root}/logs/nginx.pid") or return;
    kill $sig, $pid;
}

sub nginx_running {
    return -f "$p{root}/logs/nginx.pid";
}

# the pids of the worker processes, and of those shutting down

sub nginx_workers {
    my $master = slurp("$p{root}/logs/nginx.pid") or return ();
    my @pids = split ' ', `pgrep -P $master 2>/dev/null`;
    return @pids;
}

sub redis_start {
    my @extra = @_;

    system('redis-server', '--port', $p{rport}, '--bind', '127.0.0.1',
           '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
           '--dir', "$p{root}/redis", '--pidfile', "$p{root}/redis/pid",
           '--logfile', "$p{root}/redis/log", @extra) == 0
        or die "redis-server failed";

    for (1 .. 100) {
        return if redis('PING') eq 'PONG';
        sleep 0.05;
    }

    die "redis-server did not start";
}

sub redis_kill {
    my $pid = slurp("$p{root}/redis/pid") or return;
    kill 'KILL', $pid;
    sleep 0.05 while kill 0, $pid;
    unlink "$p{root}/redis/pid";
}

sub redis {
    my $args = join ' ', map { "'$_'" } @_;
    my $out = `redis-cli -p $p{rport} $args 2>/dev/null`;
    chomp $out;
    return $out;
}

sub slurp {
    my $f = shift;
    open my $in, '<', $f or return '';
    local $/;
    my $s = <$in> // '';
    chomp $s;
    return $s;
}

# one request on a new connection: (status, seconds, body)

sub get {
    my $uri = shift;
    my $t0 = time;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return (0, 0, '');
    print $s "GET $uri HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($body) = $resp =~ m{\r\n\r\n(.*)\z}s;
    return ($status // 0, time - $t0, $body // '');
}

# a view of product i by visitor <tag>i for each i: (answered, slowest)

sub views {
    my ($from, $to, $tag) = @_;
    my ($ok, $slowest) = (0, 0);

    for my $i ($from .. $to) {
        my ($status, $t) = get("/product/$i?v=$tag$i");
        $ok++ if $status == 200;
        $slowest = $t if $t > $slowest;
    }

    return ($ok, $slowest);
}

sub wait_for {
    my ($cond, $limit) = @_;
    my $t0 = time;

    while (time - $t0 < $limit) {
        return time - $t0 if $cond->();
        sleep 0.05;
    }

    return undef;
}

sub log_count {
    my $re = shift;
    return scalar grep { /$re/ } split /\n/, slurp("$p{root}/logs/error.log");
}

END {
    if ($p{root}) {
        nginx_signal('TERM');
        redis_kill();
    }
}

1;
