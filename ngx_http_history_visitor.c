
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Who the visitor is: history_key, the module's own visitor cookie
 * (history_cookie, its header filter) and $history_key.  Calls nothing
 * of the other jobs but the request context.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


static ngx_int_t ngx_http_history_random(ngx_http_history_main_conf_t *hmcf,
    ngx_log_t *log, u_char *p);
static ngx_int_t ngx_http_history_header_filter(ngx_http_request_t *r);
static ngx_uint_t ngx_http_history_cookie_attr_valid(ngx_str_t *s);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


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

    if (hlcf->cookie == NULL || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_history_visitor(r, hlcf, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_history_module);

    /* the new id is issued only if this location's visitor is that id */

    if (ctx && ctx->issue && !ctx->cookie_set && key.data == ctx->key.data) {
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
    ngx_uint_t                  i, secure, httponly;
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


ngx_int_t
ngx_http_history_visitor_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_history_header_filter;

    return NGX_OK;
}
