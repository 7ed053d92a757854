# vi:filetype=perl
#
# Every JSON answer is valid JSON that is safe inside HTML, a <script>
# included through SSI too: <, >, &, U+2028 and U+2029 are escaped, and
# invalid UTF-8 is replaced by U+FFFD (stored ids) or refused with 400
# (ids in a query).  The text format and $history are safe in headers and
# in HTML.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

# a block's requests are pipelined: check the log once, after the last
check_accum_error_log();

run_tests();

__DATA__

=== TEST 1: an id that closes a script is escaped, and the including page runs nothing
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /page {
        ssi on;
        default_type text/html;
        return 200 '<script>var h = <!--# include virtual="/_history" -->;</script>';
    }

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc "</script><script>alert(1)</script>"
--- request
GET /page
--- more_headers
Cookie: sessionid=abc
--- response_body eval
'<script>var h = ["\u003c/script\u003e\u003cscript\u003ealert(1)\u003c/script\u003e"];</script>'
--- no_error_log
[error]



=== TEST 2: such an id is not even recorded, whatever history_id_pattern says
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_id_pattern off;

    location ~ ^/product/(.+)$ {
        history_record $1;
        history_count $1;
        return 200 "product\n";
    }
--- pipelined_requests eval
["GET /product/%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
 "GET /product/a&b", "GET /product/it's", "GET /product/q%22", "GET /product/ok"]
--- more_headers
Cookie: sessionid=abc
--- response_body eval
["product\n", "product\n", "product\n", "product\n", "product\n"]
--- redis
LRANGE history:abc 0 -1 => ok
GET history:views:ok => 1
DBSIZE => 2
--- error_log
product id has a byte 0x3C at 0
product id has a byte 0x26 at 1
product id has a byte 0x27 at 2
product id has a byte 0x22 at 1



=== TEST 3: <, >, &, U+2028 and U+2029 are escaped; other UTF-8 is kept
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_length 20;

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc "a<b" "c>d" "e&f" "g\xe2\x80\xa8h" "i\xe2\x80\xa9j" "caf\xc3\xa9" "\xf0\x9f\x98\x80" "<!--" "x\x7fy"
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_body eval
'["a\u003cb","c\u003ed","e\u0026f","g\u2028h","i\u2029j","caf' . "\xc3\xa9"
. '","' . "\xf0\x9f\x98\x80" . '","\u003c!--","x\u007fy"]'
--- no_error_log
[error]



=== TEST 4: invalid UTF-8 stored by another writer is replaced by U+FFFD
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_length 20;

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc "\xff" "caf\xc3" "\xc0\xaf" "\xed\xa0\x80" "\xf4\x90\x80\x80" "a\xe2\x80" "ok"
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- response_body eval
'["\ufffd","caf\ufffd","\ufffd\ufffd","\ufffd\ufffd\ufffd","\ufffd\ufffd\ufffd\ufffd","a\ufffd\ufffd","ok"]'
--- no_error_log
[error]



=== TEST 5: history_views: ids are escaped, and invalid UTF-8 in ids= is refused
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /views {
        history_views;
    }
--- redis_init
SET "history:views:<b>" 3
--- request eval
["GET /views?ids=%3Cb%3E,caf%C3%A9", "GET /views?ids=7,%ff",
 "GET /views?ids=caf%C3"]
--- error_code eval
[200, 400, 400]
--- response_body_like eval
['^\{"\\\\u003cb\\\\u003e":\{"total":3\},"caf\xc3\xa9":\{"total":0\}\}$',
 "400 Bad Request", "400 Bad Request"]
--- no_error_log
[error]



=== TEST 6: history_online: ids are escaped, and invalid UTF-8 in ids= is refused
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /online {
        history_online;
    }
--- request eval
["GET /online?ids=%3C/script%3E&x", "GET /online?ids=%c3%28"]
--- error_code eval
[200, 400]
--- response_body_like eval
['^\{"online":0,"visitors":\{"\\\\u003c/script\\\\u003e":\{"online":false,"last_seen":null\}\}\}$',
 "400 Bad Request"]
--- no_error_log
[error]



=== TEST 7: the text format and $history leave out what HTML or a header cannot carry
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    history_length 20;

    location = /text {
        history_fetch on;
        add_header X-History "[$history]";
        history_serve text;
    }
--- redis_init
RPUSH history:abc 1 "<script>" "a&b" "q\"" "it's" "cr\rlf\n" "2"
--- request
GET /text
--- more_headers
Cookie: sessionid=abc
--- response_headers
X-History: [1,2]
--- response_body chop
1,2
--- no_error_log
[error]
