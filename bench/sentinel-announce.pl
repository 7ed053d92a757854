#!/usr/bin/perl
#
# How long the old master of a Sentinel group goes on acknowledging
# writes after a SENTINEL FAILOVER: from the promotion of the replica
# (its ROLE polled every 2 ms) to +switch-master on each Sentinel (a
# subscriber on each), the failover asked of each Sentinel in turn.  The
# window history_redis ... replay= must cover (docs/reliability.md).
#
# usage: perl bench/sentinel-announce.pl [runs]    (default 4)
# A master, a replica and three Sentinels of t/lib/RedisTopology.pm, on
# ports from TEST_NGINX_SENTINEL_PORT (17379), in build/sentinel-announce.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Time::HiRes qw(time sleep);
use RedisTopology;

my $runs = shift // 4;
my $s = RedisTopology::start_sentinels(
    dir => "$FindBin::Bin/../build/sentinel-announce");
my @S = $s->sentinels;

for my $run (1 .. $runs) {
    defined $s->wait_ready(30) or die "the Sentinels are not ready\n";

    my $r = $s->replica_port;
    my %sub = map { $_ => $s->subscribe($_) } @S;
    my $asked = $S[($run - 1) % @S];
    my ($t0, $reply);

    # a Sentinel refuses a failover too soon after the last one: again

    for (1 .. 20) {
        $t0 = time;
        $reply = $s->call($asked, 'SENTINEL', 'FAILOVER', $s->name);
        last unless ref $reply;
        sleep 0.5;
    }

    die "SENTINEL FAILOVER: $reply\n" if ref $reply;

    my ($promoted, %seen);

    while (time - $t0 < 10 && (keys %seen < @S || !defined $promoted)) {
        $promoted //= time if (eval { $s->node($r)->role } // '') eq 'master';

        for my $p (grep { !$seen{$_} } @S) {
            $seen{$p} = time if $sub{$p}->read_reply(0.001);
        }
    }

    die "run $run: no promotion, or no +switch-master, in 10 s\n"
        unless defined $promoted && keys %seen == @S;

    printf "run %d, asked %d: promoted %.3f s after, +switch-master %s\n",
           $run, $asked, $promoted - $t0,
           join ', ', map { sprintf '%d %.3f s after it', $_,
                                    $seen{$_} - $promoted } @S;

    $_->close for values %sub;
}

$s->stop;
