package MockRedis;

# A scripted Redis for fault tests: it speaks enough RESP for the module
# (MULTI/EXEC, LRANGE, the writes) and misbehaves as told, one mode per
# connection it accepts (the last mode stays for the connections after).
#
#   normal     answers right
#   split      answers right, one byte per write, inside "\r\n" too
#   error      -ERR to every command
#   wrongtype  -WRONGTYPE to LRANGE and inside EXEC
#   nil        $-1 to every command
#   garbage    a line that is not RESP
#   close      half a reply, then closes the connection
#   silent     reads and never answers
#   huge       answers a list read with an array header of 2^31-1 elements
#
# and, playing a hostile Redis or a broken proxy in front of one:
#
#   accept_close  accepts and closes at once (maxclients, a dead backend)
#   err_greet     greets with -ERR max number of clients reached, closes
#   ping_only     answers PING (a proxy's own), never anything else
#   big_bulk      answers a list read with a string of 256 MB, streamed
#   big_array     answers a list read with 60000 strings of 1 KB, streamed
#   inject        slips an unasked-for reply ("OTHER") before the first
#                 list read's reply
#   swallow       leaves out the +OK of the first MULTI: every later reply
#                 comes one too early
#   shape_lrange  answers a list read with an integer
#   shape_queued  answers the commands inside MULTI with +OK, not +QUEUED
#   shape_exec    answers EXEC with one reply fewer than queued
#
# In every mode but silent and the first three, the handshake (AUTH,
# SELECT, PING) is answered right.  Every list read answers 3, 2, 1.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep);

sub start {
    my ($class, %args) = @_;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $args{port},
                                       Listen => 16, ReuseAddr => 1)
        or die "mock redis: listen on $args{port}: $!";

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        my @modes = @{ $args{modes} };

        # the module closes connections that misbehave; writing on is fine
        $SIG{PIPE} = 'IGNORE';

        while (my $c = $listen->accept) {
            my $mode = @modes > 1 ? shift @modes : $modes[0];
            serve($c, $mode);
            close $c;
        }

        POSIX::_exit(0);
    }

    close $listen;

    return bless { pid => $pid }, $class;
}

sub stop {
    my $self = shift;
    kill 'KILL', $self->{pid};
    waitpid $self->{pid}, 0;
}

sub DESTROY {
    my $self = shift;
    $self->stop if $self->{pid} && kill 0, $self->{pid};
}

sub serve {
    my ($c, $mode) = @_;
    my $buf = '';
    my @queued;
    my $multi = 0;
    my $once = 1;

    $c->autoflush(1);

    return if $mode eq 'accept_close';

    if ($mode eq 'err_greet') {
        syswrite $c, "-ERR max number of clients reached\r\n";
        return;
    }

    while (1) {
        my $n = sysread($c, $buf, 65536, length $buf);
        return if !$n;

        while (my $cmd = parse(\$buf)) {
            next if $mode eq 'silent';

            my $name = uc $cmd->[0];

            # the handshake and PING <tag> as Redis answers them
            if ($name eq 'PING' || $name eq 'AUTH' || $name eq 'SELECT') {
                next if $mode eq 'ping_only' && @$cmd > 1;

                my $r = $name ne 'PING' ? "+OK\r\n"
                        : @$cmd > 1 ? bulk($cmd->[1]) : "+PONG\r\n";

                if ($multi) {
                    push @queued, $r;
                    $r = "+QUEUED\r\n";
                }

                out($c, $r, $mode eq 'split');
                next;
            }

            next if $mode eq 'ping_only';

            if ($name eq 'LRANGE' && $mode =~ /^big_/) {
                stream($c, $mode);
                return;
            }

            if ($mode eq 'inject' && $name eq 'LRANGE' && $once) {
                $once = 0;
                syswrite $c, "*1\r\n\$5\r\nOTHER\r\n";
            }

            if ($mode eq 'swallow' && $name eq 'MULTI' && $once) {
                $once = 0;
                $multi = 1;
                @queued = ();
                next;
            }

            if ($mode eq 'garbage') {
                out($c, "?this is not redis\r\n", 0);
                next;
            }

            if ($mode eq 'close') {
                out($c, "*3\r\n\$1\r\n3\r\n", 0);
                return;
            }

            my $reply;

            if ($mode eq 'error') {
                $reply = "-ERR mock failure\r\n";

            } elsif ($mode eq 'nil') {
                $reply = "\$-1\r\n";

            } elsif ($name eq 'MULTI') {
                $multi = 1;
                @queued = ();
                $reply = "+OK\r\n";

            } elsif ($name eq 'EXEC') {
                pop @queued if $mode eq 'shape_exec';
                $reply = '*' . @queued . "\r\n" . join '', @queued;
                $multi = 0;

            } else {
                my $r = answer($name, $mode);

                if ($multi) {
                    push @queued, $r;
                    $reply = $mode eq 'shape_queued' ? "+OK\r\n"
                                                     : "+QUEUED\r\n";

                } else {
                    $reply = $r;
                }
            }

            out($c, $reply, $mode eq 'split');
        }
    }
}

sub answer {
    my ($name, $mode) = @_;

    if ($mode eq 'wrongtype') {
        return "-WRONGTYPE Operation against a key holding the wrong kind"
               . " of value\r\n";
    }

    return "*2147483647\r\n" if $name eq 'LRANGE' && $mode eq 'huge';
    return ":3\r\n" if $name eq 'LRANGE' && $mode eq 'shape_lrange';
    return "*3\r\n\$1\r\n3\r\n\$1\r\n2\r\n\$1\r\n1\r\n" if $name eq 'LRANGE';
    return "+OK\r\n" if $name =~ /^(SET|SELECT|LTRIM)$/;
    return ":1\r\n";
}

sub bulk {
    my $s = shift;
    return '$' . length($s) . "\r\n$s\r\n";
}

# a reply far larger than anything asked for, written until the reader
# goes away

sub stream {
    my ($c, $mode) = @_;
    my $kb = 'x' x 1024;

    if ($mode eq 'big_bulk') {
        my $chunk = $kb x 64;
        syswrite $c, "*1\r\n\$268435456\r\n" or return;

        for (1 .. 4096) {
            defined syswrite($c, $chunk) or return;
        }

        syswrite $c, "\r\n";
        return;
    }

    my $chunk = "\$1024\r\n$kb\r\n" x 64;
    syswrite $c, "*60000\r\n" or return;

    for (1 .. 60000 / 64) {
        defined syswrite($c, $chunk) or return;
    }

    syswrite $c, "\$1024\r\n$kb\r\n" x (60000 % 64);
}

sub out {
    my ($c, $data, $split) = @_;

    if (!$split) {
        syswrite $c, $data;
        return;
    }

    for my $byte (split //, $data) {
        syswrite $c, $byte;
        sleep 0.002;
    }
}

# one command in RESP (an array of bulk strings), or undef if incomplete

sub parse {
    my $buf = shift;

    return undef unless $$buf =~ /\A\*(\d+)\r\n/;

    my $n = $1;
    my $pos = length "*$n\r\n";
    my @args;

    for (1 .. $n) {
        return undef
            unless substr($$buf, $pos) =~ /\A\$(\d+)\r\n/;

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
