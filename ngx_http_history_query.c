
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
    ngx_http_history_ctx_t *ctx, ngx_int_t rc);
static ngx_uint_t ngx_http_history_online_ids(ngx_http_history_ctx_t *ctx,
    ngx_uint_t shard);
static ngx_uint_t ngx_http_history_views_kinds(ngx_uint_t views);
static off_t ngx_http_history_reply_number(redisReply *e);


/*
 * ?ids=a,b,c: at most NGX_HTTP_HISTORY_IDS_MAX, each at most 256 bytes;
 * NGX_ABORT (logged) when they are not UTF-8, which no JSON answer could
 * name as they are
 */

ngx_int_t
ngx_http_history_parse_ids(ngx_http_request_t *r, ngx_array_t **ids)
{
    u_char     *p, *last, *start;
    ngx_str_t   value, *id;

    *ids = ngx_array_create(r->pool, 4, sizeof(ngx_str_t));
    if (*ids == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_history_get_arg(r, "ids", &value) == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (value.len == 0) {
        return NGX_OK;
    }

    start = value.data;
    last = value.data + value.len;

    if (!ngx_http_history_valid_utf8(start, last - start)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: ids= is not valid UTF-8");
        return NGX_ABORT;
    }

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
    ngx_uint_t                     i, shard, n;
    ngx_array_t                   *ids;
    ngx_http_history_ctx_t        *ctx;
    ngx_http_history_batch_t       b;
    ngx_http_history_loc_conf_t   *hlcf;

    rc = ngx_http_history_query_start(r, &ctx, &ids);
    if (rc != NGX_OK) {
        return rc;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    now = ngx_time();

    ctx->ids = ids;
    id = ids->elts;

    /* the total, then when each id was last seen; -1 when it was not */

    ctx->counts = ngx_palloc(r->pool, (1 + ids->nelts) * sizeof(off_t));
    if (ctx->counts == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->sets = ngx_palloc(r->pool, ids->nelts + 1);
    if (ctx->sets == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->counts[0] = 0;

    for (i = 0; i < ids->nelts; i++) {
        ctx->counts[1 + i] = -1;
        ctx->sets[i] = (u_char) ngx_http_history_online_shard(hlcf,
                                ngx_crc32_long(id[i].data, id[i].len));
    }

    n = hlcf->online_shards;

    rc = ngx_http_history_wait(r, ctx, NGX_HTTP_HISTORY_OP_ONLINE, n);
    if (rc != NGX_OK) {
        return ngx_http_history_query(r, ctx, rc);
    }

    /* each set is one key, so one unit: a transaction */

    for (shard = 0; shard < n; shard++) {

        if (ngx_http_history_online_key(r, hlcf, shard, &online) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_history_batch_init(&b, &online);

        ngx_http_history_batch_command(&b, "MULTI");

        ngx_http_history_batch_command(&b, "ZCOUNT");
        ngx_http_history_batch_key(&b, &online);
        ngx_http_history_batch_number(&b, now - hlcf->online_timeout + 1);
        ngx_http_history_batch_arg(&b, (u_char *) "+inf", 4);

        if (ngx_http_history_online_ids(ctx, shard)) {
            ngx_http_history_batch_command(&b, "ZMSCORE");
            ngx_http_history_batch_key(&b, &online);

            for (i = 0; i < ids->nelts; i++) {
                if (ctx->sets[i] == shard) {
                    ngx_http_history_batch_arg(&b, id[i].data, id[i].len);
                }
            }
        }

        ngx_http_history_batch_command(&b, "EXEC");

        rc = ngx_http_history_wait_send(r, ctx, &b);
    }

    return ngx_http_history_query(r, ctx, rc);
}


/* how many of the ids are in the online set of that shard */

static ngx_uint_t
ngx_http_history_online_ids(ngx_http_history_ctx_t *ctx, ngx_uint_t shard)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < ctx->ids->nelts; i++) {
        n += (ctx->sets[i] == shard);
    }

    return n;
}


ngx_int_t
ngx_http_history_views_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      k, day, *id;
    ngx_uint_t                     i, n, kind;
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

    /*
     * Each count is a key of its own, in a slot of its own: one unit per
     * key, the total of every id first, then today's, then the unique
     * visitors, in the order of ngx_http_history_views_count()
     */

    n = ids->nelts * ngx_http_history_views_kinds(hlcf->views_flags);

    ctx->counts = ngx_pcalloc(r->pool, n * sizeof(off_t));
    if (ctx->counts == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_history_wait(r, ctx, NGX_HTTP_HISTORY_OP_VIEWS, n);
    if (rc != NGX_OK) {
        return ngx_http_history_query(r, ctx, rc);
    }

    if (hlcf->views_flags & NGX_HTTP_HISTORY_COUNT_DAILY) {
        ngx_http_history_today(hmcf, &day);
    }

    for (kind = 0; kind < 3; kind++) {

        if ((kind == 1 && !(hlcf->views_flags & NGX_HTTP_HISTORY_COUNT_DAILY))
            || (kind == 2
                && !(hlcf->views_flags & NGX_HTTP_HISTORY_COUNT_UNIQUE)))
        {
            continue;
        }

        for (i = 0; i < ids->nelts; i++) {
            if (ngx_http_history_make_key(r, hlcf,
                                          kind == 2 ? "visitors:" : "views:",
                                          &id[i], kind == 1 ? &day : NULL,
                                          &k)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_http_history_batch_init(&b, &k);
            ngx_http_history_batch_command(&b, kind == 2 ? "PFCOUNT" : "GET");
            ngx_http_history_batch_key(&b, &k);

            rc = ngx_http_history_wait_send(r, ctx, &b);
        }
    }

    return ngx_http_history_query(r, ctx, rc);
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

    if (rc == NGX_ABORT) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: more than %d ids, or an id over %d bytes",
                      NGX_HTTP_HISTORY_IDS_MAX, NGX_HTTP_HISTORY_ID_MAX);
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* the tail of a query: wait for the answer, or answer now */

static ngx_int_t
ngx_http_history_query(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx,
    ngx_int_t rc)
{
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_history_respond(r, ctx);
}


/*
 * The answer of one online set: [count, [score, ...]] with a score for
 * each id of that set, in the order of the ids
 */

ngx_int_t
ngx_http_history_online_part(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_uint_t shard, redisReply *reply)
{
    size_t       i, k;
    ngx_int_t    n;
    redisReply  *count, *scores, *e;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return NGX_ERROR;
    }

    count = reply->element[0];
    scores = reply->elements > 1 ? reply->element[1] : NULL;

    if (count->type != REDIS_REPLY_INTEGER
        || count->integer < 0
        || count->integer > NGX_MAX_OFF_T_VALUE - ctx->counts[0]
        || (scores
            && (scores->type != REDIS_REPLY_ARRAY
                || scores->elements
                   != ngx_http_history_online_ids(ctx, shard))))
    {
        return NGX_ERROR;
    }

    ctx->counts[0] += count->integer;

    if (scores == NULL) {
        return NGX_OK;
    }

    k = 0;

    for (i = 0; i < ctx->ids->nelts; i++) {
        if (ctx->sets[i] != shard) {
            continue;
        }

        e = scores->element[k++];

        n = (e->type == REDIS_REPLY_STRING)
            ? ngx_atotm((u_char *) e->str, e->len) : NGX_ERROR;

        if (n != NGX_ERROR) {
            ctx->counts[1 + i] = n;
        }
    }

    return NGX_OK;
}


/* {"online":N,"visitors":{"a":{"online":true,"last_seen":T},...}} */

ngx_int_t
ngx_http_history_online_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx)
{
    u_char                       *p;
    time_t                        seen;
    size_t                        len, i;
    ngx_str_t                    *id;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    id = ctx->ids->elts;

    len = sizeof("{\"online\":,\"visitors\":{}}") + NGX_OFF_T_LEN;

    for (i = 0; i < ctx->ids->nelts; i++) {
        len += id[i].len
               + ngx_http_history_escape_json(NULL, id[i].data, id[i].len)
               + sizeof("\"\":{\"online\":false,\"last_seen\":},")
               + NGX_OFF_T_LEN;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->body.data = p;

    p = ngx_sprintf(p, "{\"online\":%O", ctx->counts[0]);

    if (ctx->ids->nelts) {
        p = ngx_cpymem(p, ",\"visitors\":{", sizeof(",\"visitors\":{") - 1);

        for (i = 0; i < ctx->ids->nelts; i++) {
            *p++ = '"';
            p = (u_char *) ngx_http_history_escape_json(p, id[i].data,
                                                        id[i].len);
            p = ngx_cpymem(p, "\":{\"online\":", sizeof("\":{\"online\":") - 1);

            if (ctx->counts[1 + i] < 0) {
                p = ngx_sprintf(p, "false,\"last_seen\":null}");

            } else {
                seen = (time_t) ctx->counts[1 + i];

                p = ngx_sprintf(p, "%s,\"last_seen\":%T}",
                                ngx_time() - seen < hlcf->online_timeout
                                ? "true" : "false", seen);
            }

            if (i + 1 < ctx->ids->nelts) {
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

/* the counts a history_views answer has per id: total, today, unique */

static ngx_uint_t
ngx_http_history_views_kinds(ngx_uint_t views)
{
    return 1 + ((views & NGX_HTTP_HISTORY_COUNT_DAILY) ? 1 : 0)
           + ((views & NGX_HTTP_HISTORY_COUNT_UNIQUE) ? 1 : 0);
}


/* the reply to the i-th count: GET (a string, or nil) or PFCOUNT */

ngx_int_t
ngx_http_history_views_count(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_uint_t i, redisReply *reply)
{
    if (reply->type != REDIS_REPLY_STRING
        && reply->type != REDIS_REPLY_INTEGER
        && reply->type != REDIS_REPLY_NIL)
    {
        return NGX_DECLINED;
    }

    ctx->counts[i] = ngx_http_history_reply_number(reply);

    return NGX_OK;
}


ngx_int_t
ngx_http_history_views_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx)
{
    u_char                       *p;
    off_t                        *total, *today, *unique;
    size_t                        len, i, n;
    ngx_str_t                    *id;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    n = ctx->ids->nelts;
    id = ctx->ids->elts;

    total = ctx->counts;
    today = NULL;
    unique = NULL;

    if (hlcf->views_flags & NGX_HTTP_HISTORY_COUNT_DAILY) {
        today = total + n;
    }

    if (hlcf->views_flags & NGX_HTTP_HISTORY_COUNT_UNIQUE) {
        unique = (today ? today : total) + n;
    }

    len = sizeof("{}");

    for (i = 0; i < n; i++) {
        len += id[i].len
               + ngx_http_history_escape_json(NULL, id[i].data, id[i].len)
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
        p = (u_char *) ngx_http_history_escape_json(p, id[i].data,
                                                    id[i].len);

        p = ngx_sprintf(p, "\":{\"total\":%O", total[i]);

        if (today) {
            p = ngx_sprintf(p, ",\"today\":%O", today[i]);
        }

        if (unique) {
            p = ngx_sprintf(p, ",\"unique\":%O", unique[i]);
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

    if (hlcf->online) {
        return "is duplicate";
    }

    hlcf->online = 1;

    ngx_http_history_set_handler(cf, ngx_http_history_online_handler);

    return NGX_CONF_OK;
}


char *
ngx_http_history_views(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    if (hlcf->views_flags != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    if (ngx_http_history_count_flags(cf, cmd, 1, &hlcf->views_flags)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_http_history_set_handler(cf, ngx_http_history_views_handler);

    return NGX_CONF_OK;
}
