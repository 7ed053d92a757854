# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

master_on();
workers(2);

run_tests();

__DATA__

=== TEST 1: several workers: each has its own link, every view lands
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_key $arg_v;
        history_record $1;
        return 200 "product $1\n";
    }
--- request eval
[map { "GET /product/$_?v=visitor$_" } 1 .. 20]
--- response_body eval
[map { "product $_\n" } 1 .. 20]
--- redis
DBSIZE => 20
LRANGE history:visitor13 0 -1 => 13
INFO clients => /connected_clients:3\r/
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: history_stats shows every worker, whichever answers
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_key $arg_v;
        history_record $1;
        return 200 "product $1\n";
    }

    location = /stats {
        history_stats;
    }
--- request eval
[(map { "GET /product/$_?v=visitor$_" } 1 .. 20), "GET /stats"]
--- response_body_like eval
[(map { "product $_" } 1 .. 20),
 qr/^\{"workers":\[\{"worker":0,"pid":\d+,"connected":1,.*\},\{"worker":1,"pid":\d+,"connected":1,.*"total":\{"connected":2,"queue":\d+,"queued":20,/]
--- no_error_log
[error]
