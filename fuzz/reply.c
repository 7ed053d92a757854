
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Redis replies, as the module turns them into response bodies.
 *
 * The input: an optional first line "?ARGS\n", the request's query string
 * (ids=, exclude=, limit=), then bytes from Redis.  These go through the
 * link's scan (ngx_http_history_scan(), with its default limit: what it
 * refuses never reaches the reader) and are fed to hiredis's reply reader
 * as the link makes and uses it (ngx_http_history_reader_create(),
 * redisReaderFeed(), redisReaderGetReply() until no more reply or an
 * error, the reply's pool released after each), and each reply is handed
 * to
 * ngx_http_history_reply(), the link's callback, once per kind of read:
 *
 *   fetch/serve  the list read: ids copied from the reply, then
 *                ngx_http_history_render() in JSON and in text, with
 *                exclude and limit taken from the args as
 *                ngx_http_history_respond() does
 *   forget       DEL
 *   online       ngx_http_history_online_part() for one set, then for
 *                each of four (the same reply for each), then
 *                ngx_http_history_online_body(), with ?ids= parsed by
 *                ngx_http_history_parse_ids()
 *   views        ngx_http_history_views_count() for each count (the
 *                same reply for each), then ngx_http_history_views_body(),
 *                once for each history_views setting (total; daily;
 *                unique; both)
 *
 * Checked: a read fails exactly when the reply has the wrong shape, and
 * never on a reply the link lets through for LRANGE
 * (ngx_http_history_shape_check()); the
 * ids kept are the reply's non-empty strings, in order; the JSON bodies are
 * single well-formed JSON values of exactly body.len bytes, valid UTF-8
 * without "<", ">", "&", "'", U+2028 or U+2029 as they are (safe inside
 * HTML); the JSON list decodes back to the ids kept (less exclude, at most
 * limit), each byte that begins no UTF-8 sequence as U+FFFD; the text
 * list is those of them without a byte <= 0x20, ',', 0x7f, "<", ">", "&",
 * '"' or "'", joined with commas.  With -DNGX_DEBUG_PALLOC=1
 * AddressSanitizer checks every
 * allocation's bounds.
 */


#include "../ngx_http_history_module.h"
#include "harness.h"


#define FUZZ_REPLIES_MAX  64

/*
 * The link's reader refuses an array header of more than
 * NGX_HTTP_HISTORY_ELEMENTS_MAX elements; below that, it allocates the
 * element pointers as soon as it reads the header "*N\r\n".  Inputs that
 * declare an array larger than this are skipped: the memory a few nested
 * headers just under the limit reserve is the reader's, not the module's,
 * and would only slow fuzzing down.
 */
#define FUZZ_ARRAY_MAX    (1 << 20)


static ngx_uint_t
fuzz_huge_array(const u_char *p, size_t size)
{
    const u_char  *last;
    uint64_t       n;

    for (last = p + size; p < last; p++) {
        if (*p != '*') {
            continue;
        }

        for (n = 0, p++; p < last && *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');

            if (n > (uint64_t) NGX_MAX_INT32_VALUE) {
                break;
            }
        }

        if (n > FUZZ_ARRAY_MAX && n <= (uint64_t) NGX_MAX_INT32_VALUE) {
            return 1;
        }

        p--;
    }

    return 0;
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();

    return 0;
}


/* whether the link hands this reply over as the answer to a command */

static ngx_uint_t
fuzz_link_takes(redisReply *reply, const char *name)
{
    u_char                     kind;
    size_t                     len;
    const char                *expected;
    ngx_http_history_command_t  cmd;
    ngx_http_history_shape_t   shape;

    len = strlen(name);

    cmd.argc = 1;
    cmd.argv = &name;
    cmd.argvlen = &len;

    kind = (u_char) ngx_http_history_shape_kind(&cmd);

    ngx_memzero(&shape, sizeof(ngx_http_history_shape_t));
    shape.kind = &kind;
    shape.n = 1;

    /* an error reply is not handed over: the unit failed */

    return ngx_http_history_shape_check(&shape, reply, &expected) == NGX_OK
           && reply->type != REDIS_REPLY_ERROR;
}

/* the online set of an id: zlib's CRC-32, as the handler computes it */

static ngx_uint_t
fuzz_online_set(ngx_str_t *id)
{
    return ngx_http_history_online_shard(&fuzz_hlcf,
                                         ngx_crc32_long(id->data, id->len));
}


/* how many of the ids are in that online set */

static size_t
fuzz_online_ids(ngx_array_t *ids, ngx_uint_t shard)
{
    size_t       n;
    ngx_str_t   *id;
    ngx_uint_t   i;

    id = ids->elts;
    n = 0;

    for (i = 0; i < ids->nelts; i++) {
        n += (fuzz_online_set(&id[i]) == shard);
    }

    return n;
}


/*
 * The link's callback for each of n units a request waits for, with the
 * same reply (history_views waits for one unit per count, the others for
 * one unit).
 */

static ngx_http_history_ctx_t *
fuzz_call(ngx_http_request_t *r, ngx_uint_t op, ngx_array_t *ids,
    ngx_uint_t n, redisReply *reply)
{
    ngx_uint_t               i, k;
    ngx_http_history_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_history_ctx_t));
    if (ctx == NULL) {
        abort();
    }

    ctx->request = r;
    ctx->op = op;
    ctx->ids = ids;
    ctx->event.data = ctx;
    ctx->event.log = r->connection->log;

    /* as the handlers make them: online keeps a total and a time per id */

    k = (op == NGX_HTTP_HISTORY_OP_ONLINE) ? 1 + ids->nelts : n;

    ctx->parts = ngx_pcalloc(r->pool, n * sizeof(ngx_http_history_part_t));
    ctx->counts = ngx_pcalloc(r->pool, k * sizeof(off_t));
    if (ctx->parts == NULL || ctx->counts == NULL) {
        abort();
    }

    if (op == NGX_HTTP_HISTORY_OP_ONLINE) {
        ctx->sets = ngx_palloc(r->pool, ids->nelts + 1);
        if (ctx->sets == NULL) {
            abort();
        }

        for (i = 0; i < ids->nelts; i++) {
            ctx->counts[1 + i] = -1;
            ctx->sets[i] = fuzz_online_set(&((ngx_str_t *) ids->elts)[i]);
        }
    }

    ctx->nparts = n;
    ctx->nsent = n;
    ctx->left = n;

    for (i = 0; i < n; i++) {
        /* a unit in flight, as far as the request knows */
        ctx->parts[i].ctx = ctx;
        ctx->parts[i].unit = (ngx_http_history_unit_t *) ctx;
    }

    for (i = 0; i < n; i++) {
        FUZZ_CHECK(!ctx->done, "op %lu: done before the last reply",
                   (unsigned long) op);
        ngx_http_history_reply(&ctx->parts[i], reply);
        FUZZ_CHECK(ctx->parts[i].unit == NULL, "op %lu: unit left set",
                   (unsigned long) op);
    }

    FUZZ_CHECK(ctx->left == 0, "op %lu: replies left", (unsigned long) op);
    FUZZ_CHECK(ctx->done, "op %lu: not done", (unsigned long) op);
    FUZZ_CHECK(ctx->event.posted, "op %lu: the request was not woken up",
               (unsigned long) op);

    ngx_delete_posted_event(&ctx->event);

    FUZZ_CHECK(ngx_queue_empty(&ngx_posted_events),
               "op %lu: posted events left", (unsigned long) op);

    return ctx;
}


static const char *
fuzz_format(ngx_uint_t format)
{
    return format == NGX_HTTP_HISTORY_FORMAT_JSON ? "json" : "text";
}


/* JSON safe inside HTML: UTF-8, and none of what HTML or JavaScript read */

static ngx_uint_t
fuzz_html_safe(const u_char *p, size_t len)
{
    size_t         n;
    const u_char  *last;

    last = p + len;

    while (p < last) {
        if (*p == '<' || *p == '>' || *p == '&' || *p == '\'') {
            return 0;
        }

        n = fuzz_utf8_len(p, last);

        if (n == 0
            || (n == 3 && p[0] == 0xe2 && p[1] == 0x80
                && (p[2] == 0xa8 || p[2] == 0xa9)))
        {
            return 0;
        }

        p += n;
    }

    return 1;
}


/* an id as JSON gives it back: U+FFFD for each byte that begins no UTF-8 */

static size_t
fuzz_utf8_fixed(const u_char *p, size_t len, u_char *out)
{
    size_t         n, k;
    const u_char  *last;

    last = p + len;
    k = 0;

    while (p < last) {
        n = fuzz_utf8_len(p, last);

        if (n == 0) {
            out[k++] = 0xef;
            out[k++] = 0xbf;
            out[k++] = 0xbd;
            p++;
            continue;
        }

        ngx_memcpy(out + k, p, n);
        k += n;
        p += n;
    }

    return k;
}


/* the list of a fetch or a serve, as ngx_http_history_respond() sends it */

static void
fuzz_list(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx,
    redisReply *reply, ngx_str_t *exclude, ngx_uint_t limit)
{
    u_char       *p, *last, *dec, *fixed;
    size_t        i, k, n, len, flen;
    ngx_str_t    *id, out;
    ngx_uint_t    format, want, exclude_nul_known;
    redisReply   *e;

    exclude_nul_known = fuzz_known("exclude-nul");

    want = (reply->type == REDIS_REPLY_ARRAY);

    FUZZ_CHECK(ctx->failed == !want,
               "list read of a reply of type %d: failed = %u",
               reply->type, (unsigned) ctx->failed);

    FUZZ_CHECK(!ctx->failed || !fuzz_link_takes(reply, "LRANGE"),
               "list read failed on a reply the link takes for LRANGE");

    if (ctx->failed) {
        return;
    }

    /* the ids kept: every non-empty string, in order */

    FUZZ_CHECK(ctx->ids != NULL, "list read: no ids");

    id = ctx->ids->elts;
    k = 0;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING || e->len == 0) {
            continue;
        }

        FUZZ_CHECK(k < ctx->ids->nelts, "list read: %lu ids kept, more "
                   "strings in the reply", (unsigned long) ctx->ids->nelts);
        FUZZ_CHECK(id[k].len == e->len
                   && ngx_memcmp(id[k].data, e->str, e->len) == 0,
                   "list read: id %lu is not element %lu",
                   (unsigned long) k, (unsigned long) i);
        k++;
    }

    FUZZ_CHECK(k == ctx->ids->nelts, "list read: %lu ids kept, %lu expected",
               (unsigned long) ctx->ids->nelts, (unsigned long) k);

    for (format = NGX_HTTP_HISTORY_FORMAT_JSON;
         format <= NGX_HTTP_HISTORY_FORMAT_TEXT;
         format++)
    {
        ngx_str_null(&out);

        if (ngx_http_history_render(r, ctx->ids, format, exclude, limit, &out)
            != NGX_OK)
        {
            FUZZ_CHECK(0, "render(%s) failed", fuzz_format(format));
        }

        p = out.data;
        last = out.data + out.len;

        if (format == NGX_HTTP_HISTORY_FORMAT_JSON) {
            FUZZ_CHECK(fuzz_json_ok(out.data, out.len),
                       "render(json) is not one JSON value of %lu bytes: %s",
                       (unsigned long) out.len,
                       fuzz_show(out.data, out.len));

            FUZZ_CHECK(out.len >= 2 && p[0] == '[' && last[-1] == ']',
                       "render(json) is not an array: %s",
                       fuzz_show(out.data, out.len));

            FUZZ_CHECK(fuzz_html_safe(out.data, out.len),
                       "render(json) is not safe in HTML: %s",
                       fuzz_show(out.data, out.len));

            p = (u_char *) fuzz_json_ws(p + 1, last);

        }

        /* walk the expected ids and the output together */

        dec = malloc(NGX_HTTP_HISTORY_ID_MAX + out.len + 1);
        fixed = malloc(3 * NGX_HTTP_HISTORY_ID_MAX + out.len + 1);
        if (dec == NULL || fixed == NULL) {
            abort();
        }

        for (i = 0, n = 0; i < ctx->ids->nelts && n < limit; i++) {

            /*
             * excluded: the very same bytes; known: the module compares
             * with ngx_strncmp(), which stops at a NUL byte
             */

            if (exclude->len == id[i].len
                && (ngx_memcmp(exclude->data, id[i].data, id[i].len) == 0
                    || (exclude_nul_known
                        && ngx_strncmp(exclude->data, id[i].data, id[i].len)
                           == 0)))
            {
                continue;
            }

            if (format == NGX_HTTP_HISTORY_FORMAT_TEXT
                && ngx_http_history_id_unsafe(id[i].data, id[i].len))
            {
                continue;
            }

            if (n) {
                FUZZ_CHECK(p < last && *p == ',',
                           "render(%s): no comma before id %lu: %s",
                           fuzz_format(format),
                           (unsigned long) n, fuzz_show(out.data, out.len));
                p++;
            }

            if (format == NGX_HTTP_HISTORY_FORMAT_JSON) {
                p = (u_char *) fuzz_json_string(fuzz_json_ws(p, last), last,
                                                dec, &len);

                FUZZ_CHECK(p != NULL,
                           "render(json): no string for id %lu \"%s\" "
                           "(exclude \"%s\", limit %lu) in %s",
                           (unsigned long) n,
                           fuzz_show(id[i].data, id[i].len),
                           fuzz_show(exclude->data, exclude->len),
                           (unsigned long) limit,
                           fuzz_show(out.data, out.len));
                flen = fuzz_utf8_fixed(id[i].data, id[i].len, fixed);

                FUZZ_CHECK(len == flen && ngx_memcmp(dec, fixed, len) == 0,
                           "render(json): id %lu decodes to \"%s\"",
                           (unsigned long) n, fuzz_show(dec, len));

                p = (u_char *) fuzz_json_ws(p, last);

            } else {
                FUZZ_CHECK((size_t) (last - p) >= id[i].len
                           && ngx_memcmp(p, id[i].data, id[i].len) == 0,
                           "render(text): id %lu is not \"%s\" in %s",
                           (unsigned long) n,
                           fuzz_show(id[i].data, id[i].len),
                           fuzz_show(out.data, out.len));

                p += id[i].len;
            }

            n++;
        }

        free(dec);
        free(fixed);

        if (format == NGX_HTTP_HISTORY_FORMAT_JSON) {
            FUZZ_CHECK(p + 1 == last,
                       "render(json): %ld bytes after %lu ids: %s",
                       (long) (last - p), (unsigned long) n,
                       fuzz_show(out.data, out.len));

        } else {
            FUZZ_CHECK(p == last,
                       "render(text): %ld bytes after %lu ids: %s",
                       (long) (last - p), (unsigned long) n,
                       fuzz_show(out.data, out.len));

            for (p = out.data; p < last; p++) {
                FUZZ_CHECK(*p > ' ' && *p != 0x7f,
                           "render(text): byte 0x%02x at %ld: %s", *p,
                           (long) (p - out.data),
                           fuzz_show(out.data, out.len));
            }
        }
    }
}


static void
fuzz_body(ngx_http_history_ctx_t *ctx, const char *what, ngx_uint_t want)
{
    FUZZ_CHECK(ctx->failed == !want, "%s: failed = %u, expected %lu",
               what, (unsigned) ctx->failed, (unsigned long) !want);

    if (ctx->failed) {
        return;
    }

    FUZZ_CHECK(ctx->body.data != NULL && ctx->body.len >= 2,
               "%s: body of %lu bytes", what, (unsigned long) ctx->body.len);

    FUZZ_CHECK(fuzz_json_ok(ctx->body.data, ctx->body.len)
               && ctx->body.data[0] == '{',
               "%s: body is not one JSON object of %lu bytes: %s", what,
               (unsigned long) ctx->body.len,
               fuzz_show(ctx->body.data, ctx->body.len));

    FUZZ_CHECK(fuzz_html_safe(ctx->body.data, ctx->body.len),
               "%s: body is not safe in HTML: %s", what,
               fuzz_show(ctx->body.data, ctx->body.len));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                      *dst, *src, *nl;
    void                        *reply_void;
    size_t                       j, used;
    ngx_int_t                    n, rc;
    ngx_str_t                    exclude, value;
    ngx_uint_t                   limit, views, count, want, shards;
    redisReply                  *reply;
    ngx_array_t                 *ids;
    redisReader                 *reader;
    ngx_http_request_t          *r;
    ngx_http_history_ctx_t      *ctx;
    ngx_http_history_scan_t      scan;
    ngx_http_history_replies_t   rp;

    if (fuzz_huge_array(data, size)) {
        return -1;    /* not into the corpus */
    }

    /* ?ARGS\n */

    if (size && data[0] == '?'
        && (nl = memchr(data, '\n', size)) != NULL)
    {
        r = fuzz_request(data + 1, nl - data - 1);
        size -= nl + 1 - data;
        data = nl + 1;

    } else {
        r = fuzz_request(NULL, 0);
    }

    /* exclude and limit, as ngx_http_history_respond() reads them */

    ngx_str_null(&exclude);
    limit = NGX_MAX_UINT32_VALUE;

    if (ngx_http_arg(r, (u_char *) "exclude", 7, &value) == NGX_OK
        && value.len)
    {
        dst = ngx_pnalloc(r->pool, value.len);
        if (dst == NULL) {
            abort();
        }

        exclude.data = dst;
        src = value.data;
        ngx_unescape_uri(&dst, &src, value.len, 0);
        exclude.len = dst - exclude.data;
    }

    if (ngx_http_arg(r, (u_char *) "limit", 5, &value) == NGX_OK) {
        n = ngx_atoi(value.data, value.len);
        if (n != NGX_ERROR) {
            limit = n;
        }
    }

    /* ?ids= of history_online and history_views; a bad one gets a 400 */

    rc = ngx_http_history_parse_ids(r, &ids);
    if (rc != NGX_OK) {
        ids = NULL;
    }

    /* the replies */

    ngx_memzero(&rp, sizeof(ngx_http_history_replies_t));

    rp.pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &fuzz_log);
    rp.log = &fuzz_log;

    reader = ngx_http_history_reader_create(&rp);

    if (rp.pool == NULL || reader == NULL) {
        abort();
    }

    /* what the link's scan lets through, as the link does */

    ngx_http_history_scan_init(&scan, 0);
    used = ngx_http_history_scan(&scan, (u_char *) data, size);

    if (used
        && redisReaderFeed(reader, (const char *) data, used) != REDIS_OK)
    {
        redisReaderFree(reader);
        ngx_destroy_pool(rp.pool);
        fuzz_done(r);
        return 0;
    }

    for (count = 0; count < FUZZ_REPLIES_MAX; count++) {
        reply_void = NULL;

        if (redisReaderGetReply(reader, &reply_void) != REDIS_OK
            || reply_void == NULL)
        {
            break;
        }

        reply = reply_void;

        /* fetch and serve */

        ctx = fuzz_call(r, count % 2 ? NGX_HTTP_HISTORY_OP_SERVE
                                     : NGX_HTTP_HISTORY_OP_FETCH,
                        NULL, 1, reply);
        fuzz_list(r, ctx, reply, &exclude, limit);

        /* forget: any answer will do */

        ctx = fuzz_call(r, NGX_HTTP_HISTORY_OP_FORGET, NULL, 1, reply);
        FUZZ_CHECK(!ctx->failed, "forget failed on a reply");

        if (ids == NULL) {
            ngx_http_history_reader_release(&rp);
            continue;
        }

        /*
         * online: [count, [score, ...]] or [count], from one set, then
         * the same reply from each of four sets: a score for each id of
         * that set, and a total that does not overflow
         */

        fuzz_hlcf.online_timeout = 300;

        for (shards = 1; shards <= 4; shards += 3) {
            fuzz_hlcf.online_shards = shards;

            want = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1
                   && reply->element[0]->type == REDIS_REPLY_INTEGER
                   && reply->element[0]->integer >= 0
                   && reply->element[0]->integer
                      <= (long long) (NGX_MAX_OFF_T_VALUE / shards);

            for (j = 0; want && reply->elements > 1 && j < shards; j++) {
                want = reply->element[1]->type == REDIS_REPLY_ARRAY
                       && reply->element[1]->elements
                          == fuzz_online_ids(ids, j);
            }

            ctx = fuzz_call(r, NGX_HTTP_HISTORY_OP_ONLINE, ids, shards,
                            reply);
            fuzz_body(ctx, "online", want);
        }

        fuzz_hlcf.online_shards = 1;

        /* views: a count per id and kind (total, today, unique) */

        for (views = 0; views < 4 && ids->nelts; views++) {
            fuzz_hlcf.views_flags = views;

            j = ids->nelts
                * (1 + ((views & NGX_HTTP_HISTORY_COUNT_DAILY) ? 1 : 0)
                   + ((views & NGX_HTTP_HISTORY_COUNT_UNIQUE) ? 1 : 0));

            want = reply->type == REDIS_REPLY_STRING
                   || reply->type == REDIS_REPLY_INTEGER
                   || reply->type == REDIS_REPLY_NIL;

            ctx = fuzz_call(r, NGX_HTTP_HISTORY_OP_VIEWS, ids, j, reply);
            fuzz_body(ctx, "views", want);
        }

        fuzz_hlcf.views_flags = 0;

        ngx_http_history_reader_release(&rp);
    }

    /* and a unit that failed: no reply at all */

    ctx = fuzz_call(r, NGX_HTTP_HISTORY_OP_FETCH, NULL, 1, NULL);
    FUZZ_CHECK(ctx->failed, "a read without a reply did not fail");

    redisReaderFree(reader);
    ngx_destroy_pool(rp.pool);

    fuzz_done(r);

    return 0;
}
