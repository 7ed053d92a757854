# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: a client gone while history_fetch waits: the read is cancelled, the reply is dropped later
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=3s;
--- config
    location = /page {
        history_fetch on;
        add_header X-History $history;
        try_files /nonexistent =204;
    }
--- redis_init
RPUSH history:abc 1
CLIENT PAUSE 600 ALL
--- request
GET /page
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.2
--- abort
--- ignore_response
--- wait: 1
--- error_log
client prematurely closed connection
--- no_error_log
[alert]
[crit]



=== TEST 2: a client gone while history_serve waits
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=3s;
--- config
    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 1
CLIENT PAUSE 600 ALL
--- request
GET /_history
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.2
--- abort
--- ignore_response
--- wait: 1
--- no_error_log
[alert]
[crit]
