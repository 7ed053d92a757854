# vi:filetype=perl
#
# Only worker processes open Redis links and own a history_stats slot:
# with proxy_cache_path, the cache manager and the cache loader run the
# module's init_process too, and must do nothing.  history_stats lists
# exactly the running workers: with 4 workers, after a reload to 2 (old
# workers still flushing are listed beside the new ones, never in their
# slots), back to 4, and after a worker is killed and replaced.  The
# totals keep the counts of the workers that have exited.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use JSON::PP;
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $conf = <<'END';
worker_processes $WORKERS;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; accept_mutex off; }
http {
    access_log off;
    proxy_cache_path cache keys_zone=c:1m;
    history_redis 127.0.0.1:$REDIS_PORT timeout=5s;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location ~ ^/product/(\d+)$ {
            history_key $arg_v;
            history_record $1;
            return 200 "product $1\n";
        }
        location = /stats {
            history_stats;
        }
    }
}
END

(my $first = $conf) =~ s/\$WORKERS/4/;
my %p = proc_setup(name => 'cache-processes', offset => 21, conf => $first);

# the configuration with n workers, for a reload

sub workers_conf {
    my $n = shift;
    (my $c = $conf) =~ s/\$WORKERS/$n/;
    $c =~ s/\$REDIS_PORT\b/$p{rport}/g;
    $c =~ s/\$HTTP_PORT\b/$p{hport}/g;
    open my $fh, '>', "$p{root}/conf/nginx.conf" or die $!;
    print $fh "load_module $p{module};\n", $c;
    close $fh;
}

# the master's children, by what they are: {worker => [...], ...}

sub children {
    my $master = slurp("$p{root}/logs/nginx.pid") or return {};
    my %c = (worker => [], old => [], cache => []);

    for (split /\n/, `ps -o pid=,args= --ppid $master 2>/dev/null`) {
        my ($pid, $args) = /^\s*(\d+)\s+(.*)$/ or next;
        push @{ $c{$args =~ /shutting down/ ? 'old'
                  : $args =~ /worker process/ ? 'worker'
                  : $args =~ /cache/ ? 'cache' : 'other' } }, $pid;
    }

    return \%c;
}

sub stats {
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p{hport}",
                                  Timeout => 5) or return undef;
    print $s "GET /stats HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my ($body) = $resp =~ /\r\n\r\n(.*)$/s or return undef;
    return eval { decode_json($body) };
}

sub set_of { join ' ', sort { $a <=> $b } @_ }

sub stats_pids {
    my $st = shift or return '';
    return set_of(map { $_->{pid} } @{ $st->{workers} });
}

# Redis clients but for redis-cli itself

sub links {
    return scalar grep { !/cmd=client/ } split /\n/, redis('CLIENT', 'LIST');
}

redis_start();
nginx_start();

ok(wait_for(sub { my $c = children();
                  @{ $c->{worker} } == 4 && @{ $c->{cache} } == 2 }, 5),
   '4 workers, a cache manager and a cache loader');

my $c = children();

ok(wait_for(sub { my $st = stats(); $st && $st->{total}{connected} == 4 },
            5), 'the 4 workers are connected to Redis');

# whatever the cache processes would do, they have done it by now
select undef, undef, undef, 0.5;

is(links(), 4, 'Redis has 4 clients: the cache processes opened none');

my $st = stats();
is(stats_pids($st), set_of(@{ $c->{worker} }),
   'history_stats lists exactly the 4 workers, by pid');
is(join(' ', map { $_->{worker} } @{ $st->{workers} }), '0 1 2 3',
   'worker numbers 0 to 3, in order');
ok(!grep({ my $p = $_; grep { $_->{pid} == $p } @{ $st->{workers} } }
         @{ $c->{cache} }), 'no cache process is listed');

my ($ok) = views(1, 40, 'a');
is($ok, 40, '40 pages');
ok(wait_for(sub { redis('DBSIZE') == 40 }, 3), '40 views recorded');
ok(wait_for(sub { my $st = stats(); $st && $st->{total}{queued} == 40 }, 3),
   'total queued: 40');

# 4 -> 2, while the old workers still wait for Redis

redis('CLIENT', 'PAUSE', 3000, 'WRITE');

($ok) = views(41, 80, 'b');
is($ok, 40, '40 more pages while Redis holds writes');

my @old = @{ children()->{worker} };
workers_conf(2);
nginx_signal('HUP');

my $during;
my $matched = wait_for(sub {
    my $c = children();
    my @alive = (@{ $c->{worker} }, @{ $c->{old} });
    return 0 unless @{ $c->{worker} } == 2 && @{ $c->{old} };
    my $st = stats() or return 0;
    $during = sprintf '%d old, %d new', scalar @{ $c->{old} },
                      scalar @{ $c->{worker} };
    return stats_pids($st) eq set_of(@alive)
           && @{ $st->{workers} } == @alive;
}, 2.5);
ok(defined $matched, 'during the reload, history_stats lists the old '
                     . 'workers still running and the new ones, each once');
diag("during the reload: $during") if $during;

ok(wait_for(sub { redis('DBSIZE') == 80 }, 6),
   'all 80 views recorded, 0 lost');
ok(wait_for(sub { !grep { kill 0, $_ } @old }, 6), 'the old workers exited');

$c = children();
$st = stats();
is(stats_pids($st), set_of(@{ $c->{worker} }),
   'after the reload to 2: exactly the 2 new workers');
is(join(' ', map { $_->{worker} } @{ $st->{workers} }), '0 1',
   'worker numbers 0 and 1');
is($st->{total}{queued}, 80,
   'the total still counts the views of the workers gone');

ok(wait_for(sub { links() == 2 }, 3), 'Redis has 2 clients');
select undef, undef, undef, 0.5;
is(links(), 2, 'and keeps 2: the new cache processes opened none');

# 2 -> 4

@old = @{ $c->{worker} };
workers_conf(4);
nginx_signal('HUP');

ok(wait_for(sub { !grep { kill 0, $_ } @old }, 6), 'the old workers exited');
ok(wait_for(sub { my $c = children();
                  @{ $c->{worker} } == 4 && !@{ $c->{old} } }, 5),
   '4 new workers');

$c = children();
ok(wait_for(sub { stats_pids(stats()) eq set_of(@{ children()->{worker} }) },
            3), 'after the reload to 4: exactly the 4 new workers');
$st = stats();
is(join(' ', map { $_->{worker} } @{ $st->{workers} }), '0 1 2 3',
   'worker numbers 0 to 3');
is($st->{total}{queued}, 80, 'the total goes on from 80');

ok(wait_for(sub { links() == 4 }, 3), 'Redis has 4 clients');
select undef, undef, undef, 0.5;
is(links(), 4, 'and keeps 4');

# a killed worker's slot is taken back, by its replacement

my $killed = $c->{worker}[0];
kill 'KILL', $killed;

ok(wait_for(sub { my $c = children();
                  @{ $c->{worker} } == 4
                  && !grep { $_ == $killed } @{ $c->{worker} } }, 5),
   'the killed worker is replaced');
ok(wait_for(sub { stats_pids(stats()) eq set_of(@{ children()->{worker} }) },
            3), 'history_stats lists the replacement, not the killed one');
$st = stats();
is(scalar @{ $st->{workers} }, 4, '4 workers listed');
is($st->{total}{queued}, 80, 'the total keeps the killed worker\'s count');

is(log_count(qr/\[(alert|crit|emerg)\]/), 1,
   'the only alert is nginx reporting the killed worker');
is(log_count(qr/\[error\]/), 0, 'no error');

nginx_signal('QUIT');
ok(wait_for(sub { !nginx_running() }, 5), 'nginx has stopped');

done_testing();
