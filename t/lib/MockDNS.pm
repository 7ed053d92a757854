package MockDNS;

# A tiny DNS server for the tests: one forked process answering UDP
# queries on a loopback port.  A name it is given gets its addresses in A
# records (127.0.0.1 unless told otherwise), and an empty answer (no
# error, no record) to any other type, AAAA among them; any other name is
# NXDOMAIN.  Every query is appended to the log file, one line each:
# "<type> <name>" (the type as a number, 1 for A, 28 for AAAA), for the
# test to count what was asked.
#
#   my $dns = MockDNS->start(port => 21053, log => "$dir/dns.log",
#                            names => { 'n1.redis.test' => '127.0.0.1',
#                                       'n2.redis.test' => [@many] },
#                            ttl => 60);
#   my $n = $dns->queries(qr/^1 n1\.redis\.test$/);
#   $dns->stop;
#
# The process is stopped by its pid when the script ends, even when it
# dies.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();

my %running;            # pid => 1, for the END block
my $owner = $$;


sub start {
    my ($class, %a) = @_;

    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $a{port},
                                     Proto => 'udp', ReuseAddr => 1)
        or die "mock dns: udp port $a{port}: $!\n";

    my $log = $a{log} // "/tmp/mock-dns-$a{port}.log";
    open my $fh, '>', $log or die "$log: $!\n";
    close $fh;

    my %names = map { lc($_) => (ref $a{names}{$_} ? $a{names}{$_}
                                                   : [$a{names}{$_}
                                                      // '127.0.0.1']) }
                keys %{ $a{names} || {} };

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        $SIG{TERM} = sub { POSIX::_exit(0) };
        _serve($sock, \%names, $log, $a{ttl} // 60);
        POSIX::_exit(0);
    }

    close $sock;
    $running{$pid} = 1;

    return bless { pid => $pid, log => $log, port => $a{port} }, $class;
}

sub port { $_[0]{port} }
sub log_file { $_[0]{log} }

# queries logged so far, all of them or those matching a regex

sub queries {
    my ($self, $re) = @_;
    open my $fh, '<', $self->{log} or return 0;
    my @q = <$fh>;
    close $fh;
    chomp @q;
    return scalar(defined $re ? grep { $_ =~ $re } @q : @q);
}

sub stop {
    my $self = shift;
    return unless $running{ $self->{pid} };
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    delete $running{ $self->{pid} };
}


# one query, one answer, until killed; a packet that is not a query with
# one question is ignored

sub _serve {
    my ($sock, $names, $log, $ttl) = @_;

    while (1) {
        my $peer = $sock->recv(my $q, 4096) // next;
        next if length $q < 17;

        my ($id, $flags, $qd) = unpack 'n n n', $q;
        next if $flags & 0x8000 || $qd != 1;

        # the question: labels, then type and class
        my ($pos, $bad, @labels) = (12, 1);
        while ($pos < length $q) {
            my $len = ord substr $q, $pos, 1;
            $pos++;
            if ($len == 0) { $bad = 0; last }
            last unless $len < 64 && $pos + $len <= length $q;
            push @labels, substr $q, $pos, $len;
            $pos += $len;
        }
        next if $bad || $pos + 4 > length $q;

        my ($type, $class) = unpack 'n n', substr $q, $pos, 4;
        my $question = substr $q, 12, $pos + 4 - 12;
        my $name = lc join '.', @labels;

        if (open my $fh, '>>', $log) {
            print $fh "$type $name\n";
            close $fh;
        }

        my $addrs = $names->{$name};
        my @answers;

        if ($addrs && $type == 1) {
            @answers = map { pack('n n n N n', 0xc00c, 1, 1, $ttl, 4)
                             . pack('C4', split /\./) } @$addrs;
        }

        my $rcode = $addrs ? 0 : 3;

        # QR, the query's RD, RA, and the answer's code
        my $r = pack('n n n n n n', $id, 0x8080 | ($flags & 0x0100) | $rcode,
                     1, scalar @answers, 0, 0)
                . $question . join '', @answers;

        $sock->send($r, 0, $peer);
    }
}

END {
    if ($$ == $owner) {
        for my $pid (keys %running) {
            kill 'TERM', $pid;
            waitpid $pid, 0;
        }
    }
}

1;
