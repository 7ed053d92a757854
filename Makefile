#
# ngx_http_history_module
#
#   make               build build/ngx_http_history_module.so for Debian's nginx
#   make run           start a demo shop: Redis + nginx with examples/nginx.conf
#   make stop          stop the demo
#   make test          run the test suite (prove) against a private Redis
#   make test-browser  the demo shop in headless chromium (t/browser/)
#   make deb           the Debian package libnginx-mod-http-history, in
#                      build/deb/, checked with lintian and test-deb
#   make test-deb      load the built package's module into Debian's nginx
#   make test-fresh    README's set-up in a throw-away Debian 12 (debootstrap)
#   make bench         the benchmark (bench/, docs/performance.md)
#   make fuzz          the libFuzzer harnesses, FUZZ_SECONDS (60) each
#   make fuzz-regress  each harness once over its seeds and findings
#                      (more: make -f fuzz/Makefile help)
#   make deps          install the Debian packages of build, run and test
#   make clean         remove build/
#   make help          this text
#
#   make SAN=1 ...     build with AddressSanitizer and UBSan
#   make CFLAGS=...    extra compiler flags (LDFLAGS=... for the linker)
#   make test TESTS=t/010-record.t
#   make test-valgrind   the read path under valgrind (memcheck)
#   make test-upstream-build NGINX_SRC=/path/to/nginx-1.x
#   make run RUN_PORT=8081 RUN_REDIS_PORT=16381
#
# Each target installs the Debian packages it needs (as root, or through
# sudo, with apt-get), and says which before it does.
#
# The module is built against Debian's nginx through nginx-dev's tree:
# /usr/share/nginx/src holds the headers and the configure script of the
# nginx in /usr/sbin/nginx, and conf_flags, the configure arguments that
# nginx was built with.  That tree (from the installed nginx-dev, or from
# its .deb, unpacked without installing it: scripts/nginx-dev.sh) is
# copied into build/nginx and configured there with --add-dynamic-module;
# only the module is compiled.
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

# /usr/share/nginx/src when nginx-dev is installed, else nginx-dev's tree
# unpacked in build/nginx-dev
NGX_DEB_SRC ?=
NGX_DEV_DIR =       $(BUILD)/nginx-dev
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


# Debian packages, per target: each target installs what it needs and no
# more (scripts/deps.sh says what before installing).  "make deps" installs
# those of build, run and test at once.

# the module: Debian's nginx, and the libraries of the flags it was built
# with (conf_flags); nginx-dev's tree is used without installing it
# (scripts/nginx-dev.sh)
BUILD_PKGS =        gcc libc6-dev make \
                    nginx libhiredis-dev libpcre2-dev libssl-dev zlib1g-dev
# the demo: a private Redis; redis-cli and curl for what it prints to try
RUN_PKGS =          redis-server redis-tools curl
# procps: pgrep, for the tests that watch nginx's processes;
# python3-redis: for examples/flush_counts.py and its test;
# wrk: for the faults under load (t/proc/130-load.t)
TEST_PKGS =         redis-server redis-tools curl \
                    libtest-base-perl libtext-diff-perl liburi-perl \
                    libwww-perl libredis-perl procps \
                    python3 python3-redis wrk
# the package (debian/): Debian's tools, the build dependencies of
# debian/control, and lintian
DEB_PKGS =          build-essential dpkg-dev debhelper fakeroot lintian \
                    nginx-dev libhiredis-dev
# the package's test: Debian's nginx and a private Redis
DEB_TEST_PKGS =     nginx redis-server redis-tools curl
# the browser test: Debian's chromium, driven by chromedriver from Python
BROWSER_PKGS =      chromium chromium-driver python3 python3-selenium \
                    fonts-dejavu-core

DEPS =              $(TOP)/scripts/deps.sh
GOAL =              make$(if $(MAKECMDGOALS), $(firstword $(MAKECMDGOALS)))


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


.PHONY: all build deps deps-build test test-valgrind test-upstream-build run \
        stop clean help FORCE

all: build

build: deps-build $(SO)

# the fuzzing harnesses have a Makefile of their own (fuzz/Makefile)

.PHONY: fuzz fuzz-regress

fuzz:
	@$(MAKE) -f $(TOP)/fuzz/Makefile run \
	    $(if $(FUZZ_SECONDS),FUZZ_SECONDS=$(FUZZ_SECONDS)) \
	    $(if $(FUZZERS),FUZZERS='$(FUZZERS)')

fuzz-regress:
	@$(MAKE) -f $(TOP)/fuzz/Makefile regress

help:
	@sed -n '4,/^# Each target/{/^# Each target/d;s/^# \{0,1\}//p;}' \
	    $(firstword $(MAKEFILE_LIST))


deps:
	@$(DEPS) --for 'make deps' $(sort $(BUILD_PKGS) $(RUN_PKGS) $(TEST_PKGS))

deps-build:
	@$(DEPS) --for '$(GOAL) (to build the module)' $(BUILD_PKGS)


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

$(NGX_DIR)/objs/Makefile: $(TOP)/config $(BUILD)/configure.opt | deps-build
	rm -rf $(NGX_DIR)
	@src='$(NGX_DEB_SRC)'; \
	if [ -z "$$src" ]; then \
	    src=$$($(TOP)/scripts/nginx-dev.sh $(NGX_DEV_DIR)); fi; \
	echo "cp -R $$src $(NGX_DIR)"; \
	cp -R "$$src" $(NGX_DIR)
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


$(SO): $(NGX_DIR)/objs/Makefile $(SOURCES) | deps-build
	$(MAKE) -C $(NGX_DIR) -f objs/Makefile modules
	cp $(NGX_DIR)/objs/$(MODULE).so $@


# Tests run with prove against Debian's nginx (TEST_NGINX_BINARY) and a
# private Redis on TEST_NGINX_REDIS_PORT, which is stopped whatever the
# outcome; the exit status is prove's.

test: build
	@$(DEPS) --for 'make test' $(TEST_PKGS)
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
	@$(DEPS) --for 'make bench' $(BENCH_PKGS)
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
	@$(DEPS) --for 'make test-valgrind' valgrind
	@$(MAKE) -f $(firstword $(MAKEFILE_LIST)) test \
	    TESTS='$(VALGRIND_TESTS)' TEST_NGINX_USE_VALGRIND=1


# Builds the module against an upstream nginx source tree (a directory or
# a .tar.gz from nginx.org), to check that it does not depend on Debian's
# build.  The tree is copied into build/upstream; the source is not touched.
#
#   make test-upstream-build NGINX_SRC=/path/to/nginx-1.26.2

NGINX_SRC ?=
UPSTREAM_DIR =      $(BUILD)/upstream

test-upstream-build: | deps-build
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
	@$(DEPS) --for 'make run' $(RUN_PKGS)
	@RUN_DIR='$(RUN_DIR)' RUN_HOST='$(RUN_HOST)' RUN_PORT='$(RUN_PORT)' \
	RUN_REDIS_PORT='$(RUN_REDIS_PORT)' MODULE='$(SO)' NGINX_BIN='$(RUN_NGINX)' \
	$(TOP)/scripts/demo.sh start

stop:
	@RUN_DIR='$(RUN_DIR)' $(TOP)/scripts/demo.sh stop


# The Debian package (debian/): built from a copy of the tree in build/deb/
# with dpkg-buildpackage and dh-sequence-nginx, checked with lintian (no
# errors), then test-deb: the .deb unpacked with dpkg-deb -x, its module
# loaded by Debian's nginx through the package's snippet, a view recorded
# and served through a private Redis.

DEB_DIR =           $(BUILD)/deb
DEB_TEST_PORT ?=    18093
DEB_TEST_REDIS_PORT ?= 18094

.PHONY: deb test-deb

deb:
	@$(DEPS) --for 'make deb' $(DEB_PKGS)
	@$(TOP)/scripts/deb.sh $(DEB_DIR)
	@$(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory test-deb

test-deb:
	@$(DEPS) --for 'make test-deb' $(DEB_TEST_PKGS)
	@deb=$$(ls $(DEB_DIR)/libnginx-mod-http-history_*_$$(dpkg --print-architecture).deb 2>/dev/null | tail -n 1); \
	if [ -z "$$deb" ]; then echo "test-deb: no package in $(DEB_DIR): make deb" >&2; exit 1; fi; \
	DEB_TEST_DIR='$(BUILD)/deb-test' DEB_TEST_PORT='$(DEB_TEST_PORT)' \
	DEB_TEST_REDIS_PORT='$(DEB_TEST_REDIS_PORT)' NGINX_BIN='$(NGINX)' \
	$(TOP)/scripts/test-deb.sh "$$deb"


# The demo shop in headless chromium (t/browser/shop.py): a demo of its
# own, on BROWSER_PORT, with an empty Redis on BROWSER_REDIS_PORT;
# screenshots in build/browser/screenshots/.

BROWSER_PORT ?=     18090
BROWSER_REDIS_PORT ?= 18091
BROWSER_DRIVER_PORT ?= 18092

.PHONY: test-browser

test-browser: build
	@$(DEPS) --for 'make test-browser' $(RUN_PKGS) $(BROWSER_PKGS)
	@BROWSER_DIR='$(BUILD)/browser' BROWSER_PORT='$(BROWSER_PORT)' \
	BROWSER_REDIS_PORT='$(BROWSER_REDIS_PORT)' \
	BROWSER_DRIVER_PORT='$(BROWSER_DRIVER_PORT)' \
	MODULE='$(SO)' NGINX_BIN='$(RUN_NGINX)' \
	$(TOP)/scripts/test-browser.sh


# README's set-up on a fresh Debian 12 made with debootstrap (as root; it
# downloads a base system: not in CI).  The ports given to make here are
# passed on to the steps in that root.

.PHONY: test-fresh

test-fresh:
	@RUN_PORT='$(RUN_PORT)' RUN_REDIS_PORT='$(RUN_REDIS_PORT)' \
	TEST_NGINX_REDIS_PORT='$(TEST_NGINX_REDIS_PORT)' \
	BROWSER_PORT='$(BROWSER_PORT)' BROWSER_REDIS_PORT='$(BROWSER_REDIS_PORT)' \
	BROWSER_DRIVER_PORT='$(BROWSER_DRIVER_PORT)' \
	DEB_TEST_PORT='$(DEB_TEST_PORT)' DEB_TEST_REDIS_PORT='$(DEB_TEST_REDIS_PORT)' \
	$(TOP)/scripts/test-fresh.sh


clean:
	@if [ -d $(RUN_DIR) ]; then $(TOP)/scripts/demo.sh stop; fi
	@if [ -d $(TEST_REDIS_DIR) ]; then \
	    $(TOP)/scripts/redis.sh stop $(TEST_REDIS_DIR); fi
	rm -rf $(BUILD)
