# vi:filetype=perl

use Test::Nginx::Socket 'no_plan';
use HistoryTest;

run_tests();

__DATA__

=== TEST 1: history_stats counts what the link did, per worker and in total
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /_history {
        history_serve;
    }

    location = /stats {
        history_stats;
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /_history", "GET /stats"]
--- more_headers
Cookie: sessionid=abc
--- response_body_like eval
["product 1", "product 2", '\["2","1"\]',
 qr/^\{"workers":\[\{"worker":0,"pid":\d+,"connected":1,"queue":0,"queued":3,"sent":3,"replied":3,"errors":0,"dropped":0,"failed":0,"connects":1,"reads":1,"fallbacks":0,"resent":0,"redirected":0,"tls":0,"tls_handshakes":0,"tls_reused":0,"tls_failures":0\}\],"total":\{"connected":1,"queue":0,"queued":3,"sent":3,"replied":3,"errors":0,"dropped":0,"failed":0,"connects":1,"reads":1,"fallbacks":0,"resent":0,"redirected":0,"tls":0,"tls_handshakes":0,"tls_reused":0,"tls_failures":0\}\}$/]
--- no_error_log
[error]



=== TEST 2: a read shared by history_fetch and history_serve counts once
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /both {
        history_fetch on;
        history_serve;
    }

    location = /stats {
        history_stats;
    }
--- pipelined_requests eval
["GET /product/1", "GET /both", "GET /both", "GET /stats"]
--- more_headers
Cookie: sessionid=abc
--- response_body_like eval
["product 1", '\["1"\]', '\["1"\]', qr/"total":\{[^}]*"reads":2,"fallbacks":0,"resent":0,"redirected":0,"tls":0,"tls_handshakes":0,"tls_reused":0,"tls_failures":0\}/]
--- no_error_log
[error]



=== TEST 3: in Prometheus' text format
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /stats {
        history_stats;
    }
--- pipelined_requests eval
["GET /product/1", "GET /stats?format=prometheus"]
--- more_headers
Cookie: sessionid=abc
--- response_headers eval
["", "Content-Type: text/plain; version=0.0.4"]
--- response_body_like eval
["product 1",
 qr/# TYPE nginx_history_redis_connected gauge\nnginx_history_redis_connected\{worker="0",pid="\d+"\} 1\n.*# TYPE nginx_history_commands_queued_total counter\nnginx_history_commands_queued_total\{worker="0",pid="\d+"\} 1\n.*nginx_history_fallbacks_total\{worker="0",pid="\d+"\} 0\n.*nginx_history_commands_redirected_total\{worker="0",pid="\d+"\} 0\n.*# TYPE nginx_history_redis_tls gauge\n.*nginx_history_tls_failures_total\{worker="0",pid="\d+"\} 0\n$/s]
--- no_error_log
[error]



=== TEST 4: Redis away: reads given the fallback and drops are counted
--- http_config
    history_redis 127.0.0.1:1 queue=2;
--- config
    location ~ ^/product/(\d+)$ {
        history_record $1;
        return 200 "product $1\n";
    }

    location = /_history {
        history_serve;
    }

    location = /stats {
        history_stats;
    }
--- pipelined_requests eval
["GET /product/1", "GET /product/2", "GET /product/3", "GET /product/4",
 "GET /product/5", "GET /_history", "GET /stats"]
--- more_headers
Cookie: sessionid=abc
--- response_body_like eval
["product 1", "product 2", "product 3", "product 4", "product 5", '\[\]',
 qr/"total":\{"connected":0,"queue":2,"queued":5,"sent":0,"replied":0,"errors":0,"dropped":3,"failed":0,"connects":\d+,"reads":1,"fallbacks":1,"resent":0,"redirected":0,"tls":0,"tls_handshakes":0,"tls_reused":0,"tls_failures":0\}/]
--- no_error_log
[alert]
[crit]
