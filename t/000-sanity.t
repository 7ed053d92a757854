# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: the module loads and stays inert without history_redis
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers
Cookie: sessionid=abc
--- response_body
ok
--- redis
DBSIZE => 0
--- no_error_log
[error]
[alert]
[crit]



=== TEST 2: a configured link does not change a page without history_record
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers
Cookie: sessionid=abc
--- response_body
ok
--- redis
DBSIZE => 0
--- no_error_log
[error]
[alert]
[crit]



=== TEST 3: a product view is recorded
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/42
--- more_headers
Cookie: sessionid=abc
--- response_body
product 42
--- redis
LRANGE history:abc 0 -1 => 42
DBSIZE => 1
--- no_error_log
[error]
[alert]
[crit]
