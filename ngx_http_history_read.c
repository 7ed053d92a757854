
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Reads: history_serve, history_forget, history_fetch and $history.  Sends
 * the visitor's list request through the link, waits on an event, renders
 * the answer.  Calls the visitor's key and the Redis link.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


static ngx_int_t ngx_http_history_read(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_str_t *key, ngx_uint_t op);
static ngx_int_t ngx_http_history_reply_list(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, redisReply *reply);
static void ngx_http_history_cancel(ngx_http_history_ctx_t *ctx);
static void ngx_http_history_resume(ngx_event_t *ev);
static void ngx_http_history_cleanup(void *data);
static size_t ngx_http_history_utf8_len(u_char *p, u_char *last);


/* forget with the bare prefix: only a list is deleted */

static char  ngx_http_history_forget_script[] =
    "if redis.call('TYPE', KEYS[1]).ok ~= 'list' then return 0 end "
    "return redis.call('DEL', KEYS[1])";


ngx_http_history_ctx_t *
ngx_http_history_get_ctx(ngx_http_request_t *r)
{
    ngx_http_history_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_history_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_history_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ctx->request = r;

        ngx_http_set_ctx(r, ctx, ngx_http_history_module);
    }

    return ctx;
}


/*
 * Sends a read (LRANGE) or a forget (DEL) for the visitor; the request
 * waits for ngx_http_history_resume() on an event: the answer, or the
 * timeout.  NGX_DECLINED: nothing to wait for, ctx says what happened.
 */

static ngx_int_t
ngx_http_history_read(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx,
    ngx_str_t *key, ngx_uint_t op)
{
    ngx_int_t                     rc;
    ngx_str_t                     k;
    ngx_http_history_ctx_t       *mctx;
    ngx_http_history_batch_t      b;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    ctx->ids = NULL;

    /* a visitor id issued by this very request has no list yet */

    mctx = ngx_http_get_module_ctx(r->main, ngx_http_history_module);

    if (key->len == 0
        || (mctx && mctx->issue && key->data == mctx->key.data))
    {
        ctx->op = op;
        ctx->failed = 0;
        ctx->counted = 0;
        ctx->done = 1;
        return NGX_DECLINED;
    }

    if (ngx_http_history_make_key(r, hlcf, "", key, NULL, &k) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_history_wait(r, ctx, op, 1);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_history_batch_init(&b, &k);

    if (op == NGX_HTTP_HISTORY_OP_FORGET && hlcf->prefix.len == 0) {
        ngx_http_history_batch_command(&b, "EVAL");
        ngx_http_history_batch_arg(&b,
                                   (u_char *) ngx_http_history_forget_script,
                                   sizeof(ngx_http_history_forget_script)
                                   - 1);
        ngx_http_history_batch_arg(&b, (u_char *) "1", 1);
        ngx_http_history_batch_key(&b, &k);

    } else if (op == NGX_HTTP_HISTORY_OP_FORGET) {
        ngx_http_history_batch_command(&b, "DEL");
        ngx_http_history_batch_key(&b, &k);

    } else {
        /* at most history_length items, whatever another writer left */

        ngx_http_history_batch_command(&b, "LRANGE");
        ngx_http_history_batch_key(&b, &k);
        ngx_http_history_batch_arg(&b, (u_char *) "0", 1);
        ngx_http_history_batch_arg(&b, hlcf->trim.data, hlcf->trim.len);
    }

    return ngx_http_history_wait_send(r, ctx, &b);
}


/*
 * Makes the request ready to wait for n units, sent one by one with
 * ngx_http_history_wait_send().  NGX_DECLINED: there is no link, ctx says
 * the read failed.
 */

ngx_int_t
ngx_http_history_wait(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx,
    ngx_uint_t op, ngx_uint_t n)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    ctx->op = op;
    ctx->failed = 0;
    ctx->counted = 0;
    ctx->done = 1;

    if (hmcf->link == NULL) {
        ctx->failed = 1;
        return NGX_DECLINED;
    }

    if (!ctx->cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_history_cleanup;
        cln->data = ctx;
        ctx->cleanup = 1;
    }

    ctx->parts = ngx_pcalloc(r->pool, n * sizeof(ngx_http_history_part_t));
    if (ctx->parts == NULL) {
        return NGX_ERROR;
    }

    ctx->nparts = n;
    ctx->nsent = 0;
    ctx->left = n;

    return NGX_OK;
}


/*
 * Sends the next unit the request waits for.  Once one has failed the
 * rest are not sent.  After the last: NGX_AGAIN, the request waits for
 * ngx_http_history_resume() on an event (the answers, or the timeout);
 * NGX_DECLINED, nothing to wait for, ctx says the read failed.
 */

ngx_int_t
ngx_http_history_wait_send(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_http_history_batch_t *b)
{
    ngx_http_history_part_t       *part;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    part = &ctx->parts[ctx->nsent++];
    part->ctx = ctx;

    if (!ctx->failed) {
        if (ngx_http_history_link_up(hmcf->link, &b->key)) {
            part->unit = ngx_http_history_link_send(hmcf->link, b,
                                                    ngx_http_history_reply,
                                                    part);

        } else {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "history: redis is away");
        }
    }

    if (part->unit == NULL) {
        ctx->failed = 1;
        ctx->left--;
    }

    if (ctx->nsent < ctx->nparts) {
        return NGX_OK;
    }

    if (ctx->left == 0) {
        ctx->done = 1;
        return NGX_DECLINED;
    }

    ctx->done = 0;
    ctx->waiting = 1;

    ctx->event.handler = ngx_http_history_resume;
    ctx->event.data = ctx;
    ctx->event.log = r->connection->log;

    ngx_add_timer(&ctx->event, hmcf->redis.timeout);

    return NGX_AGAIN;
}


/*
 * Called by the link for each unit: keep what the request needs, and
 * wake it up once every unit has been answered.
 */

void
ngx_http_history_reply(void *data, redisReply *reply)
{
    ngx_http_history_part_t *part = data;

    ngx_int_t                rc;
    ngx_http_request_t      *r;
    ngx_http_history_ctx_t  *ctx;

    ctx = part->ctx;
    r = ctx->request;

    part->unit = NULL;
    ctx->left--;

    if (reply == NULL) {
        ctx->failed = 1;

    } else if (!ctx->failed) {

        switch (ctx->op) {

        case NGX_HTTP_HISTORY_OP_FORGET:
            rc = NGX_OK;
            break;

        case NGX_HTTP_HISTORY_OP_ONLINE:
            rc = ngx_http_history_online_part(r, ctx, part - ctx->parts,
                                              reply);
            break;

        case NGX_HTTP_HISTORY_OP_VIEWS:
            rc = ngx_http_history_views_count(r, ctx, part - ctx->parts,
                                              reply);
            break;

        default: /* NGX_HTTP_HISTORY_OP_FETCH, NGX_HTTP_HISTORY_OP_SERVE */
            rc = ngx_http_history_reply_list(r, ctx, reply);
        }

        if (rc != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "history: unexpected reply from redis");
            ctx->failed = 1;
        }
    }

    if (ctx->left || ctx->nsent < ctx->nparts) {
        return;
    }

    if (!ctx->failed
        && ((ctx->op == NGX_HTTP_HISTORY_OP_VIEWS
             && ngx_http_history_views_body(r, ctx) != NGX_OK)
            || (ctx->op == NGX_HTTP_HISTORY_OP_ONLINE
                && ngx_http_history_online_body(r, ctx) != NGX_OK)))
    {
        ctx->failed = 1;
    }

    ctx->done = 1;

    if (ctx->event.timer_set) {
        ngx_del_timer(&ctx->event);
    }

    ngx_post_event(&ctx->event, &ngx_posted_events);
}


/* the ids of a list, copied into the request's pool */

static ngx_int_t
ngx_http_history_reply_list(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, redisReply *reply)
{
    size_t       i;
    ngx_str_t   *id;
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: redis answered a read with a reply "
                      "of type %d", reply->type);
        return NGX_DECLINED;
    }

    ctx->ids = ngx_array_create(r->pool, reply->elements + 1,
                                sizeof(ngx_str_t));
    if (ctx->ids == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING || e->len == 0) {
            continue;
        }

        id = ngx_array_push(ctx->ids);
        if (id == NULL) {
            return NGX_ERROR;
        }

        id->len = e->len;
        id->data = ngx_pnalloc(r->pool, e->len);
        if (id->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(id->data, e->str, e->len);
    }

    return NGX_OK;
}


/* nothing may call back into the request any more */

static void
ngx_http_history_cancel(ngx_http_history_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->nsent; i++) {
        if (ctx->parts[i].unit) {
            ngx_http_history_link_cancel(ctx->parts[i].unit);
            ctx->parts[i].unit = NULL;
        }
    }
}


static void
ngx_http_history_resume(ngx_event_t *ev)
{
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_history_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    if (ev->timedout) {
        ev->timedout = 0;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "history: redis did not answer in time");

        ngx_http_history_cancel(ctx);
        ctx->failed = 1;
        ctx->done = 1;
    }

    ctx->waiting = 0;

    if (ctx->op == NGX_HTTP_HISTORY_OP_FETCH) {
        ngx_http_history_stats_read(r, ctx);

        if (r == r->main) {
            r->read_event_handler = ngx_http_block_reading;
        }

        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);

    } else {
        ngx_http_finalize_request(r, ngx_http_history_respond(r, ctx));
    }

    ngx_http_run_posted_requests(c);
}


/* the request is going away: nothing may call back into it */

static void
ngx_http_history_cleanup(void *data)
{
    ngx_http_history_ctx_t  *ctx = data;

    ngx_http_history_cancel(ctx);

    if (ctx->event.timer_set) {
        ngx_del_timer(&ctx->event);
    }

    if (ctx->event.posted) {
        ngx_delete_posted_event(&ctx->event);
    }
}


ngx_int_t
ngx_http_history_fetch_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     key;
    ngx_http_history_ctx_t       *ctx;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (!hlcf->fetch) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_history_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->waiting) {
        return NGX_AGAIN;
    }

    if (ctx->done) {
        return NGX_DECLINED;
    }

    if (ngx_http_history_visitor(r, hlcf, &key) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_history_read(r, ctx, &key, NGX_HTTP_HISTORY_OP_FETCH);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        if (r == r->main) {
            r->read_event_handler = ngx_http_test_reading;
        }

        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_AGAIN;
    }

    ngx_http_history_stats_read(r, ctx);

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_history_serve_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     key;
    ngx_uint_t                    op;
    ngx_http_history_ctx_t       *ctx;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        op = NGX_HTTP_HISTORY_OP_SERVE;

    } else if (r->method == NGX_HTTP_DELETE && hlcf->forget) {
        op = NGX_HTTP_HISTORY_OP_FORGET;

    } else {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    ctx = ngx_http_history_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (op == NGX_HTTP_HISTORY_OP_SERVE && ctx->done) {
        /* history_fetch has read the list already */
        ctx->op = op;
        return ngx_http_history_respond(r, ctx);
    }

    if (ngx_http_history_visitor(r, hlcf, &key) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_history_read(r, ctx, &key, op);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    return ngx_http_history_respond(r, ctx);
}


ngx_int_t
ngx_http_history_respond(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx)
{
    ngx_int_t                     n;
    ngx_str_t                     body, exclude, value, type;
    ngx_uint_t                    limit;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    ngx_http_history_stats_read(r, ctx);

    if (ctx->failed && hlcf->fallback == NGX_HTTP_HISTORY_FALLBACK_ERROR) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ctx->op == NGX_HTTP_HISTORY_OP_FORGET) {
        if (ctx->failed) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        r->headers_out.status = NGX_HTTP_NO_CONTENT;
        r->header_only = 1;
        ngx_http_clear_content_length(r);

        return ngx_http_send_header(r);
    }

    if (ctx->op == NGX_HTTP_HISTORY_OP_ONLINE
        || ctx->op == NGX_HTTP_HISTORY_OP_VIEWS)
    {
        if (ctx->failed) {
            ngx_str_set(&body, "{}");

        } else {
            body = ctx->body;
        }

        goto send;
    }

    limit = NGX_MAX_UINT32_VALUE;

    if (ngx_http_history_get_arg(r, "exclude", &exclude) == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_arg(r, (u_char *) "limit", 5, &value) == NGX_OK) {
        n = ngx_atoi(value.data, value.len);
        if (n != NGX_ERROR) {
            limit = n;
        }
    }

    if (ngx_http_history_render(r, ctx->ids, hlcf->format, &exclude, limit,
                                &body)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

send:

    if (hlcf->format != NGX_HTTP_HISTORY_FORMAT_TEXT) {
        ngx_str_set(&type, "application/json");

    } else {
        ngx_str_set(&type, "text/plain");
    }

    return ngx_http_history_send(r, &type, &body);
}


/* a 200 answer with its body, for reads, queries and the stats */

ngx_int_t
ngx_http_history_send(ngx_http_request_t *r, ngx_str_t *type,
    ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = body->len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (body->len == 0) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The value of an argument, percent-decoded into the request's pool:
 * NGX_OK, or NGX_DECLINED if there is none (value is then empty)
 */

ngx_int_t
ngx_http_history_get_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    ngx_str_null(value);

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &arg) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (arg.len == 0) {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, arg.len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    value->data = dst;
    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, 0);
    value->len = dst - value->data;

    return NGX_OK;
}


/*
 * The list as JSON (every id, escaped), or as comma-separated text (ids
 * that could break a header or the list are left out).
 */

ngx_int_t
ngx_http_history_render(ngx_http_request_t *r, ngx_array_t *ids,
    ngx_uint_t format, ngx_str_t *exclude, ngx_uint_t limit, ngx_str_t *out)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *id;
    ngx_uint_t   i, n, pass;

    id = ids ? ids->elts : NULL;
    len = 0;
    p = NULL;

    for (pass = 0; pass < 2; pass++) {

        if (pass == 1) {
            out->data = ngx_pnalloc(r->pool, len);
            if (out->data == NULL) {
                return NGX_ERROR;
            }

            p = out->data;
        }

        if (format == NGX_HTTP_HISTORY_FORMAT_JSON) {
            if (p) {
                *p++ = '[';
            }

            len = 2;
        }

        for (i = 0, n = 0; ids && i < ids->nelts && n < limit; i++) {

            if (exclude->len == id[i].len
                && ngx_memcmp(exclude->data, id[i].data, id[i].len) == 0)
            {
                continue;
            }

            if (format == NGX_HTTP_HISTORY_FORMAT_JSON) {
                len += (n ? 1 : 0) + 2 + id[i].len
                       + ngx_http_history_escape_json(NULL, id[i].data,
                                                      id[i].len);

                if (p) {
                    if (n) {
                        *p++ = ',';
                    }

                    *p++ = '"';
                    p = (u_char *) ngx_http_history_escape_json(p, id[i].data,
                                                                id[i].len);
                    *p++ = '"';
                }

            } else {
                if (ngx_http_history_id_unsafe(id[i].data, id[i].len)) {
                    continue;
                }

                len += (n ? 1 : 0) + id[i].len;

                if (p) {
                    if (n) {
                        *p++ = ',';
                    }

                    p = ngx_cpymem(p, id[i].data, id[i].len);
                }
            }

            n++;
        }

        if (p && format == NGX_HTTP_HISTORY_FORMAT_JSON) {
            *p++ = ']';
        }
    }

    out->len = p - out->data;

    return NGX_OK;
}


/*
 * The first byte that an id never holds, whatever history_id_pattern
 * says, or NULL: a control character, a space or a comma (lists of ids
 * are handed on comma-separated, in headers too), and what HTML gives a
 * meaning to, "<", ">", "&", '"' and "'" (the text list goes into pages)
 */

u_char *
ngx_http_history_id_unsafe(u_char *p, size_t len)
{
    u_char  *last;

    for (last = p + len; p < last; p++) {
        if (*p <= ' ' || *p == ',' || *p == 0x7f || *p == '<' || *p == '>'
            || *p == '&' || *p == '"' || *p == '\'')
        {
            return p;
        }
    }

    return NULL;
}


/*
 * A JSON string's contents that are safe inside HTML too, in a <script>
 * included through SSI as in an attribute: as ngx_escape_json(), and
 * "<", ">", "&", "'", DEL, U+2028 and U+2029 as \uXXXX; a byte that does
 * not begin valid UTF-8 becomes U+FFFD.  With dst NULL, returns how many
 * bytes longer than the source the result is.
 */

uintptr_t
ngx_http_history_escape_json(u_char *dst, u_char *src, size_t size)
{
    u_char      ch, *last;
    size_t      n;
    uintptr_t   len;

    static u_char  hex[] = "0123456789abcdef";

    last = src + size;
    len = 0;

    while (src < last) {
        ch = *src;

        if (ch >= 0x80) {
            n = ngx_http_history_utf8_len(src, last);

            if (n == 0) {
                /* U+FFFD for the byte */

                if (dst) {
                    dst = ngx_cpymem(dst, "\\ufffd", 6);
                }

                len += 5;
                src++;
                continue;
            }

            if (n == 3 && ch == 0xe2 && src[1] == 0x80
                && (src[2] == 0xa8 || src[2] == 0xa9))
            {
                /* U+2028 and U+2029 end a line in JavaScript */

                if (dst) {
                    dst = ngx_cpymem(dst, "\\u202", 5);
                    *dst++ = (src[2] == 0xa8) ? '8' : '9';
                }

                len += 3;
                src += 3;
                continue;
            }

            if (dst) {
                dst = ngx_cpymem(dst, src, n);
            }

            src += n;
            continue;
        }

        src++;

        switch (ch) {

        case '"':
        case '\\':
            if (dst) {
                *dst++ = '\\';
                *dst++ = ch;
            }

            len++;
            continue;

        case '\n':
        case '\r':
        case '\t':
        case '\b':
        case '\f':
            if (dst) {
                *dst++ = '\\';
                *dst++ = (ch == '\n') ? 'n' : (ch == '\r') ? 'r'
                         : (ch == '\t') ? 't' : (ch == '\b') ? 'b' : 'f';
            }

            len++;
            continue;

        default:
            break;
        }

        if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == '&'
            || ch == '\'')
        {
            if (dst) {
                dst = ngx_cpymem(dst, "\\u00", 4);
                *dst++ = hex[ch >> 4];
                *dst++ = hex[ch & 0xf];
            }

            len += 5;
            continue;
        }

        if (dst) {
            *dst++ = ch;
        }
    }

    return dst ? (uintptr_t) dst : len;
}


/* the ids of a query: UTF-8, or refused */

ngx_uint_t
ngx_http_history_valid_utf8(u_char *p, size_t len)
{
    size_t   n;
    u_char  *last;

    last = p + len;

    while (p < last) {
        if (*p < 0x80) {
            p++;
            continue;
        }

        n = ngx_http_history_utf8_len(p, last);

        if (n == 0) {
            return 0;
        }

        p += n;
    }

    return 1;
}


/*
 * The length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 if p does not begin one
 */

static size_t
ngx_http_history_utf8_len(u_char *p, u_char *last)
{
    u_char  c, lo, hi;
    size_t  n, i;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c < 0x80) {
        return 1;

    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}


ngx_int_t
ngx_http_history_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                s, none;
    ngx_http_history_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_history_module);

    ngx_str_null(&none);

    if (ctx == NULL || ctx->ids == NULL) {
        ngx_str_null(&s);

    } else if (ngx_http_history_render(r, ctx->ids,
                                       NGX_HTTP_HISTORY_FORMAT_TEXT, &none,
                                       NGX_MAX_UINT32_VALUE, &s)
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s.data;

    return NGX_OK;
}


char *
ngx_http_history_serve(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    if (hlcf->format != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1 || ngx_strcmp(value[1].data, "json") == 0) {
        hlcf->format = NGX_HTTP_HISTORY_FORMAT_JSON;

    } else if (ngx_strcmp(value[1].data, "text") == 0) {
        hlcf->format = NGX_HTTP_HISTORY_FORMAT_TEXT;

    } else {
        return ngx_http_history_invalid(cf, cmd, &value[1],
                                        "it must be \"json\" or \"text\"");
    }

    ngx_http_history_set_handler(cf, ngx_http_history_serve_handler);

    return NGX_CONF_OK;
}
