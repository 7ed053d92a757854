# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: history_redis with a bad port
--- http_config
    history_redis 127.0.0.1:99999;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid port in "127.0.0.1:99999" of the "history_redis" directive



=== TEST 2: history_redis with an unknown parameter
--- http_config
    history_redis 127.0.0.1:6379 color=red;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid parameter "color=red" in "history_redis" directive



=== TEST 3: history_redis with a bad db
--- http_config
    history_redis 127.0.0.1:6379 db=one;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "db=one" in "history_redis" directive



=== TEST 4: history_redis with a zero timeout
--- http_config
    history_redis 127.0.0.1:6379 timeout=0;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "timeout=0" in "history_redis" directive



=== TEST 5: history_redis with a bad connect_timeout
--- http_config
    history_redis 127.0.0.1:6379 connect_timeout=soon;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "connect_timeout=soon" in "history_redis" directive



=== TEST 6: history_redis with a bad queue
--- http_config
    history_redis 127.0.0.1:6379 queue=-5;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "queue=-5" in "history_redis" directive



=== TEST 7: history_redis with an empty password
--- http_config
    history_redis 127.0.0.1:6379 password=;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "password=" in "history_redis" directive



=== TEST 8: history_redis with a username and no password
--- http_config
    history_redis 127.0.0.1:6379 username=shop;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"username=" needs "password=" in "history_redis" directive



=== TEST 9: history_redis twice
--- http_config
    history_redis 127.0.0.1:6379;
    history_redis 127.0.0.1:6380;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_redis" directive is duplicate



=== TEST 10: history_length of zero
--- http_config
    history_redis 127.0.0.1:6379;
    history_length 0;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "0" in "history_length" directive, it must be a number from 1 to 1000



=== TEST 11: history_length that is not a number
--- http_config
    history_redis 127.0.0.1:6379;
    history_length five;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "five" in "history_length" directive



=== TEST 12: history_length over the maximum
--- http_config
    history_redis 127.0.0.1:6379;
    history_length 1001;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "1001" in "history_length" directive



=== TEST 13: history_expire of zero
--- http_config
    history_redis 127.0.0.1:6379;
    history_expire 0;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "0" in "history_expire" directive, it must be a positive time



=== TEST 14: history_expire that is not a time
--- http_config
    history_redis 127.0.0.1:6379;
    history_expire 90days;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "90days" in "history_expire" directive



=== TEST 15: history_status out of range
--- http_config
    history_redis 127.0.0.1:6379;
    history_status 200 99;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "99" in "history_status" directive, it must be a status from 100 to 599



=== TEST 16: history_status that is not a number
--- http_config
    history_redis 127.0.0.1:6379;
    history_status ok;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "ok" in "history_status" directive



=== TEST 17: history_id_pattern that does not compile
--- http_config
    history_redis 127.0.0.1:6379;
    history_id_pattern "^[0-9+$";
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "^[0-9+$" in "history_id_pattern" directive



=== TEST 18: history_key twice
--- http_config
    history_key $cookie_a;
    history_key $cookie_b;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_key" directive is duplicate



=== TEST 19: history_key with an unknown variable
--- http_config
    history_key $no_such_variable;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
unknown "no_such_variable" variable



=== TEST 20: history_record is for locations only
--- http_config
    history_redis 127.0.0.1:6379;
    history_record $arg_id;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_record" directive is not allowed here



=== TEST 21: history_redis is for the http block only
--- config
    location = /t {
        history_redis 127.0.0.1:6379;
    }
--- must_die
--- error_log
"history_redis" directive is not allowed here



=== TEST 22: history_record without history_redis
--- config
    location = /t {
        history_record $arg_id;
    }
--- must_die
--- error_log
"history_record" needs "history_redis" in the http block



=== TEST 23: history_serve with an unknown format
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_serve xml;
    }
--- must_die
--- error_log
invalid value "xml" in "history_serve" directive, it must be "json" or "text"



=== TEST 24: history_serve without history_redis
--- config
    location = /t {
        history_serve;
    }
--- must_die
--- error_log
"history_serve" needs "history_redis" in the http block



=== TEST 25: history_fallback with an unknown value
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_fallback zero;
    }
--- must_die
--- error_log
invalid value "zero" in "history_fallback" directive, it must be "empty" or "error"



=== TEST 26: history_fetch that is not on or off
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_fetch yes;
    }
--- must_die
--- error_log
invalid value "yes" in "history_fetch" directive, it must be "on" or "off"



=== TEST 27: history_cookie with a bad name
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie "vid.x";
    }
--- must_die
--- error_log
invalid value "vid.x" in "history_cookie" directive



=== TEST 28: history_cookie with an unknown parameter
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid forever;
    }
--- must_die
--- error_log
invalid parameter "forever" in "history_cookie" directive



=== TEST 29: history_cookie with a bad expires
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid expires=soon;
    }
--- must_die
--- error_log
invalid value "expires=soon" in "history_cookie" directive



=== TEST 30: history_cookie with a relative path
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid path=shop;
    }
--- must_die
--- error_log
invalid value "path=shop" in "history_cookie" directive



=== TEST 31: history_cookie samesite=none without secure
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid samesite=none;
    }
--- must_die
--- error_log
"samesite=none" needs "secure" in "history_cookie" directive



=== TEST 32: history_cookie without history_redis
--- config
    location = /t {
        history_cookie vid;
    }
--- must_die
--- error_log
"history_cookie" needs "history_redis" in the http block



=== TEST 33: history_count with an unknown parameter
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_count $arg_id weekly;
    }
--- must_die
--- error_log
invalid parameter "weekly" in "history_count" directive



=== TEST 34: history_views with an unknown parameter
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_views total;
    }
--- must_die
--- error_log
invalid parameter "total" in "history_views" directive



=== TEST 35: history_online_timeout of zero
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_online_timeout 0;
    }
--- must_die
--- error_log
invalid value "0" in "history_online_timeout" directive, it must be a positive time



=== TEST 36: history_count_expire that is not a time
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_count_expire often;
    }
--- must_die
--- error_log
invalid value "often" in "history_count_expire" directive



=== TEST 37: history_last_action that is not on or off
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_last_action always;
    }
--- must_die
--- error_log
invalid value "always" in "history_last_action" directive, it must be "on" or "off"



=== TEST 38: history_count without history_redis
--- config
    location = /t {
        history_count $arg_id;
    }
--- must_die
--- error_log
"history_count" needs "history_redis" in the http block



=== TEST 39: history_online with an argument
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_online now;
    }
--- must_die
--- error_log
invalid number of arguments in "history_online" directive



=== TEST 40: history_cookie with an empty name
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie "";
    }
--- must_die
--- error_log
invalid value "" in "history_cookie" directive, a cookie name is letters, digits, "_" and "-"



=== TEST 41: history_cookie with an expires beyond 68 years
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid expires=9223372036854775807;
    }
--- must_die
--- error_log
invalid value "expires=9223372036854775807" in "history_cookie" directive, expires= is from 1s to 68y, or off



=== TEST 42: history_cookie with a line break in domain=
(the message goes on over two lines of the log, as the value does)
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid "domain=shop.example\r\nX-Evil: 1";
    }
--- must_die
--- error_log eval
qr/invalid value "domain=shop\.example\r$/



=== TEST 43: history_cookie with a control byte in path=
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid "path=/shop\tx";
    }
--- must_die
--- error_log eval
qr{invalid value "path=/shop\tx" in "history_cookie" directive}



=== TEST 44: history_redis with a max_reply= below 1k
--- http_config
    history_redis 127.0.0.1:6379 max_reply=512;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "max_reply=512" in "history_redis" directive, it must be 1k or more



=== TEST 45: history_redis with two addresses and no "cluster"
--- http_config
    history_redis 127.0.0.1:7000 127.0.0.1:7001;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
several addresses in "history_redis" directive need "sentinel=" or "cluster"



=== TEST 46: history_redis with "cluster" and db=
--- http_config
    history_redis 127.0.0.1:7000 127.0.0.1:7001 cluster db=2;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"db=" cannot be used with "cluster" in "history_redis" directive



=== TEST 47: history_redis with seeds and "cluster" is accepted
--- http_config
    history_redis 127.0.0.1:7000 127.0.0.1:7001 cluster password=x
                  timeout=200ms queue=100;
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 48: history_redis with a bad seed among several
--- http_config
    history_redis 127.0.0.1:7000 127.0.0.1:notaport cluster;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid port in "127.0.0.1:notaport" of the "history_redis" directive



=== TEST 49: history_online_shards of zero
--- http_config
    history_redis 127.0.0.1:6379;
    history_online_shards 0;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "0" in "history_online_shards" directive, it must be a number from 1 to 64



=== TEST 50: history_online_shards over the maximum, and not a number
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_online_shards 65;
        return 200;
    }
--- must_die
--- error_log
invalid value "65" in "history_online_shards" directive, it must be a number from 1 to 64



=== TEST 51: history_online_shards that is not a number
--- http_config
    history_redis 127.0.0.1:6379;
    history_online_shards many;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "many" in "history_online_shards" directive



=== TEST 52: history_record off, then an id
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_record off;
        history_record $arg_id;
        return 200;
    }
--- must_die
--- error_log
"history_record" directive is duplicate



=== TEST 53: history_count off with a parameter
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_count off daily;
        return 200;
    }
--- must_die
--- error_log
invalid parameter "daily"
