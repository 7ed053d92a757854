# vi:filetype=perl
#
# A view, a count and a last action go to the visitor of the final
# location's history_key, evaluated for the request that is logged, even
# when $history_key was evaluated earlier: by a "set" at server level, by
# a map, by an SSI include that reads the list.  Evaluated before the final
# location, $history_key shows the key of the configuration in effect at
# that point (the server's); the view does not follow it.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: an early "set" at server level does not freeze the key
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_key $cookie_a;
    set $early $history_key;

    location ~ ^/k/(\d+)$ {
        history_key $cookie_b;
        history_record $1;
        history_count $1 unique;
        history_last_action on;
        return 200 "early=$early final=$history_key\n";
    }
--- request
GET /k/1
--- more_headers
Cookie: a=A; b=B
--- response_body
early=A final=B
--- redis
LRANGE history:B 0 -1 => 1
EXISTS history:A => 0
EXISTS history:last_action:B => 1
EXISTS history:last_action:A => 0
ZRANGE history:online 0 -1 => B
PFCOUNT history:visitors:1 => 1
GET history:views:1 => 1
DBSIZE => 5
--- no_error_log
[error]



=== TEST 2: a map of $history_key evaluated at server level
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    map $history_key $visitor_class {
        ""       none;
        default  known;
    }
--- config
    history_key $cookie_a;

    if ($visitor_class = none) {
        return 403;
    }

    location ~ ^/k/(\d+)$ {
        history_key $cookie_b;
        history_record $1;
        history_last_action on;
        return 200 "$visitor_class $history_key\n";
    }
--- request
GET /k/2
--- more_headers
Cookie: a=A; b=B
--- response_body
known B
--- redis
LRANGE history:B 0 -1 => 2
EXISTS history:A => 0
ZRANGE history:online 0 -1 => B
DBSIZE => 3
--- no_error_log
[error]



=== TEST 3: a map used as history_key is evaluated for the final location
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    map $cookie_user $visitor {
        ""       $cookie_sessionid;
        default  user:$cookie_user;
    }

    history_key_pattern "^(user:)?[A-Za-z0-9]+$";
--- config
    history_key $cookie_sessionid;
    set $early $history_key;

    location ~ ^/k/(\d+)$ {
        history_key $visitor;
        history_record $1;
        return 200 "$early $history_key\n";
    }
--- request
GET /k/3
--- more_headers
Cookie: sessionid=S; user=7
--- response_body
S user:7
--- redis
LRANGE history:user:7 0 -1 => 3
DBSIZE => 1
--- no_error_log
[error]



=== TEST 4: an SSI include reads with its own location's key
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_key $cookie_a;

    location ~ ^/p/(\d+)$ {
        ssi on;
        default_type text/html;
        history_key $cookie_b;
        history_record $1;
        history_last_action on;
        return 200 '<!--# include virtual="/_history" -->|<!--# echo var="history_key" -->';
    }

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:A 8 9
RPUSH history:B 5
--- request
GET /p/4
--- more_headers
Cookie: a=A; b=B
--- response_body chop
["8","9"]|B
--- redis
LRANGE history:B 0 -1 => 4 5
LRANGE history:A 0 -1 => 8 9
ZRANGE history:online 0 -1 => B
DBSIZE => 4
--- no_error_log
[error]



=== TEST 5: an SSI include reading first does not choose the key recorded
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_key $cookie_a;

    location ~ ^/p/(\d+)$ {
        ssi on;
        default_type text/html;
        history_key $cookie_b;
        history_record $1;
        history_count $1 unique;
        history_last_action on;
        return 200 '<!--# include virtual="/_history" -->';
    }

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:A 8 9
RPUSH history:B 5
--- request
GET /p/4
--- more_headers
Cookie: a=A; b=B
--- response_body chop
["8","9"]
--- redis
LRANGE history:B 0 -1 => 4 5
LRANGE history:A 0 -1 => 8 9
ZRANGE history:online 0 -1 => B
EXISTS history:last_action:B => 1
PFCOUNT history:visitors:4 => 1
DBSIZE => 6
--- no_error_log
[error]



=== TEST 6: a new visitor's id, read early, is the one recorded
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie vid;
    set $early $history_key;

    location ~ ^/k/(\d+)$ {
        history_record $1;
        return 200 "$early $history_key\n";
    }
--- request
GET /k/6
--- response_headers_like
Set-Cookie: vid=[0-9a-f]{32}; .*
--- response_body_filters eval
sub {
    my ($early, $final) = split ' ', shift;
    return "early $early, final $final" if $early ne $final;
    my $list = '';
    for (1 .. 150) {
        $list = HistoryTest::redis_render('LRANGE', "history:$final", 0, -1);
        last if $list ne '';
        select undef, undef, undef, 0.02;
    }
    return "recorded [$list]";
}
--- response_body chomp
recorded [6]
--- no_error_log
[error]
