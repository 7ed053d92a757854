# vi:filetype=perl
#
# Bad values of the directives that say who a visitor is and how long a
# new visitor's list lives: each one fails "nginx -t", naming the
# directive and the value.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: history_key_pattern that does not compile
--- http_config
    history_redis 127.0.0.1:6379;
    history_key_pattern "^(user:[0-9]+$";
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "^(user:[0-9]+$" in "history_key_pattern" directive



=== TEST 2: history_key_pattern twice
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_key_pattern "^[a-z]+$";
        history_key_pattern off;
        return 200;
    }
--- must_die
--- error_log
"history_key_pattern" directive is duplicate



=== TEST 3: history_key_pattern without an argument
--- http_config
    history_redis 127.0.0.1:6379;
    history_key_pattern;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid number of arguments in "history_key_pattern" directive



=== TEST 4: history_new_visitor_expire of zero
--- http_config
    history_redis 127.0.0.1:6379;
    history_new_visitor_expire 0;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "0" in "history_new_visitor_expire" directive, it must be a positive time



=== TEST 5: history_new_visitor_expire that is not a time
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_new_visitor_expire soon;
        return 200;
    }
--- must_die
--- error_log
invalid value "soon" in "history_new_visitor_expire" directive, it must be a positive time



=== TEST 6: history_new_visitor_expire twice
--- http_config
    history_redis 127.0.0.1:6379;
    history_new_visitor_expire 10m;
    history_new_visitor_expire 1h;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_new_visitor_expire" directive is duplicate



=== TEST 7: history_cookie with both httponly and nohttponly
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid httponly nohttponly;
    }
--- must_die
--- error_log
"httponly" and "nohttponly" contradict each other in "history_cookie" directive



=== TEST 8: history_cookie with both samesite= and nosamesite
--- http_config
    history_redis 127.0.0.1:6379;
--- config
    location = /t {
        history_cookie vid samesite=strict nosamesite;
    }
--- must_die
--- error_log
"samesite=" and "nosamesite" contradict each other in "history_cookie" directive
