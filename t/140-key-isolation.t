# vi:filetype=perl
#
# A visitor reaches only their own history list: whatever the cookie or the
# key variable holds, no request reads, changes, expires or deletes another
# key, under the default prefix, the bare prefix of the Django tutorial and
# a map over several sources.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: a cookie naming a view counter cannot delete it
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
SET history:views:42 7
--- request
DELETE /history
--- more_headers
Cookie: sessionid=views:42
--- error_code: 204
--- redis
GET history:views:42 => 7
DBSIZE => 1
--- error_log
does not match history_key_pattern



=== TEST 2: a cookie naming a view counter plants no list there, and it keeps counting
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location ~ ^/page/(\d+)$ {
        history_count $1;
        return 200 "page $1\n";
    }

    location = /views {
        history_views;
    }
--- pipelined_requests eval
["GET /product/42", "GET /page/42", "GET /page/42", "GET /views?ids=42"]
--- more_headers
Cookie: sessionid=views:42
--- response_body eval
["product 42\n", "page 42\n", "page 42\n", '{"42":{"total":2}}']
--- redis
TYPE history:views:42 => string
GET history:views:42 => 2
TTL history:views:42 => -1
DBSIZE => 1



=== TEST 3: the name of the online set is not a visitor key, whatever the pattern
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_key_pattern off;

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
ZADD history:online 1 someone
--- request eval
["GET /product/1", "GET /history", "DELETE /history"]
--- more_headers
Cookie: sessionid=online
--- error_code eval
[200, 200, 204]
--- response_body eval
["product 1\n", "[]", ""]
--- redis
TYPE history:online => zset
TTL history:online => -1
ZCARD history:online => 1
DBSIZE => 1
--- error_log
names a key of the module



=== TEST 4: with history_key_pattern off, keys of the module stay out of reach
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_key_pattern off;

    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
SET history:views:42 7
SET history:last_action:abc 1795440777
PFADD history:visitors:42 abc
SET history:flushing:0123456789abcdef0123456789abcdef:42 3
--- request eval
["DELETE /history", "DELETE /history", "DELETE /history", "DELETE /history"]
--- more_headers eval
["Cookie: sessionid=views:42", "Cookie: sessionid=last_action:abc",
 "Cookie: sessionid=visitors:42",
 "Cookie: sessionid=flushing:0123456789abcdef0123456789abcdef:42"]
--- error_code eval
[204, 204, 204, 204]
--- redis
GET history:views:42 => 7
GET history:last_action:abc => 1795440777
PFCOUNT history:visitors:42 => 1
GET history:flushing:0123456789abcdef0123456789abcdef:42 => 3
DBSIZE => 4



=== TEST 5: history_prefix "": a cookie naming another application's list neither reads nor trims it
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
RPUSH celery a b c d e f g
--- request eval
["GET /history", "GET /product/1", "DELETE /history"]
--- more_headers
Cookie: sessionid=celery
--- error_code eval
[200, 200, 204]
--- response_body eval
["[]", "product 1\n", ""]
--- redis
LRANGE celery 0 -1 => a b c d e f g
TTL celery => -1
DBSIZE => 1



=== TEST 6: history_prefix "": a key holding another type is never expired, trimmed or deleted
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
SET 0123456789abcdefghijklmnopqrstuv "a cache entry"
--- request eval
["GET /product/1", "DELETE /history"]
--- more_headers
Cookie: sessionid=0123456789abcdefghijklmnopqrstuv
--- error_code eval
[200, 204]
--- redis
GET 0123456789abcdefghijklmnopqrstuv => a cache entry
TTL 0123456789abcdefghijklmnopqrstuv => -1
DBSIZE => 1



=== TEST 7: history_prefix "": a session's own list is recorded, trimmed and expired as before
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
    history_length 3;
    history_expire 1h;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- redis_init
RPUSH k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a 9 8 7 6
--- pipelined_requests eval
["GET /product/1", "GET /product/7"]
--- more_headers
Cookie: sessionid=k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a
--- response_body eval
["product 1\n", "product 7\n"]
--- redis
LRANGE k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a 0 -1 => 7 1 9
TTL k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a => /^3[56]\d\d$/
--- no_error_log
[error]



=== TEST 8: history_prefix "": forget deletes the session's own list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
--- config
    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
RPUSH k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a 9 8
--- request
DELETE /history
--- more_headers
Cookie: sessionid=k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a
--- error_code: 204
--- redis
EXISTS k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a => 0
--- no_error_log
[error]



=== TEST 9: history_prefix "": the module's own visitor ids are keys too
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
--- config
    history_cookie vid;

    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request
GET /product/5
--- more_headers
Cookie: vid=0123456789abcdef0123456789abcdef
--- redis
LRANGE 0123456789abcdef0123456789abcdef 0 -1 => 5
DBSIZE => 1
--- no_error_log
[error]



=== TEST 10: the README's map: an anonymous session named like a user reaches nothing of the user's
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    map $cookie_user_id $history_visitor {
        ""       session:$cookie_sessionid;
        default  user:$cookie_user_id;
    }

    history_key          $history_visitor;
    history_key_pattern  "^(session:[a-z0-9]{32}|user:[0-9]{1,20})$";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /history {
        history_serve;
        history_forget on;
    }
--- redis_init
RPUSH history:user:123 4 5
--- request eval
["GET /history", "GET /product/1", "DELETE /history"]
--- more_headers
Cookie: sessionid=user:123
--- error_code eval
[200, 200, 204]
--- response_body eval
["[]", "product 1\n", ""]
--- redis
LRANGE history:user:123 0 -1 => 4 5
DBSIZE => 1



=== TEST 11: the README's map: users and sessions each get their own list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;

    map $cookie_user_id $history_visitor {
        ""       session:$cookie_sessionid;
        default  user:$cookie_user_id;
    }

    history_key          $history_visitor;
    history_key_pattern  "^(session:[a-z0-9]{32}|user:[0-9]{1,20})$";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request eval
["GET /product/1", "GET /product/2", "GET /product/3"]
--- more_headers eval
["Cookie: sessionid=k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a",
 "Cookie: user_id=123; sessionid=k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a",
 "Cookie: sessionid="]
--- redis
LRANGE history:session:k1x2bz3n4m5q6w7e8r9t0y1u2i3o4p5a 0 -1 => 1
LRANGE history:user:123 0 -1 => 2
DBSIZE => 2
--- no_error_log
[error]



=== TEST 12: a key that fails history_key_pattern is no visitor, logged at info
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key $arg_v;
    history_key_pattern "^u[0-9]+$";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        history_count $1 unique;
        history_last_action on;
        return 200 "product $1\n";
    }
--- request
GET /product/1?v=x1
--- redis
GET history:views:1 => 1
DBSIZE => 1
--- error_log eval
qr/\[info\] .*visitor key of 2 bytes does not match history_key_pattern, ignored/
--- no_error_log
[error]



=== TEST 13: a key that passes history_key_pattern is the visitor
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key $arg_v;
    history_key_pattern "^u[0-9]+$";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        history_count $1 unique;
        history_last_action on;
        return 200 "product $1\n";
    }
--- request
GET /product/2?v=u7
--- redis
LRANGE history:u7 0 -1 => 2
ZRANGE history:online 0 -1 => u7
EXISTS history:last_action:u7 => 1
PFCOUNT history:visitors:2 => 1
--- no_error_log
[error]
[info]



=== TEST 14: a key holding a control byte is never a visitor, whatever the pattern
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key_pattern off;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        add_header X-Visitor "[$history_key]";
        return 200 "product $1\n";
    }
--- request
GET /product/1
--- more_headers eval
"Cookie: sessionid=a\tb"
--- response_headers
X-Visitor: []
--- redis
DBSIZE => 0
--- error_log
visitor key has a byte 0x09 at 1, ignored



=== TEST 15: the default pattern takes Django's session keys and refuses what is not one
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key $arg_v;
    history_prefix "";
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }
--- request eval
["GET /product/1?v=abcdefghijklmnopqrstuvwxyz012345",
 "GET /product/2?v=abcdefghijklmnopqrstuvwxyz01234",
 "GET /product/3?v=Abcdefghijklmnopqrstuvwxyz012345",
 "GET /product/4?v=abcdefghijklmnopqrstuvwxyz0123456",
 "GET /product/5?v=user:1"]
--- redis
LRANGE abcdefghijklmnopqrstuvwxyz012345 0 -1 => 1
DBSIZE => 1



=== TEST 16: a read serves at most history_length items of a longer list
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_length 3;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init eval
"RPUSH history:abc " . CORE::join(" ", 1 .. 2000)
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_body chop
["1","2","3"]
--- no_error_log
[error]



=== TEST 17: nginx -t warns when history_key_pattern off shares the database's keyspace
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_prefix "";
    history_key_pattern off;
--- config
    location = /_history {
        history_serve;
    }

    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- error_log eval
qr/\[warn\] .*"history_key_pattern off" with an empty "history_prefix" lets a visitor key name any list in the database/



=== TEST 18: nginx -t warns when one prefix holds another under a pattern it cannot check
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /a/ {
        history_prefix "shop:";
        history_key_pattern "^[a-z:]+$";
        history_serve;
    }

    location /b/ {
        history_prefix "shop:b:";
        history_serve;
    }

    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- error_log eval
qr/\[warn\] .*"history_prefix" "shop:" holds "shop:b:": a visitor key under "shop:" may name keys under "shop:b:"/



=== TEST 19: no warning where the default pattern keeps the prefixes apart
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /a/ {
        history_prefix "";
        history_serve;
    }

    location /b/ {
        history_serve;
    }

    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[warn]
