package HistoryTest;

# Redis helpers for the ngx_http_history_module test suite.
#
# Loading this module (after, or instead of before, Test::Nginx::Socket)
# adds two block sections:
#
#   --- redis_init
#   RPUSH history:abc 7 8
#   SET "history:odd\x00key" notalist
#
#     Redis commands run right before the block's request(s), after the test
#     database has been flushed.
#
#   --- redis
#   LRANGE history:abc 0 -1 => 42
#   TTL history:abc => /^77[0-9]{5}$/
#   DBSIZE => 1
#
#     COMMAND arg ... => expected.  Checked after the response to the last
#     request of the block.  The module writes to Redis asynchronously, so
#     all lines are re-run every 20 ms until they all match or
#     TEST_NGINX_REDIS_TIMEOUT seconds (default 3) have passed; then one test
#     point is reported per line.
#
# Everything is built on the public hooks of Test::Nginx::Socket
# (add_block_preprocessor and add_response_body_check), so it works the same
# with this repository's runner (t/lib/Test/Nginx) and with the upstream
# Test::Nginx distribution.
#
# The test database is flushed before every block and, for blocks that use
# the sections above, before every repetition (repeat_each).  The flush is
# done from the block's "--- init" code (which Test::Nginx runs once per
# block after starting nginx, i.e. after the previous block's nginx has
# exited), and between repetitions right after the previous repetition's
# checks.
#
# Connection: 127.0.0.1, port $TEST_NGINX_REDIS_PORT (default 16379, never
# the system Redis on 6379 unless asked for explicitly), database
# $TEST_NGINX_REDIS_DB (default 0).  Both variables are set to their
# defaults when unset, so test configs can use $TEST_NGINX_REDIS_PORT.

use strict;
use warnings;

use Exporter 'import';
use IO::Select ();
use IO::Socket::INET ();
use Test::More ();
use Time::HiRes qw(sleep time);

use Test::Nginx::Socket ();

our @EXPORT = qw(redis_command redis_flush redis_render);
our @EXPORT_OK = qw(redis_parse_args redis_port redis_db);

$ENV{TEST_NGINX_REDIS_PORT} = 16379
    unless defined $ENV{TEST_NGINX_REDIS_PORT} && $ENV{TEST_NGINX_REDIS_PORT} ne '';
$ENV{TEST_NGINX_REDIS_DB} = 0
    unless defined $ENV{TEST_NGINX_REDIS_DB} && $ENV{TEST_NGINX_REDIS_DB} ne '';

our $RedisHost    = '127.0.0.1';
our $RedisPort    = $ENV{TEST_NGINX_REDIS_PORT};
our $RedisDb      = $ENV{TEST_NGINX_REDIS_DB};
our $PollTimeout  = $ENV{TEST_NGINX_REDIS_TIMEOUT} || 3;
our $PollInterval = 0.02;
our $IoTimeout    = 5;

sub redis_port { $RedisPort }
sub redis_db   { $RedisDb }

# ---------------------------------------------------------------------------
# A minimal RESP client
# ---------------------------------------------------------------------------

my ($Conn, $Buf, $ConnPid);

sub _disconnect {
    close $Conn if $Conn;
    undef $Conn;
    $Buf = '';
}

sub _fill {
    my $sel = IO::Select->new($Conn);
    if (!$sel->can_read($IoTimeout)) {
        _disconnect();
        die "redis: read timed out\n";
    }
    my $n = sysread $Conn, my $chunk, 65536;
    if (!$n) {
        my $err = defined $n ? 'connection closed' : "$!";
        _disconnect();
        die "redis: read failed: $err\n";
    }
    $Buf .= $chunk;
}

sub _read_line {
    my $i;
    while (($i = index $Buf, "\r\n") < 0) {
        _fill();
    }
    my $line = substr $Buf, 0, $i;
    substr($Buf, 0, $i + 2) = '';
    return $line;
}

sub _read_bytes {
    my $n = shift;
    _fill() while length($Buf) < $n + 2;
    my $data = substr $Buf, 0, $n;
    substr($Buf, 0, $n + 2) = '';
    return $data;
}

sub _read_reply {
    my $line = _read_line();
    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    if ($type eq '+') {
        return $rest;
    }
    if ($type eq '-') {
        return HistoryTest::Error->new($rest);
    }
    if ($type eq ':') {
        return 0 + $rest;
    }
    if ($type eq '$') {
        return undef if $rest < 0;
        return _read_bytes($rest);
    }
    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { _read_reply() } 1 .. $rest];
    }

    _disconnect();
    die "redis: unexpected reply line: $line\n";
}

sub _send_command {
    my @args = @_;
    my $msg = '*' . @args . "\r\n";
    for my $arg (@args) {
        $arg = '' unless defined $arg;
        utf8::encode($arg) if utf8::is_utf8($arg);
        $msg .= '$' . length($arg) . "\r\n$arg\r\n";
    }
    my $off = 0;
    while ($off < length $msg) {
        my $n = syswrite $Conn, $msg, length($msg) - $off, $off;
        if (!defined $n) {
            my $err = "$!";
            _disconnect();
            die "redis: write failed: $err\n";
        }
        $off += $n;
    }
}

sub _connect {
    # a forked child (e.g. a mock server) must not share the parent's socket
    _disconnect() if $Conn && $ConnPid != $$;
    return if $Conn;

    $Conn = IO::Socket::INET->new(
        PeerAddr => $RedisHost,
        PeerPort => $RedisPort,
        Proto    => 'tcp',
        Timeout  => 2,
    ) or die "redis: cannot connect to $RedisHost:$RedisPort: $@\n";
    binmode $Conn;
    $Buf = '';
    $ConnPid = $$;

    if ($RedisDb) {
        _send_command('SELECT', $RedisDb);
        my $r = _read_reply();
        if (ref $r eq 'HistoryTest::Error') {
            _disconnect();
            die "redis: SELECT $RedisDb failed: $r\n";
        }
    }
}

# redis_command(@args): runs one command and returns the decoded reply:
# status/bulk replies as strings, integers as numbers, nil as undef, arrays
# as array refs, errors as HistoryTest::Error objects (which stringify to
# the error text, e.g. "WRONGTYPE Operation against a key ...").
# Dies on connection problems.
sub redis_command {
    my @args = @_;
    die "redis_command: no command given\n" unless @args;
    _connect();
    _send_command(@args);
    return _read_reply();
}

sub redis_flush {
    my $r = redis_command('FLUSHDB');
    die "redis: FLUSHDB failed: $r\n" if ref $r eq 'HistoryTest::Error';
    return 1;
}

sub _render {
    my $v = shift;
    return '(nil)' unless defined $v;
    if (ref $v eq 'ARRAY') {
        return join ' ', map { _render($_) } @$v;
    }
    return "$v";
}

# redis_render(@args): the reply rendered as text, as the "--- redis"
# section compares it.
sub redis_render {
    return _render(redis_command(@_));
}

# ---------------------------------------------------------------------------
# Parsing the sections
# ---------------------------------------------------------------------------

my %Escapes = (n => "\n", r => "\r", t => "\t", 0 => "\0", '"' => '"',
               '\\' => '\\');

# Splits a command line into arguments: whitespace-separated words, or
# double-quoted strings with \" \\ \r \n \t \0 and \xHH escapes.  With
# $stop_at_arrow, stops at a standalone "=>" and also returns the text after
# it.
sub redis_parse_args {
    my ($text, $stop_at_arrow) = @_;
    my @args;
    pos($text) = 0;

    while (1) {
        $text =~ /\G\s+/gc;
        last if pos($text) >= length $text;

        if ($stop_at_arrow && $text =~ /\G=>(?=\s|\z)/gc) {
            return (\@args, substr($text, pos $text));
        }

        if ($text =~ /\G"/gc) {
            my $arg = '';
            while (1) {
                if ($text =~ /\G"/gc) {
                    last;
                } elsif ($text =~ /\G\\x([0-9A-Fa-f]{2})/gc) {
                    $arg .= chr hex $1;
                } elsif ($text =~ /\G\\(.)/gcs) {
                    $arg .= exists $Escapes{$1} ? $Escapes{$1} : $1;
                } elsif ($text =~ /\G([^"\\]+)/gc) {
                    $arg .= $1;
                } else {
                    die "unterminated quoted argument in: $text\n";
                }
            }
            push @args, $arg;
        } else {
            $text =~ /\G(\S+)/gc;
            push @args, $1;
        }
    }

    return (\@args, undef);
}

sub _section_lines {
    my $value = shift;
    return () unless defined $value;
    my @lines = ref $value eq 'ARRAY' ? @$value : split /\n/, $value;
    return grep { /\S/ && !/^\s*#/ } @lines;
}

# "COMMAND args => expected" -> { text, args, expected, regex }
sub _parse_check {
    my $line = shift;
    my ($args, $rest) = redis_parse_args($line, 1);
    die "missing \"=>\" in --- redis line: $line\n" unless defined $rest;
    die "no command in --- redis line: $line\n" unless @$args;

    $rest =~ s/^\s+|\s+$//g;
    my %check = (text => $line, args => $args, expected => $rest);

    if ($rest =~ m{^/(.*)/([imsx]*)$}s) {
        my ($re, $flags) = ($1, $2);
        $check{regex} = $flags ? qr/(?$flags)$re/ : qr/$re/;
    } elsif ($rest =~ /^"/) {
        my ($parts, undef) = redis_parse_args($rest);
        $check{expected} = join ' ', @$parts;
    }

    return \%check;
}

sub _matches {
    my ($check, $got) = @_;
    return 0 unless defined $got;
    return $got =~ $check->{regex} if $check->{regex};
    return $got eq $check->{expected};
}

sub _show {
    my $s = shift;
    return 'undef' unless defined $s;
    $s =~ s/([\\'])/\\$1/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/([\x00-\x1f\x7f-\xff])/sprintf('\\x%02x', ord $1)/ge;
    return "'$s'";
}

# ---------------------------------------------------------------------------
# The Test::Nginx hooks
# ---------------------------------------------------------------------------

my %Blocks;
my $BlockSeq = 0;

sub _uses_redis {
    my $block = shift;
    return defined $block->redis || defined $block->redis_init;
}

sub _last_req_idx {
    my $block = shift;
    if (my $p = $block->pipelined_requests) {
        return ref $p eq 'ARRAY' ? $#$p : 0;
    }
    return 0 if defined $block->raw_request;
    my $r = $block->request;
    return ref $r eq 'ARRAY' ? $#$r : 0;
}

# Flushes the test database and runs "--- redis_init".
sub _reset_db {
    my ($block) = @_;
    my $name = $block->name;

    my $ok = eval { redis_flush(); 1 };
    if (!$ok) {
        my $err = $@;
        chomp $err;
        if (_uses_redis($block)) {
            Test::More::fail("$name - redis: cannot reset the test database:"
                             . " $err");
        }
        return;
    }

    for my $line (_section_lines($block->redis_init)) {
        my ($args, $reply);
        my $ok = eval {
            ($args) = redis_parse_args($line);
            $reply = redis_command(@$args) if @$args;
            1;
        };
        if (!$ok) {
            chomp(my $err = $@);
            Test::More::fail("$name - redis_init: $line: $err");
        } elsif (ref $reply eq 'HistoryTest::Error') {
            Test::More::fail("$name - redis_init: $line: $reply");
        }
    }
}

# Prepended to each block's "--- init" code by the preprocessor below.
sub _block_init {
    my $id = shift;
    my $block = $Blocks{$id} or return;
    _reset_db($block);
}

sub _preprocess {
    my $block = shift;
    my $id = ++$BlockSeq;
    $Blocks{$id} = $block;

    my $init = $block->init;
    my $code = "HistoryTest::_block_init($id);\n";
    $code .= $init if defined $init && !ref $init;
    $block->set_value('init', $code);
}

sub _run_checks {
    my ($block, $checks, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $deadline = time + $PollTimeout;
    my @got;
    while (1) {
        my $all = 1;
        @got = ();
        for my $check (@$checks) {
            my $got = eval { redis_render(@{ $check->{args} }) };
            if (!defined $got) {
                chomp(my $err = $@);
                $got = undef;
                $check->{error} = $err;
            } else {
                delete $check->{error};
            }
            push @got, $got;
            $all = 0 unless _matches($check, $got);
        }
        last if $all || time >= $deadline;
        sleep $PollInterval;
    }

    for my $i (0 .. $#$checks) {
        my $check = $checks->[$i];
        my $got = $got[$i];
        my $ok = Test::More::ok(_matches($check, $got),
            "$name - redis: $check->{text} (req $repeated_req_idx)");
        if (!$ok) {
            my $exp = $check->{regex} ? "/$check->{regex}/"
                                      : _show($check->{expected});
            my $g = defined $check->{error} ? "error: $check->{error}"
                                            : _show($got);
            Test::More::diag("         got: $g\n    expected: $exp\n"
                             . "  (polled for ${PollTimeout}s)");
        }
    }
}

# A worker that crashed, or a sanitizer report, fails the block whatever
# else it checks: nginx writes both into error.log (a daemon's stderr is
# the error log).
sub _crash_check {
    my ($block) = @_;
    my $log = $Test::Nginx::Util::ErrLogFile
              // "$Test::Nginx::Util::ServRoot/logs/error.log";

    open my $fh, '<', $log or return;
    my @bad = grep { /AddressSanitizer|LeakSanitizer|runtime error:|exited on signal/ } <$fh>;
    close $fh;

    if (@bad) {
        Test::More::fail($block->name . " - no crash or sanitizer report");
        Test::More::diag(join '', @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
    }
}

sub _response_check {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    _crash_check($block);
    return unless _uses_redis($block);
    return unless $req_idx == _last_req_idx($block);

    my $name = $block->name;
    my @lines = _section_lines($block->redis);

    if (@lines) {
        SKIP: {
            Test::More::skip("$name - redis - tests skipped due to $dry_run",
                             scalar @lines) if $dry_run;

            my @checks;
            for my $line (@lines) {
                my $check = eval { _parse_check($line) };
                if (!$check) {
                    chomp(my $err = $@);
                    $check = { text => $line, args => ['PING'],
                               expected => "(bad check line: $err)" };
                }
                push @checks, $check;
            }
            _run_checks($block, \@checks, $repeated_req_idx);
        }
    }

    # get the database ready for the next repetition of this block
    if ($repeated_req_idx < Test::Nginx::Socket::repeat_each() - 1) {
        _reset_db($block);
    }
}

Test::Nginx::Socket::add_block_preprocessor(\&_preprocess);
Test::Nginx::Socket::add_response_body_check(\&_response_check);

package HistoryTest::Error;

use overload '""' => sub { $_[0]->{message} }, fallback => 1;

sub new {
    my ($class, $message) = @_;
    return bless { message => $message }, $class;
}

sub message { $_[0]->{message} }

1;
