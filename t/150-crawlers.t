# vi:filetype=perl
#
# The visitor cookie of history_cookie: issued only on responses where the
# module records or reads, once per first visit; a visitor id that has
# never come back costs one short-lived list (history_new_visitor_expire),
# no presence and no unique-visitor entry, so that a client that never
# sends cookies back (most crawlers) leaves nothing that lasts.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: a first visit costs one short-lived list; a returning visitor is a normal one
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_cookie vid;
    history_last_action on;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        history_count $1 unique;
        return 200 "product $1\n";
    }
--- request eval
["GET /product/5", "GET /product/5"]
--- more_headers eval
["", "Cookie: vid=0123456789abcdef0123456789abcdef"]
--- redis
LRANGE history:0123456789abcdef0123456789abcdef 0 -1 => 5
TTL history:0123456789abcdef0123456789abcdef => /^77[0-9]{5}$/
ZRANGE history:online 0 -1 => 0123456789abcdef0123456789abcdef
EXISTS history:last_action:0123456789abcdef0123456789abcdef => 1
PFCOUNT history:visitors:5 => 1
GET history:views:5 => 2
EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', 'history:*')) do if redis.call('TYPE', k).ok == 'list' and redis.call('TTL', k) > 0 and redis.call('TTL', k) <= 600 then n = n + 1 end end return n" 0 => 1
DBSIZE => 6
--- no_error_log
[error]



=== TEST 2: a crawler that never sends the cookie back leaves only lists that expire within 10 minutes
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_cookie vid;
    history_last_action on;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        history_count $1 daily unique;
        history_fetch on;
        return 200 "product $1 [$history]\n";
    }
--- pipelined_requests eval
[map { "GET /product/$_" } 1 .. 20]
--- response_body eval
[map { "product $_ []\n" } 1 .. 20]
--- redis
EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', 'history:*')) do if redis.call('TYPE', k).ok == 'list' and redis.call('TTL', k) > 0 and redis.call('TTL', k) <= 600 then n = n + 1 end end return n" 0 => 20
EXISTS history:online => 0
EVAL "return #redis.call('KEYS', 'history:last_action:*')" 0 => 0
EVAL "return #redis.call('KEYS', 'history:visitors:*')" 0 => 0
GET history:views:7 => 1
DBSIZE => 60
--- no_error_log
[error]



=== TEST 3: history_new_visitor_expire sets how long a new visitor's list waits for the cookie
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_cookie vid;
    history_new_visitor_expire 30s;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/5
--- redis
EVAL "local k = redis.call('KEYS', 'history:*')[1] return redis.call('TTL', k)" 0 => /^(2\d|30)$/
DBSIZE => 1
--- no_error_log
[error]



=== TEST 4: history_new_visitor_expire with the bare prefix (the type-safe unit)
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
    history_cookie vid;
    history_new_visitor_expire 30s;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/5
--- redis
EVAL "local k = redis.call('KEYS', '*')[1] return redis.call('TTL', k)" 0 => /^(2\d|30)$/
KEYS * => /^[0-9a-f]{32}$/
--- no_error_log
[error]



=== TEST 5: no visitor id on static assets, errors, 304s, a POST, or where nothing is recorded
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_cookie vid;
    history_last_action on;
--- config
    location /static/ {
        return 200 "asset\n";
    }

    location ~ ^/product/(\d+)$ {
        history_record $1;

        if ($arg_missing) {
            return 404;
        }

        return 200 "product $1\n";
    }

    location = /product.html {
        history_record 1;
        if_modified_since before;
    }
--- user_files
>>> product.html
<h1>a product</h1>
--- request eval
["GET /static/app.css", "GET /product/1?missing=1", "GET /product.html",
 "POST /product/2\nx=1"]
--- more_headers eval
["", "", "If-Modified-Since: Thu, 31 Dec 2037 23:55:55 GMT", ""]
--- error_code eval
[200, 404, 304, 200]
--- response_headers eval
["!Set-Cookie", "!Set-Cookie", "!Set-Cookie", "!Set-Cookie"]
--- redis
DBSIZE => 0
--- no_error_log
[error]



=== TEST 6: a first visit's page, assets and list, all without the cookie, end with one id: the page's, holding its view
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_cookie vid;
--- config
    location /static/ {
        return 200 "asset\n";
    }

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1 $history_key\n";
    }

    location = /_history {
        history_serve;
    }
--- request eval
["GET /product/3", "GET /static/app.css", "GET /static/app.js",
 "GET /_history"]
--- raw_response_headers_like eval
["Set-Cookie: vid=[0-9a-f]{32};", "^HTTP/1", "^HTTP/1", "^HTTP/1"]
--- raw_response_headers_unlike eval
["X-Never", "Set-Cookie", "Set-Cookie", "Set-Cookie"]
--- response_body_like eval
["^product 3 [0-9a-f]{32}\n\$", "^asset", "^asset", '^\[\]$']
--- redis
KEYS history:* => /^history:[0-9a-f]{32}$/
DBSIZE => 1
--- no_error_log
[error]



=== TEST 7: the visitor cookie is HttpOnly and SameSite=Lax unless configured otherwise
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /default {
        history_cookie vid;
        history_record 1;
        return 200 "ok\n";
    }

    location = /loose {
        history_cookie vid nohttponly nosamesite;
        history_record 1;
        return 200 "ok\n";
    }

    location = /strict {
        history_cookie vid samesite=strict;
        history_record 1;
        return 200 "ok\n";
    }
--- request eval
["GET /default", "GET /loose", "GET /strict"]
--- response_headers_like eval
["Set-Cookie: vid=[0-9a-f]{32}; Expires=[^;]+; Max-Age=7776000; Path=/; HttpOnly; SameSite=Lax",
 "Set-Cookie: vid=[0-9a-f]{32}; Expires=[^;]+; Max-Age=7776000; Path=/",
 "Set-Cookie: vid=[0-9a-f]{32}; Expires=[^;]+; Max-Age=7776000; Path=/; HttpOnly; SameSite=Strict"]
--- no_error_log
[error]
