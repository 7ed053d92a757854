# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: views land newest first
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /product/3"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product 1\n", "product 2\n", "product 3\n"]
--- redis
LRANGE history:abc 0 -1 => 3 2 1
--- no_error_log
[error]



=== TEST 2: a product seen again moves to the front, never twice in the list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /product/3", "GET /product/1",
 "GET /product/3"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product 1\n", "product 2\n", "product 3\n", "product 1\n", "product 3\n"]
--- redis
LRANGE history:abc 0 -1 => 3 1 2
--- no_error_log
[error]



=== TEST 3: the list keeps the default 5 newest items
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
[map { "GET /product/$_" } 1 .. 8]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
[map { "product $_\n" } 1 .. 8]
--- redis
LRANGE history:abc 0 -1 => 8 7 6 5 4
--- no_error_log
[error]



=== TEST 4: history_length sets how many items are kept
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_length 2;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /product/3"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product 1\n", "product 2\n", "product 3\n"]
--- redis
LRANGE history:abc 0 -1 => 3 2
--- no_error_log
[error]



=== TEST 5: the list expires after 90 days by default, refreshed on each view
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- redis_init
RPUSH history:abc 9
EXPIRE history:abc 60
--- request
GET /product/1
--- more_headers
Cookie: sessionid=abc
--- response_body
product 1
--- redis
LRANGE history:abc 0 -1 => 1 9
TTL history:abc => /^77759\d\d$/
--- no_error_log
[error]



=== TEST 6: history_expire sets the time to live
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_expire 2h;
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/1
--- more_headers
Cookie: sessionid=abc
--- response_body
product 1
--- redis
LRANGE history:abc 0 -1 => 1
TTL history:abc => /^7[12]\d\d$/
--- no_error_log
[error]



=== TEST 7: an empty prefix gives the tutorial's layout, read back with its own LRANGE
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/7", "GET /product/8"]
--- more_headers
Cookie: sessionid=k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a
--- response_body eval
["product 7\n", "product 8\n"]
--- redis
LRANGE k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a 0 -1 => 8 7
DBSIZE => 1
--- no_error_log
[error]



=== TEST 8: history_prefix is prepended to the visitor key
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_prefix "shop:recent:";
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/3
--- more_headers
Cookie: sessionid=abc
--- response_body
product 3
--- redis
LRANGE shop:recent:abc 0 -1 => 3
DBSIZE => 1
--- no_error_log
[error]



=== TEST 9: history_key takes any variable; a map prefers the user, then the session
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    map $arg_user $visitor {
        ""       $cookie_sessionid;
        default  user:$arg_user;
    }

    history_key $visitor;
    history_key_pattern "^(user:)?[a-z0-9]+$";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2?user=17"]
--- more_headers
Cookie: sessionid=anon
--- response_body eval
["product 1\n", "product 2\n"]
--- redis
LRANGE history:anon 0 -1 => 1
LRANGE history:user:17 0 -1 => 2
DBSIZE => 2
--- no_error_log
[error]



=== TEST 10: only the configured statuses count as a view (200 by default)
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;

        if ($arg_missing) {
            return 404;
        }

        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1?missing=1", "GET /product/2"]
--- more_headers
Cookie: sessionid=abc
--- error_code eval
[404, 200]
--- redis
LRANGE history:abc 0 -1 => 2
--- no_error_log
[error]



=== TEST 11: history_status lists the statuses that count
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_status 200 203;
    location ~ ^/product/(\d+)$ {
        history_record $1;

        if ($arg_s = 201) {
            return 201 "product $1\n";
        }

        if ($arg_s = 203) {
            return 203 "product $1\n";
        }

        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1?s=203", "GET /product/2?s=201", "GET /product/3"]
--- more_headers
Cookie: sessionid=abc
--- error_code eval
[203, 201, 200]
--- redis
LRANGE history:abc 0 -1 => 3 1
--- no_error_log
[error]



=== TEST 12: only GET is a view
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request eval
["HEAD /product/1", "POST /product/2\nform=1", "GET /product/3"]
--- more_headers
Cookie: sessionid=abc
--- error_code eval
[200, 200, 200]
--- redis
LRANGE history:abc 0 -1 => 3
--- no_error_log
[error]



=== TEST 13: the view is recorded for the location that finally served it
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/p/(\d+)$ {
        rewrite ^/p/(\d+)$ /product/$1 last;
    }

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /p/5
--- more_headers
Cookie: sessionid=abc
--- response_body
product 5
--- redis
LRANGE history:abc 0 -1 => 5
--- no_error_log
[error]



=== TEST 14: the key is sent binary-safe: a cookie cannot inject a command
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key_pattern off;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/4
--- more_headers
Cookie: sessionid="a b*3 $2 FLUSHALL"
--- response_body
product 4
--- redis_init
SET canary alive
--- redis
LRANGE "history:\"a b*3 $2 FLUSHALL\"" 0 -1 => 4
GET canary => alive
DBSIZE => 2
--- no_error_log
[error]
