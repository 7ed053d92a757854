# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: a request records the visitor's last action, with the online timeout as TTL
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_last_action on;
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
GET history:last_action:abc => /^1\d{9}$/
TTL history:last_action:abc => /^(29\d|300)$/
ZRANGE history:online 0 -1 => abc
ZSCORE history:online abc => /^1\d{9}$/
--- no_error_log
[error]



=== TEST 2: history_online_timeout and history_last_action_key give the tutorial's layout
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key $cookie_user_id;
    history_last_action on;
    history_last_action_key user:${history_key}:last_action;
    history_online_timeout 10m;
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- more_headers
Cookie: user_id=17
--- redis
GET user:17:last_action => /^1\d{9}$/
TTL user:17:last_action => /^(59\d|600)$/
ZRANGE history:online 0 -1 => 17
--- no_error_log
[error]



=== TEST 3: fifty requests in a second cost one write (two if a second ticks)
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_last_action on;
--- config
    location = /t {
        return 200 "ok\n";
    }

    location = /sentinel {
        history_last_action off;
        history_key sentinel;
        history_record 1;
        return 200 "sentinel\n";
    }
--- redis_init
CONFIG RESETSTAT
--- pipelined_requests eval
[(map { "GET /t" } 1 .. 50), "GET /sentinel"]
--- more_headers
Cookie: sessionid=busy
--- response_body eval
[(map { "ok\n" } 1 .. 50), "sentinel\n"]
--- redis
LRANGE history:sentinel 0 -1 => 1
INFO commandstats => /cmdstat_set:calls=[12],/
INFO commandstats => /cmdstat_zadd:calls=[12],/
--- no_error_log
[error]



=== TEST 4: visitors gone longer than the timeout are pruned from the online set
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_last_action on;
    history_online_timeout 1m;
--- config
    location = /t {
        return 200 "ok\n";
    }
--- redis_init
ZADD history:online 1000000000 gone 1999999999 future
--- request
GET /t
--- more_headers
Cookie: sessionid=abc
--- redis
ZRANGE history:online 0 -1 => abc future
TTL history:online => /^(5\d|60)$/
--- no_error_log
[error]



=== TEST 5: no visitor, no last action; other methods count as actions too
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_last_action on;
--- config
    location = /t {
        return 200 "ok\n";
    }

    location = /sentinel {
        history_key sentinel;
        history_record 1;
        return 200 "sentinel\n";
    }
--- pipelined_requests eval
["GET /t", "GET /sentinel"]
--- redis
LRANGE history:sentinel 0 -1 => 1
ZRANGE history:online 0 -1 => sentinel
EXISTS history:last_action: => 0
--- no_error_log
[error]



=== TEST 6: history_online counts who is online now, and answers for ids
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /online {
        history_online;
    }
--- redis_init eval
"ZADD history:online " . (time - 10) . " alice " . (time - 100) . " bob "
. (time - 1000) . " carol"
--- request
GET /online?ids=alice,carol,dave
--- response_headers
Content-Type: application/json
--- response_body eval
my $t = time;
'{"online":2,"visitors":{"alice":{"online":true,"last_seen":' . ($t - 10)
. '},"carol":{"online":false,"last_seen":' . ($t - 1000)
. '},"dave":{"online":false,"last_seen":null}}}'
--- no_error_log
[error]



=== TEST 7: history_online without ids, and with odd ones
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /online {
        history_online;
    }
--- redis_init eval
"ZADD history:online " . time . " a\"b"
--- pipelined_requests eval
["GET /online", "GET /online?ids=a%22b,,", "GET /online?ids=" . CORE::join(",", 1 .. 51)]
--- error_code eval
[200, 200, 400]
--- response_body_like eval
['^\{"online":1\}$', '^\{"online":1,"visitors":\{"a\\\\"b":\{"online":true,"last_seen":\d+\}\}\}$', '400']
--- no_error_log
[error]



=== TEST 8: Redis down: pages unaffected, history_online answers {} at once
--- http_config
    history_redis 127.0.0.1:1;
    history_last_action on;
--- config
    location = /t {
        return 200 "ok\n";
    }

    location = /online {
        history_online;
    }
--- pipelined_requests eval
["GET /t", "GET /online?ids=a"]
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- response_body eval
["ok\n", "{}"]
--- no_error_log
[alert]
[crit]



=== TEST 9: history_online_shards: each visitor's last action goes to the set its key's CRC-32 picks
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_key $arg_v;
    history_last_action on;
    history_online_shards 4;
--- config
    location = /t {
        return 200 "ok\n";
    }
--- pipelined_requests eval
["GET /t?v=alice", "GET /t?v=bob", "GET /t?v=abc"]
--- response_body eval
["ok\n", "ok\n", "ok\n"]
--- redis eval
use Compress::Zlib;
"ZRANGE history:online:" . (crc32("alice") % 4) . " 0 -1 => alice\n"
. "ZRANGE history:online:" . (crc32("bob") % 4) . " 0 -1 => bob\n"
. "ZRANGE history:online:" . (crc32("abc") % 4) . " 0 -1 => abc\n"
. "TTL history:online:" . (crc32("abc") % 4) . " => /^(29\\d|300)\$/\n"
. "ZCARD history:online:1 => 0\n"
. "EXISTS history:online => 0\n"
--- no_error_log
[error]



=== TEST 10: history_online adds up every set, and finds each id in its own
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_online_shards 4;
--- config
    location = /online {
        history_online;
    }
--- redis_init eval
use Compress::Zlib;
my $t = time;
"ZADD history:online:" . (crc32("alice") % 4) . " " . ($t - 10) . " alice "
. ($t - 1000) . " carol\n"
. "ZADD history:online:" . (crc32("bob") % 4) . " " . ($t - 100) . " bob\n"
. "ZADD history:online " . $t . " eve\n"
--- request
GET /online?ids=alice,carol,dave,bob
--- response_body eval
my $t = time;
'{"online":2,"visitors":{"alice":{"online":true,"last_seen":' . ($t - 10)
. '},"carol":{"online":false,"last_seen":' . ($t - 1000)
. '},"dave":{"online":false,"last_seen":null},'
. '"bob":{"online":true,"last_seen":' . ($t - 100) . '}}}'
--- no_error_log
[error]



=== TEST 11: one set that is not a sorted set: the fallback, not a wrong total
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_online_shards 4;
--- config
    location = /online {
        history_online;
    }
--- redis_init eval
"ZADD history:online:0 " . time . " bob\n"
. "SET history:online:1 x\n"
--- request
GET /online
--- response_body: {}
--- error_log
redis replied with an error: "WRONGTYPE
--- no_error_log
[alert]



=== TEST 12: Redis down with four sets: history_online answers {} at once, the last action is dropped
--- http_config
    history_redis 127.0.0.1:1;
    history_last_action on;
    history_online_shards 4;
--- config
    location = /t {
        return 200 "ok\n";
    }

    location = /online {
        history_online;
    }
--- pipelined_requests eval
["GET /t", "GET /online?ids=alice,bob,carol"]
--- more_headers
Cookie: sessionid=abc
--- timeout: 0.5
--- response_body eval
["ok\n", "{}"]
--- no_error_log
[alert]
[crit]
