# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: history_count counts each view of a page
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/page/(\d+)$ {
        history_count $1;
        return 200 "page $1\n";
    }
--- pipelined_requests eval
["GET /page/7", "GET /page/7", "GET /page/8", "GET /page/7"]
--- response_body eval
["page 7\n", "page 7\n", "page 8\n", "page 7\n"]
--- redis
GET history:views:7 => 3
GET history:views:8 => 1
DBSIZE => 2
--- no_error_log
[error]



=== TEST 2: daily counts per UTC day, expiring after history_count_expire
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_count_expire 7d;

    location ~ ^/page/(\d+)$ {
        history_count $1 daily;
        return 200 "page $1\n";
    }
--- pipelined_requests eval
["GET /page/7", "GET /page/7"]
--- response_body eval
["page 7\n", "page 7\n"]
--- redis eval
my @t = gmtime;
my $day = sprintf "%04d-%02d-%02d", $t[5] + 1900, $t[4] + 1, $t[3];
"GET history:views:7 => 2\n"
. "GET history:views:7:$day => 2\n"
. "TTL history:views:7:$day => /^(604[0-7]\\d\\d|604800)\$/\n"
. "TTL history:views:7 => -1\n"
--- no_error_log
[error]



=== TEST 3: unique visitors, approximately right for a known number
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key $arg_v;
--- config
    location ~ ^/page/(\d+)$ {
        history_count $1 unique;
        return 200 "page $1\n";
    }
--- pipelined_requests eval
[(map { "GET /page/7?v=visitor" . ($_ % 150) } 1 .. 300)]
--- response_body eval
[(map { "page 7\n" } 1 .. 300)]
--- redis
GET history:views:7 => 300
PFCOUNT history:visitors:7 => /^(14[7-9]|15[0-3])$/
--- no_error_log
[error]



=== TEST 4: only the configured statuses, only GET, only valid ids are counted
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/page/(.+)$ {
        history_count $1;

        if ($arg_missing) {
            return 404;
        }

        return 200 "page $1\n";
    }
--- request eval
["GET /page/7?missing=1", "POST /page/7\nx=1", "GET /page/abc", "GET /page/7"]
--- error_code eval
[404, 200, 200, 200]
--- redis
GET history:views:7 => 1
DBSIZE => 1



=== TEST 5: history_views answers counts for ids, as JSON
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /views {
        history_views daily unique;
    }
--- redis_init eval
my @t = gmtime;
my $day = sprintf "%04d-%02d-%02d", $t[5] + 1900, $t[4] + 1, $t[3];
"SET history:views:7 12\nSET history:views:7:$day 3\n"
. "PFADD history:visitors:7 a b c d e\nSET history:views:8 1"
--- request
GET /views?ids=7,8,9
--- response_headers
Content-Type: application/json
--- response_body chop
{"7":{"total":12,"today":3,"unique":5},"8":{"total":1,"today":0,"unique":0},"9":{"total":0,"today":0,"unique":0}}
--- no_error_log
[error]



=== TEST 6: history_views gives only what it is asked for; no ids, an empty object
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /views {
        history_views;
    }
--- redis_init
SET history:views:7 12
--- pipelined_requests eval
["GET /views?ids=7", "GET /views",
 "GET /views?ids=" . CORE::join(",", 1 .. 50) . ",,",
 "GET /views?ids=" . CORE::join(",", 1 .. 51)]
--- error_code eval
[200, 200, 200, 400]
--- response_body_like eval
['^\{"7":\{"total":12\}\}$', '^\{\}$', '"50":\{"total":0\}\}$', '400']
--- no_error_log
[error]



=== TEST 7: Redis down: counted pages unaffected, history_views answers {} at once
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location ~ ^/page/(\d+)$ {
        history_count $1 daily unique;
        return 200 "page $1\n";
    }

    location = /views {
        history_views;
    }
--- pipelined_requests eval
["GET /page/7", "GET /views?ids=7"]
--- timeout: 0.5
--- response_body eval
["page 7\n", "{}"]
--- no_error_log
[alert]
[crit]
