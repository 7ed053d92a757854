# vi:filetype=perl
#
# Inheritance into nested locations and into "if" and "limit_except"
# blocks, as nginx's own directives of each kind inherit:
#
# - the settings (history_key, history_prefix, history_length,
#   history_expire, history_status, history_id_pattern, history_fallback,
#   history_fetch, history_forget, history_cookie, history_last_action,
#   history_last_action_key, history_online_timeout,
#   history_count_expire) reach every block inside, as proxy_set_header;
# - history_record and history_count, which act in the log phase, reach
#   every block inside too (as access_log and mirror), history_count with
#   its flags;
# - the content handlers (history_serve, history_views, history_online,
#   history_stats) reach the "if" and "limit_except" blocks of their
#   location, not nested locations (as proxy_pass).

use Test::Nginx::Socket 'no_plan';
use HistoryTest;
use POSIX qw(strftime);

our $Today = strftime('%Y-%m-%d', gmtime);

run_tests();

__DATA__

=== TEST 1: in an "if": every setting, history_record and history_count
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/page/(\w+)$ {
        history_key $arg_v;
        history_prefix p:;
        history_length 2;
        history_expire 100;
        history_status 200 201;
        history_id_pattern ^[a-z0-9]+$;
        history_record $1;
        history_count $1 daily unique;
        history_count_expire 200;
        history_last_action on;
        history_last_action_key la:$arg_v;
        history_online_timeout 50;

        if ($arg_utm) {
            set $campaign $arg_utm;
        }

        return 201 "page $1 $campaign\n";
    }
--- request eval
["GET /page/a1?v=x&utm=mail", "GET /page/b2?v=x&utm=mail",
 "GET /page/c3?v=x&utm=mail"]
--- response_body eval
["page a1 mail\n", "page b2 mail\n", "page c3 mail\n"]
--- error_code eval
[201, 201, 201]
--- redis
LRANGE p:x 0 -1 => c3 b2
TTL p:x => /^(9[0-9]|100)$/
MGET p:views:a1 p:views:b2 p:views:c3 => 1 1 1
EVAL "return redis.call('TTL', redis.call('KEYS', 'p:views:a1:*')[1])" 0 => /^(19[0-9]|200)$/
PFCOUNT p:visitors:c3 => 1
TTL la:x => /^(4[0-9]|50)$/
ZRANGE p:online 0 -1 => x
TTL p:online => /^(4[0-9]|50)$/
DBSIZE => 12
--- no_error_log
[error]



=== TEST 2: in a nested location: the same
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /page/ {
        history_key $arg_v;
        history_prefix p:;
        history_length 2;
        history_expire 100;
        history_status 200 201;
        history_id_pattern ^[a-z0-9]+$;
        history_record $arg_id;
        history_count $arg_id daily unique;
        history_count_expire 200;
        history_last_action on;
        history_last_action_key la:$arg_v;
        history_online_timeout 50;

        location /page/nested/ {
            return 201 "nested $arg_id\n";
        }
    }
--- request eval
["GET /page/nested/?v=x&id=a1", "GET /page/nested/?v=x&id=b2",
 "GET /page/nested/?v=x&id=c3"]
--- response_body eval
["nested a1\n", "nested b2\n", "nested c3\n"]
--- error_code eval
[201, 201, 201]
--- redis
LRANGE p:x 0 -1 => c3 b2
TTL p:x => /^(9[0-9]|100)$/
MGET p:views:a1 p:views:b2 p:views:c3 => 1 1 1
EVAL "return redis.call('TTL', redis.call('KEYS', 'p:views:a1:*')[1])" 0 => /^(19[0-9]|200)$/
PFCOUNT p:visitors:c3 => 1
TTL la:x => /^(4[0-9]|50)$/
ZRANGE p:online 0 -1 => x
TTL p:online => /^(4[0-9]|50)$/
DBSIZE => 12
--- no_error_log
[error]



=== TEST 3: the example of the report: both views recorded and counted
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/page/(\d+)$ {
        history_count $1 daily;
        history_record $1;

        if ($arg_utm) {
            set $c $arg_utm;
        }

        return 200;
    }
--- request eval
["GET /page/1", "GET /page/1?utm=mail"]
--- more_headers
Cookie: sessionid=abc
--- redis
LRANGE history:abc 0 -1 => 1
GET history:views:1 => 2
EVAL "return redis.call('GET', redis.call('KEYS', 'history:views:1:*')[1])" 0 => 2
--- no_error_log
[error]



=== TEST 4: history_cookie in an "if" and in a nested location
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /c/ {
        history_cookie vid;
        history_record $arg_id;

        if ($arg_utm) {
            set $campaign $arg_utm;
        }

        return 200 "c\n";

        location /c/nested/ {
            return 200 "nested\n";
        }
    }
--- request eval
["GET /c/?id=1&utm=mail", "GET /c/nested/?id=2"]
--- response_headers_like eval
["Set-Cookie: vid=[0-9a-f]{32}; .*", "Set-Cookie: vid=[0-9a-f]{32}; .*"]
--- redis
KEYS history:* => /^history:[0-9a-f]{32} history:[0-9a-f]{32}$/
DBSIZE => 2
--- no_error_log
[error]



=== TEST 5: reads in an "if": history_serve, its format, key, prefix, forget
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /h {
        history_key $arg_v;
        history_prefix q:;
        history_serve text;
        history_forget on;

        if ($arg_x) {
            set $y 1;
        }
    }
--- redis_init
RPUSH q:a 2 1
--- request eval
["GET /h?v=a&x=1", "DELETE /h?v=a&x=1"]
--- response_headers eval
["Content-Type: text/plain", ""]
--- response_body eval
["2,1", ""]
--- error_code eval
[200, 204]
--- redis
EXISTS q:a => 0
--- no_error_log
[error]



=== TEST 6: reads in a nested location: settings inherited, history_serve not
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /h/ {
        history_key $arg_v;
        history_prefix q:;
        history_serve text;
        history_forget on;

        location /h/own {
            history_serve;
        }

        location /h/none {
            log_not_found off;
        }
    }
--- redis_init
RPUSH q:a 2 1
RPUSH q:b 3
--- request eval
["GET /h/own?v=a", "GET /h/none?v=a", "GET /h/?v=a", "DELETE /h/own?v=b"]
--- response_body_like eval
['^\["2","1"\]$', "404 Not Found", '^2,1$', '^$']
--- error_code eval
[200, 404, 200, 204]
--- redis
EXISTS q:b => 0
EXISTS q:a => 1
--- no_error_log
[error]



=== TEST 7: history_fallback in an "if" and in a nested location
--- http_config
    history_redis 127.0.0.1:1;
--- config
    location /h/ {
        history_fallback error;
        history_serve;

        if ($arg_x) {
            set $y 1;
        }

        location /h/nested {
            history_serve;
        }
    }
--- request eval
["GET /h/?x=1", "GET /h/nested"]
--- more_headers
Cookie: sessionid=abc
--- error_code eval
[503, 503]
--- no_error_log
[alert]
[crit]



=== TEST 8: history_fetch in an "if" and in a nested location
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /f/ {
        history_key $arg_v;
        history_fetch on;
        add_header X-History $history;

        if ($arg_x) {
            set $y 1;
        }

        location /f/nested/ {
            add_header X-History $history;
        }
    }
--- user_files
>>> f/page.html
page
>>> f/nested/page.html
nested page
--- redis_init
RPUSH history:a 2 1
--- request eval
["GET /f/page.html?v=a&x=1", "GET /f/nested/page.html?v=a"]
--- response_headers eval
["X-History: 2,1", "X-History: 2,1"]
--- response_body eval
["page\n", "nested page\n"]
--- no_error_log
[error]



=== TEST 9: history_views keeps its flags in an "if", not in a nested location
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /views {
        history_prefix q:;
        history_views daily unique;

        if ($arg_x) {
            set $y 1;
        }

        location /views/nested {
            log_not_found off;
        }
    }
--- redis_init eval
"SET q:views:7 12\nSET q:views:7:$main::Today 3\nPFADD q:visitors:7 a b c\n"
--- request eval
["GET /views?ids=7&x=1", "GET /views?ids=7", "GET /views/nested?ids=7"]
--- response_body_like eval
['^\{"7":\{"total":12,"today":3,"unique":3\}\}$',
 '^\{"7":\{"total":12,"today":3,"unique":3\}\}$',
 "404 Not Found"]
--- error_code eval
[200, 200, 404]
--- no_error_log
[error]



=== TEST 10: history_online and history_online_timeout in an "if"
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /online {
        history_prefix q:;
        history_online_timeout 100;
        history_online;

        if ($arg_x) {
            set $y 1;
        }

        location /online/nested {
            log_not_found off;
        }
    }
--- redis_init
EVAL "local t = redis.call('TIME')[1]; redis.call('ZADD', 'q:online', t - 200, 'a'); return redis.call('ZADD', 'q:online', t - 50, 'b')" 0
--- request eval
["GET /online?ids=a,b&x=1", "GET /online/nested?ids=a,b"]
--- response_body_like eval
['^\{"online":1,"visitors":\{"a":\{"online":false,"last_seen":\d+\},"b":\{"online":true,"last_seen":\d+\}\}\}$',
 "404 Not Found"]
--- error_code eval
[200, 404]
--- no_error_log
[error]



=== TEST 11: history_stats in an "if", not in a nested location
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /stats {
        history_stats;

        if ($arg_x) {
            set $y 1;
        }

        location /stats/nested {
            log_not_found off;
        }
    }
--- request eval
["GET /stats?x=1", "GET /stats/nested"]
--- response_body_like eval
['^\{"workers":\[\{"worker":0,', "404 Not Found"]
--- error_code eval
[200, 404]
--- no_error_log
[error]



=== TEST 12: the content handlers reach "limit_except", as proxy_pass does
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /h {
        history_key $arg_v;
        history_serve;
        history_forget on;

        limit_except GET {
            allow all;
        }
    }

    location = /views {
        history_views daily;

        limit_except POST {
            allow all;
        }
    }

    location = /online {
        history_online;

        limit_except POST {
            allow all;
        }
    }

    location = /stats {
        history_stats;

        limit_except POST {
            allow all;
        }
    }
--- redis_init
RPUSH history:a 2 1
SET history:views:7 12
--- request eval
["DELETE /h?v=a", "GET /views?ids=7", "GET /online", "GET /stats"]
--- response_body_like eval
['^$', '^\{"7":\{"total":12,"today":0\}\}$', '^\{"online":0\}$',
 '^\{"workers":\[']
--- error_code eval
[204, 200, 200, 200]
--- redis
EXISTS history:a => 0
--- no_error_log
[error]



=== TEST 13: history_record off and history_count off: a nested location records and counts nothing it inherits
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /shop/ {
        history_prefix s:;
        history_id_pattern ^[a-z0-9]+$;
        history_key $arg_v;
        history_record $arg_p;
        history_count $arg_p daily unique;

        location /shop/reviews {
            history_record off;
            history_count off;
            return 200 "reviews\n";
        }

        location /shop/photos {
            history_count off;
            return 200 "photos\n";
        }

        return 200 "product\n";
    }
--- request eval
["GET /shop/item?v=x&p=11", "GET /shop/reviews?v=x&p=22",
 "GET /shop/photos?v=x&p=33"]
--- response_body eval
["product\n", "reviews\n", "photos\n"]
--- redis
LRANGE s:x 0 -1 => 33 11
GET s:views:11 => 1
PFCOUNT s:visitors:11 => 1
EXISTS s:views:22 s:visitors:22 s:views:33 s:visitors:33 => 0
DBSIZE => 4
--- no_error_log
[error]



=== TEST 14: "off" alone needs no history_redis
--- config
    location = /t {
        history_record off;
        history_count off;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[emerg]
