# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: a visitor without history gets an empty JSON list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve;
    }
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_headers
Content-Type: application/json
--- response_body chop
[]
--- no_error_log
[error]



=== TEST 2: one item
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 7
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_body chop
["7"]
--- no_error_log
[error]



=== TEST 3: several items, newest first, as recorded
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /_history {
        history_serve;
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /product/3", "GET /_history"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product 1\n", "product 2\n", "product 3\n", '["3","2","1"]']
--- no_error_log
[error]



=== TEST 4: history_serve text: comma-separated
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve text;
    }
--- redis_init
RPUSH history:abc 3 2 1
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_headers
Content-Type: text/plain
--- response_body chop
3,2,1
--- no_error_log
[error]



=== TEST 5: history_serve text: empty when there is none
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve text;
    }
--- request
GET /_history
--- more_headers
Cookie: sessionid=nobody
--- response_headers
Content-Length: 0
--- response_body chop
--- no_error_log
[error]



=== TEST 6: exclude leaves out the product on screen, limit cuts the list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 4 3 2 1
--- pipelined_requests eval
["GET /_history?exclude=3", "GET /_history?limit=2",
 "GET /_history?exclude=4&limit=2", "GET /_history?exclude=%32",
 "GET /_history?limit=0", "GET /_history?limit=many"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
['["4","2","1"]', '["4","3"]', '["3","2"]', '["4","3","1"]', '[]',
 '["4","3","2","1"]']
--- no_error_log
[error]



=== TEST 7: odd ids are escaped in JSON and left out of text
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_length 10;
--- config
    location = /json {
        history_serve;
    }

    location = /text {
        history_serve text;
    }
--- redis_init
RPUSH history:abc "x\"y" "a\\b" "ctl\x01" "caf\xc3\xa9" "a,b" "<s>"
--- pipelined_requests eval
["GET /json", "GET /text"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
['["x\"y","a\\\\b","ctl\u0001","caf' . "\xc3\xa9" . '","a,b","\u003cs\u003e"]',
 'a\\b,caf' . "\xc3\xa9"]
--- no_error_log
[error]



=== TEST 8: a list over 16 KB is read completely
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_length 100;
--- config
    location = /_history {
        history_serve text;
    }
--- redis_init eval
"RPUSH history:big " . CORE::join(" ", map { sprintf "%03d%s", $_, "x" x 250 } 1 .. 100)
--- request
GET /_history
--- more_headers
Cookie: sessionid=big
--- response_body eval
CORE::join(",", map { sprintf "%03d%s", $_, "x" x 250 } 1 .. 100)
--- no_error_log
[error]



=== TEST 9: a visitor only reads their own list, whatever the arguments say
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 1
RPUSH history:xyz 2
--- request
GET /_history?key=xyz&sessionid=xyz&history_key=xyz
--- more_headers
Cookie: sessionid=abc
--- response_body chop
["1"]
--- no_error_log
[error]



=== TEST 10: no cookie, no list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 1
--- request
GET /_history
--- response_body chop
[]
--- no_error_log
[error]



=== TEST 11: as an SSI include, excluding the product on screen
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        ssi on;
        default_type text/html;
        history_record $1;
        return 200 '<h1>$1</h1><p><!--# include virtual="/_history?exclude=$1" --></p>';
    }

    location = /_history {
        internal;
        history_serve;
    }
--- redis_init
RPUSH history:abc 3 2 1
--- pipelined_requests eval
["GET /product/2", "GET /_history"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
['<h1>2</h1><p>["3","1"]</p>', qr/404 Not Found/]
--- error_code eval
[200, 404]
--- no_error_log
[error]



=== TEST 12: HEAD gets the headers, other methods are refused
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_serve;
    }
--- request eval
["HEAD /_history", "POST /_history\nx=1", "DELETE /_history"]
--- more_headers
Cookie: sessionid=abc
--- error_code eval
[200, 405, 405]
--- no_error_log
[error]



=== TEST 13: Redis refuses: the fallback is an empty list, at once
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location = /_history {
        history_serve;
    }
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- response_body chop
[]
--- no_error_log
[alert]
[crit]



=== TEST 14: history_fallback error: an error status instead
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location = /_history {
        history_fallback error;
        history_serve;
    }
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- error_code: 503
--- no_error_log
[alert]
[crit]



=== TEST 15: Redis slower than the timeout: the fallback comes in time
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=300ms;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 7
CLIENT PAUSE 1000 ALL
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.8
--- response_body chop
[]
--- error_log eval
qr/redis did not answer in time|redis timed out/
--- no_error_log
[alert]
[crit]



=== TEST 16: a reply larger than max_reply= is refused at its header
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT max_reply=1k;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000 100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001 100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002 100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003 100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_body chop
[]
--- error_log eval
qr/more than the 1024 (bytes )?a reply may take/
--- no_error_log
[alert]
[crit]
