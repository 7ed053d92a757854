# vi:filetype=perl
#
# The hash slot each unit is routed by is the one Redis Cluster computes
# for its key: the link's slot of 1,000 keys (hash tags of every shape
# among them), as its debug log says, against CLUSTER KEYSLOT of a real
# redis-server in cluster mode.

use strict;
use warnings;

use Test::More;
use HistoryProc;

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

# prefixes that put a key's hash tag, or what looks like one, anywhere
my @prefixes = ('', 'h:', '{a}', '{a}x:', 'x{a}:', '{}', '{}{a}:', '{{a}}:',
                '}a{b}:', '{a', 'a}', '{', '}', '{}:', 'x{y}z{w}:',
                '{user1000}.following:', 'foo{}{bar}:', 'foo{{bar}}zap:',
                'foo{bar}{zap}:', '{:', ':{', '{=}', "caf\xc3\xa9{\xc3\xa9}:",
                "\xff{\x01}:", '{history}:', 'history:{', 'a{b}c{d}e:',
                '{{}}:', '}{:', '{}}:', '{ab}{cd}:', 'x' x 200 . '{z}:');

my $conf = '';
my $n = 0;

for my $prefix (@prefixes) {
    (my $quoted = $prefix) =~ s/([\\"])/\\$1/g;
    $conf .= "        location = /s/$n {\n"
           . "            history_prefix \"$quoted\";\n"
           . "            history_key \$arg_k;\n"
           . "            history_record 1;\n"
           . "            return 200 ok;\n"
           . "        }\n";
    $n++;
}

my %p = proc_setup(name => 'slot', offset => 17, conf => <<"END");
worker_processes 1;
error_log logs/error.log debug;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    history_redis 127.0.0.1:\$REDIS_PORT;
    server {
        listen 127.0.0.1:\$HTTP_PORT;
$conf
    }
}
END

redis_start('--cluster-enabled', 'yes',
            '--cluster-config-file', "$p{root}/redis/nodes.conf");
nginx_start();

# 1,024 views: each prefix with 32 visitors, hexadecimal ids as the
# module's own cookie issues them, some with a tag of their own in front

my $sent = 0;

for my $i (0 .. 1023) {
    my $k = sprintf('%032x', $i * 2654435761 % 4294967296);
    my ($status) = get('/s/' . ($i % $n) . "?k=$k");
    $sent++ if $status == 200;
}

is($sent, 1024, 'every view answered');

nginx_signal('QUIT');
wait_for(sub { !nginx_running() }, 10);

my %slot;

for (split /\n/, slurp("$p{root}/logs/error.log")) {
    next unless /history: redis unit \S+ for "(.*)": \d+ commands, /;
    my $key = $1;
    next unless /, slot (\d+)$/;
    $slot{$key} = $1;
}

cmp_ok(scalar keys %slot, '>=', 1000, 'the slots of 1,000 keys logged');

my ($same, @differ) = (0);

for my $key (sort keys %slot) {
    my $want = redis('CLUSTER', 'KEYSLOT', $key);

    if ($want ne '' && $want == $slot{$key}) {
        $same++;

    } else {
        push @differ, "$key: $slot{$key}, redis says $want";
    }
}

is($same, scalar keys %slot, 'every slot is the one Redis computes')
    or diag(join "\n", @differ[0 .. ($#differ < 9 ? $#differ : 9)]);

done_testing();
