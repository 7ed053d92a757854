# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

check_accum_error_log();

run_tests();

__DATA__

=== TEST 1: Redis refuses connections: the page is served, one error is logged
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/1
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- response_body
product 1
--- wait: 1
--- grep_error_log chop
connect() failed (111: Connection refused) while connecting to redis, redis: 127.0.0.1:1
--- grep_error_log_out
connect() failed (111: Connection refused) while connecting to redis, redis: 127.0.0.1:1
--- no_error_log
[alert]
[crit]



=== TEST 2: Redis accepts and never answers: the page does not wait, the link is never up
--- http_config
    history_redis 127.0.0.1:16398 timeout=200ms;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- tcp_listen: 16398
--- tcp_reply_delay: 3
--- tcp_reply: +OK\r\n
--- request
GET /product/1
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- response_body
product 1
--- wait: 0.6
--- error_log eval
qr/connect\(\) failed|redis timed out/
--- no_error_log
redis connection restored
[alert]
[crit]



=== TEST 3: a key of another type: the page is served, the error is logged once, the key is left alone
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /sentinel {
        history_key sentinel;
        history_record 1;
        return 200 "sentinel\n";
    }
--- redis_init
SET history:abc notalist
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /sentinel"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product 1\n", "product 2\n", "sentinel\n"]
--- redis
GET history:abc => notalist
LRANGE history:sentinel 0 -1 => 1
--- wait: 0.2
--- grep_error_log eval: qr/redis replied with an error: "[^"]*"/
--- grep_error_log_out
redis replied with an error: "WRONGTYPE Operation against a key holding the wrong kind of value"
--- no_error_log
[alert]
[crit]



=== TEST 4: db= selects the database
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=3;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- redis_init
SELECT 3
DEL history:db3
SELECT 0
--- request
GET /product/7
--- more_headers
Cookie: sessionid=db3
--- response_body
product 7
--- redis
SELECT 3 => OK
LRANGE history:db3 0 -1 => 7
SELECT 0 => OK
DBSIZE => 0
--- no_error_log
[error]



=== TEST 5: a wrong password: pages served, the refusal logged once, nothing written
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=wrong;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product 1\n", "product 2\n"]
--- wait: 1
--- redis
DBSIZE => 0
--- grep_error_log eval: qr/redis refused AUTH/
--- grep_error_log_out
redis refused AUTH
--- no_error_log
[alert]
[crit]



=== TEST 6: an ACL user and password are sent with AUTH
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT username=shop password=s3cret;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- redis_init
ACL SETUSER shop on >s3cret ~history:* +@all
--- request
GET /product/5
--- more_headers
Cookie: sessionid=acl
--- response_body
product 5
--- redis
LRANGE history:acl 0 -1 => 5
--- no_error_log
[alert]
[crit]
