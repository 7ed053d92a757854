# vi:filetype=perl
#
# A directive that needs history_redis, without history_redis in the http
# block: "nginx -t" fails naming that directive's file and line (not the
# end of the http block).  Directives that are off need nothing, and
# history_redis may come after the directives that need it.

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path remove_tree);

plan skip_all => 'TEST_NGINX_LOAD_MODULES is not set'
    unless $ENV{TEST_NGINX_LOAD_MODULES};

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $root = ($ENV{TEST_NGINX_SERVROOT} || "$ENV{PWD}/t/servroot")
           . '-needs-redis';

remove_tree($root);
make_path("$root/conf", "$root/logs");

# nginx -t on the http block given: (exit status, what it printed)

sub nginx_t {
    my ($http, %files) = @_;

    for my $name (keys %files) {
        open my $fh, '>', "$root/conf/$name" or die $!;
        print $fh $files{$name};
        close $fh;
    }

    open my $fh, '>', "$root/conf/nginx.conf" or die $!;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n",
              "error_log logs/error.log;\n",
              "pid logs/nginx.pid;\n",
              "events {}\n",
              "http {\n", $http, "}\n";
    close $fh;

    my $out = `$nginx -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
    return ($? >> 8, $out);
}

# the line of the configuration file that holds the text

sub line_of {
    my ($text, $file) = @_;
    open my $fh, '<', "$root/conf/" . ($file // 'nginx.conf') or die $!;
    while (<$fh>) {
        return $. if index($_, $text) >= 0;
    }
    die "\"$text\" is not in the configuration";
}

my ($rc, $out, $line);

($rc, $out) = nginx_t(<<'END');
    server {
        listen 127.0.0.1:8080;

        location = /a {
            return 200;
        }

        location ~ ^/product/(\d+)$ {
            history_record $1;
            return 200;
        }
    }
END
$line = line_of('history_record');
isnt($rc, 0, 'history_record without history_redis: nginx -t fails');
like($out, qr/\[emerg\] "history_record" needs "history_redis" in the http block in \Q$root\E\/conf\/nginx\.conf:$line\n/,
     "the error names the line of history_record ($line)");

($rc, $out) = nginx_t(<<'END');
    history_cookie vid;

    server {
        listen 127.0.0.1:8080;

        location = /a {
            history_serve;
        }
    }
END
$line = line_of('history_cookie');
isnt($rc, 0, 'history_cookie at http level without history_redis');
like($out, qr/"history_cookie" needs "history_redis" in the http block in \S+nginx\.conf:$line\n/,
     "the first directive that needs it is named, at its line ($line)");

for my $d ('history_fetch on', 'history_last_action on', 'history_count $1',
           'history_views daily', 'history_views', 'history_online',
           'history_stats',
           'history_serve text')
{
    ($rc, $out) = nginx_t(<<"END");
    server {
        listen 127.0.0.1:8080;

        location ~ ^/x/(\\d+)\$ {
            $d;
        }
    }
END
    (my $name = $d) =~ s/ .*//;
    $line = line_of($d);
    like($out, qr/"$name" needs "history_redis" in the http block in \S+nginx\.conf:$line\n/,
         "$name: named at line $line");
}

($rc, $out) = nginx_t(<<'END', 'product.conf' => <<'INC');
    server {
        listen 127.0.0.1:8080;
        include product.conf;
    }
END
location ~ ^/product/(\d+)$ {

    history_record $1;
}
INC
$line = line_of('history_record', 'product.conf');
like($out, qr/"history_record" needs "history_redis" in the http block in \S+\/product\.conf:$line\n/,
     "in an included file, the file and line are that file's ($line)");

($rc, $out) = nginx_t(<<'END');
    history_cookie off;
    history_fetch off;
    history_last_action off;

    server {
        listen 127.0.0.1:8080;
    }
END
is($rc, 0, 'the directives that are off need no history_redis')
    or diag($out);

($rc, $out) = nginx_t(<<'END');
    server {
        listen 127.0.0.1:8080;

        location ~ ^/product/(\d+)$ {
            history_record $1;
        }
    }

    history_redis 127.0.0.1:6379;
END
is($rc, 0, 'history_redis after the directives that need it')
    or diag($out);

remove_tree($root);

done_testing();
