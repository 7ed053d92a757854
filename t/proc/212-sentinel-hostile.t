# vi:filetype=perl
#
# A hostile Sentinel, played by the script on TEST_NGINX_SENTINEL_PORT +
# 50: it answers every question with the header of a 256 MB string and
# streams its bytes.  The worker refuses the reply at its header, logs
# that once, and its memory stays flat; pages are served meanwhile.
#
# A plain script: it starts its own fake Sentinel and nginx.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $port = ($ENV{TEST_NGINX_SENTINEL_PORT} || 17379) + 50;

my %p = proc_setup(name => 'sentinel-hostile', offset => 23,
                   conf => <<"END");
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    history_redis 127.0.0.1:$port sentinel=mymaster connect_timeout=2s;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_record \$1;
            return 200 "product \$1\\n";
        }
        location = /static {
            return 200 "static\\n";
        }
    }
}
END

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                   LocalPort => $port, Listen => 16,
                                   ReuseAddr => 1)
    or die "listen on $port: $!";

my $mock = fork // die "fork: $!";

if ($mock == 0) {
    $SIG{PIPE} = 'IGNORE';
    my $chunk = 'x' x 65536;
    while (my $c = $listen->accept) {
        my $line = <$c>;
        print $c '$' . (256 * 1024 * 1024) . "\r\n";
        # stream for at most 5 s, or until the worker closes
        my $until = time + 5;
        while (time < $until) {
            print $c $chunk or last;
        }
        close $c;
    }
    POSIX::_exit(0);
}

close $listen;

END { kill 'KILL', $mock if $mock; }

sub rss {
    my ($worker) = nginx_workers();
    my ($kb) = HistoryProc::slurp("/proc/$worker/status")
               =~ /VmHWM:\s+(\d+)/;
    return $kb // 0;
}

nginx_start();

my $before = rss();
my ($slowest, $ok) = (0, 0);
my $t0 = time;

while (time - $t0 < 3) {
    my ($status, $took) = get('/static');
    $ok++ if $status == 200;
    $slowest = $took if $took > $slowest;
    get('/product/1');
    sleep 0.05;
}

my $after = rss();

cmp_ok($ok, '>', 10, "pages served while the Sentinel streams ($ok)");
cmp_ok($slowest, '<', 0.5, sprintf 'the slowest page took %.1f ms',
                                    $slowest * 1000);
ok(log_count(qr/\[error\] .*redis sent a string of 268435456 bytes, more than the 4096 a reply may take/) >= 1,
   "the reply refused at its header, the Sentinel's own limit named");
cmp_ok($after - $before, '<', 16 * 1024,
       "the worker's peak memory grew by less than 16 MB "
       . "($before -> $after kB)");
is(log_count(qr/\[(alert|crit)\]|signal \d+ \(SIG(SEGV|ABRT)/), 0,
   'no alert, no crash');

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 5);

done_testing();
