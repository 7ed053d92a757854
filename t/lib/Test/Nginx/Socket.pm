package Test::Nginx::Socket;

# The project's runner for Test::Nginx::Socket-style .t files (Test::Base
# block format).  It mirrors the interface and behaviour of the subset of the
# upstream Test::Nginx::Socket module that the project uses; see
# t/lib/README.md.  Named subs carry prototypes throughout: Spiffy's -Base
# source filter would otherwise insert "my $self = shift;" into them.

use Test::Base -Base;

our $VERSION = '0.29_01';

use Encode ();
use Digest::MD5 ();
use Digest::SHA ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw(EAGAIN EWOULDBLOCK EINTR);
use Time::HiRes qw(sleep time);

use Test::Nginx::Util;

our @EXPORT = qw( env_to_nginx is_str plan run_tests run_test
  repeat_each config_preamble worker_connections
  master_process_enabled
  no_long_string workers master_on master_off
  log_level no_shuffle no_root_location use_hup
  server_name
  server_addr server_root html_dir server_port server_port_for_client
  timeout no_nginx_manager check_accum_error_log
  add_block_preprocessor bail_out add_cleanup_handler
  add_response_body_check
);

our @ResponseBodyChecks;

$Test::Nginx::Util::RunTestHelper = \&run_test_helper;

sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}

sub set_http_config_filter ($) {
    $Test::Nginx::Util::FilterHttpConfig = shift;
}

# ---------------------------------------------------------------------------
# Building requests
# ---------------------------------------------------------------------------

# "Name: value" lines -> CRLF-terminated header text; also reports whether
# the request body is chunked.
sub parse_more_headers ($) {
    my ($in) = @_;
    my $out = '';
    my $is_chunked;
    for my $header (split /\n+/, $in // '') {
        next if $header =~ /^\s*\#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        next unless defined $key && length $key;
        $val //= '';
        $val =~ s/\r$//;
        if (lc($key) eq 'transfer-encoding' && $val eq 'chunked') {
            $is_chunked = 1;
        }
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# Turns the user's request text (possibly split into packets) into a wire
# request: normalised request line, Host/Connection headers unless given,
# --- more_headers, Content-Length for a non-empty body.  Packet boundaries
# are kept (mapped onto the rewritten text).
sub build_request ($$$$$) {
    my ($name, $more_headers, $is_chunked, $conn, $packets) = @_;

    my @bounds;
    my $orig = '';
    for my $p (@$packets) {
        $orig .= $p;
        push @bounds, length $orig;
    }
    pop @bounds;

    my ($first, $body) = $orig =~ /\A([^\n]*\n?)(.*)\z/s;
    if (!defined $first || $first !~ /\S/) {
        bail_out("$name - Request line should be non-empty");
    }

    my ($lead, $meth, $url, $ver);
    if ($first =~ /^(\s*)(\S+) *(?:(\S+) *)?(?:(\S+) *)?\s*$/) {
        ($lead, $meth, $url, $ver) = ($1, $2, $3, $4);
    } else {
        bail_out("$name - Request line is not valid. Should be"
                 . " 'meth [url [version]]' but got \"$first\".");
    }
    $url //= '/';
    $ver //= 'HTTP/1.1';

    my $len_header = '';
    my ($body_skip, $body_len) = (0, length $body);
    if (!$is_chunked && $body ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/)
    {
        my ($ws) = $body =~ /\A(\s*)/;
        $body_skip = length $ws;
        $body =~ s/^\s+|\s+$//gs;
        $body_len = length $body;
        $len_header = "Content-Length: " . length($body) . "\r\n";
    }

    $more_headers =~ s/(?<!\r)\n/\r\n/gs;

    my $headers = '';
    if ($more_headers !~ /(?:^|\n)Host:/msi) {
        $headers .= "Host: $Test::Nginx::Util::ServerName\r\n";
    }
    if ($more_headers !~ /(?:^|\n)Connection/msi) {
        $headers .= "Connection: $conn\r\n";
    }
    $headers .= "$more_headers$len_header\r\n";

    my $line = "$meth $url $ver\r\n";
    my $out = $line . $headers . $body;

    return [$out] unless @bounds;

    # map the original packet boundaries onto the new text
    my $head_len = length($line) + length($headers);
    my $first_len = length $first;
    my @new_bounds;
    for my $b (@bounds) {
        my $nb;
        if ($b < $first_len) {
            my $k = $b - length $lead;
            $k = 0 if $k < 0;
            $nb = $k < length($line) - 2 ? $k : $head_len;
        } else {
            my $k = $b - $first_len - $body_skip;
            $k = 0 if $k < 0;
            $k = $body_len if $k > $body_len;
            $nb = $head_len + $k;
        }
        push @new_bounds, $nb;
    }

    my @parts;
    my $prev = 0;
    for my $nb (@new_bounds, length $out) {
        $nb = $prev if $nb < $prev;
        push @parts, substr($out, $prev, $nb - $prev);
        $prev = $nb;
    }
    return \@parts;
}

sub _headers_for ($$$) {
    my ($name, $more_headers, $i) = @_;
    if (ref $more_headers eq 'ARRAY') {
        my $hdr = $more_headers->[$i];
        defined $hdr
            or bail_out("$name - --- more_headers lacks data for the"
                        . " request $i");
        return parse_more_headers($hdr);
    }
    return parse_more_headers($more_headers);
}

# Returns a list of requests; each request is a list of packets
# ({ value => ..., delay_before => ... }).
sub get_req_from_block ($) {
    my ($block) = @_;
    my $name = $block->name;
    my @req_list;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        if (ref $raw && ref $raw eq 'ARRAY') {
            push @req_list, [map { ref $_ ? $_ : { value => $_ } } @$raw];
        } else {
            push @req_list, [{ value => $raw }];
        }
        return \@req_list;
    }

    my $request;
    if (defined $block->request_eval) {
        $request = eval $block->request_eval;
        warn $@ if $@;
    } else {
        $request = $block->request;
        if (defined $request && !ref $request) {
            1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        }
    }

    my $more_headers = $block->more_headers || '';

    if ($block->pipelined_requests) {
        my $reqs = $block->pipelined_requests;
        if (!ref $reqs || ref $reqs ne 'ARRAY') {
            bail_out("$name - invalid entries in --- pipelined_requests");
        }
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            my ($hdr, $is_chunked) = _headers_for($name, $more_headers, $i);
            $all .= build_request($name, $hdr, $is_chunked, $conn,
                                  [$reqs->[$i]])->[0];
        }
        push @req_list, [{ value => $all }];
        return \@req_list;
    }

    if (!defined $request) {
        bail_out("$name - no --- request section");
    }

    my @reqs;
    if (!ref $request) {
        @reqs = ($request);
    } elsif (ref $request eq 'ARRAY') {
        @reqs = @$request;
    } else {
        bail_out("$name - invalid --- request: MUST be string or array of"
                 . " requests");
    }

    for my $i (0 .. $#reqs) {
        my $one = $reqs[$i];
        my ($hdr, $is_chunked) = _headers_for($name, $more_headers, $i);

        if (!ref $one) {
            push @req_list, [{ value => build_request($name, $hdr, $is_chunked,
                                                      'close', [$one])->[0] }];

        } elsif (ref $one eq 'ARRAY') {
            my @values;
            for my $p (@$one) {
                if (!ref $p) {
                    push @values, $p;
                } elsif (ref $p eq 'HASH') {
                    push @values, $p->{value};
                } else {
                    bail_out("$name - Invalid syntax. $p should be a string"
                             . " or hash with value.");
                }
            }
            my $parts = build_request($name, $hdr, $is_chunked, 'close',
                                      \@values);
            my @packets;
            for my $j (0 .. $#$parts) {
                my %pkt = ref $one->[$j] ? %{ $one->[$j] } : ();
                $pkt{value} = $parts->[$j];
                push @packets, \%pkt;
            }
            push @req_list, \@packets;

        } else {
            bail_out("$name - Invalid syntax. $one should be a string or an"
                     . " array of packets.");
        }
    }

    return \@req_list;
}

# ---------------------------------------------------------------------------
# Talking to nginx
# ---------------------------------------------------------------------------

sub _connect ($$) {
    my ($name, $timeout) = @_;
    my $addr = $Test::Nginx::Util::ServerAddr;
    my $port = $Test::Nginx::Util::ServerPortForClient;

    my $deadline = time + ($timeout > 3 ? $timeout : 3);
    my $wait = Test::Nginx::Util::sleep_time();
    while (1) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $addr,
            PeerPort => $port,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        if ($sock) {
            $sock->blocking(0);
            return $sock;
        }
        my $err = $!;
        if (time >= $deadline) {
            fail("$name - Can't connect to $addr:$port: $err (aborted)\n");
            return undef;
        }
        sleep $wait;
        $wait *= 2;
        $wait = 0.2 if $wait > 0.2;
    }
}

# Returns ($raw_response, $is_head_request).
sub send_request ($$$$) {
    my ($req, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;

    my @bits = @$req;
    my $all = join '', map { $_->{value} } @bits;
    my $head_req = $all =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $sock = _connect($name, $timeout) or return (undef, $head_req);

    my $resp = '';
    my $cur = shift @bits;
    my ($buf, $off) = ($cur->{value}, 0);
    my $writing = 1;

    my $sel = IO::Select->new($sock);

    while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            next if $! == EINTR;
            # timed out
            if (!defined $block->abort) {
                fail("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last;
        }

        if ($w && @$w) {
            while ($writing) {
                my $rest = length($buf) - $off;
                if ($rest > 0) {
                    my $n = syswrite $sock, $buf, $rest, $off;
                    if (!defined $n) {
                        last if $! == EAGAIN || $! == EWOULDBLOCK;
                        warn "WARNING: $name - write failed: $!\n";
                        $resp = "write failed: $!" if $resp eq '';
                        $writing = 0;
                        last;
                    }
                    $off += $n;
                    next;
                }

                my $next = shift @bits;
                if (!$next) {
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        $how = 1 if $how !~ /^\d+$/;
                        shutdown $sock, $how;
                    }
                    last;
                }

                my $delay = defined $next->{delay_before}
                    ? $next->{delay_before} : $middle_delay;
                sleep $delay if $delay;
                ($buf, $off) = ($next->{value}, 0);
            }
        }

        if ($r && @$r) {
            my $closed;
            while (1) {
                my $chunk;
                my $n = sysread $sock, $chunk, 4096;
                if (!defined $n) {
                    last if $! == EAGAIN || $! == EWOULDBLOCK;
                    warn "WARNING: $name - HTTP response read failure: $!\n";
                    $closed = 1;
                    last;
                }
                if ($n == 0) {
                    $closed = 1;
                    last;
                }
                $resp .= $chunk;
            }
            last if $closed;
        }
    }

    close $sock;
    return ($resp, $head_req);
}

# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------

# Returns ($res, $raw_headers, $left_over_bytes).
sub parse_response ($$$) {
    my ($name, $raw_resp, $head_req) = @_;

    my $left;
    my $raw_headers = '';
    if ($raw_resp =~ /(.*?\r\n)\r\n/s) {
        $raw_headers = $1;
    }

    my $res = HTTP::Response->parse($raw_resp);
    my $code = $res->code;
    if (defined $code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }

    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');

    if (defined $enc && $enc eq 'chunked') {
        my $raw = $res->content // '';
        my $decoded = '';
        while (1) {
            if ($raw =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = $1 if $raw =~ /\G(.+)/gcs;
                last;
            }
            if ($raw =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my $size = hex $1;
                if (length($raw) - pos($raw) < $size) {
                    fail("$name - invalid chunked data received (not enough"
                         . " octets for the data section)");
                    return;
                }
                $decoded .= substr($raw, pos($raw), $size);
                pos($raw) += $size;
                if ($raw !~ /\G\r\n/gc) {
                    fail("$name - invalid chunked data received (expected"
                         . " CRLF).");
                    return;
                }
            } elsif ($raw =~ /\G(.+)/gcs) {
                fail("$name - invalid chunked body received: $1");
                return;
            } else {
                fail("$name - no last chunk found - $raw");
                return;
            }
        }
        $res->content($decoded);

    } elsif (defined $len && $len =~ /^\d+$/) {
        my $raw = $res->content;
        if (length $raw < $len) {
            if (!$head_req) {
                warn "WARNING: $name - response body truncated: $len expected,"
                    . " but got " . length($raw) . "\n";
            }
        } elsif (length $raw > $len) {
            $left = substr $raw, $len;
            $res->content(substr $raw, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;
    if ($need_array) {
        if (ref $value && ref $value eq 'ARRAY') {
            return $value->[$req_idx];
        }
        bail_out("$name - You asked for many requests, the expected results"
                 . " should be arrays as well.");
    }
    if (ref $value && ref $value eq 'ARRAY') {
        return $value->[0];
    }
    return $value;
}

sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    SKIP: {
        skip "$name - tests skipped due to $dry_run", 1 if $dry_run;
        my $got = ($res && $res->code) || '';
        if (defined $block->error_code_like) {
            my $val = get_indexed_value($name, $block->error_code_like,
                                        $req_idx, $need_array);
            like($got, qr/$val/sm, "$name - status code ok");
        } elsif (defined $block->error_code) {
            is($got, get_indexed_value($name, $block->error_code, $req_idx,
                                       $need_array),
               "$name - status code ok");
        } else {
            is($got, 200, "$name - status code ok");
        }
    }
}

sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        SKIP: {
            skip "$name - raw_response_headers_like - tests skipped due to"
                . " $dry_run", 1 if $dry_run;
            my $pat = get_indexed_value($name, $block->raw_response_headers_like,
                                        $req_idx, $need_array);
            like($raw_headers, qr/$pat/s, "$name - raw resp headers like");
        }
    }
    if (defined $block->raw_response_headers_unlike) {
        SKIP: {
            skip "$name - raw_response_headers_unlike - tests skipped due to"
                . " $dry_run", 1 if $dry_run;
            my $pat = get_indexed_value($name,
                                        $block->raw_response_headers_unlike,
                                        $req_idx, $need_array);
            unlike($raw_headers, qr/$pat/s, "$name - raw resp headers unlike");
        }
    }
}

sub _subst_port ($) {
    my $s = shift;
    return $s if !defined $s || ref $s;
    $s =~ s/\$ServerPortForClient\b/$Test::Nginx::Util::ServerPortForClient/g;
    $s =~ s/\$ServerPort\b/$Test::Nginx::Util::ServerPort/g;
    return $s;
}

sub check_response_headers ($$$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $headers = parse_headers(get_indexed_value(
            $name, $block->response_headers, $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key};
            if (!defined $val) {
                SKIP: {
                    skip "$name - response_headers - tests skipped due to"
                        . " $dry_run", 1 if $dry_run;
                    unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/ms,
                           "$name - header $key not present in the raw"
                           . " headers");
                }
                next;
            }
            $val = _subst_port($val);
            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';
            SKIP: {
                skip "$name - response_headers - tests skipped due to"
                    . " $dry_run", 1 if $dry_run;
                is($actual, $val, "$name - header $key ok");
            }
        }

    } elsif (defined $block->response_headers_like) {
        my $headers = parse_headers(get_indexed_value(
            $name, $block->response_headers_like, $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key} // '';
            my $actual = $res ? $res->header($key) : undef;
            $actual //= '';
            SKIP: {
                skip "$name - response_headers_like - tests skipped due to"
                    . " $dry_run", 1 if $dry_run;
                like($actual, qr/^$val$/, "$name - header $key like ok");
            }
        }
    }
}

sub run_filter_helper ($$$) {
    my ($block, $filter, $content) = @_;
    my $name = $block->name;

    if (ref $filter && ref $filter eq 'CODE') {
        return $filter->($content);
    }
    if (ref $filter) {
        bail_out("$name - the --- response_body_filters section only"
                 . " supports subroutine reference values and string values");
    }

    my %builtin = (
        md5_hex  => sub { Digest::MD5::md5_hex($_[0]) },
        sha1_hex => sub { Digest::SHA::sha1_hex($_[0]) },
        uc       => sub { uc $_[0] },
        lc       => sub { lc $_[0] },
        ucfirst  => sub { ucfirst $_[0] },
        lcfirst  => sub { lcfirst $_[0] },
        length   => sub { length $_[0] },
    );
    my $f = $builtin{$filter}
        or bail_out("$name - unknown filter, \"$filter\", specified in the"
                    . " --- response_body_filters section");
    return $f->($content);
}

sub transform_response_body ($$$) {
    my ($block, $res, $req_idx) = @_;
    return unless defined $res;
    my $content = $res->content;
    return unless defined $content;

    my $filters = $block->response_body_filters;
    return unless defined $filters;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [split /\s+/, $filters];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }

    my $filter = $filters;
    if (ref $filters->[0] eq 'ARRAY') {
        $filter = $filters->[$req_idx];
        defined $filter
            or bail_out($block->name . " - the --- response_body_filters"
                        . " two-dimensional array does not match the request"
                        . " ($req_idx)");
    }

    my $new = $content;
    for my $f (ref $filter eq 'ARRAY' ? @$filter : ($filter)) {
        $new = run_filter_helper($block, $f, $new);
    }
    $res->content($new);
}

sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $content = $res ? $res->content : undef;
        if (defined $content) {
            $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
            $content =~ s/^Connection: TE, close\r\n//gms;
        }

        my $expected;
        if ($block->response_body_eval) {
            $expected = eval get_indexed_value($name, $block->response_body_eval,
                                               $req_idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, $block->response_body,
                                          $req_idx, $need_array);
        }

        if ($block->charset) {
            Encode::from_to($expected, 'UTF-8', $block->charset);
        }

        $expected = _subst_port($expected);

        SKIP: {
            skip "$name - response_body - tests skipped due to $dry_run", 1
                if $dry_run;
            if (ref $expected) {
                like($content, $expected, "$name - response_body - like"
                     . " (repeated req $repeated_req_idx, req $req_idx)");
            } elsif ($Test::Nginx::Util::NoLongString) {
                is($content, $expected, "$name - response_body - response is"
                   . " expected (repeated req $repeated_req_idx, req $req_idx)");
            } else {
                Test::Nginx::Util::is_string($content, $expected,
                    "$name - response_body - response is expected"
                    . " (repeated req $repeated_req_idx, req $req_idx)");
            }
        }

    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike)
    {
        my ($patterns, $type) = defined $block->response_body_like
            ? ($block->response_body_like, 'like')
            : ($block->response_body_unlike, 'unlike');

        my $content = $res ? $res->content : undef;
        if (defined $content) {
            $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
            $content =~ s/^Connection: TE, close\r\n//gms;
        }

        my $pat = _subst_port(get_indexed_value($name, $patterns, $req_idx,
                                                $need_array));
        my $summary = trim($content) // '';

        SKIP: {
            skip "$name - response_body_$type - tests skipped due to"
                . " $dry_run", 1 if $dry_run;
            if ($type eq 'like') {
                like($content, qr/$pat/s, "$name - response_body_like -"
                     . " response is expected ($summary)");
            } else {
                unlike($content, qr/$pat/s, "$name - response_body_unlike -"
                       . " response is expected ($summary)");
            }
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $res ? $res->content : undef, $req_idx,
                 $repeated_req_idx, $dry_run);
    }
}

# ---------------------------------------------------------------------------
# One repetition of a block: send the request(s) and run the checks
# ---------------------------------------------------------------------------

sub run_test_helper ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $r_req_list = get_req_from_block($block);
    if (!@$r_req_list) {
        bail_out("$name - request empty");
    }

    my $timeout = Test::Nginx::Util::parse_time($block->timeout);
    $timeout = timeout() unless defined $timeout;

    my $res;
    my $req_idx = 0;
    my ($n, $need_array);

    for my $one_req (@$r_req_list) {
        my ($raw_resp, $head_req);

        if ($dry_run) {
            $raw_resp = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        } else {
            ($raw_resp, $head_req) = send_request($one_req,
                $block->raw_request_middle_delay, $timeout, $block);
        }

        if ($block->pipelined_requests) {
            $n = @{ $block->pipelined_requests };
            $need_array = 1;
        } else {
            $need_array = @$r_req_list > 1;
        }

        while (1) {
            $raw_resp //= '';
            my ($raw_headers, $left);

            if (!defined $block->ignore_response) {
                if (defined $block->http09) {
                    $res = HTTP::Response->new(200, 'OK', [], $raw_resp);
                    $raw_headers = '';
                } else {
                    ($res, $raw_headers, $left) =
                        parse_response($name, $raw_resp, $head_req);
                }
            }

            if (!$n) {
                if (defined $left && length $left) {
                    (my $l = $left) =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                    warn "WARNING: $name - unexpected extra bytes after last"
                        . " chunk in response: \"$l\"\n";
                }
            } else {
                $raw_resp = $left;
                $n--;
            }

            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $dry_run, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $dry_run,
                                           $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $dry_run,
                                       $req_idx, $need_array);
                transform_response_body($block, $res, $req_idx);
                check_response_body($block, $res, $dry_run, $req_idx,
                                    $repeated_req_idx, $need_array);
            }

            if ($n || $req_idx < @$r_req_list - 1) {
                sleep($block->wait) if $block->wait;
                $Test::Nginx::Util::CheckErrorLog->($block, $res, $dry_run,
                                                    $repeated_req_idx,
                                                    $need_array);
                if (!defined $block->ignore_response) {
                    Test::Nginx::Util::check_access_log($block, $dry_run,
                                                        $repeated_req_idx);
                }
            }

            $req_idx++;
            last unless $n;
        }
    }

    sleep($block->wait) if $block->wait;

    $Test::Nginx::Util::CheckErrorLog->($block, $res, $dry_run,
                                        $repeated_req_idx, $need_array);

    if (!defined $block->ignore_response) {
        Test::Nginx::Util::check_access_log($block, $dry_run,
                                            $repeated_req_idx);
    }
}

1;
__END__

=head1 NAME

Test::Nginx::Socket - run Test::Nginx::Socket-style test blocks against nginx

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';

    repeat_each(2);
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location = /t { return 200 "hello\n"; }
    --- request
    GET /t
    --- response_body
    hello
    --- no_error_log
    [error]

=head1 DESCRIPTION

See F<t/lib/README.md> for the supported sections and environment
variables, and for running the same files under the upstream Test::Nginx.

=cut
