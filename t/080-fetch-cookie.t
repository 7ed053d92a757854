# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: history_fetch hands the list to a proxied backend as a header
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_fetch on;
        history_record $1;
        proxy_set_header X-Recently-Viewed $history;
        proxy_pass http://127.0.0.1:$server_port/backend/$1;
    }

    location /backend/ {
        return 200 "backend got [$http_x_recently_viewed]\n";
    }
--- redis_init
RPUSH history:abc 3 2 1
--- request
GET /product/4
--- more_headers
Cookie: sessionid=abc
--- response_body
backend got [3,2,1]
--- redis
LRANGE history:abc 0 -1 => 4 3 2 1
--- no_error_log
[error]



=== TEST 2: $history is empty without a visitor, and the header is not sent
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_fetch on;
        proxy_set_header X-Recently-Viewed $history;
        proxy_pass http://127.0.0.1:$server_port/backend/$1;
    }

    location /backend/ {
        return 200 "backend got [$http_x_recently_viewed]\n";
    }
--- request
GET /product/4
--- response_body
backend got []
--- no_error_log
[error]



=== TEST 3: $history and $history_key in add_header
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /page {
        history_fetch on;
        add_header X-History $history;
        add_header X-Visitor $history_key;

        # answered after the preaccess phase, unlike "return"
        try_files /nonexistent =204;
    }
--- redis_init
RPUSH history:abc 9 8
--- request
GET /page
--- more_headers
Cookie: sessionid=abc
--- response_headers
X-History: 9,8
X-Visitor: abc
--- error_code: 204
--- no_error_log
[error]



=== TEST 4: Redis refuses: $history is empty and the page is served at once
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location = /page {
        history_fetch on;
        add_header X-History "[$history]";
        try_files /nonexistent =204;
    }
--- request
GET /page
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- response_headers
X-History: []
--- error_code: 204
--- no_error_log
[alert]
[crit]



=== TEST 5: Redis slower than the timeout: the page goes on without the list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=300ms;
--- config
    location = /page {
        history_fetch on;
        add_header X-History "[$history]";
        try_files /nonexistent =204;
    }
--- redis_init
RPUSH history:abc 7
CLIENT PAUSE 1000 ALL
--- request
GET /page
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.8
--- response_headers
X-History: []
--- error_code: 204
--- no_error_log
[alert]
[crit]



=== TEST 6: history_serve reuses what history_fetch read
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /_history {
        history_fetch on;
        add_header X-History $history;
        history_serve;
    }
--- redis_init
RPUSH history:abc 5 4
--- request
GET /_history?exclude=5
--- more_headers
Cookie: sessionid=abc
--- response_headers
X-History: 5,4
--- response_body chop
["4"]
--- no_error_log
[error]



=== TEST 7: a first-time visitor gets a visitor cookie, and the view is recorded at once
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie vid;

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "visitor $history_key\n";
    }
--- request
GET /product/5
--- response_headers_like
Set-Cookie: vid=[0-9a-f]{32}; Expires=\w{3}, \d\d-\w{3}-\d\d(\d\d)? \d\d:\d\d:\d\d GMT; Max-Age=7776000; Path=/; HttpOnly; SameSite=Lax
--- response_body_like
^visitor [0-9a-f]{32}$
--- redis
KEYS * => /^history:[0-9a-f]{32}$/
DBSIZE => 1
--- no_error_log
[error]



=== TEST 8: the cookie's attributes
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie shop_visitor expires=1h domain=.example.com path=/shop
                   secure httponly samesite=strict;

    location = /t {
        history_record 1;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
Set-Cookie: shop_visitor=[0-9a-f]{32}; Expires=[^;]+; Max-Age=3600; Domain=\.example\.com; Path=/shop; Secure; HttpOnly; SameSite=Strict
--- no_error_log
[error]



=== TEST 9: expires=off makes a session cookie
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie vid expires=off;

    location = /t {
        history_record 1;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
Set-Cookie: vid=[0-9a-f]{32}; Path=/; HttpOnly; SameSite=Lax
--- no_error_log
[error]



=== TEST 10: a visitor who sends the cookie back keeps it, and is recorded by it
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie vid;

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/6
--- more_headers
Cookie: vid=0123456789abcdef0123456789abcdef
--- response_headers
!Set-Cookie
--- redis
LRANGE history:0123456789abcdef0123456789abcdef 0 -1 => 6
DBSIZE => 1
--- no_error_log
[error]



=== TEST 11: a malformed visitor cookie is replaced, never used as a key
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie vid;

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/6
--- more_headers
Cookie: vid=../../etc/passwd-0123456789abcdef0
--- response_headers_like
Set-Cookie: vid=[0-9a-f]{32};.*
--- redis
KEYS * => /^history:[0-9a-f]{32}$/
DBSIZE => 1
--- error_log
malformed "vid" cookie of 34 bytes, ignored



=== TEST 12: history_key wins: a visitor with a session gets no visitor cookie
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_cookie vid;

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/6
--- more_headers
Cookie: sessionid=abc
--- response_headers
!Set-Cookie
--- redis
LRANGE history:abc 0 -1 => 6
--- no_error_log
[error]



=== TEST 13: no visitor cookie is set by a subrequest
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /page {
        ssi on;
        default_type text/html;
        return 200 '<!--# include virtual="/_history" -->';
    }

    location = /_history {
        history_cookie vid;
        history_serve;
    }
--- request
GET /page
--- response_headers
!Set-Cookie
--- response_body chop
[]
--- no_error_log
[error]



=== TEST 14: forget me: DELETE clears the visitor's own list, and only theirs
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /history {
        history_forget on;
        history_serve;
    }
--- redis_init
RPUSH history:abc 1 2
RPUSH history:xyz 3
--- request
DELETE /history?key=xyz
--- more_headers
Cookie: sessionid=abc
--- error_code: 204
--- redis
EXISTS history:abc => 0
LRANGE history:xyz 0 -1 => 3
--- no_error_log
[error]



=== TEST 15: forget me while Redis is away: 503, so the visitor knows
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location = /history {
        history_forget on;
        history_serve;
    }
--- request
DELETE /history
--- more_headers
Cookie: sessionid=abc
--- error_code: 503
--- no_error_log
[alert]
[crit]
