
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Queries: history_online and history_views, the ids= argument and the
 * JSON answers built from their replies.  Calls the read side's waiting
 * and response code, and the Redis link.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


static ngx_int_t ngx_http_history_query_start(ngx_http_request_t *r,
    ngx_http_history_ctx_t **ctx, ngx_array_t **ids);
static ngx_int_t ngx_http_history_query(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_str_t *k, ngx_http_history_batch_t *b,
    ngx_uint_t op);
static off_t ngx_http_history_reply_number(redisReply *e);


/* ?ids=a,b,c: at most NGX_HTTP_HISTORY_IDS_MAX, each at most 256 bytes */

ngx_int_t
ngx_http_history_parse_ids(ngx_http_request_t *r, ngx_array_t **ids)
{
    u_char     *dst, *src, *p, *last, *start;
    ngx_str_t   value, *id;

    *ids = ngx_array_create(r->pool, 4, sizeof(ngx_str_t));
    if (*ids == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_arg(r, (u_char *) "ids", 3, &value) != NGX_OK) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, value.len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    start = dst;
    src = value.data;
    ngx_unescape_uri(&dst, &src, value.len, 0);
    last = dst;

    for (p = start; p <= last; p++) {
        if (p < last && *p != ',') {
            continue;
        }

        if (p - start > NGX_HTTP_HISTORY_ID_MAX) {
            return NGX_DECLINED;
        }

        if (p > start) {
            if ((*ids)->nelts == NGX_HTTP_HISTORY_IDS_MAX) {
                return NGX_DECLINED;
            }

            id = ngx_array_push(*ids);
            if (id == NULL) {
                return NGX_ERROR;
            }

            id->data = start;
            id->len = p - start;
        }

        start = p + 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_history_online_handler(ngx_http_request_t *r)
{
    time_t                         now;
    ngx_int_t                      rc;
    ngx_str_t                      online, *id;
    ngx_uint_t                     i;
    ngx_array_t                   *ids;
    ngx_http_history_ctx_t        *ctx;
    ngx_http_history_batch_t       b;
    ngx_http_history_loc_conf_t   *hlcf;

    rc = ngx_http_history_query_start(r, &ctx, &ids);
    if (rc != NGX_OK) {
        return rc;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (ngx_http_history_make_key(r, hlcf, "online", NULL, NULL, &online)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    now = ngx_time();

    ctx->ids = ids;
    id = ids->elts;

    ngx_memzero(&b, offsetof(ngx_http_history_batch_t, unit));

    ngx_http_history_command(&b, "MULTI");

    ngx_http_history_command(&b, "ZCOUNT");
    ngx_http_history_arg(&b, online.data, online.len);
    ngx_http_history_arg_num(&b, now - hlcf->online_timeout + 1);
    ngx_http_history_arg(&b, (u_char *) "+inf", 4);

    if (ids->nelts) {
        ngx_http_history_command(&b, "ZMSCORE");
        ngx_http_history_arg(&b, online.data, online.len);

        for (i = 0; i < ids->nelts; i++) {
            ngx_http_history_arg(&b, id[i].data, id[i].len);
        }
    }

    ngx_http_history_command(&b, "EXEC");

    return ngx_http_history_query(r, ctx, &online, &b,
                                  NGX_HTTP_HISTORY_OP_ONLINE);
}


ngx_int_t
ngx_http_history_views_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      k, day, *id;
    ngx_uint_t                     i;
    ngx_array_t                   *ids;
    ngx_http_history_ctx_t        *ctx;
    ngx_http_history_batch_t       b;
    ngx_http_history_loc_conf_t   *hlcf;
    ngx_http_history_main_conf_t  *hmcf;

    rc = ngx_http_history_query_start(r, &ctx, &ids);
    if (rc != NGX_OK) {
        return rc;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);
    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    ctx->ids = ids;
    id = ids->elts;

    if (ids->nelts == 0) {
        ctx->done = 1;
        ctx->op = NGX_HTTP_HISTORY_OP_VIEWS;
        ngx_str_set(&ctx->body, "{}");
        return ngx_http_history_respond(r, ctx);
    }

    ngx_memzero(&b, offsetof(ngx_http_history_batch_t, unit));

    ngx_http_history_command(&b, "MULTI");

    ngx_http_history_command(&b, "MGET");

    for (i = 0; i < ids->nelts; i++) {
        if (ngx_http_history_make_key(r, hlcf, "views:", &id[i], NULL, &k)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_history_arg(&b, k.data, k.len);
    }

    if (hlcf->views & NGX_HTTP_HISTORY_COUNT_DAILY) {
        ngx_http_history_today(hmcf, &day);

        ngx_http_history_command(&b, "MGET");

        for (i = 0; i < ids->nelts; i++) {
            if (ngx_http_history_make_key(r, hlcf, "views:", &id[i], &day,
                                          &k)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_http_history_arg(&b, k.data, k.len);
        }
    }

    if (hlcf->views & NGX_HTTP_HISTORY_COUNT_UNIQUE) {
        for (i = 0; i < ids->nelts; i++) {
            if (ngx_http_history_make_key(r, hlcf, "visitors:", &id[i],
                                          NULL, &k)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_http_history_command(&b, "PFCOUNT");
            ngx_http_history_arg(&b, k.data, k.len);
        }
    }

    ngx_http_history_command(&b, "EXEC");

    return ngx_http_history_query(r, ctx, &id[0], &b,
                                  NGX_HTTP_HISTORY_OP_VIEWS);
}


static ngx_int_t
ngx_http_history_query_start(ngx_http_request_t *r,
    ngx_http_history_ctx_t **ctx, ngx_array_t **ids)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    *ctx = ngx_http_history_get_ctx(r);
    if (*ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_history_parse_ids(r, ids);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: more than %d ids, or an id over %d bytes",
                      NGX_HTTP_HISTORY_IDS_MAX, NGX_HTTP_HISTORY_ID_MAX);
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_history_query(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx,
    ngx_str_t *k, ngx_http_history_batch_t *b, ngx_uint_t op)
{
    ngx_int_t  rc;

    rc = ngx_http_history_wait(r, ctx, k, b, op);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_history_respond(r, ctx);
}


/* {"online":N,"visitors":{"a":{"online":true,"last_seen":T},...}} */

ngx_int_t
ngx_http_history_online_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, redisReply *reply)
{
    u_char                       *p;
    time_t                        seen;
    size_t                        len, i;
    ngx_int_t                     n;
    ngx_str_t                    *id;
    redisReply                   *count, *scores, *e;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return NGX_ERROR;
    }

    count = reply->element[0];
    scores = reply->elements > 1 ? reply->element[1] : NULL;

    if (count->type != REDIS_REPLY_INTEGER
        || (scores && (scores->type != REDIS_REPLY_ARRAY
                       || scores->elements != ctx->ids->nelts)))
    {
        return NGX_ERROR;
    }

    id = ctx->ids->elts;

    len = sizeof("{\"online\":,\"visitors\":{}}") + NGX_INT64_LEN;

    for (i = 0; i < ctx->ids->nelts; i++) {
        len += id[i].len + ngx_escape_json(NULL, id[i].data, id[i].len)
               + sizeof("\"\":{\"online\":false,\"last_seen\":},")
               + NGX_TIME_T_LEN;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->body.data = p;

    p = ngx_sprintf(p, "{\"online\":%L", count->integer);

    if (scores) {
        p = ngx_cpymem(p, ",\"visitors\":{", sizeof(",\"visitors\":{") - 1);

        for (i = 0; i < scores->elements; i++) {
            e = scores->element[i];

            *p++ = '"';
            p = (u_char *) ngx_escape_json(p, id[i].data, id[i].len);
            p = ngx_cpymem(p, "\":{\"online\":", sizeof("\":{\"online\":") - 1);

            n = (e->type == REDIS_REPLY_STRING)
                ? ngx_atotm((u_char *) e->str, e->len) : NGX_ERROR;
            seen = (time_t) n;

            if (n == NGX_ERROR) {
                p = ngx_sprintf(p, "false,\"last_seen\":null}");

            } else {
                p = ngx_sprintf(p, "%s,\"last_seen\":%T}",
                                ngx_time() - seen < hlcf->online_timeout
                                ? "true" : "false", seen);
            }

            if (i + 1 < scores->elements) {
                *p++ = ',';
            }
        }

        *p++ = '}';
    }

    *p++ = '}';

    ctx->body.len = p - ctx->body.data;

    return NGX_OK;
}


/* {"42":{"total":N,"today":N,"unique":N},...} */

ngx_int_t
ngx_http_history_views_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, redisReply *reply)
{
    u_char                       *p;
    size_t                        len, i, n, j;
    ngx_str_t                    *id;
    redisReply                   *total, *today, *e;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    n = ctx->ids->nelts;
    id = ctx->ids->elts;

    j = 1 + ((hlcf->views & NGX_HTTP_HISTORY_COUNT_DAILY) ? 1 : 0)
        + ((hlcf->views & NGX_HTTP_HISTORY_COUNT_UNIQUE) ? n : 0);

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != j) {
        return NGX_ERROR;
    }

    total = reply->element[0];
    today = (hlcf->views & NGX_HTTP_HISTORY_COUNT_DAILY)
            ? reply->element[1] : NULL;

    if (total->type != REDIS_REPLY_ARRAY || total->elements != n
        || (today && (today->type != REDIS_REPLY_ARRAY
                      || today->elements != n)))
    {
        return NGX_ERROR;
    }

    len = sizeof("{}");

    for (i = 0; i < n; i++) {
        len += id[i].len + ngx_escape_json(NULL, id[i].data, id[i].len)
               + sizeof("\"\":{\"total\":,\"today\":,\"unique\":},")
               + 3 * NGX_INT64_LEN;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->body.data = p;

    *p++ = '{';

    for (i = 0; i < n; i++) {
        *p++ = '"';
        p = (u_char *) ngx_escape_json(p, id[i].data, id[i].len);

        p = ngx_sprintf(p, "\":{\"total\":%O",
                        ngx_http_history_reply_number(total->element[i]));

        if (today) {
            p = ngx_sprintf(p, ",\"today\":%O",
                        ngx_http_history_reply_number(today->element[i]));
        }

        if (hlcf->views & NGX_HTTP_HISTORY_COUNT_UNIQUE) {
            e = reply->element[reply->elements - n + i];
            p = ngx_sprintf(p, ",\"unique\":%O",
                            ngx_http_history_reply_number(e));
        }

        *p++ = '}';

        if (i + 1 < n) {
            *p++ = ',';
        }
    }

    *p++ = '}';

    ctx->body.len = p - ctx->body.data;

    return NGX_OK;
}


/* a count as Redis keeps it: a string, an integer, or nothing (0) */

static off_t
ngx_http_history_reply_number(redisReply *e)
{
    off_t  n;

    if (e->type == REDIS_REPLY_INTEGER) {
        return e->integer;
    }

    if (e->type == REDIS_REPLY_STRING) {
        n = ngx_atoof((u_char *) e->str, e->len);
        return n == NGX_ERROR ? 0 : n;
    }

    return 0;
}


char *
ngx_http_history_online(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (hlcf->online) {
        return "is duplicate";
    }

    hlcf->online = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_history_online_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_history_views(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (hlcf->views != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (ngx_http_history_count_flags(cf, cmd, 1, &hlcf->views) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_history_views_handler;

    return NGX_CONF_OK;
}
