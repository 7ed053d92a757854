
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Who the visitor is: history_key and the check of its value
 * (history_key_pattern, the keys of the module no visitor may name), the
 * module's own visitor cookie (history_cookie, its header filter) and
 * $history_key.  Calls nothing of the other jobs but the request context.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


/* a visitor namespace of the configuration: a prefix and its keys' check */

typedef struct {
    ngx_str_t                       prefix;
    ngx_uint_t                      check;
#if (NGX_PCRE)
    ngx_regex_t                    *regex;
#endif
} ngx_http_history_space_t;


static ngx_int_t ngx_http_history_valid_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *key);
static ngx_uint_t ngx_http_history_key_chars(ngx_uint_t check, u_char *p,
    size_t len, ngx_uint_t whole);
static ngx_uint_t ngx_http_history_view_status(
    ngx_http_history_loc_conf_t *hlcf, ngx_uint_t status);
static ngx_int_t ngx_http_history_random(ngx_http_history_main_conf_t *hmcf,
    ngx_log_t *log, u_char *p);
static ngx_int_t ngx_http_history_header_filter(ngx_http_request_t *r);
static ngx_uint_t ngx_http_history_cookie_attr_valid(ngx_str_t *s);
static ngx_int_t ngx_http_history_add_space(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *conf);
static void ngx_http_history_check_spaces(ngx_conf_t *cf);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/*
 * The keys of the module's own beside the visitors' lists, under the same
 * prefix (see ngx_http_history_record.c and ngx_http_history_query.c),
 * and those of examples/flush_counts.py: no visitor key may name them,
 * whatever history_key_pattern says.  The last one is a whole key, the
 * others begin keys.
 */

static ngx_str_t  ngx_http_history_own_keys[] = {
    ngx_string("last_action:"),
    ngx_string("views:"),
    ngx_string("visitors:"),
    ngx_string("flushing:"),
    ngx_string("online")
};


/*
 * Who the visitor is for the configuration given (the location serving r
 * now): history_key, evaluated for r each time, or else the module's own
 * visitor cookie when history_cookie is set, or else a new visitor id if
 * the response header can still carry it.  Only the new id is kept, on
 * the main request, so that everything that asks in one request (the
 * cookie, the view, a subrequest's read, $history_key) gets the same one.
 */

ngx_int_t
ngx_http_history_visitor(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *key)
{
    u_char                        *p;
    ngx_http_history_ctx_t        *ctx;
    ngx_http_variable_value_t     *vv;
    ngx_http_history_cookie_t     *cookie;
    ngx_http_history_main_conf_t  *hmcf;

    if (ngx_http_complex_value(r, hlcf->key, key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (key->len && ngx_http_history_valid_key(r, hlcf, key) != NGX_OK) {
        ngx_str_null(key);
    }

    cookie = hlcf->cookie;

    if (key->len || cookie == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_history_get_ctx(r->main);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    vv = ngx_http_get_indexed_variable(r, cookie->index);

    if (vv && !vv->not_found && vv->len) {
        if (ngx_http_history_valid_visitor(vv->data, vv->len)) {
            key->data = vv->data;
            key->len = vv->len;
            return NGX_OK;
        }

        if (!ctx->malformed) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "history: malformed \"%V\" cookie of %uz bytes, "
                          "ignored", &cookie->name, (size_t) vv->len);
            ctx->malformed = 1;
        }
    }

    if (ctx->key.len) {
        *key = ctx->key;
        return NGX_OK;
    }

    if (r->main->header_sent) {
        /* too late to set a cookie: a visitor without history */
        return NGX_OK;
    }

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    p = ngx_pnalloc(r->main->pool, NGX_HTTP_HISTORY_VISITOR_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_history_random(hmcf, r->connection->log, p) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->key.data = p;
    ctx->key.len = NGX_HTTP_HISTORY_VISITOR_LEN;
    ctx->issue = 1;

    *key = ctx->key;

    return NGX_OK;
}


ngx_uint_t
ngx_http_history_valid_visitor(u_char *p, size_t len)
{
    u_char  *last;

    if (len != NGX_HTTP_HISTORY_VISITOR_LEN) {
        return 0;
    }

    for (last = p + len; p < last; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


/*
 * What history_key gives must be a key the visitor may have: at most 256
 * bytes without control bytes (it goes into logs and headers as
 * $history_key), not naming a key of the module's, and matching
 * history_key_pattern.  Otherwise there is no visitor, logged at info
 * once per request, however often the key is asked for.
 */

static ngx_int_t
ngx_http_history_valid_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *key)
{
    u_char                  *p, *last, *m;
    ngx_str_t               *own;
    ngx_uint_t               i, n;
    ngx_http_history_ctx_t  *ctx;
    u_char                   msg[NGX_HTTP_HISTORY_KEY_MAX + 64];

    if (key->len > NGX_HTTP_HISTORY_KEY_MAX) {
        m = ngx_snprintf(msg, sizeof(msg), "of %uz bytes is too long",
                         key->len);
        goto refused;
    }

    last = key->data + key->len;

    for (p = key->data; p < last; p++) {
        if (*p < ' ' || *p == 0x7f) {
            m = ngx_snprintf(msg, sizeof(msg), "has a byte 0x%02Xd at %uz",
                             *p, p - key->data);
            goto refused;
        }
    }

    switch (hlcf->key_check) {

    case NGX_HTTP_HISTORY_KEY_WORD:
    case NGX_HTTP_HISTORY_KEY_SESSION:
        if (!ngx_http_history_key_chars(hlcf->key_check, key->data, key->len,
                                        1))
        {
            goto mismatch;
        }

        break;

#if (NGX_PCRE)
    case NGX_HTTP_HISTORY_KEY_REGEX:

        /* a PCRE error (a match limit hit) does not count as a match */

        if (ngx_regex_exec(hlcf->key_regex, key, NULL, 0) < 0) {
            goto mismatch;
        }

        break;
#endif

    default: /* NGX_HTTP_HISTORY_KEY_OFF */
        break;
    }

    n = sizeof(ngx_http_history_own_keys) / sizeof(ngx_str_t);
    own = ngx_http_history_own_keys;

    for (i = 0; i < n; i++) {
        if (i == n - 1 ? key->len == own[i].len : key->len >= own[i].len) {
            if (ngx_memcmp(key->data, own[i].data, own[i].len) == 0) {
                m = ngx_snprintf(msg, sizeof(msg),
                                 "\"%V\" names a key of the module", key);
                goto refused;
            }
        }
    }

    return NGX_OK;

mismatch:

    m = ngx_snprintf(msg, sizeof(msg),
                     "of %uz bytes does not match history_key_pattern",
                     key->len);

refused:

    ctx = ngx_http_history_get_ctx(r->main);

    if (ctx && !ctx->bad_key) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: visitor key %*s, ignored", m - msg, msg);
        ctx->bad_key = 1;
    }

    return NGX_DECLINED;
}


/*
 * The default patterns, checked without PCRE: 1 to 256 letters, digits,
 * "_" and "-" under a prefix of the module's own; 32 lowercase letters
 * and digits (a Django session key, or a visitor id of the module's) with
 * the bare prefix, where the keys of every other application are too.
 * "whole": p is a whole key; otherwise only its beginning.
 */

static ngx_uint_t
ngx_http_history_key_chars(ngx_uint_t check, u_char *p, size_t len,
    ngx_uint_t whole)
{
    u_char  *last;

    if (check == NGX_HTTP_HISTORY_KEY_SESSION) {
        if (whole ? len != NGX_HTTP_HISTORY_VISITOR_LEN
                  : len > NGX_HTTP_HISTORY_VISITOR_LEN)
        {
            return 0;
        }

        for (last = p + len; p < last; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
                return 0;
            }
        }

        return 1;
    }

    if (len > NGX_HTTP_HISTORY_KEY_MAX) {
        return 0;
    }

    for (last = p + len; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
ngx_http_history_view_status(ngx_http_history_loc_conf_t *hlcf,
    ngx_uint_t status)
{
    ngx_uint_t  i, *codes;

    codes = hlcf->status->elts;

    for (i = 0; i < hlcf->status->nelts; i++) {
        if (codes[i] == status) {
            return 1;
        }
    }

    return 0;
}


/* a visitor id: 128 bits from the kernel's CSPRNG, as 32 hex digits */

static ngx_int_t
ngx_http_history_random(ngx_http_history_main_conf_t *hmcf, ngx_log_t *log,
    u_char *p)
{
    u_char   bytes[NGX_HTTP_HISTORY_VISITOR_LEN / 2];
    ssize_t  n;

    if (hmcf->random == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "history: no random source for visitor ids");
        return NGX_ERROR;
    }

    n = read(hmcf->random, bytes, sizeof(bytes));

    if (n != (ssize_t) sizeof(bytes)) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "history: read() from \"/dev/urandom\" failed");
        return NGX_ERROR;
    }

    ngx_hex_dump(p, bytes, sizeof(bytes));

    return NGX_OK;
}


static ngx_int_t
ngx_http_history_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                     key;
    ngx_http_history_ctx_t       *ctx;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (!hlcf->issue || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_history_visitor(r, hlcf, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_history_module);

    /*
     * The new id is issued only if this location's visitor is that id and
     * the response is a view, to a GET, that this location records for
     * the visitor (hlcf->issue): so that a page's assets and reads,
     * fetched in parallel on a first visit, issue none.  Not to a
     * conditional request either, which nginx may answer with 304 after
     * this filter has run.  An id not issued is dropped: nothing is
     * recorded under it (see the log handler).
     */

    if (ctx && ctx->issue && !ctx->cookie_set && key.data == ctx->key.data
        && r->method == NGX_HTTP_GET
        && r->headers_in.if_modified_since == NULL
        && r->headers_in.if_none_match == NULL
        && ngx_http_history_view_status(hlcf, r->headers_out.status))
    {
        if (ngx_http_history_set_cookie(r, hlcf->cookie, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->cookie_set = 1;
    }

    return ngx_http_next_header_filter(r);
}


ngx_int_t
ngx_http_history_set_cookie(ngx_http_request_t *r,
    ngx_http_history_cookie_t *cookie, ngx_str_t *key)
{
    u_char           *p, *data;
    size_t            len;
    ngx_table_elt_t  *h;

    len = cookie->name.len + 1 + key->len + cookie->attrs.len
          + sizeof("; Expires=Thu, 31-Dec-2037 23:55:55 GMT") - 1;

    data = ngx_pnalloc(r->pool, len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(data, cookie->name.data, cookie->name.len);
    *p++ = '=';
    p = ngx_cpymem(p, key->data, key->len);

    if (cookie->expires) {
        p = ngx_cpymem(p, "; Expires=", sizeof("; Expires=") - 1);
        p = ngx_http_cookie_time(p, ngx_time() + cookie->expires);
    }

    p = ngx_cpymem(p, cookie->attrs.data, cookie->attrs.len);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = data;
    h->value.len = p - data;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "history: new visitor \"%V\"", key);

    return NGX_OK;
}


ngx_int_t
ngx_http_history_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                     key;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (hlcf->key == NULL
        || ngx_http_history_visitor(r, hlcf, &key) != NGX_OK)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = key.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = key.data;

    return NGX_OK;
}


char *
ngx_http_history_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    u_char                     *p, *last;
    time_t                      t;
    ngx_str_t                  *value, s, domain, path, samesite, name;
    ngx_uint_t                  i, secure, httponly, nohttponly, nosamesite;
    ngx_http_history_cookie_t  *cookie;

    if (hlcf->cookie != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return ngx_http_history_invalid(cf, cmd, &value[2], NULL);
        }

        hlcf->cookie = NULL;
        return NGX_CONF_OK;
    }

    ngx_http_history_needs_redis(cf);

    if (value[1].len == 0) {
        return ngx_http_history_invalid(cf, cmd, &value[1],
                   "a cookie name is letters, digits, \"_\" and \"-\"");
    }

    for (p = value[1].data, last = p + value[1].len; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
        {
            return ngx_http_history_invalid(cf, cmd, &value[1],
                       "a cookie name is letters, digits, \"_\" and \"-\"");
        }
    }

    cookie = ngx_pcalloc(cf->pool, sizeof(ngx_http_history_cookie_t));
    if (cookie == NULL) {
        return NGX_CONF_ERROR;
    }

    cookie->name = value[1];
    cookie->expires = 90 * 86400;

    ngx_str_null(&domain);
    ngx_str_set(&path, "/");
    ngx_str_null(&samesite);
    secure = 0;
    httponly = 0;
    nohttponly = 0;
    nosamesite = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "expires=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            if (ngx_strcmp(s.data, "off") == 0) {
                cookie->expires = 0;
                continue;
            }

            /* at most 68y: Expires= is written from now + expires */

            t = ngx_parse_time(&s, 1);
            if (t == (time_t) NGX_ERROR || t == 0
                || t > NGX_HTTP_HISTORY_COOKIE_EXPIRES_MAX)
            {
                return ngx_http_history_invalid(cf, cmd, &value[i],
                           "expires= is from 1s to 68y, or off");
            }

            cookie->expires = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "domain=", 7) == 0) {
            domain.data = value[i].data + 7;
            domain.len = value[i].len - 7;

            if (domain.len == 0
                || !ngx_http_history_cookie_attr_valid(&domain))
            {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "path=", 5) == 0) {
            path.data = value[i].data + 5;
            path.len = value[i].len - 5;

            if (path.len == 0 || path.data[0] != '/'
                || !ngx_http_history_cookie_attr_valid(&path))
            {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "secure") == 0) {
            secure = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "httponly") == 0) {
            httponly = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "nohttponly") == 0) {
            nohttponly = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "nosamesite") == 0) {
            nosamesite = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "samesite=lax") == 0) {
            ngx_str_set(&samesite, "Lax");
            continue;
        }

        if (ngx_strcmp(value[i].data, "samesite=strict") == 0) {
            ngx_str_set(&samesite, "Strict");
            continue;
        }

        if (ngx_strcmp(value[i].data, "samesite=none") == 0) {
            ngx_str_set(&samesite, "None");
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (httponly && nohttponly) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"httponly\" and \"nohttponly\" contradict each "
                           "other in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (samesite.len && nosamesite) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"samesite=\" and \"nosamesite\" contradict each "
                           "other in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* HttpOnly and SameSite=Lax unless told otherwise */

    httponly = !nohttponly;

    if (samesite.len == 0 && !nosamesite) {
        ngx_str_set(&samesite, "Lax");
    }

    if (samesite.len == 4 && !secure) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"samesite=none\" needs \"secure\" in \"%V\" "
                           "directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    cookie->attrs.data = ngx_pnalloc(cf->pool,
                                     sizeof("; Max-Age=") - 1 + NGX_TIME_T_LEN
                                     + sizeof("; Domain=") - 1 + domain.len
                                     + sizeof("; Path=") - 1 + path.len
                                     + sizeof("; Secure; HttpOnly") - 1
                                     + sizeof("; SameSite=Strict") - 1);
    if (cookie->attrs.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = cookie->attrs.data;

    if (cookie->expires) {
        p = ngx_sprintf(p, "; Max-Age=%T", cookie->expires);
    }

    if (domain.len) {
        p = ngx_sprintf(p, "; Domain=%V", &domain);
    }

    p = ngx_sprintf(p, "; Path=%V", &path);

    if (secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    if (httponly) {
        p = ngx_cpymem(p, "; HttpOnly", sizeof("; HttpOnly") - 1);
    }

    if (samesite.len) {
        p = ngx_sprintf(p, "; SameSite=%V", &samesite);
    }

    cookie->attrs.len = p - cookie->attrs.data;

    /* the cookie's value, through nginx's own $cookie_<name> */

    name.len = sizeof("cookie_") - 1 + cookie->name.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(name.data, "cookie_%V", &cookie->name);

    cookie->index = ngx_http_get_variable_index(cf, &name);
    if (cookie->index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    hlcf->cookie = cookie;

    return NGX_CONF_OK;
}


/* a Domain= or Path= value: no ";" that would end it, no control byte */

static ngx_uint_t
ngx_http_history_cookie_attr_valid(ngx_str_t *s)
{
    u_char  *p, *last;

    last = s->data + s->len;

    for (p = s->data; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == ';') {
            return 0;
        }
    }

    return 1;
}


char *
ngx_http_history_set_key_pattern(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    if (hlcf->key_mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        hlcf->key_mode = NGX_HTTP_HISTORY_KEY_OFF;
        return NGX_CONF_OK;
    }

#if (NGX_PCRE)

    if (ngx_http_history_regex(cf, cmd, &value[1], &hlcf->key_regex)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    hlcf->key_mode = NGX_HTTP_HISTORY_KEY_REGEX;

    return NGX_CONF_OK;

#else

    return ngx_http_history_invalid(cf, cmd, &value[1],
                                    "nginx was built without PCRE");

#endif
}


/*
 * The visitor's part of merging a location: the key's check, a new
 * visitor's TTL, whether the location issues visitor ids; and the
 * location's namespace, for the checks of ngx_http_history_visitor_init().
 */

char *
ngx_http_history_visitor_merge(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *prev, ngx_http_history_loc_conf_t *conf)
{
    if (conf->key_mode == NGX_CONF_UNSET_UINT) {
        conf->key_mode = prev->key_mode;
#if (NGX_PCRE)
        conf->key_regex = prev->key_regex;
#endif
    }

    /* the default follows the prefix the location ends up with */

    if (conf->key_mode != NGX_CONF_UNSET_UINT) {
        conf->key_check = conf->key_mode;

    } else {
        conf->key_check = conf->prefix.len ? NGX_HTTP_HISTORY_KEY_WORD
                                           : NGX_HTTP_HISTORY_KEY_SESSION;
    }

    ngx_conf_merge_value(conf->new_expire, prev->new_expire, 600);

    conf->new_ttl.data = conf->trim.data + 2 * NGX_TIME_T_LEN;
    conf->new_ttl.len = ngx_sprintf(conf->new_ttl.data, "%T",
                                    ngx_min(conf->new_expire, conf->expire))
                        - conf->new_ttl.data;

    /*
     * ids are issued where something is recorded for the visitor: a read
     * has nothing to show a new visitor, and a page's reads, fetched in
     * parallel with it, would issue other ids
     */

    conf->issue = conf->cookie
                  && (conf->record
                      || (conf->count
                          && (conf->count_flags
                              & NGX_HTTP_HISTORY_COUNT_UNIQUE)));

    if (conf->record || conf->format || conf->fetch || conf->count
        || conf->last_action)
    {
        if (ngx_http_history_add_space(cf, conf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_history_add_space(ngx_conf_t *cf, ngx_http_history_loc_conf_t *conf)
{
    ngx_uint_t                     i;
    ngx_http_history_space_t      *sp;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_history_module);

    if (hmcf->spaces.elts == NULL
        && ngx_array_init(&hmcf->spaces, cf->pool, 4,
                          sizeof(ngx_http_history_space_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    sp = hmcf->spaces.elts;

    for (i = 0; i < hmcf->spaces.nelts; i++) {
        if (sp[i].check == conf->key_check
#if (NGX_PCRE)
            && sp[i].regex == conf->key_regex
#endif
            && sp[i].prefix.len == conf->prefix.len
            && ngx_memcmp(sp[i].prefix.data, conf->prefix.data,
                          conf->prefix.len)
               == 0)
        {
            return NGX_OK;
        }
    }

    sp = ngx_array_push(&hmcf->spaces);
    if (sp == NULL) {
        return NGX_ERROR;
    }

    sp->prefix = conf->prefix;
    sp->check = conf->key_check;
#if (NGX_PCRE)
    sp->regex = conf->key_regex;
#endif

    return NGX_OK;
}


/*
 * "nginx -t" warns where visitor keys share a keyspace in a way the module
 * cannot keep apart: any key with the bare prefix, and a prefix that
 * holds another one ("shop:" and "shop:b:") where the shorter one's keys
 * may begin with the rest of the longer one.
 */

static void
ngx_http_history_check_spaces(ngx_conf_t *cf)
{
    size_t                         n;
    ngx_uint_t                     i, j;
    ngx_http_history_space_t      *sp;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_history_module);

    sp = hmcf->spaces.elts;

    for (i = 0; i < hmcf->spaces.nelts; i++) {

        if (sp[i].prefix.len == 0 && sp[i].check == NGX_HTTP_HISTORY_KEY_OFF)
        {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "\"history_key_pattern off\" with an empty "
                               "\"history_prefix\" lets a visitor key name "
                               "any list in the database");
        }

        for (j = 0; j < hmcf->spaces.nelts; j++) {
            n = sp[i].prefix.len;

            if (n >= sp[j].prefix.len
                || ngx_memcmp(sp[i].prefix.data, sp[j].prefix.data, n) != 0)
            {
                continue;
            }

            if ((sp[i].check == NGX_HTTP_HISTORY_KEY_WORD
                 || sp[i].check == NGX_HTTP_HISTORY_KEY_SESSION)
                && !ngx_http_history_key_chars(sp[i].check,
                                               sp[j].prefix.data + n,
                                               sp[j].prefix.len - n, 0))
            {
                /* no key of the shorter prefix begins so */
                continue;
            }

            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "\"history_prefix\" \"%V\" holds \"%V\": a "
                               "visitor key under \"%V\" may name keys under "
                               "\"%V\"", &sp[i].prefix, &sp[j].prefix,
                               &sp[i].prefix, &sp[j].prefix);
        }
    }
}


ngx_int_t
ngx_http_history_visitor_init(ngx_conf_t *cf)
{
    ngx_http_history_check_spaces(cf);

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_history_header_filter;

    return NGX_OK;
}
