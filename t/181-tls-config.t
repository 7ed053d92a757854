# vi:filetype=perl
#
# TLS settings nginx -t refuses, each naming the directive and the value,
# and those it takes.  The certificates are made by openssl
# (t/lib/RedisTopology.pm) in $TEST_NGINX_TLS_CERTS.

use Test::Nginx::Socket 'no_plan';
use HistoryTest;
use RedisTopology;

BEGIN {
    my $dir = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
              . '-tls-certs';
    make_certs($dir);
    $ENV{TEST_NGINX_TLS_CERTS} = $dir;

    open my $fh, '>', "$dir/garbage.crt" or die $!;
    print $fh "-----BEGIN CERTIFICATE-----\nnot base64\n"
              . "-----END CERTIFICATE-----\n";
    close $fh;
}

run_tests();

__DATA__

=== TEST 1: verify is on by default: without a CA, an error that says so
--- http_config
    history_redis 127.0.0.1:6380 tls;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_redis_ssl_verify" is on but no "history_redis_ssl_trusted_certificate" is set



=== TEST 2: tls on a unix socket
--- http_config
    history_redis unix:/tmp/redis.sock tls;
    history_redis_ssl_verify off;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"tls" in "history_redis" directive is for TCP, not the unix socket "unix:/tmp/redis.sock"



=== TEST 2b: tls with Sentinel, not yet
--- http_config
    history_redis 127.0.0.1:26379 sentinel=mymaster tls;
    history_redis_ssl_verify off;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"tls" in "history_redis" directive does not work with "sentinel=" yet



=== TEST 3: a trusted CA file that does not exist
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate /nonexistent/ca.crt;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "/nonexistent/ca.crt" in "history_redis_ssl_trusted_certificate" directive



=== TEST 4: a trusted CA file that is not a certificate
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/garbage.crt;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log eval
qr{invalid value "\S+/garbage\.crt" in "history_redis_ssl_trusted_certificate" directive}



=== TEST 5: a key without a certificate
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_certificate_key $TEST_NGINX_TLS_CERTS/client.key;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log eval
qr{"history_redis_ssl_certificate_key" "\S+/client\.key" is set but no "history_redis_ssl_certificate"}



=== TEST 6: a certificate without a key
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_certificate $TEST_NGINX_TLS_CERTS/client.crt;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log eval
qr{"history_redis_ssl_certificate" "\S+/client\.crt" is set but no "history_redis_ssl_certificate_key"}



=== TEST 7: a key that cannot be read
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_certificate $TEST_NGINX_TLS_CERTS/client.crt;
    history_redis_ssl_certificate_key $TEST_NGINX_TLS_CERTS/missing.key;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log eval
qr{invalid value "\S+/client\.crt" in "history_redis_ssl_certificate" and "history_redis_ssl_certificate_key" directive}



=== TEST 8: a key that is not the certificate's
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_certificate $TEST_NGINX_TLS_CERTS/client.crt;
    history_redis_ssl_certificate_key $TEST_NGINX_TLS_CERTS/server.key;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log eval
qr{invalid value "\S+/client\.crt" in "history_redis_ssl_certificate" and "history_redis_ssl_certificate_key" directive}



=== TEST 9: an unknown protocol
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_protocols TLSv1.2 TLSv9;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "TLSv9"



=== TEST 10: ciphers OpenSSL does not know
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_ciphers NO-SUCH-CIPHER;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "NO-SUCH-CIPHER" in "history_redis_ssl_ciphers" directive



=== TEST 11: a bad verify
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_verify maybe;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
invalid value "maybe" in "history_redis_ssl_verify" directive



=== TEST 12: a bad verify depth
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_verify_depth deep;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_redis_ssl_verify_depth" directive invalid number



=== TEST 13: TLS settings in a server block
--- http_config
    history_redis 127.0.0.1:6380 tls;
    history_redis_ssl_verify off;
--- config
    history_redis_ssl_name redis.example;
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"history_redis_ssl_name" directive is not allowed here



=== TEST 14: every setting taken: the configuration loads, pages are served
--- http_config
    history_redis 127.0.0.1:6380 tls password=secret;
    history_redis_ssl_verify on;
    history_redis_ssl_verify_depth 2;
    history_redis_ssl_trusted_certificate $TEST_NGINX_TLS_CERTS/ca.crt;
    history_redis_ssl_name localhost;
    history_redis_ssl_server_name on;
    history_redis_ssl_certificate $TEST_NGINX_TLS_CERTS/client.crt;
    history_redis_ssl_certificate_key $TEST_NGINX_TLS_CERTS/client.key;
    history_redis_ssl_protocols TLSv1.2 TLSv1.3;
    history_redis_ssl_ciphers HIGH:!aNULL;
    history_redis_ssl_session_reuse off;
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log
[emerg]
[alert]



=== TEST 15: the TLS settings without "tls" are not checked: plain TCP
--- http_config
    history_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    history_redis_ssl_certificate_key /nonexistent/client.key;
--- config
    location = /t {
        history_key $arg_v;
        history_record 5;
        return 200 "ok\n";
    }
--- request
GET /t?v=plain
--- response_body
ok
--- redis
LRANGE history:plain 0 -1 => 5
--- no_error_log
[emerg]
[error]



=== TEST 17: tls with a unix socket among a cluster's seeds
--- http_config
    history_redis 127.0.0.1:7000 unix:/tmp/redis.sock cluster tls;
    history_redis_ssl_verify off;
--- config
    location = /t {
        return 200;
    }
--- must_die
--- error_log
"tls" in "history_redis" directive is for TCP, not the unix socket "unix:/tmp/redis.sock"
