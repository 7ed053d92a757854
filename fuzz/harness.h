
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * What the libFuzzer harnesses share.  A harness includes the module's
 * header first (the functions it calls are the ones the module's files
 * share), then this file, and is linked with the module's objects:
 *
 *     #include "../ngx_http_history_module.h"
 *     #include "harness.h"
 *
 * It gives a minimal nginx world built from nginx's own objects: a cycle
 * and a log (ngx_cycle, ngx_time_init(), ngx_strerror_init()), the posted
 * events queue, the module's main and location configurations, and a fake
 * request per input: a fresh pool from ngx_create_pool(), a connection,
 * r->args, r->ctx.
 *
 * nginx is configured with --with-debug, so the module's debug logging
 * runs too, and with -DNGX_DEBUG_PALLOC=1, so that every pool allocation
 * is a malloc() of its own and AddressSanitizer sees an overflow past any
 * of them.  The log goes to /dev/null; FUZZ_LOG=1 sends it to stderr.
 */


#ifndef _NGX_HTTP_HISTORY_FUZZ_HARNESS_H_INCLUDED_
#define _NGX_HTTP_HISTORY_FUZZ_HARNESS_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>


#if !(NGX_DEBUG_PALLOC)
#warning "nginx without NGX_DEBUG_PALLOC: overflows inside a pool go unseen"
#endif


/* an invariant broken: say which, show the input's size, and abort */

#define FUZZ_CHECK(cond, ...)                                                 \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "\nINVARIANT FAILED at %s:%d: %s\n    ",          \
                    __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)


static ngx_log_t                     fuzz_log;
static ngx_open_file_t               fuzz_log_file;
static ngx_cycle_t                   fuzz_cycle;
static ngx_pool_t                   *fuzz_pool;      /* lives on */
static ngx_http_history_main_conf_t  fuzz_hmcf;
static ngx_http_history_loc_conf_t   fuzz_hlcf;
static void                         *fuzz_main_conf[1];
static void                         *fuzz_loc_conf[1];
static void                         *fuzz_srv_conf[1];


/*
 * FUZZ_KNOWN=name,name: findings already reported (see README.md) that a
 * harness should let pass, so that fuzzing can go on past them.
 */

static ngx_uint_t
fuzz_known(const char *name)
{
    char    *v, *p;
    size_t   len;

    v = getenv("FUZZ_KNOWN");
    if (v == NULL) {
        return 0;
    }

    len = strlen(name);

    for (p = v; (p = strstr(p, name)) != NULL; p += len) {
        if ((p == v || p[-1] == ',') && (p[len] == '\0' || p[len] == ',')) {
            return 1;
        }
    }

    return 0;
}


/* FUZZ_LOG=1: the log to stderr */

static ngx_uint_t
fuzz_log_stderr(void)
{
    char  *v;

    v = getenv("FUZZ_LOG");

    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}


static void
fuzz_init(void)
{
    static ngx_uint_t  done;

    if (done) {
        return;
    }

    done = 1;

    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;

    for (ngx_pagesize_shift = 0; (ngx_pagesize >> ngx_pagesize_shift) > 1;
         ngx_pagesize_shift++)
    {
        /* void */
    }

    ngx_time_init();

    fuzz_log_file.fd = fuzz_log_stderr() ? ngx_stderr
                                          : open("/dev/null", O_WRONLY);
    if (fuzz_log_file.fd == NGX_INVALID_FILE) {
        perror("open /dev/null");
        abort();
    }

    ngx_str_set(&fuzz_log_file.name, "fuzz");

    fuzz_log.file = &fuzz_log_file;
    fuzz_log.log_level = NGX_LOG_DEBUG_ALL;

    if (ngx_strerror_init() != NGX_OK) {
        abort();
    }

    fuzz_pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &fuzz_log);
    if (fuzz_pool == NULL) {
        abort();
    }

    fuzz_cycle.pool = fuzz_pool;
    fuzz_cycle.log = &fuzz_log;
    fuzz_cycle.new_log = fuzz_log;
    ngx_cycle = &fuzz_cycle;

    /* only what a level <= NGX_LOG_WARN says still goes to stderr too */
    ngx_use_stderr = fuzz_log_stderr();

    ngx_queue_init(&ngx_posted_events);

    /* the module's confs at r->main_conf[0] and r->loc_conf[0] */
    ngx_http_history_module.ctx_index = 0;
    ngx_http_history_module.index = 0;

    fuzz_main_conf[0] = &fuzz_hmcf;
    fuzz_loc_conf[0] = &fuzz_hlcf;
    fuzz_srv_conf[0] = NULL;

    /* as ngx_http_history_create_loc_conf() and merge would leave them */
    fuzz_hlcf.length = 50;
    fuzz_hlcf.format = NGX_HTTP_HISTORY_FORMAT_JSON;
    fuzz_hlcf.online_timeout = 300;
    fuzz_hlcf.views_flags = 0;
    fuzz_hlcf.id_check = NGX_HTTP_HISTORY_ID_ANY;
}


/*
 * A fake request for one input: its own pool (destroyed by fuzz_done()),
 * a connection with the fuzz log, the module's confs, an empty r->ctx,
 * and args (copied to a buffer of their exact size) as r->args.
 */

static ngx_http_request_t *
fuzz_request(const u_char *args, size_t len)
{
    u_char              *p;
    ngx_pool_t          *pool;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &fuzz_log);
    if (pool == NULL) {
        abort();
    }

    c = ngx_pcalloc(pool, sizeof(ngx_connection_t));
    r = ngx_pcalloc(pool, sizeof(ngx_http_request_t));
    p = ngx_pnalloc(pool, len);

    if (c == NULL || r == NULL || p == NULL) {
        abort();
    }

    c->log = &fuzz_log;
    c->pool = pool;
    c->fd = (ngx_socket_t) -1;

    r->connection = c;
    r->pool = pool;
    r->main = r;
    r->main_conf = fuzz_main_conf;
    r->srv_conf = fuzz_srv_conf;
    r->loc_conf = fuzz_loc_conf;

    r->ctx = ngx_pcalloc(pool, sizeof(void *));
    if (r->ctx == NULL) {
        abort();
    }

    if (len) {
        ngx_memcpy(p, args, len);
    }

    r->args.data = p;
    r->args.len = len;

    return r;
}


static void
fuzz_done(ngx_http_request_t *r)
{
    ngx_destroy_pool(r->pool);
}


/*
 * A JSON value, strictly: objects, arrays, strings (no raw control bytes,
 * only the escapes JSON has), integers, true, false, null.  Bytes >= 0x80
 * are let through as they are: the module does not promise UTF-8.
 * Returns where the value ends, NULL if it is not one.
 */

#define FUZZ_JSON_DEPTH  32

static const u_char *fuzz_json_value(const u_char *p, const u_char *end,
    ngx_uint_t depth);


static const u_char *
fuzz_json_ws(const u_char *p, const u_char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }

    return p;
}


/*
 * The length of the UTF-8 sequence at p, decoded to a code point as RFC
 * 3629 has it (no overlong form, no surrogate, nothing above U+10FFFF),
 * or 0 when p begins none
 */

static size_t
fuzz_utf8_len(const u_char *p, const u_char *end)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (*p < 0x80) {
        return 1;
    }

    if ((*p & 0xe0) == 0xc0) {
        n = 2;
        cp = *p & 0x1f;
        min = 0x80;

    } else if ((*p & 0xf0) == 0xe0) {
        n = 3;
        cp = *p & 0x0f;
        min = 0x800;

    } else if ((*p & 0xf8) == 0xf0) {
        n = 4;
        cp = *p & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (end - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


/*
 * A string; when out is not NULL, its decoded bytes (\uXXXX as UTF-8: the
 * module writes no surrogate) are written there, *outlen of them.
 */

static const u_char *
fuzz_json_string(const u_char *p, const u_char *end, u_char *out,
    size_t *outlen)
{
    u_char      c;
    size_t      n;
    ngx_int_t   v;

    n = 0;

    if (p == end || *p++ != '"') {
        return NULL;
    }

    while (p < end) {
        c = *p++;

        if (c == '"') {
            if (outlen) {
                *outlen = n;
            }

            return p;
        }

        if (c < 0x20) {
            return NULL;
        }

        if (c == '\\') {
            if (p == end) {
                return NULL;
            }

            c = *p++;

            switch (c) {
            case '"': case '\\': case '/':
                break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;

            case 'u':
                if (end - p < 4) {
                    return NULL;
                }

                v = ngx_hextoi((u_char *) p, 4);
                if (v == NGX_ERROR) {
                    return NULL;
                }

                p += 4;

                if (v >= 0xd800 && v <= 0xdfff) {
                    return NULL;    /* the module never writes those */
                }

                if (v > 0x7f) {
                    if (out && v > 0x7ff) {
                        out[n++] = (u_char) (0xe0 | (v >> 12));
                        out[n++] = (u_char) (0x80 | ((v >> 6) & 0x3f));

                    } else if (out) {
                        out[n++] = (u_char) (0xc0 | (v >> 6));
                    }

                    if (out == NULL) {
                        n += (v > 0x7ff) ? 2 : 1;
                    }

                    c = (u_char) (0x80 | (v & 0x3f));
                    break;
                }

                c = (u_char) v;
                break;

            default:
                return NULL;
            }
        }

        if (out) {
            out[n] = c;
        }

        n++;
    }

    return NULL;
}


static const u_char *
fuzz_json_value(const u_char *p, const u_char *end, ngx_uint_t depth)
{
    u_char  close;

    if (depth > FUZZ_JSON_DEPTH) {
        return NULL;
    }

    p = fuzz_json_ws(p, end);

    if (p == end) {
        return NULL;
    }

    switch (*p) {

    case '"':
        return fuzz_json_string(p, end, NULL, NULL);

    case '{':
    case '[':
        close = (*p == '{') ? '}' : ']';
        p = fuzz_json_ws(p + 1, end);

        if (p < end && *p == close) {
            return p + 1;
        }

        for ( ;; ) {
            if (close == '}') {
                p = fuzz_json_string(fuzz_json_ws(p, end), end, NULL, NULL);
                if (p == NULL) {
                    return NULL;
                }

                p = fuzz_json_ws(p, end);
                if (p == end || *p++ != ':') {
                    return NULL;
                }
            }

            p = fuzz_json_value(p, end, depth + 1);
            if (p == NULL) {
                return NULL;
            }

            p = fuzz_json_ws(p, end);

            if (p == end) {
                return NULL;
            }

            if (*p == close) {
                return p + 1;
            }

            if (*p++ != ',') {
                return NULL;
            }
        }

    case 't':
        return (end - p >= 4 && ngx_strncmp(p, "true", 4) == 0) ? p + 4 : NULL;

    case 'f':
        return (end - p >= 5 && ngx_strncmp(p, "false", 5) == 0) ? p + 5 : NULL;

    case 'n':
        return (end - p >= 4 && ngx_strncmp(p, "null", 4) == 0) ? p + 4 : NULL;

    default:
        if (*p == '-') {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        /* no leading zeros, as JSON says */
        if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') {
            return NULL;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

        return p;
    }
}


/* the whole of [p, p + len) is one JSON value */

static ngx_uint_t
fuzz_json_ok(const u_char *p, size_t len)
{
    const u_char  *end;

    end = fuzz_json_value(p, p + len, 0);

    return end != NULL && fuzz_json_ws(end, p + len) == p + len;
}


/* bytes for a message: at most 200, escaped; four calls per message */

static const char *
fuzz_show(const u_char *p, size_t len)
{
    static char        bufs[4][1024];
    static ngx_uint_t  next;
    char              *buf;
    size_t             i, n;

    buf = bufs[next++ % 4];
    n = 0;

    for (i = 0; i < len && i < 200; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"') {
            buf[n++] = p[i];

        } else {
            n += snprintf(buf + n, 1024 - n, "\\x%02x", p[i]);
        }
    }

    if (i < len) {
        n += snprintf(buf + n, 1024 - n, "...(%zu bytes)", len);
    }

    buf[n] = '\0';

    return buf;
}


#endif /* _NGX_HTTP_HISTORY_FUZZ_HARNESS_H_INCLUDED_ */
