
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Recording: the log-phase handler that turns a served page into Redis
 * work (a view, the last action, counts), the keys it writes and the
 * check of product ids.  Calls the visitor's key and the Redis link.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


static void ngx_http_history_record(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_link_t *link,
    ngx_str_t *key, ngx_str_t *id, ngx_uint_t fresh);
static void ngx_http_history_last_action(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key);
static void ngx_http_history_count(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key, ngx_str_t *id);


/*
 * Runs after the response has been sent: the view is handed to the
 * worker's Redis link and the request goes on without waiting for it.
 * Only the main request is a visit: a subrequest (an SSI include,
 * auth_request, mirror) is logged with log_subrequest on, but records,
 * counts and writes nothing.  The configuration is the final location's
 * (after rewrites and internal redirects), and so is the visitor's key.
 */

/*
 * The type-safe view, for the bare prefix, where any key of the database
 * may be named: a key holding anything but a list is left as it is.
 */

static char  ngx_http_history_record_script[] =
    "local t = redis.call('TYPE', KEYS[1]).ok "
    "if t ~= 'list' and t ~= 'none' then return 0 end "
    "redis.call('LREM', KEYS[1], 0, ARGV[1]) "
    "redis.call('LPUSH', KEYS[1], ARGV[1]) "
    "redis.call('LTRIM', KEYS[1], 0, ARGV[2]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "return 1";


ngx_int_t
ngx_http_history_log_handler(ngx_http_request_t *r)
{
    ngx_str_t                      key, id, none;
    ngx_uint_t                     i, status, *codes, fresh;
    ngx_http_history_ctx_t        *ctx;
    ngx_http_history_loc_conf_t   *hlcf;
    ngx_http_history_main_conf_t  *hmcf;

    if (r != r->main) {
        return NGX_OK;
    }

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (hlcf->record == NULL && hlcf->count == NULL && !hlcf->last_action) {
        return NGX_OK;
    }

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    if (hmcf->link == NULL) {
        return NGX_OK;
    }

    if (ngx_http_history_visitor(r, hlcf, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * A visitor id this response has issued: until its cookie comes back,
     * the list is short-lived (history_new_visitor_expire), and the
     * visitor is neither online nor counted as a unique visitor, so that a
     * client that never sends cookies back leaves nothing that lasts.  An
     * id whose cookie was not set (the response was no view) is nobody.
     */

    fresh = 0;
    ngx_str_null(&none);

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_history_module);

    if (ctx && ctx->issue && key.data == ctx->key.data) {
        if (ctx->cookie_set) {
            fresh = 1;

        } else {
            ngx_str_null(&key);
        }
    }

    if (hlcf->last_action && key.len && !fresh) {
        ngx_http_history_last_action(r, hlcf, hmcf, &key);
    }

    if (r->method != NGX_HTTP_GET) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    codes = hlcf->status->elts;

    for (i = 0; i < hlcf->status->nelts; i++) {
        if (codes[i] == status) {
            break;
        }
    }

    if (i == hlcf->status->nelts) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "history: status %ui is not a view", status);
        return NGX_OK;
    }

    if (hlcf->count) {
        if (ngx_http_complex_value(r, hlcf->count, &id) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_history_valid_id(r, hlcf, &id) == NGX_OK) {
            ngx_http_history_count(r, hlcf, hmcf, fresh ? &none : &key,
                                   &id);
        }
    }

    if (hlcf->record == NULL || key.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, hlcf->record, &id) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_history_valid_id(r, hlcf, &id) != NGX_OK) {
        return NGX_OK;
    }

    ngx_http_history_record(r, hlcf, hmcf->link, &key, &id, fresh);

    return NGX_OK;
}


ngx_int_t
ngx_http_history_valid_id(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *id)
{
    u_char  *p, *last;

    if (id->len == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "history: no product id");
        return NGX_DECLINED;
    }

    if (id->len > NGX_HTTP_HISTORY_ID_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: product id of %uz bytes is too long, "
                      "view not recorded", id->len);
        return NGX_DECLINED;
    }

    p = ngx_http_history_id_unsafe(id->data, id->len);

    if (p) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: product id has a byte 0x%02Xd at %uz, "
                      "view not recorded", *p, p - id->data);
        return NGX_DECLINED;
    }

    last = id->data + id->len;

    switch (hlcf->id_check) {

    case NGX_HTTP_HISTORY_ID_DIGITS:

        /* the default pattern, "^[0-9]+$", checked without PCRE */

        for (p = id->data; p < last; p++) {
            if (*p < '0' || *p > '9') {
                goto mismatch;
            }
        }

        return NGX_OK;

#if (NGX_PCRE)
    case NGX_HTTP_HISTORY_ID_PATTERN:

        /* a PCRE error (a match limit hit) does not count as a match */

        if (ngx_regex_exec(hlcf->pattern, id, NULL, 0) < 0) {
            goto mismatch;
        }

        return NGX_OK;
#endif

    default: /* NGX_HTTP_HISTORY_ID_ANY */
        return NGX_OK;
    }

mismatch:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "history: product id \"%V\" does not match "
                  "history_id_pattern, view not recorded", id);
    return NGX_DECLINED;
}


/*
 * One unit, one round trip, atomic:
 * MULTI; LREM k 0 id; LPUSH k id; LTRIM k 0 N-1; EXPIRE k ttl; EXEC,
 * or, with the bare prefix, the same in a script that leaves a key of
 * another type alone (EXPIRE in MULTI runs even when LPUSH fails).
 */

static void
ngx_http_history_record(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_link_t *link,
    ngx_str_t *key, ngx_str_t *id, ngx_uint_t fresh)
{
    ngx_str_t                 k, *ttl;
    ngx_http_history_batch_t  b;

    if (ngx_http_history_make_key(r, hlcf, "", key, NULL, &k) != NGX_OK) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "history: record \"%V\" for \"%V\"%s", id, &k,
                   fresh ? ", a new visitor" : "");

    ttl = fresh ? &hlcf->new_ttl : &hlcf->ttl;

    ngx_http_history_batch_init(&b, &k);

    if (hlcf->prefix.len == 0) {
        ngx_http_history_batch_command(&b, "EVAL");
        ngx_http_history_batch_arg(&b,
                                   (u_char *) ngx_http_history_record_script,
                                   sizeof(ngx_http_history_record_script)
                                   - 1);
        ngx_http_history_batch_arg(&b, (u_char *) "1", 1);
        ngx_http_history_batch_key(&b, &k);
        ngx_http_history_batch_arg(&b, id->data, id->len);
        ngx_http_history_batch_arg(&b, hlcf->trim.data, hlcf->trim.len);
        ngx_http_history_batch_arg(&b, ttl->data, ttl->len);

        /* the same move to the front as the transaction below */
        ngx_http_history_batch_idempotent(&b);

        (void) ngx_http_history_link_send(link, &b, NULL, NULL);
        return;
    }

    ngx_http_history_batch_command(&b, "MULTI");

    ngx_http_history_batch_command(&b, "LREM");
    ngx_http_history_batch_key(&b, &k);
    ngx_http_history_batch_arg(&b, (u_char *) "0", 1);
    ngx_http_history_batch_arg(&b, id->data, id->len);

    ngx_http_history_batch_command(&b, "LPUSH");
    ngx_http_history_batch_key(&b, &k);
    ngx_http_history_batch_arg(&b, id->data, id->len);

    ngx_http_history_batch_command(&b, "LTRIM");
    ngx_http_history_batch_key(&b, &k);
    ngx_http_history_batch_arg(&b, (u_char *) "0", 1);
    ngx_http_history_batch_arg(&b, hlcf->trim.data, hlcf->trim.len);

    ngx_http_history_batch_command(&b, "EXPIRE");
    ngx_http_history_batch_key(&b, &k);
    ngx_http_history_batch_arg(&b, ttl->data, ttl->len);

    ngx_http_history_batch_command(&b, "EXEC");

    /* the same list whether done once or twice */
    ngx_http_history_batch_idempotent(&b);

    (void) ngx_http_history_link_send(link, &b, NULL, NULL);
}


/* <prefix><part>[<id>][:<suffix>], in the request's pool */

ngx_int_t
ngx_http_history_make_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, char *part, ngx_str_t *id,
    ngx_str_t *suffix, ngx_str_t *k)
{
    u_char  *p;
    size_t   len;

    len = ngx_strlen(part);

    k->len = hlcf->prefix.len + len + (id ? id->len : 0)
             + (suffix ? 1 + suffix->len : 0);

    k->data = ngx_pnalloc(r->pool, k->len);
    if (k->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(k->data, hlcf->prefix.data, hlcf->prefix.len);
    p = ngx_cpymem(p, part, len);

    if (id) {
        p = ngx_cpymem(p, id->data, id->len);
    }

    if (suffix) {
        *p++ = ':';
        ngx_memcpy(p, suffix->data, suffix->len);
    }

    return NGX_OK;
}


/*
 * The online set of a visitor: one of history_online_shards sets, by the
 * CRC-32 of the visitor's key (zlib's, as Python's zlib.crc32 computes it)
 */

ngx_uint_t
ngx_http_history_online_shard(ngx_http_history_loc_conf_t *hlcf,
    uint32_t crc)
{
    return crc % hlcf->online_shards;
}


/* <prefix>online, or <prefix>online:<shard> with several sets */

ngx_int_t
ngx_http_history_online_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_uint_t shard, ngx_str_t *k)
{
    u_char     buf[NGX_INT_T_LEN];
    ngx_str_t  n;

    if (hlcf->online_shards == 1) {
        return ngx_http_history_make_key(r, hlcf, "online", NULL, NULL, k);
    }

    n.data = buf;
    n.len = ngx_sprintf(buf, "%ui", shard) - buf;

    return ngx_http_history_make_key(r, hlcf, "online:", &n, NULL, k);
}


/*
 * The visitor's last action: SET <last action key> <now> EX <timeout> and
 * ZADD <online set> <now> <visitor>, at most once a second per visitor
 * and worker.  Once a second per worker and set the online set is also
 * pruned of visitors gone for longer than the timeout, and its TTL
 * refreshed.
 */

static void
ngx_http_history_last_action(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key)
{
    time_t                     now;
    uint32_t                   check;
    ngx_str_t                  k, online;
    ngx_uint_t                 hash, shard;
    ngx_http_history_seen_t   *seen;
    ngx_http_history_batch_t   b;

    now = ngx_time();

    hash = ngx_hash_key(key->data, key->len);
    check = ngx_crc32_short(key->data, key->len);
    seen = &hmcf->seen[hash % NGX_HTTP_HISTORY_SEEN_SIZE];

    if (seen->time == now && seen->hash == hash && seen->check == check) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "history: last action of \"%V\" already written",
                       key);
        return;
    }

    seen->time = now;
    seen->hash = hash;
    seen->check = check;

    if (hlcf->last_action_key) {
        if (ngx_http_complex_value(r, hlcf->last_action_key, &k) != NGX_OK
            || k.len == 0)
        {
            return;
        }

    } else if (ngx_http_history_make_key(r, hlcf, "last_action:", key, NULL,
                                         &k)
               != NGX_OK)
    {
        return;
    }

    /* the same CRC-32 as the coalescing table's check */
    shard = ngx_http_history_online_shard(hlcf, check);

    if (ngx_http_history_online_key(r, hlcf, shard, &online) != NGX_OK) {
        return;
    }

    /* the visitor's key and the online set: two keys, two units */

    ngx_http_history_batch_init(&b, &k);

    ngx_http_history_batch_command(&b, "SET");
    ngx_http_history_batch_key(&b, &k);
    ngx_http_history_batch_number(&b, now);
    ngx_http_history_batch_arg(&b, (u_char *) "EX", 2);
    ngx_http_history_batch_number(&b, hlcf->online_timeout);
    ngx_http_history_batch_idempotent(&b);

    (void) ngx_http_history_link_send(hmcf->link, &b, NULL, NULL);

    ngx_http_history_batch_init(&b, &online);

    ngx_http_history_batch_command(&b, "ZADD");
    ngx_http_history_batch_key(&b, &online);
    ngx_http_history_batch_number(&b, now);
    ngx_http_history_batch_arg(&b, key->data, key->len);

    if (hmcf->pruned[shard] != now) {
        hmcf->pruned[shard] = now;

        ngx_http_history_batch_command(&b, "ZREMRANGEBYSCORE");
        ngx_http_history_batch_key(&b, &online);
        ngx_http_history_batch_arg(&b, (u_char *) "-inf", 4);
        ngx_http_history_batch_number(&b, now - hlcf->online_timeout);

        ngx_http_history_batch_command(&b, "EXPIRE");
        ngx_http_history_batch_key(&b, &online);
        ngx_http_history_batch_number(&b, hlcf->online_timeout);
    }

    ngx_http_history_batch_idempotent(&b);

    (void) ngx_http_history_link_send(hmcf->link, &b, NULL, NULL);
}


/*
 * A page view: INCR <prefix>views:<id>; with "daily", also
 * INCR <prefix>views:<id>:<YYYY-MM-DD> and its EXPIRE; with "unique",
 * PFADD <prefix>visitors:<id> <visitor>.
 */

static void
ngx_http_history_count(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key, ngx_str_t *id)
{
    ngx_str_t                  k, day;
    ngx_http_history_batch_t   b;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "history: count \"%V\"", id);

    /* each counter is a key of its own, and a unit of its own */

    if (ngx_http_history_make_key(r, hlcf, "views:", id, NULL, &k)
        != NGX_OK)
    {
        return;
    }

    ngx_http_history_batch_init(&b, &k);
    ngx_http_history_batch_command(&b, "INCR");
    ngx_http_history_batch_key(&b, &k);

    (void) ngx_http_history_link_send(hmcf->link, &b, NULL, NULL);

    if (hlcf->count_flags & NGX_HTTP_HISTORY_COUNT_DAILY) {
        ngx_http_history_today(hmcf, &day);

        if (ngx_http_history_make_key(r, hlcf, "views:", id, &day, &k)
            != NGX_OK)
        {
            return;
        }

        ngx_http_history_batch_init(&b, &k);

        ngx_http_history_batch_command(&b, "INCR");
        ngx_http_history_batch_key(&b, &k);

        ngx_http_history_batch_command(&b, "EXPIRE");
        ngx_http_history_batch_key(&b, &k);
        ngx_http_history_batch_number(&b, hlcf->count_expire);

        (void) ngx_http_history_link_send(hmcf->link, &b, NULL, NULL);
    }

    if ((hlcf->count_flags & NGX_HTTP_HISTORY_COUNT_UNIQUE) && key->len) {
        if (ngx_http_history_make_key(r, hlcf, "visitors:", id, NULL, &k)
            != NGX_OK)
        {
            return;
        }

        ngx_http_history_batch_init(&b, &k);
        ngx_http_history_batch_command(&b, "PFADD");
        ngx_http_history_batch_key(&b, &k);
        ngx_http_history_batch_arg(&b, key->data, key->len);

        (void) ngx_http_history_link_send(hmcf->link, &b, NULL, NULL);
    }
}


/* today's date in UTC, YYYY-MM-DD, worked out once a second */

void
ngx_http_history_today(ngx_http_history_main_conf_t *hmcf, ngx_str_t *day)
{
    ngx_tm_t  tm;

    if (hmcf->day_time != ngx_time()) {
        hmcf->day_time = ngx_time();

        ngx_gmtime(hmcf->day_time, &tm);

        (void) ngx_sprintf(hmcf->day, "%4d-%02d-%02d",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday);
    }

    day->data = hmcf->day;
    day->len = sizeof(hmcf->day);
}


char *
ngx_http_history_count_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (hlcf->count != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* as "mirror off": nothing inherited is counted here */

    if (ngx_strcmp(value[1].data, "off") == 0) {

        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\" directive",
                               &value[2], &cmd->name);
            return NGX_CONF_ERROR;
        }

        hlcf->count = NULL;
        hlcf->count_flags = 0;

        return NGX_CONF_OK;
    }

    ngx_http_history_needs_redis(cf);

    hlcf->count = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (hlcf->count == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = hlcf->count;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_history_count_flags(cf, cmd, 2, &hlcf->count_flags)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * history_record: nginx's complex value, of a directive that needs Redis;
 * "off", as "mirror off", records nothing inherited here
 */

char *
ngx_http_history_record_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {

        if (hlcf->record != NGX_CONF_UNSET_PTR) {
            return "is duplicate";
        }

        hlcf->record = NULL;

        return NGX_CONF_OK;
    }

    if (hlcf->record == NULL) {
        /* "off" before: nginx's slot takes NULL as not set */
        return "is duplicate";
    }

    ngx_http_history_needs_redis(cf);

    return ngx_http_set_complex_value_slot(cf, cmd, conf);
}
