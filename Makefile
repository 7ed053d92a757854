#
# ngx_http_history_module
#
#   make               build build/ngx_http_history_module.so for Debian's nginx
#   make deps          install the Debian packages needed (as root, via apt-get)
#   make test          run the test suite (prove) against a private Redis
#   make run           start a demo: Redis + nginx with examples/nginx.conf
#   make stop          stop the demo
#   make clean         remove build/
#
#   make SAN=1 ...     build with AddressSanitizer and UBSan
#   make CFLAGS=...    extra compiler flags (LDFLAGS=... for the linker)
#   make test TESTS=t/010-record.t
#   make test-valgrind   the read path under valgrind (memcheck)
#   make test-upstream-build NGINX_SRC=/path/to/nginx-1.x
#
# The module is built against Debian's nginx through the nginx-dev package:
# /usr/share/nginx/src holds the headers and the configure script of the
# nginx in /usr/sbin/nginx, and conf_flags, the configure arguments that
# nginx was built with.  That tree is copied into build/nginx and configured
# there with --add-dynamic-module; only the module is compiled.
#

SHELL :=            /bin/bash
.SHELLFLAGS :=      -eu -o pipefail -c
.DEFAULT_GOAL :=    build
.DELETE_ON_ERROR:

# the directory of this Makefile, so "make -C" and "make -f" work too
TOP :=              $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

MODULE =            ngx_http_history_module
BUILD =             $(TOP)/build
SO =                $(BUILD)/$(MODULE).so

# the module sources; any change rebuilds the module, a change of "config"
# (or of the compiler flags) re-runs nginx's configure
SOURCES =           $(wildcard $(TOP)/*.c $(TOP)/*.h)

NGX_DEB_SRC =       /usr/share/nginx/src
NGX_DIR =           $(BUILD)/nginx
NGINX ?=            /usr/sbin/nginx

# nginx reads an environment variable NGINX (inherited sockets): never pass it
unexport NGINX


# Compiler and linker flags, passed to configure as --with-cc-opt and
# --with-ld-opt.  The defaults are Debian's hardening flags, as used for
# Debian's own nginx modules.  nginx's configure adds "-W -Wall -Werror"
# itself, so the build is warnings-as-errors by default.

NGX_CC_OPT ?=       -O2 -fstack-protector-strong -Wformat \
                    -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2
NGX_LD_OPT ?=       -Wl,-z,relro -Wl,-z,now -fPIC

SAN ?=
ifeq ($(SAN),1)
SAN_OPT =           -fsanitize=address,undefined -fno-omit-frame-pointer
endif

CC_OPT =            $(strip $(NGX_CC_OPT) $(SAN_OPT) $(CFLAGS))
LD_OPT =            $(strip $(NGX_LD_OPT) $(SAN_OPT) $(LDFLAGS))

# nginx's configure replaces its own flags (-Werror included) with CFLAGS
# from the environment: flags only reach it through --with-cc-opt
unexport CFLAGS LDFLAGS CPPFLAGS

# "make CC=clang" is passed on as --with-cc
ifneq ($(filter command line environment,$(origin CC)),)
WITH_CC =           --with-cc=$(CC)
endif

CONFIGURE_OPT =     $(WITH_CC) --with-cc-opt='$(CC_OPT)' --with-ld-opt='$(LD_OPT)'

# hiredis outside the system paths: HIREDIS_INC=/opt/hiredis/include
# HIREDIS_LIB=/opt/hiredis/lib, read by "config"
HIREDIS_INC ?=
HIREDIS_LIB ?=
export HIREDIS_INC HIREDIS_LIB

# command line variables (SAN=1, CFLAGS=...) are not for nginx's objs/Makefile
MAKEOVERRIDES =


# Debian packages: to build, to run the demo and to run the tests

DEPS_PKGS =         gcc libc6-dev make \
                    nginx nginx-dev libhiredis-dev libpcre2-dev libssl-dev \
                    zlib1g-dev redis-server redis-tools curl
# procps: pgrep, for the tests that watch nginx's processes;
# python3-redis: for examples/flush_counts.py and its test;
# wrk: for the faults under load (t/130-load.t)
TEST_PKGS =         libtest-base-perl libtext-diff-perl liburi-perl \
                    libwww-perl libredis-perl procps \
                    python3 python3-redis wrk


# tests

TESTS ?=            t
PROVE ?=            prove
PROVE_FLAGS ?=
TEST_NGINX_LIB ?=
TEST_NGINX_REDIS_PORT ?= 16379
TEST_NGINX_BINARY ?= $(if $(SAN_OPT),$(TOP)/scripts/nginx-san,$(NGINX))
export NGINX_SAN_BINARY = $(NGINX)
TEST_REDIS_DIR =    $(BUILD)/redis-test

# upstream Test::Nginx (TEST_NGINX_LIB) comes first, then our t/lib
empty =
space =             $(empty) $(empty)
TEST_PERL5LIB =     $(subst $(space),:,$(strip \
                        $(abspath $(TEST_NGINX_LIB)) $(TOP)/t/lib $(PERL5LIB)))


# the demo

RUN_DIR =           $(BUILD)/run
RUN_HOST ?=         127.0.0.1
RUN_PORT ?=         8080
RUN_REDIS_PORT ?=   16380
RUN_NGINX ?=        $(if $(SAN_OPT),$(TOP)/scripts/nginx-san,$(NGINX))


.PHONY: all build deps test test-valgrind test-upstream-build run stop clean \
        help FORCE

all: build

build: deps $(SO)

help:
	@sed -n '3,14s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))


deps:
	@$(TOP)/scripts/deps.sh $(DEPS_PKGS) $(TEST_PKGS)


# The configure flags in a file that changes only when they do, so that a
# build with other flags (SAN=1, CFLAGS=...) re-runs configure.

$(BUILD)/configure.opt: FORCE
	@mkdir -p $(@D)
	@opt=$(call quote,$(CONFIGURE_OPT) HIREDIS_INC=$(HIREDIS_INC) HIREDIS_LIB=$(HIREDIS_LIB)); \
	if [ "$$opt" != "$$(cat $@ 2>/dev/null)" ]; then \
	    printf '%s\n' "$$opt" > $@; \
	fi

quote = '$(subst ','\'',$(1))'


# A fresh copy of Debian's nginx tree, configured with the module.

$(NGX_DIR)/objs/Makefile: $(TOP)/config $(BUILD)/configure.opt | deps
	rm -rf $(NGX_DIR)
	cp -R $(NGX_DEB_SRC) $(NGX_DIR)
	@echo "cd $(NGX_DIR) && ./configure \$${NGX_CONF_FLAGS[@]}" \
	      "$(CONFIGURE_OPT) --add-dynamic-module=$(TOP) > ../configure.log"
	@cd $(NGX_DIR) && source ./conf_flags \
	&& if ! ./configure "$${NGX_CONF_FLAGS[@]}" $(CONFIGURE_OPT) \
	                    --add-dynamic-module=$(TOP) \
	                    > $(BUILD)/configure.log 2>&1; \
	   then \
	       tail -n 30 $(BUILD)/configure.log; \
	       echo "configure failed: see $(BUILD)/configure.log" \
	            "and $(NGX_DIR)/objs/autoconf.err"; \
	       rm -f objs/Makefile; exit 1; \
	   fi
	@grep -i 'hiredis' $(BUILD)/configure.log || true


$(SO): $(NGX_DIR)/objs/Makefile $(SOURCES) | deps
	$(MAKE) -C $(NGX_DIR) -f objs/Makefile modules
	cp $(NGX_DIR)/objs/$(MODULE).so $@


# Tests run with prove against Debian's nginx (TEST_NGINX_BINARY) and a
# private Redis on TEST_NGINX_REDIS_PORT, which is stopped whatever the
# outcome; the exit status is prove's.

test: build
	@trap '$(TOP)/scripts/redis.sh stop $(TEST_REDIS_DIR)' EXIT; \
	trap 'exit 130' INT TERM; \
	$(TOP)/scripts/redis.sh start $(TEST_REDIS_DIR) $(TEST_NGINX_REDIS_PORT); \
	export PERL5LIB='$(TEST_PERL5LIB)' \
	       TEST_NGINX_BINARY='$(TEST_NGINX_BINARY)' \
	       TEST_NGINX_LOAD_MODULES='$(SO)' \
	       TEST_NGINX_REDIS_PORT='$(TEST_NGINX_REDIS_PORT)'; \
	echo "prove: PERL5LIB=$$PERL5LIB TEST_NGINX_BINARY=$$TEST_NGINX_BINARY"; \
	$(PROVE) $(PROVE_FLAGS) -r $(TESTS)


# The benchmark (bench/run.sh, docs/performance.md): the module against
# plain nginx and the Django view, on 127.0.0.1, ports 18000-18999.
#
#   make bench                      everything, about 10 minutes
#   make bench BENCH_QUICK=1        a short run, about 3 minutes
#   make bench BENCH_SECTIONS='write callgrind'
#   make bench BENCH_BASE=e247102   also the module of an earlier commit
#
# BENCH_BASE names a commit of this repository: its tree is extracted
# (git archive) into build/bench-base/<commit>/src, its module built there
# by that tree's own "make build" (the same CFLAGS, LDFLAGS, SAN, CC), and
# bench/run.sh runs it as a third side, "base", next to "module" and
# "plain" (BENCH_BASE_SO).

BENCH_PKGS =        wrk gunicorn python3-django python3-redis gnuplot-nox \
                    valgrind linux-perf
BENCH_QUICK ?=      0
BENCH_SECTIONS ?=
BENCH_BASE ?=
BENCH_BASE_DIR =    $(BUILD)/bench-base

.PHONY: bench

bench: build
	@$(TOP)/scripts/deps.sh $(BENCH_PKGS)
	@base_so=; base_rev=; \
	if [ -n $(call quote,$(BENCH_BASE)) ]; then \
	    base_rev=$$(git -C $(TOP) rev-parse --verify --quiet \
	                    $(call quote,$(BENCH_BASE))^{commit}) \
	    || { echo "bench: BENCH_BASE="$(call quote,$(BENCH_BASE))":" \
	              "not a commit of this repository" >&2; exit 1; }; \
	    dir=$(BENCH_BASE_DIR)/$$base_rev; \
	    if [ ! -f $$dir/extracted ]; then \
	        rm -rf $$dir; mkdir -p $$dir/src; \
	        git -C $(TOP) archive $$base_rev | tar -x -C $$dir/src; \
	        touch $$dir/extracted; \
	    fi; \
	    echo "bench: the base, $$base_rev, built in $$dir/src"; \
	    $(MAKE) -C $$dir/src build CFLAGS=$(call quote,$(CFLAGS)) \
	        LDFLAGS=$(call quote,$(LDFLAGS)); \
	    base_so=$$dir/src/build/$(MODULE).so; \
	fi; \
	BENCH_QUICK='$(BENCH_QUICK)' NGINX_BIN='$(NGINX)' MODULE_SO='$(SO)' \
	BENCH_BASE_SO="$$base_so" BENCH_BASE_REV="$$base_rev" \
	bash $(TOP)/bench/run.sh $(BENCH_SECTIONS)


# The files where requests wait for Redis, under valgrind's memcheck: a
# block fails on any error whose stack mentions the module.

VALGRIND_TESTS ?=   t/070-serve.t t/080-fetch-cookie.t t/085-abort.t \
                    t/090-online.t t/095-views.t

test-valgrind: build
	@$(TOP)/scripts/deps.sh valgrind
	@$(MAKE) -f $(firstword $(MAKEFILE_LIST)) test \
	    TESTS='$(VALGRIND_TESTS)' TEST_NGINX_USE_VALGRIND=1


# Builds the module against an upstream nginx source tree (a directory or
# a .tar.gz from nginx.org), to check that it does not depend on Debian's
# build.  The tree is copied into build/upstream; the source is not touched.
#
#   make test-upstream-build NGINX_SRC=/path/to/nginx-1.26.2

NGINX_SRC ?=
UPSTREAM_DIR =      $(BUILD)/upstream

test-upstream-build: | deps
ifeq ($(NGINX_SRC),)
	@echo "test-upstream-build: skipped, NGINX_SRC is not set" \
	      "(make test-upstream-build NGINX_SRC=/path/to/nginx-1.x)"
else
	rm -rf $(UPSTREAM_DIR)
	mkdir -p $(UPSTREAM_DIR)
	if [ -d '$(abspath $(NGINX_SRC))' ]; then \
	    cp -R '$(abspath $(NGINX_SRC))/.' $(UPSTREAM_DIR); \
	else \
	    tar -xzf '$(abspath $(NGINX_SRC))' -C $(UPSTREAM_DIR) \
	        --strip-components=1; \
	fi
	cd $(UPSTREAM_DIR) && ./configure --with-compat $(CONFIGURE_OPT) \
	                                  --add-dynamic-module=$(TOP)
	$(MAKE) -C $(UPSTREAM_DIR) -f objs/Makefile modules
	@echo "built $(UPSTREAM_DIR)/objs/$(MODULE).so"
endif


# The demo: see examples/nginx.conf and scripts/demo.sh.

run: build
	@RUN_DIR='$(RUN_DIR)' RUN_HOST='$(RUN_HOST)' RUN_PORT='$(RUN_PORT)' \
	RUN_REDIS_PORT='$(RUN_REDIS_PORT)' MODULE='$(SO)' NGINX_BIN='$(RUN_NGINX)' \
	$(TOP)/scripts/demo.sh start

stop:
	@RUN_DIR='$(RUN_DIR)' $(TOP)/scripts/demo.sh stop


clean:
	@if [ -d $(RUN_DIR) ]; then $(TOP)/scripts/demo.sh stop; fi
	@if [ -d $(TEST_REDIS_DIR) ]; then \
	    $(TOP)/scripts/redis.sh stop $(TEST_REDIS_DIR); fi
	rm -rf $(BUILD)
