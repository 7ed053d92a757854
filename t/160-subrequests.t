# vi:filetype=perl
#
# Subrequests never record a view, count one or write the last action,
# whatever log_subrequest says: an SSI include, an auth_request subrequest
# and a mirror subrequest of a location with history_record, history_count
# and history_last_action leave nothing in Redis.  The main request, which
# records one view, is logged after its subrequests and writes on the same
# connection, so once its view is in Redis a subrequest's would be too.
# Reads in subrequests (SSI includes of history_serve) go on working.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: SSI includes, log_subrequest on: only the page records
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest on;

    location ~ ^/page/(\d+)$ {
        ssi on;
        default_type text/html;
        history_record $1;
        return 200 '<!--# include virtual="/product/5" -->|<!--# include virtual="/_history" -->';
    }

    location ~ ^/product/(\d+)$ {
        history_record $1;
        history_count $1 daily unique;
        history_last_action on;
        return 200 "product $1";
    }

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 3
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body chop
product 5|["3"]
--- redis
LRANGE history:abc 0 -1 => 1 3
KEYS * => history:abc
--- no_error_log
[error]



=== TEST 2: SSI includes, log_subrequest off: the same
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest off;

    location ~ ^/page/(\d+)$ {
        ssi on;
        default_type text/html;
        history_record $1;
        return 200 '<!--# include virtual="/product/5" -->|<!--# include virtual="/_history" -->';
    }

    location ~ ^/product/(\d+)$ {
        history_record $1;
        history_count $1 daily unique;
        history_last_action on;
        return 200 "product $1";
    }

    location = /_history {
        history_serve;
    }
--- redis_init
RPUSH history:abc 3
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body chop
product 5|["3"]
--- redis
LRANGE history:abc 0 -1 => 1 3
KEYS * => history:abc
--- no_error_log
[error]



=== TEST 3: auth_request, log_subrequest on: the subrequest records nothing
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest on;

    location ~ ^/page/(\d+)$ {
        auth_request /auth;
        history_record $1;
        try_files /page.html =404;
    }

    location = /auth {
        internal;
        history_record 9;
        history_count 9 daily unique;
        history_last_action on;
        return 200;
    }
--- user_files
>>> page.html
page
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body
page
--- redis
LRANGE history:abc 0 -1 => 1
KEYS * => history:abc
--- no_error_log
[error]



=== TEST 4: auth_request, log_subrequest off: the same
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest off;

    location ~ ^/page/(\d+)$ {
        auth_request /auth;
        history_record $1;
        try_files /page.html =404;
    }

    location = /auth {
        internal;
        history_record 9;
        history_count 9 daily unique;
        history_last_action on;
        return 200;
    }
--- user_files
>>> page.html
page
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body
page
--- redis
LRANGE history:abc 0 -1 => 1
KEYS * => history:abc
--- no_error_log
[error]



=== TEST 5: mirror, log_subrequest on: the mirrored request records nothing
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest on;

    location ~ ^/page/(\d+)$ {
        mirror /mirror;
        history_record $1;
        try_files /page.html =404;
    }

    location = /mirror {
        internal;
        history_record 8;
        history_count 8 daily unique;
        history_last_action on;
        return 200;
    }
--- user_files
>>> page.html
page
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body
page
--- redis
LRANGE history:abc 0 -1 => 1
KEYS * => history:abc
--- no_error_log
[error]



=== TEST 6: mirror, log_subrequest off: the same
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest off;

    location ~ ^/page/(\d+)$ {
        mirror /mirror;
        history_record $1;
        try_files /page.html =404;
    }

    location = /mirror {
        internal;
        history_record 8;
        history_count 8 daily unique;
        history_last_action on;
        return 200;
    }
--- user_files
>>> page.html
page
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body
page
--- redis
LRANGE history:abc 0 -1 => 1
KEYS * => history:abc
--- no_error_log
[error]



=== TEST 7: the main request still counts and writes its last action
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest on;

    location ~ ^/page/(\d+)$ {
        ssi on;
        default_type text/html;
        history_count $1;
        history_last_action on;
        return 200 '<!--# include virtual="/_history" -->';
    }

    location = /_history {
        history_serve;
        history_count 7;
        history_last_action on;
    }
--- redis_init
RPUSH history:abc 3 2
--- request
GET /page/1
--- more_headers
Cookie: sessionid=abc
--- response_body chop
["3","2"]
--- redis
GET history:views:1 => 1
EXISTS history:views:7 => 0
ZRANGE history:online 0 -1 => abc
EXISTS history:last_action:abc => 1
DBSIZE => 4
--- no_error_log
[error]



=== TEST 8: a history_fetch in a subrequest reads the list for $history
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    log_subrequest on;

    location = /page {
        ssi on;
        default_type text/html;
        return 200 '<!--# include virtual="/recent.html" -->';
    }

    location = /recent.html {
        internal;
        ssi on;
        history_fetch on;
    }
--- user_files
>>> recent.html
recent: <!--# echo var="history" -->
--- redis_init
RPUSH history:abc 3 2
--- request
GET /page
--- more_headers
Cookie: sessionid=abc
--- response_body
recent: 3,2
--- redis
DBSIZE => 1
--- no_error_log
[error]
