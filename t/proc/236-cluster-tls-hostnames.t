# vi:filetype=perl
#
# A Redis Cluster over TLS whose nodes announce hostnames
# (n<port>.redis.test, cluster-preferred-endpoint-type hostname, and
# 127.0.0.2 as their "ip"), on ports from TEST_NGINX_TLS_PORT + 60, with
# certificates for DNS:*.redis.test and IP:127.0.0.2 only.  nginx is
# given the seeds at 127.0.0.2; a DNS server (t/lib/MockDNS.pm) answers
# the names with 127.0.0.1.  Each node reached by its hostname checks
# that name in the certificate, not the address DNS gave (which the
# certificate does not carry): every view lands, no handshake fails.
# With history_redis_ssl_name, that name is checked for every node.
#
# A plain script: it starts its own cluster, DNS server and nginx.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);

use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

plan skip_all => 't/lib/RedisTopology.pm is not there'
    unless eval { require RedisTopology; RedisTopology->import;
                  require MockDNS; 1 };

my $base = tls_base() + 60;
my $dns_port = $base + 53;
my $certs;
my %p;

sub conf {
    return <<"END";
worker_processes 1;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    resolver 127.0.0.1:$dns_port valid=1s;
    resolver_timeout 2s;
    history_redis 127.0.0.2:$base 127.0.0.2:@{[ $base + 1 ]} cluster tls
                  timeout=500ms;
    history_redis_ssl_trusted_certificate $certs->{ca};
    server {
        listen 127.0.0.1:\$HTTP_PORT;
        location ~ ^/product/(\\d+)\$ {
            history_key \$arg_v;
            history_record \$1;
            return 200 "product \$1\\n";
        }
        location = /stats {
            history_stats;
        }
    }
}
END
}

$certs = make_certs(($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
                    . '-cluster-tls-names-certs');
%p = proc_setup(name => 'cluster-tls-names', offset => 22, conf => conf());

# the configuration proc_setup() wrote, with a line more in http {}

sub add_to_conf {
    my $line = shift;
    my $file = "$p{root}/conf/nginx.conf";
    open my $f, '<', $file or die $!;
    my $text = do { local $/; <$f> };
    close $f;
    $text =~ s/^(\s*history_redis_ssl_trusted_certificate[^\n]*\n)/$1    $line\n/m
        or die "no history_redis_ssl_trusted_certificate in $file";
    open $f, '>', $file or die $!;
    print $f $text;
    close $f;
}

sub name_of { "n$_[0].redis.test" }

my $c = start_cluster(dir => "$p{root}/redis-cluster", base => $base,
                      tls => $certs, cert => 'named',
                      announce_hostname => 'n%d.redis.test',
                      endpoint_type => 'hostname',
                      announce_ip => '127.0.0.2');

my @masters = $c->masters;

my $dns = MockDNS->start(port => $dns_port, log => "$p{root}/dns.log",
                         names => { map { name_of($_) => '127.0.0.1' }
                                    $c->ports });

sub stats { (get('/stats'))[2] }

# each master's figures in history_stats, by "address:port"

sub nodes {
    my %n;
    for my $o (stats() =~ /(\{"address":"[^"]+".*?\})/g) {
        my ($a) = $o =~ /"address":"([^"]+)"/;
        my %f = $o =~ /"(\w+)":(\d+)/g;
        $n{$a} = \%f;
    }
    return \%n;
}

sub send_views {
    my ($tag, $n) = @_;
    my $ok = 0;
    for my $i (1 .. $n) {
        my ($status) = get("/product/" . ($i % 50) . "?v=$tag$i");
        $ok++ if $status == 200;
    }
    return $ok;
}

sub landed {
    my ($tag, $n) = @_;
    my $good = 0;
    for my $i (1 .. $n) {
        my $key = "history:$tag$i";
        my $l = $c->call($c->key_owner($key), 'LRANGE', $key, 0, -1);
        $good++ if ref $l eq 'ARRAY' && "@$l" eq $i % 50;
    }
    return $good;
}

sub log_text {
    open my $f, '<', "$p{root}/logs/error.log" or return '';
    local $/;
    return <$f>;
}

# 1. by hostname: each node's certificate checked for its name

nginx_start();

RedisTopology::wait_until(sub {
    my $n = nodes();
    3 == grep { ($n->{"127.0.0.1:$_"} || {})->{slots} } @masters }, 10);

is(send_views('a', 300), 300, '300 views answered');

RedisTopology::wait_until(sub { landed('a', 300) == 300 }, 10);
is(landed('a', 300), 300, "each view is on its slot's master, over TLS");

my $n = nodes();

is(join(' ', map { ($n->{"127.0.0.1:$_"} || {})->{tls_handshakes} ? 1 : 0 }
             @masters),
   '1 1 1', 'each master, reached at the address DNS gave, shook hands');
is(join(' ', map { ($n->{$_}{tls_failures} // 0) } sort keys %$n),
   join(' ', map { 0 } keys %$n), 'no handshake failed on any node');

my $log = log_text();
unlike($log, qr/certificate does not match|SSL_do_handshake\(\) failed/,
       'nothing refused: the names are in the certificate, not 127.0.0.1');

nginx_signal('QUIT');
RedisTopology::wait_until(sub { !nginx_running() }, 10);

# 2. history_redis_ssl_name: one name for every node, checked for each

add_to_conf('history_redis_ssl_name wrong.redis.example;');
truncate "$p{root}/logs/error.log", 0;
nginx_start();

send_views('b', 30);

RedisTopology::wait_until(sub {
    my $n = nodes();
    (grep { ($_->{tls_failures} // 0) >= 1 } values %$n) >= 2 }, 10);

$n = nodes();
ok((grep { ($_->{tls_failures} // 0) >= 1 } values %$n) >= 2,
   'with history_redis_ssl_name naming another host, the seeds refuse');
like(log_text(), qr/wrong\.redis\.example/,
     'and the log names the name that was checked');
is(landed('b', 30), 0, 'nothing lands');

nginx_signal('QUIT');
RedisTopology::wait_until(sub { !nginx_running() }, 10);

$dns->stop;
$c->stop;

done_testing();
