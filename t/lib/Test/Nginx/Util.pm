package Test::Nginx::Util;

# Process, configuration and error-log management for the project's
# Test::Nginx::Socket runner.  It implements the subset of the interface of
# the CPAN/GitHub Test::Nginx distribution (Test::Nginx::Util and
# Test::Nginx::Socket) that the project's test files use, so that the same
# .t files run unchanged under either implementation.  See t/lib/README.md.

use strict;
use warnings;

our $VERSION = '0.29_01';

use base 'Exporter';

use Carp qw(croak);
use Cwd ();
use File::Path qw(make_path remove_tree);
use File::Spec ();
use File::Temp ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use List::Util qw(shuffle min);
use POSIX qw(:sys_wait_h SIGQUIT SIGKILL SIGTERM);
use Scalar::Util qw(looks_like_number);
use Socket qw(SOCK_STREAM);
use Test::More ();
use Time::HiRes qw(sleep time);

# ---------------------------------------------------------------------------
# Settings (environment first, then the functions below)
# ---------------------------------------------------------------------------

our $Verbose          = $ENV{TEST_NGINX_VERBOSE};
our $Randomize        = $ENV{TEST_NGINX_RANDOMIZE};
our $NoNginxManager   = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $NoShuffle        = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $LoadModules      = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind      = $ENV{TEST_NGINX_USE_VALGRIND};
our $UseHup           = $ENV{TEST_NGINX_USE_HUP};
our $EventType        = $ENV{TEST_NGINX_EVENT_TYPE};
our $PostponeOutput   = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $Timeout          = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $WorkerUser       = $ENV{TEST_NGINX_WORKER_USER};
our $TestNginxSleep   = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ValgrindMatch    = $ENV{TEST_NGINX_VALGRIND_MATCH} || 'ngx_http_history';

our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || default_nginx_binary();
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $ServerAddr           = '127.0.0.1';
our $ServerName           = 'localhost';
our $ServerPort           = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                            || 1984;
our $ServerPortForClient  = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort || 1984;
our $NoRootLocation       = 0;
our $RepeatEach           = 1;
our $NoLongString;
our $ConfigPreamble       = '';
our $FilterHttpConfig;
our @EnvToNginx;
our @BlockPreprocessors;
our @CleanupHandlers;

# Hooks filled in by Test::Nginx::Socket.
our $RunTestHelper;
our $CheckErrorLog = \&check_error_log;
our $CheckShutdownErrorLog = \&check_shutdown_error_log;

our ($NginxVersion, $NginxRawVersion);
our $PrevConfig;        # the last '--- config' value used (for blocks without one)
our $PrevConfText;      # the last generated nginx.conf text
our $PrevBlock;
our $ErrLogFilePos = 0;

our $ChildPid;          # nginx run in the foreground (valgrind mode)
our $TcpServerPid;
our $InSubprocess;
our $MainPid = $$;
our $ValgrindLog;
our $StartupStderr = '';

sub gen_rand_port (;$$);
sub bail_out (@);
sub timeout (@);

srand $$;

if ($Randomize) {
    $ServerPort = gen_rand_port(1000)
        or die "Cannot find an available listening port number\n";
    $ServerPortForClient = $ServerPort;
}

if ($UseValgrind) {
    $DaemonEnabled = 'off';
}

our $ServRoot = $Randomize
    ? File::Spec->rel2abs("t/servroot_$ServerPort")
    : ($ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot'));
$ServRoot =~ s{/+$}{};
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');

our @EXPORT = qw(
    env_to_nginx
    is_str
    is_string
    check_accum_error_log
    is_running
    $NoLongString
    no_long_string
    $ServerAddr
    server_addr
    $ServerName
    server_name
    parse_time
    verbose
    sleep_time
    bail_out
    add_cleanup_handler
    access_log_data
    error_log_data
    setup_server_root
    write_config_file
    get_canon_version
    get_nginx_version
    trim
    show_all_chars
    parse_headers
    run_tests
    run_test
    get_pid_from_pidfile
    $ServerPortForClient
    $ServerPort
    $NginxVersion
    $PidFile
    $ServRoot
    $ConfFile
    $RunTestHelper
    $CheckErrorLog
    $CheckShutdownErrorLog
    $FilterHttpConfig
    $NoNginxManager
    $RepeatEach
    add_block_preprocessor
    timeout
    worker_connections
    workers
    master_on
    master_off
    config_preamble
    repeat_each
    master_process_enabled
    log_level
    no_shuffle
    no_root_location
    html_dir
    server_root
    server_port
    server_port_for_client
    no_nginx_manager
    use_hup
);

# ---------------------------------------------------------------------------
# Small public helpers
# ---------------------------------------------------------------------------

sub default_nginx_binary {
    return can_run('nginx') ? 'nginx' : '/usr/sbin/nginx';
}

sub can_run {
    my ($cmd) = @_;
    return undef unless defined $cmd && length $cmd;
    if ($cmd =~ m{/}) {
        return (-f $cmd && -x _) ? $cmd : undef;
    }
    for my $dir (split /:/, ($ENV{PATH} // '')) {
        next if $dir eq '';
        my $abs = File::Spec->catfile($dir, $cmd);
        return $abs if -f $abs && -x _;
    }
    return undef;
}

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        if ($v !~ /^[A-Za-z_]/ || $v =~ /\n/) {
            croak "env_to_nginx: bad argument value: $v\n";
        }
        push @EnvToNginx, $v;
    }
}

sub no_long_string ()       { $NoLongString = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub no_shuffle ()           { $NoShuffle = 1 }
sub no_root_location ()     { $NoRootLocation = 1 }
sub no_nginx_manager ()     { $NoNginxManager = 1 }
sub master_on ()            { $MasterProcessEnabled = 'on' }
sub master_off ()           { $MasterProcessEnabled = 'off' }
sub config_preamble ($)     { $ConfigPreamble = shift }
sub html_dir ()             { $HtmlDir }
sub server_root ()          { $ServRoot }
sub sleep_time              { $TestNginxSleep }
sub verbose                 { $Verbose }

sub use_hup () {
    # The HUP-reload mode is not implemented: nginx is restarted for every
    # block, which is what upstream does without TEST_NGINX_USE_HUP.
    $UseHup = 1;
}

sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }

sub _getset {
    my ($ref, @args) = @_;
    if (@args) { $$ref = $args[0]; return }
    return $$ref;
}

sub server_addr (@)            { _getset(\$ServerAddr, @_) }
sub server_name (@)            { _getset(\$ServerName, @_) }
sub timeout (@)                { _getset(\$Timeout, @_) }
sub worker_connections (@)     { _getset(\$WorkerConnections, @_) }
sub workers (@)                { _getset(\$Workers, @_) }
sub log_level (@)              { _getset(\$LogLevel, @_) }
sub server_port (@)            { _getset(\$ServerPort, @_) }
sub server_port_for_client (@) { _getset(\$ServerPortForClient, @_) }

sub repeat_each (@) {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub master_process_enabled (@) {
    if (@_) {
        $MasterProcessEnabled = shift() ? 'on' : 'off';
        return;
    }
    return $MasterProcessEnabled;
}

sub parse_time ($) {
    my $tm = shift;
    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
            $tm = $tm / 1000;
        } else {
            $tm =~ s/([^_a-zA-Z])s$/$1/;
        }
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub show_all_chars ($) {
    my $s = shift;
    $s =~ s/\n/\\n/gs;
    $s =~ s/\r/\\r/gs;
    $s =~ s/\t/\\t/gs;
    return $s;
}

sub fmt_str ($) {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;
    return $str;
}

sub parse_headers ($) {
    my $s = shift;
    my %headers;
    for my $line (split /\n/, $s // '') {
        $line =~ s/^\s+|\s+$//g;
        next if $line eq '';
        if ($line =~ s/^!\s*//) {
            $headers{$line} = undef;
        } else {
            my ($key, $val) = split /\s*:\s*/, $line, 2;
            $headers{$key} = $val;
        }
    }
    return \%headers;
}

# String comparison in the spirit of Test::LongString::is_string: on failure
# the diagnostics point at the first differing character.
sub is_string ($$;$) {
    my ($got, $expected, $desc) = @_;
    my $tb = Test::More->builder;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    if (!defined $got || !defined $expected) {
        return $tb->is_eq($got, $expected, $desc);
    }

    my $ok = $tb->ok($got eq $expected, $desc);
    if (!$ok) {
        my $max = min(length $got, length $expected);
        my $pos = 0;
        $pos++ while $pos < $max
            && substr($got, $pos, 1) eq substr($expected, $pos, 1);
        my $line = 1 + (substr($got, 0, $pos) =~ tr/\n//);
        my $from = $pos > 30 ? $pos - 30 : 0;
        my $show = sub {
            my $s = substr($_[0], $from, 80);
            $s =~ s/([\\"])/\\$1/g;
            $s =~ s/\n/\\n/g;
            $s =~ s/\r/\\r/g;
            $s =~ s/\t/\\t/g;
            $s =~ s/([\x00-\x1f\x7f-\xff])/sprintf('\\x%02x', ord $1)/ge;
            ($from ? '...' : '') . "\"$s\""
                . ($from + 80 < length $_[0] ? '...' : '');
        };
        $tb->diag(sprintf(
            "         got: %s\n      length: %d\n    expected: %s\n"
            . "      length: %d\n    strings begin to differ at char %d"
            . " (line %d)",
            $show->($got), length $got, $show->($expected),
            length $expected, $pos + 1, $line));
    }
    return $ok;
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }
    if ($NoLongString) {
        return Test::More::is($got, $expected, $desc);
    }
    return is_string($got, $expected, $desc);
}

sub get_canon_version (@) {
    sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        $out //= '';
        bail_out("Failed to get the version of the nginx binary"
                 . " \"$NginxBinary\": $out");
    }
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return get_canon_version($1, $2, $3);
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

sub gen_rand_port (;$$) {
    my ($tries, $used) = @_;
    $tries //= 1000;
    $used //= {};
    for (1 .. $tries) {
        my $port = int(rand 63550) + 1985;
        next if $used->{$port};
        my $sock = IO::Socket::INET->new(
            LocalAddr => $ServerAddr,
            LocalPort => $port,
            Proto     => 'tcp',
        );
        if ($sock) {
            $sock->close;
            return $port;
        }
    }
    return undef;
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

sub is_running ($) {
    my $pid = shift;
    return 0 unless defined $pid && $pid =~ /^\d+$/ && $pid > 0;
    waitpid($pid, WNOHANG);    # reap it if it is our own child
    return 0 unless kill 0, $pid;
    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in>;
        close $in;
        return 0 if defined $stat && $stat =~ /\)\s+[ZX]\s/;
    }
    return 1;
}

sub looks_like_nginx ($) {
    my $pid = shift;
    return 1 if defined $ChildPid && $pid == $ChildPid;
    open my $in, '<', "/proc/$pid/cmdline" or return 1;   # no /proc: trust it
    my $cmd = do { local $/; <$in> } // '';
    close $in;
    return $cmd =~ /nginx|valgrind|memcheck/;
}

# Sends $sig (QUIT by default), waits up to $wait seconds, then TERM, then
# KILL (the whole process group when the process leads one).
sub kill_process ($$$;$) {
    my ($pid, $wait, $name, $sig) = @_;
    return unless defined $pid;
    $sig //= SIGQUIT;

    if (is_running($pid)) {
        warn "sending signal $sig to $pid\n" if $Verbose;
        kill $sig, $pid;
        my $deadline = time + $wait;
        while (time < $deadline && is_running($pid)) {
            sleep 0.02;
        }
    }
    return unless is_running($pid);

    warn "$name - WARNING: process $pid did not exit within ${wait}s;"
        . " terminating it\n";
    kill SIGTERM, $pid;
    my $deadline = time + 1;
    while (time < $deadline && is_running($pid)) {
        sleep 0.02;
    }
    return unless is_running($pid);

    my $pgrp = getpgrp($pid);
    if (defined $pgrp && $pgrp == $pid) {
        kill SIGKILL, -$pid;
    } else {
        kill SIGKILL, $pid;
    }
    $deadline = time + 2;
    while (time < $deadline && is_running($pid)) {
        sleep 0.02;
    }
}

sub get_pid_from_pidfile ($) {
    my ($name) = @_;
    open my $in, '<', $PidFile
        or bail_out("$name - Failed to open the pid file $PidFile for"
                    . " reading: $!");
    my $pid = do { local $/; <$in> } // '';
    close $in;
    $pid =~ s/\s+//g;
    return $pid;
}

sub read_pid_file () {
    open my $in, '<', $PidFile or return undef;
    my $pid = do { local $/; <$in> } // '';
    close $in;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# Stops the nginx started for the current (or a previous) block.
sub stop_nginx ($) {
    my ($name) = @_;

    my $pid = read_pid_file();
    if (!defined $pid && defined $ChildPid) {
        $pid = $ChildPid;
    }

    if (defined $pid && is_running($pid) && looks_like_nginx($pid)) {
        # valgrind's leak check at exit can take a while
        my $wait = $UseValgrind && defined $ChildPid ? 30 : timeout();
        kill_process($pid, $wait, $name, SIGQUIT);
    }

    if (defined $ChildPid) {
        if ($ChildPid != ($pid // -1) && is_running($ChildPid)) {
            kill_process($ChildPid, timeout(), $name, SIGQUIT);
        }
        waitpid($ChildPid, 0) if kill 0, $ChildPid;
        undef $ChildPid;
    }

    unlink $PidFile if -f $PidFile;
}

sub cleanup () {
    return if $InSubprocess || $$ != $MainPid;

    for my $hdl (@CleanupHandlers) {
        eval { $hdl->() };
        warn "cleanup handler failed: $@" if $@;
    }

    if (defined $TcpServerPid) {
        kill_process($TcpServerPid, 1, 'cleanup', SIGTERM);
        undef $TcpServerPid;
    }

    if (defined $ChildPid) {
        stop_nginx('cleanup');
    }
}

sub bail_out (@) {
    cleanup();
    if (!$ENV{TEST_NGINX_NO_CLEAN} && -f $PidFile) {
        stop_nginx('bail_out');
    }
    Test::More::BAIL_OUT(join '', @_);
}

# ---------------------------------------------------------------------------
# Server root and nginx.conf
# ---------------------------------------------------------------------------

sub setup_server_root (;$) {
    if (-d $ServRoot) {
        # only remove what this runner creates, so that a mistaken
        # TEST_NGINX_SERVROOT cannot wipe unrelated data
        remove_tree($ConfDir, $HtmlDir, $LogDir,
                    glob("$ServRoot/*_temp"), glob("$ServRoot/*_cache"));
    }

    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        next if -d $dir;
        make_path($dir);
        -d $dir or bail_out("Failed to create directory $dir: $!\n");
    }

    my $index = "$HtmlDir/index.html";
    open my $out, '>', $index
        or bail_out("Can't open $index for writing: $!\n");
    print $out '<html><head><title>It works!</title></head>'
        . '<body>It works!</body></html>';
    close $out;
}

sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;

    my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            if (!defined $rand_ports->{$var}) {
                my $port = gen_rand_port(1000, \%used);
                defined $port or bail_out("$name - Cannot find an available"
                                          . " listening port number for $var.\n");
                $rand_ports->{$var} = $port;
                $used{$port} = 1;
            }
            $val = $rand_ports->{$var};
        } else {
            defined $ENV{$var}
                or bail_out("$name - No environment $var defined.\n");
            $val = $ENV{$var};
        }
        $val;
    }ge;

    return $text;
}

sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        my ($fname, $body, $date);
        for my $line (split /^/, $files) {
            if ($line =~ />>> (\S+)(?:\s+(.+))?/) {
                push @list, [$fname, $body, $date] if $fname;
                ($fname, $date, $body) = ($1, $2, undef);
            } else {
                $body .= $line;
            }
        }
        push @list, [$fname, $body, $date] if $fname;
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for user_files: " . ref $files);
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/}) {
            make_path($1) unless -d $1;
        }
        $body = expand_env_in_text($body, $name, $rand_ports);
        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            system('touch', '-t', $date, $path) == 0
                or bail_out("$name - failed to set the mtime of $path\n");
        }
    }
}

sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;

    my $name             = $block->name;
    my $http_config      = expand_env_in_text($block->http_config, $name,
                                              $rand_ports);
    my $main_config      = $block->main_config;
    my $post_main_config = $block->post_main_config;
    my $err_log_file     = $block->error_log_file || $ErrLogFile;
    my $server_name      = $block->server_name // $ServerName;

    $config      //= '';
    $http_config //= '';
    $main_config //= '';

    if ($FilterHttpConfig) {
        $http_config = $FilterHttpConfig->($http_config);
    }

    my $extra_http_config = '';
    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        $PostponeOutput =~ /^\d+$/
            or bail_out("Bad TEST_NGINX_POSTPONE_OUTPUT value: $PostponeOutput\n");
        $extra_http_config = "    postpone_output $PostponeOutput;\n";
    }

    if ($LoadModules) {
        my @modules = map { "load_module $_;" } grep { length } split /\s+/,
                      $LoadModules;
        $main_config .= join ' ', @modules;
    }

    $main_config      = expand_env_in_text($main_config, $name, $rand_ports);
    $post_main_config = expand_env_in_text($post_main_config // '', $name,
                                           $rand_ports);

    (my $quoted_server_name = $server_name) =~ s/\\/\\\\/g;
    $quoted_server_name =~ s/'/\\'/g;

    my $conf = <<_EOC_;
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
env MOCKEAGAIN_VERBOSE;
env MOCKEAGAIN;
env MOCKEAGAIN_WRITE_TIMEOUT_PATTERN;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env DYLD_INSERT_LIBRARIES;
env DYLD_FORCE_FLAT_NAMESPACE;
_EOC_

    for my $v (@EnvToNginx) {
        my $e = $v =~ /\s/ ? "'$v'" : $v;
        $conf .= "env $e;\n";
    }

    $conf .= <<_EOC_;

$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$http_config
$extra_http_config
    server {
        listen          $ServerPort;
        server_name     '$quoted_server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

_EOC_

    if (!$NoRootLocation) {
        $conf .= <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    }

    $conf .= "    }\n}\n\n$post_main_config\n\nevents {\n"
           . "    accept_mutex off;\n\n"
           . "    worker_connections  $WorkerConnections;\n";
    $conf .= "    use $EventType;\n" if $EventType;
    $conf .= "}\n";
    $conf .= "env ASAN_OPTIONS;\nenv MOCKNOEAGAIN_VERBOSE;\nenv MOCKNOEAGAIN;\n";

    if (defined $WorkerUser) {
        $conf .= "user $WorkerUser;\n";
    } elsif ($> == 0) {
        $conf .= "user root;\n";
    }

    write_conf_text($conf);
    return $conf;
}

sub write_conf_text ($) {
    my $conf = shift;
    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out $conf;
    close $out;
    $PrevConfText = $conf;
}

# ---------------------------------------------------------------------------
# Starting nginx
# ---------------------------------------------------------------------------

sub port_is_listening ($) {
    my $port = shift;
    my $hex = sprintf '%04X', $port;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $in, '<', $f or next;
        while (my $line = <$in>) {
            # sl local_address rem_address st ...
            if ($line =~ /^\s*\d+:\s+[0-9A-F]+:$hex\s+[0-9A-F]+:[0-9A-F]+\s+0A\s/i) {
                close $in;
                return 1;
            }
        }
        close $in;
    }
    return 0 if -e '/proc/net/tcp';

    # no procfs: fall back to connecting
    my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 0.2);
    return $sock ? 1 : 0;
}

sub nginx_command () {
    my @cmd = ($NginxBinary);
    # Send nginx's start-up messages (e.g. config parsing errors) to
    # logs/error.log, as an nginx built with the default "logs/error.log"
    # error-log path does; requires nginx 1.19.5+.
    if (defined $NginxVersion && $NginxVersion >= 1.019005) {
        push @cmd, '-e', $ErrLogFile;
    }
    push @cmd, '-p', "$ServRoot/", '-c', $ConfFile;
    return @cmd;
}

sub valgrind_command ($) {
    my $nginx = shift;
    my @opts;
    if ($UseValgrind =~ /^\d+$/) {
        @opts = qw(--tool=memcheck --leak-check=full --show-possibly-lost=no);
    } else {
        @opts = split ' ', $UseValgrind;
    }
    push @opts, '--num-callers=100', '-q', '--gen-suppressions=all',
                '--error-exitcode=99';
    push @opts, '--suppressions=valgrind.suppress' if -f 'valgrind.suppress';
    $ValgrindLog = "$ServRoot/logs/valgrind.log";
    unlink $ValgrindLog;
    push @opts, "--log-file=$ValgrindLog";
    return ('valgrind', @opts, @$nginx);
}

# Runs the nginx command; returns ($status, $exec_failed, $stderr).
# In valgrind mode nginx stays in the foreground: it is forked and
# $ChildPid is set, $status is then 0 unless it exited right away.
sub spawn_nginx ($) {
    my ($foreground) = @_;

    my @cmd = nginx_command();
    @cmd = valgrind_command(\@cmd) if $foreground;

    warn "command: @cmd\n" if $Verbose;

    my $errfh = File::Temp->new(TEMPLATE => 'nginx-stderr-XXXXXX',
                                TMPDIR => 1);
    my $errname = $errfh->filename;

    my $pid = fork;
    if (!defined $pid) {
        bail_out("fork() failed: $!");
    }

    if ($pid == 0) {
        $InSubprocess = 1;
        setpgrp(0, 0) if $foreground;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>&', $errfh;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "failed to execute $cmd[0]: $!\n";
        POSIX::_exit(127);
    }

    my ($status, $exec_failed);

    if ($foreground) {
        $ChildPid = $pid;
        $status = 0;
    } else {
        waitpid($pid, 0);
        $status = $?;
    }

    my $read_err = sub {
        open my $in, '<', $errname or return '';
        my $s = do { local $/; <$in> } // '';
        close $in;
        return $s;
    };

    my $stderr = $read_err->();
    if ($status == (127 << 8) && $stderr =~ /^failed to execute/) {
        $exec_failed = 1;
    }

    return ($status, $exec_failed, $stderr, $read_err, $errfh);
}

# Waits until nginx has written its pid file and listens on the server port.
sub wait_for_nginx ($$) {
    my ($name, $read_err) = @_;
    my $limit = $ChildPid ? 60 : ($Timeout > 10 ? $Timeout : 10);
    my $deadline = time + $limit;
    my $saw_pid;

    while (time < $deadline) {
        if ($ChildPid && !is_running($ChildPid)) {
            my $st = $?;
            return (0, "nginx exited during start-up (status $st)");
        }
        my $pid = read_pid_file();
        if (defined $pid) {
            $saw_pid = 1;
            if (!is_running($pid)) {
                return (0, "nginx (pid $pid) exited during start-up");
            }
            return (1) if port_is_listening($ServerPort);
        }
        sleep 0.01;
    }

    return (0, $saw_pid
        ? "nginx does not listen on port $ServerPort after ${limit}s"
        : "nginx did not write $PidFile within ${limit}s");
}

sub error_log_tail () {
    open my $in, '<', $ErrLogFile or return '';
    my @lines = <$in>;
    close $in;
    @lines = grep { !/\[debug\]/ } @lines;
    splice @lines, 0, @lines - 20 if @lines > 20;
    return join '', @lines;
}

# ---------------------------------------------------------------------------
# Log checks
# ---------------------------------------------------------------------------

sub error_log_data () {
    # log-phase messages are written after the response has been sent
    sleep $TestNginxSleep * 3;

    open my $in, '<', $ErrLogFile or return [];
    if (!$CheckAccumErrLog && $ErrLogFilePos > 0) {
        seek $in, $ErrLogFilePos, 0;
    }
    my @lines = <$in>;
    if (!$CheckAccumErrLog) {
        $ErrLogFilePos = tell $in;
    }
    close $in;
    return \@lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    close $in;
    return \@lines;
}

sub _value_contains {
    my ($val, $pat) = @_;
    if (!ref $val || ref $val eq 'Regexp') {
        return $val =~ /\Q$pat\E/;
    }
    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if defined $v && _value_contains($v, $pat);
        }
    }
    return 0;
}

sub _pattern_list ($) {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [split /\n+/, $pats];
    }
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats];
}

sub _line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ /$pat/ : index($line, $pat) >= 0;
}

# Checks "--- error_log"/"--- no_error_log"/"--- grep_error_log" against the
# error.log lines written since the previous check (or all of them after
# check_accum_error_log()).
sub check_error_log ($$$$$) {
    my ($block, $res, $dry_run, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $lines;

    my %check_level = (alert => 1, crit => 1, emerg => 1);

    my $grep_pats = $block->grep_error_log;
    if (defined $grep_pats) {
        my $grep_pat = ref $grep_pats && ref $grep_pats eq 'ARRAY'
            ? $grep_pats->[$repeated_req_idx] : $grep_pats;
        my $expected = $block->grep_error_log_out;
        defined $expected
            or bail_out("$name - No --- grep_error_log_out defined but"
                        . " --- grep_error_log is defined");
        if (ref $expected && ref $expected eq 'ARRAY') {
            $expected = $expected->[$repeated_req_idx];
        }
        SKIP: {
            Test::More::skip("$name - error_log - tests skipped due to $dry_run", 1)
                if $dry_run;
            $lines ||= error_log_data();
            my $matched = '';
            for my $line (@$lines) {
                if (ref $grep_pat ? $line =~ /$grep_pat/ : $line =~ /\Q$grep_pat\E/) {
                    $matched .= "$&\n" if $& !~ /\n/;
                }
            }
            if (ref $expected && ref $expected eq 'Regexp') {
                Test::More::like($matched, $expected,
                    "$name - grep_error_log_out (req $repeated_req_idx)");
            } else {
                is_str($matched, $expected,
                    "$name - grep_error_log_out (req $repeated_req_idx)");
            }
        }
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but"
                 . " --- grep_error_log_out is defined");
    }

    for my $kind (qw(error_log no_error_log)) {
        my $value = $block->$kind;
        next unless defined $value;
        for my $level (keys %check_level) {
            $check_level{$level} = 0 if _value_contains($value, "[$level");
        }
    }

    if (defined $block->error_log) {
        my $pats = _pattern_list($block->error_log);
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (_line_matches($line, $pat)) {
                    SKIP: {
                        Test::More::skip("$name - error_log - tests skipped due to $dry_run", 1)
                            if $dry_run;
                        Test::More::pass("$name - pattern \"$pat\" matches a line"
                                         . " in error.log (req $repeated_req_idx)");
                    }
                    undef $pat;
                }
            }
        }
        for my $pat (@$pats) {
            next unless defined $pat;
            SKIP: {
                Test::More::skip("$name - error_log - tests skipped due to $dry_run", 1)
                    if $dry_run;
                Test::More::fail("$name - pattern \"$pat\" should match a line"
                                 . " in error.log (req $repeated_req_idx)");
            }
        }
    }

    if (defined $block->no_error_log) {
        my $pats = _pattern_list($block->no_error_log);
        my %found;
        $lines ||= error_log_data();
        for my $i (0 .. $#$lines) {
            my $line = $lines->[$i];
            for my $pat (@$pats) {
                next unless defined $pat;
                next unless _line_matches($line, $pat);
                $found{$pat} = 1;
                SKIP: {
                    Test::More::skip("$name - no_error_log - tests skipped due to $dry_run", 1)
                        if $dry_run;
                    my $more = join '', @$lines[$i + 1 .. min($i + 9, $#$lines)];
                    Test::More::fail("$name - pattern \"" . fmt_str($pat)
                        . "\" should not match any line in error.log but matches"
                        . " line \"" . fmt_str($line) . "\" (req $repeated_req_idx)\n"
                        . $more);
                }
            }
        }
        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};
            SKIP: {
                Test::More::skip("$name - no_error_log - tests skipped due to $dry_run", 1)
                    if $dry_run;
                Test::More::pass("$name - pattern \"" . fmt_str($pat)
                    . "\" does not match a line in error.log (req $repeated_req_idx)");
            }
        }
    }

    if (!$dry_run && grep { $_ } values %check_level) {
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $level (sort keys %check_level) {
                next unless $check_level{$level};
                if ($line =~ /\[\Q$level\E\]/) {
                    warn "WARNING: $name - " . fmt_str($line) . "\n";
                }
            }
        }
    }

    for my $line (@{ $lines || [] }) {
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            Test::More::fail("$name - $l\n");
        }
    }
}

sub check_access_log ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $lines;

    if (defined $block->access_log) {
        my $pats = _pattern_list($block->access_log);
        $lines ||= access_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat;
                if (_line_matches($line, $pat)) {
                    SKIP: {
                        Test::More::skip("$name - access_log - tests skipped due to $dry_run", 1)
                            if $dry_run;
                        Test::More::pass("$name - pattern \"$pat\" matches a line"
                                         . " in access.log (req $repeated_req_idx)");
                    }
                    undef $pat;
                }
            }
        }
        for my $pat (@$pats) {
            next unless defined $pat;
            SKIP: {
                Test::More::skip("$name - access_log - tests skipped due to $dry_run", 1)
                    if $dry_run;
                Test::More::fail("$name - pattern \"$pat\" should match a line"
                                 . " in access.log (req $repeated_req_idx)");
            }
        }
    }

    if (defined $block->no_access_log) {
        my $pats = _pattern_list($block->no_access_log);
        my %found;
        $lines ||= access_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && _line_matches($line, $pat);
                $found{$pat} = 1;
                SKIP: {
                    Test::More::skip("$name - no_access_log - tests skipped due to $dry_run", 1)
                        if $dry_run;
                    Test::More::fail("$name - pattern \"" . fmt_str($pat)
                        . "\" should not match any line in access.log but matches"
                        . " line \"" . fmt_str($line) . "\" (req $repeated_req_idx)");
                }
            }
        }
        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};
            SKIP: {
                Test::More::skip("$name - no_access_log - tests skipped due to $dry_run", 1)
                    if $dry_run;
                Test::More::pass("$name - pattern \"" . fmt_str($pat)
                    . "\" does not match a line in access.log (req $repeated_req_idx)");
            }
        }
    }
}

sub check_shutdown_error_log ($$) {
    my ($block, $dry_run) = @_;
    my $name = $block->name;
    my $lines;

    if (defined $block->no_shutdown_error_log) {
        my $pats = _pattern_list($block->no_shutdown_error_log);
        my %found;
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && _line_matches($line, $pat);
                $found{$pat} = 1;
                SKIP: {
                    Test::More::skip("$name - no_shutdown_error_log - tests skipped due to $dry_run", 1)
                        if $dry_run;
                    Test::More::fail("$name - pattern \"" . fmt_str($pat)
                        . "\" should not match any line in error.log but matches"
                        . " line \"" . fmt_str($line) . "\"");
                }
            }
        }
        for my $pat (@$pats) {
            next if !defined $pat || $found{$pat};
            SKIP: {
                Test::More::skip("$name - no_shutdown_error_log - tests skipped due to $dry_run", 1)
                    if $dry_run;
                Test::More::pass("$name - pattern \"" . fmt_str($pat)
                                 . "\" does not match a line in error.log");
            }
        }
    }

    if (defined $block->shutdown_error_log) {
        my $pats = _pattern_list($block->shutdown_error_log);
        $lines ||= error_log_data();
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && _line_matches($line, $pat);
                SKIP: {
                    Test::More::skip("$name - shutdown_error_log - tests skipped due to dry_run", 1)
                        if $dry_run;
                    Test::More::pass("$name - pattern \"$pat\" matches a line in error.log");
                }
                undef $pat;
            }
        }
        for my $pat (@$pats) {
            next unless defined $pat;
            SKIP: {
                Test::More::skip("$name - shutdown_error_log - tests skipped due to dry_run", 1)
                    if $dry_run;
                Test::More::fail("$name - pattern \"$pat\" should match a line in error.log");
            }
        }
    }
}

# ---------------------------------------------------------------------------
# valgrind
# ---------------------------------------------------------------------------

sub check_valgrind_log ($) {
    my ($name) = @_;
    return unless defined $ValgrindLog;

    my $text = '';
    if (open my $in, '<', $ValgrindLog) {
        $text = do { local $/; <$in> } // '';
        close $in;
    }

    # error records are separated by empty "==PID==" lines
    my @records = grep { /^==\d+==\s+(?:at|by) 0x/m }
                  split /^==\d+==\s*\n/m, $text;
    my @ours  = grep { /$ValgrindMatch/ } @records;
    my @other = grep { !/$ValgrindMatch/ } @records;

    if (@other) {
        Test::More::diag("$name - valgrind reported " . scalar(@other)
            . " error(s) not involving $ValgrindMatch (see $ValgrindLog)");
    }

    if (!Test::More::ok(!@ours, "$name - valgrind: no errors involving"
                               . " $ValgrindMatch"))
    {
        Test::More::diag(join "\n", @ours);
    }

    if (@ours || @other) {
        my $keep = $ENV{TEST_NGINX_VALGRIND_LOG_DIR};
        if ($keep) {
            make_path($keep) unless -d $keep;
            (my $base = $name) =~ s/[^\w.-]+/_/g;
            system('cp', $ValgrindLog, "$keep/$base.valgrind.log");
        }
    }
    undef $ValgrindLog;
}

# ---------------------------------------------------------------------------
# The embedded TCP server (--- tcp_listen)
# ---------------------------------------------------------------------------

sub start_tcp_server ($) {
    my ($block) = @_;
    my $name = $block->name;
    my $target = $block->tcp_listen;
    my $reply = $block->tcp_reply;

    if (!defined $reply && !defined $block->tcp_shutdown) {
        bail_out("$name - no --- tcp_reply specified but --- tcp_listen"
                 . " is specified");
    }

    my $req_len = $block->tcp_query_len;
    my $query_file;
    if (defined $block->tcp_query || defined $req_len) {
        $req_len //= length $block->tcp_query;
        (undef, $query_file) = File::Temp::tempfile('tcp-query-XXXXXX',
                                                     TMPDIR => 1);
    }

    my ($sock, $err);
    for my $try (1 .. 30) {
        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(
                LocalHost => '127.0.0.1',
                LocalPort => $target,
                Proto     => 'tcp',
                ReuseAddr => 1,
                Listen    => 5,
            );
        } elsif ($target =~ m{\S+\.sock$}) {
            unlink $target if -e $target;
            $sock = IO::Socket::UNIX->new(
                Local  => $target,
                Type   => SOCK_STREAM,
                Listen => 5,
            );
        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }
        last if $sock;
        $err = $!;
        last unless $err =~ /in use/i;
        warn "WARNING: $name - failed to create the tcp listening socket:"
            . " $err\n" if $try == 1;
        sleep 0.2;
    }

    $sock or bail_out("$name - failed to create the tcp listening socket"
                      . " on $target: $err");

    my $pid = fork;
    defined $pid or bail_out("$name - fork() failed: $!");

    if ($pid == 0) {
        $InSubprocess = 1;
        $SIG{TERM} = $SIG{INT} = $SIG{QUIT} = 'DEFAULT';
        Test::More->builder->no_ending(1);
        run_tcp_server_child($block, $sock, $reply, $req_len, $query_file);
        POSIX::_exit(0);
    }

    $TcpServerPid = $pid;
    return ($sock, $query_file);
}

sub run_tcp_server_child {
    my ($block, $sock, $reply, $req_len, $query_file) = @_;
    my $name = $block->name;

    my $client;
    until ($client = $sock->accept) {
        sleep $TestNginxSleep;
    }

    my ($no_read, $no_write);
    if (defined $block->tcp_shutdown) {
        my $how = $block->tcp_shutdown;
        $how = 1 if $how !~ /^\d+$/;
        if (my $d = parse_time($block->tcp_shutdown_delay)) {
            sleep $d;
        }
        $client->shutdown($how);
        if ($how == 0 || $how == 2) { $no_read = 1 } else { $no_write = 1 }
    }

    my $buf = '';
    unless ($no_read) {
        while (1) {
            my $chunk = '';
            my $n = sysread $client, $chunk, 4096;
            last if !defined $n || $n == 0;
            $buf .= $chunk;
            if ($query_file && open my $out, '>', $query_file) {
                binmode $out;
                print $out $buf;
                close $out;
            }
            last if !$req_len || length($buf) >= $req_len;
        }
    }

    if (my $delay = parse_time($block->tcp_reply_delay)) {
        sleep $delay;
    }

    if (!$no_write && defined $reply) {
        if (ref $reply eq 'CODE') {
            $reply = $reply->($buf);
        }
        my @parts = ref $reply eq 'ARRAY' ? @$reply : ($reply);
        for my $part (@parts) {
            next unless defined $part;
            my $off = 0;
            while ($off < length $part) {
                my $n = syswrite $client, $part, length($part) - $off, $off;
                last unless defined $n;
                $off += $n;
            }
        }
    }

    if (defined $block->tcp_no_close) {
        sleep 1 while 1;
    }

    $client->close;
    $sock->close;
}

sub run_tcp_server_tests ($$$) {
    my ($block, $sock, $query_file) = @_;
    my $name = $block->name;
    return unless defined $sock;

    my $buf = '';
    if ($query_file && open my $in, '<', $query_file) {
        binmode $in;
        $buf = do { local $/; <$in> } // '';
        close $in;
    }

    if (defined $block->tcp_query) {
        is_str($buf, $block->tcp_query, "$name - tcp_query ok");
    }

    if (defined $block->tcp_query_len) {
        Test::More::is(length($buf), $block->tcp_query_len,
                       "$name - TCP query length ok");
    }
}

sub stop_tcp_server ($$$) {
    my ($name, $sock, $query_file) = @_;
    if (defined $TcpServerPid) {
        kill_process($TcpServerPid, 1, $name, SIGTERM);
        waitpid($TcpServerPid, WNOHANG);
        undef $TcpServerPid;
    }
    $sock->close if $sock;
    unlink $query_file if $query_file;
}

# ---------------------------------------------------------------------------
# Running the blocks
# ---------------------------------------------------------------------------

sub run_tests () {
    $NginxVersion = get_nginx_version() unless $NoNginxManager;

    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;

    for my $block (@blocks) {
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }

        $block->set_value('name', $0 . ' ' . $block->name);

        my $ok = eval { run_test($block); 1 };
        if (!$ok) {
            my $err = $@;
            Test::More::fail($block->name . " - died: $err");
            stop_nginx($block->name) unless $NoNginxManager;
        }

        $PrevBlock = $block;
    }

    cleanup();
}

sub _failures_so_far () {
    return scalar grep { !$_ } Test::More->builder->summary;
}

sub run_test ($) {
    my $block = shift;

    return if defined $block->SKIP;

    my $name = $block->name;
    my $rand_ports = {};

    my $config = expand_env_in_text($block->config, $name, $rand_ports);

    local $LogLevel = $block->log_level || $LogLevel;
    local $UseValgrind = $UseValgrind;
    local $DaemonEnabled = $DaemonEnabled;

    my $must_die = $block->must_die;
    if (defined $must_die) {
        undef $UseValgrind;
        $DaemonEnabled = 'on';
    }

    my $dry_run = 0;
    my ($should_skip, $tests_to_skip, $skip_reason);

    if (defined(my $skip_eval = $block->skip_eval)) {
        if ($skip_eval =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            $tests_to_skip = $1;
            $skip_reason = 'skip_eval';
            my $code = $2;
            $should_skip = eval $code;
            bail_out("$name - skip_eval - failed to eval the Perl code"
                     . " \"$code\": $@") if $@;
        }
    }

    if (defined(my $skip_nginx = $block->skip_nginx)) {
        if ($skip_nginx =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)
                            (?:\s*:\s*(.*))?\s*$/x)
        {
            $tests_to_skip = $1;
            my ($op, $ver) = ($2, get_canon_version($3, $4, $5));
            $skip_reason = $6 || "nginx version $op $3.$4.$5";
            if ((!defined $NginxVersion && $op =~ /^</)
                || (defined $NginxVersion && eval "$NginxVersion $op $ver"))
            {
                $should_skip = 1;
            }
        } else {
            bail_out("$name - Invalid --- skip_nginx spec: $skip_nginx");
        }
    }

    $skip_reason //= 'various reasons';

    my $todo_reason;
    if (defined(my $todo = $block->todo)) {
        if ($todo =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            $tests_to_skip = $1;
            $todo_reason = $2;
        } else {
            bail_out("$name - Invalid --- todo spec: $todo");
        }
    }

    my $manage = !$NoNginxManager && !($should_skip && defined $tests_to_skip);

    if (!defined $config && $manage && !defined $PrevConfText) {
        bail_out("$name - No '--- config' section specified and could not"
                 . " get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?");
    }

    if ($NoNginxManager && defined $config) {
        Test::More::diag("NO_NGINX_MANAGER activated: config for $name ignored");
    }

    if ($manage) {
        # a previous nginx may still run (TEST_NGINX_NO_CLEAN or an
        # interrupted run)
        if (-f $PidFile || defined $ChildPid) {
            stop_nginx($name);
        }

        setup_server_root();
        write_user_files($block, $rand_ports);
        if (defined $config) {
            $PrevConfig = $config;
            write_config_file($block, $config, $rand_ports);
        } else {
            # like upstream, a block without "--- config" keeps using the
            # previous block's server configuration
            write_conf_text($PrevConfText);
        }

        my $foreground = $UseValgrind ? 1 : 0;

        if (defined $must_die) {
            $ErrLogFilePos = 0;
            for my $i (0 .. $RepeatEach - 1) {
                my $fails_before = _failures_so_far();
                my ($status, $exec_failed, $stderr) = spawn_nginx(0);
                my $exit_code = $status >> 8;
                my $core = $status & 128;

                if ($exec_failed) {
                    Test::More::fail("$name - failed to execute the nginx"
                                     . " command line");
                } elsif ($core) {
                    Test::More::fail("$name - nginx core dumped");
                } elsif (looks_like_number($must_die)) {
                    Test::More::is($must_die, $exit_code,
                                   "$name - die with the expected exit code");
                } else {
                    Test::More::isnt($status, 0, "$name - die as expected");
                }

                $CheckErrorLog->($block, undef, $dry_run, $i, 0);

                if ($status == 0) {
                    warn "WARNING: $name - nginx must die but it does not;"
                        . " killing it (req $i)\n";
                    for (1 .. 50) {
                        last if -f $PidFile;
                        sleep $TestNginxSleep;
                    }
                    stop_nginx($name);
                }

                if (_failures_so_far() > $fails_before && $stderr ne '') {
                    Test::More::diag("nginx stderr:\n$stderr");
                }
            }
            return;
        }

        my ($status, $exec_failed, $stderr, $read_err, $errfh)
            = spawn_nginx($foreground);

        my ($up, $why) = (0, undef);
        if ($status != 0 || $exec_failed) {
            $why = $exec_failed
                ? "failed to execute \"$NginxBinary\""
                : "nginx exited with status " . ($status >> 8);
        } else {
            ($up, $why) = wait_for_nginx($name, $read_err);
        }

        if (!$up) {
            $stderr = $read_err->() if $read_err;
            my $tail = error_log_tail();
            Test::More::fail("$name - nginx failed to start: $why");
            if ($stderr ne '') {
                Test::More::diag("nginx stderr:\n$stderr");
            } elsif ($tail ne '') {
                Test::More::diag("error.log (tail):\n$tail");
            }
            stop_nginx($name);
            check_valgrind_log($name) if $foreground;
            return;
        }

        $StartupStderr = $stderr;
    }

    # --- init runs once per block, before all the repeated requests
    if ($block->init) {
        eval $block->init;
        if ($@) {
            bail_out("$name - init failed: $@");
        }
    }

    $ErrLogFilePos = 0;

    for my $i (1 .. $RepeatEach) {
        warn "Run the test block $name ...\n" if $Verbose;

        my ($tcp_sock, $tcp_query_file);
        if (defined $block->tcp_listen) {
            ($tcp_sock, $tcp_query_file) = start_tcp_server($block);
        }

        if ($i > 1) {
            write_user_files($block, $rand_ports);
        }

        if ($should_skip && defined $tests_to_skip) {
            SKIP: {
                Test::More::skip("$name - $skip_reason", $tests_to_skip);
            }
        } elsif (defined $todo_reason) {
            TODO: {
                Test::More::todo_skip("$name - $todo_reason", $tests_to_skip);
            }
        } else {
            $RunTestHelper->($block, $dry_run, $i - 1);
            run_tcp_server_tests($block, $tcp_sock, $tcp_query_file);
        }

        if (defined $tcp_sock) {
            stop_tcp_server($name, $tcp_sock, $tcp_query_file);
        }
    }

    if (my $total_errlog = $ENV{TEST_NGINX_ERROR_LOG}) {
        if (-s $ErrLogFile && open my $out, '>>', $total_errlog) {
            print $out "\n=== $0 $name\n";
            if (open my $in, '<', $ErrLogFile) {
                print $out $_ while <$in>;
                close $in;
            }
            close $out;
        }
    }

    if ($manage && !$ENV{TEST_NGINX_NO_CLEAN}) {
        my $foreground = defined $ChildPid;
        stop_nginx($name);
        check_valgrind_log($name) if $foreground;
        if (defined $block->shutdown_error_log
            || defined $block->no_shutdown_error_log)
        {
            $CheckShutdownErrorLog->($block, 0);
        }
    }
}

# ---------------------------------------------------------------------------
# Process exit
# ---------------------------------------------------------------------------

sub _on_signal {
    my $sig = shift;
    return if $InSubprocess || $$ != $MainPid;
    cleanup();
    stop_nginx('signal') if -f $PidFile || defined $ChildPid;
    $SIG{$sig} = 'DEFAULT';
    kill $sig, $$;
    exit 1;
}

$SIG{INT}  = \&_on_signal;
$SIG{TERM} = \&_on_signal;
$SIG{HUP}  = \&_on_signal;

END {
    if (!$InSubprocess && $$ == $MainPid) {
        local $?;
        cleanup();
        if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
            stop_nginx('END') if -f $PidFile || defined $ChildPid;
        }
        if ($Randomize && -d $ServRoot && $ServRoot =~ m{/t/servroot_\d+$}) {
            remove_tree($ServRoot);
        }
    }
}

1;
