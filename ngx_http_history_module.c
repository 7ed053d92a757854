
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_redis.h"


#define NGX_HTTP_HISTORY_KEY_MAX      256
#define NGX_HTTP_HISTORY_ID_MAX       256
#define NGX_HTTP_HISTORY_LENGTH_MAX   1000


typedef struct {
    ngx_http_history_redis_conf_t   redis;
    ngx_http_history_link_t        *link;
    ngx_http_complex_value_t       *default_key;
#if (NGX_PCRE)
    ngx_regex_t                    *default_pattern;
#endif
} ngx_http_history_main_conf_t;


typedef struct {
    ngx_http_complex_value_t       *key;
    ngx_http_complex_value_t       *record;
    ngx_str_t                       prefix;
    ngx_uint_t                      length;
    time_t                          expire;
    ngx_array_t                    *status;
#if (NGX_PCRE)
    ngx_regex_t                    *pattern;
#endif

    /* LTRIM's stop index and EXPIRE's seconds, as Redis wants them */
    ngx_str_t                       trim;
    ngx_str_t                       ttl;
} ngx_http_history_loc_conf_t;


static ngx_int_t ngx_http_history_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_valid_id(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *id);
static void ngx_http_history_record(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_link_t *link,
    ngx_str_t *key, ngx_str_t *id);
static char *ngx_http_history_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_set_number(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_set_time(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_set_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_set_pattern(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, char *reason);
static void *ngx_http_history_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_history_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_history_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_history_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_history_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_history_init_process(ngx_cycle_t *cycle);
static void ngx_http_history_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_history_commands[] = {

    { ngx_string("history_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_history_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, key),
      NULL },

    { ngx_string("history_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, prefix),
      NULL },

    { ngx_string("history_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_number,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, length),
      NULL },

    { ngx_string("history_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, expire),
      NULL },

    { ngx_string("history_record"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, record),
      NULL },

    { ngx_string("history_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_history_set_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, status),
      NULL },

    { ngx_string("history_id_pattern"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_pattern,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_history_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_history_init,                 /* postconfiguration */

    ngx_http_history_create_main_conf,     /* create main configuration */
    ngx_http_history_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_history_create_loc_conf,      /* create location configuration */
    ngx_http_history_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_history_module = {
    NGX_MODULE_V1,
    &ngx_http_history_module_ctx,          /* module context */
    ngx_http_history_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_history_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_history_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_history_default_key =
    ngx_string("$cookie_sessionid");
static ngx_str_t  ngx_http_history_default_pattern = ngx_string("^[0-9]+$");


/*
 * Runs after the response has been sent: the view is handed to the
 * worker's Redis link and the request goes on without waiting for it.
 */

static ngx_int_t
ngx_http_history_log_handler(ngx_http_request_t *r)
{
    ngx_str_t                      key, id;
    ngx_uint_t                     i, status, *codes;
    ngx_http_history_loc_conf_t   *hlcf;
    ngx_http_history_main_conf_t  *hmcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (hlcf->record == NULL || r->method != NGX_HTTP_GET) {
        return NGX_OK;
    }

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    if (hmcf->link == NULL) {
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

    if (ngx_http_complex_value(r, hlcf->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (key.len == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "history: no visitor key");
        return NGX_OK;
    }

    if (key.len > NGX_HTTP_HISTORY_KEY_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: visitor key of %uz bytes is too long, "
                      "view not recorded", key.len);
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, hlcf->record, &id) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_history_valid_id(r, hlcf, &id) != NGX_OK) {
        return NGX_OK;
    }

    ngx_http_history_record(r, hlcf, hmcf->link, &key, &id);

    return NGX_OK;
}


static ngx_int_t
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

    /*
     * whatever the pattern says, an id never holds a control character,
     * a space or a comma: lists of ids are handed on comma-separated
     */

    last = id->data + id->len;

    for (p = id->data; p < last; p++) {
        if (*p <= ' ' || *p == ',' || *p == 0x7f) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "history: product id has a byte 0x%02Xd at %uz, "
                          "view not recorded", *p, p - id->data);
            return NGX_DECLINED;
        }
    }

#if (NGX_PCRE)

    if (hlcf->pattern
        && ngx_regex_exec(hlcf->pattern, id, NULL, 0) == NGX_REGEX_NO_MATCHED)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: product id \"%V\" does not match "
                      "history_id_pattern, view not recorded", id);
        return NGX_DECLINED;
    }

#endif

    return NGX_OK;
}


/*
 * One unit, one round trip, atomic:
 * MULTI; LREM k 0 id; LPUSH k id; LTRIM k 0 N-1; EXPIRE k ttl; EXEC
 */

static void
ngx_http_history_record(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_link_t *link,
    ngx_str_t *key, ngx_str_t *id)
{
    u_char                   *p;
    size_t                    len[16];
    ngx_str_t                 k;
    const char               *argv[16];
    ngx_http_history_argv_t   unit[6];

    k.len = hlcf->prefix.len + key->len;
    k.data = ngx_pnalloc(r->pool, k.len);
    if (k.data == NULL) {
        return;
    }

    p = ngx_cpymem(k.data, hlcf->prefix.data, hlcf->prefix.len);
    ngx_memcpy(p, key->data, key->len);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "history: record \"%V\" for \"%V\"", id, &k);

#define ngx_http_history_arg(i, s, l)                                         \
    argv[i] = (const char *) (s); len[i] = (l)

    ngx_http_history_arg(0, "MULTI", 5);

    ngx_http_history_arg(1, "LREM", 4);
    ngx_http_history_arg(2, k.data, k.len);
    ngx_http_history_arg(3, "0", 1);
    ngx_http_history_arg(4, id->data, id->len);

    ngx_http_history_arg(5, "LPUSH", 5);
    ngx_http_history_arg(6, k.data, k.len);
    ngx_http_history_arg(7, id->data, id->len);

    ngx_http_history_arg(8, "LTRIM", 5);
    ngx_http_history_arg(9, k.data, k.len);
    ngx_http_history_arg(10, "0", 1);
    ngx_http_history_arg(11, hlcf->trim.data, hlcf->trim.len);

    ngx_http_history_arg(12, "EXPIRE", 6);
    ngx_http_history_arg(13, k.data, k.len);
    ngx_http_history_arg(14, hlcf->ttl.data, hlcf->ttl.len);

    ngx_http_history_arg(15, "EXEC", 4);

#undef ngx_http_history_arg

#define ngx_http_history_unit(u, first, n)                                    \
    unit[u].argc = n; unit[u].argv = &argv[first]; unit[u].argvlen = &len[first]

    ngx_http_history_unit(0, 0, 1);
    ngx_http_history_unit(1, 1, 4);
    ngx_http_history_unit(2, 5, 3);
    ngx_http_history_unit(3, 8, 4);
    ngx_http_history_unit(4, 12, 3);
    ngx_http_history_unit(5, 15, 1);

#undef ngx_http_history_unit

    (void) ngx_http_history_link_send(link, &k, unit, 6, NULL, NULL);
}


static char *
ngx_http_history_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_main_conf_t *hmcf = conf;

    ngx_str_t                      *value, s;
    ngx_url_t                       u;
    ngx_int_t                       n;
    ngx_uint_t                      i;
    ngx_http_history_redis_conf_t  *rcf;

    rcf = &hmcf->redis;

    if (rcf->addr) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of the \"history_redis\" "
                               "directive", u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        return ngx_http_history_invalid(cf, cmd, &value[1], "no address");
    }

    rcf->addr = &u.addrs[0];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;

            if (rcf->password.len == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "username=", 9) == 0) {
            rcf->username.data = value[i].data + 9;
            rcf->username.len = value[i].len - 9;

            if (rcf->username.len == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->connect_timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR || n == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->queue = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->username.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"username=\" needs \"password=\" in \"%V\" "
                           "directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_history_set_number(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t  *np;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < 1 || n > NGX_HTTP_HISTORY_LENGTH_MAX) {
        return ngx_http_history_invalid(cf, cmd, &value[1],
                                        "it must be a number from 1 to 1000");
    }

    *np = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_history_set_time(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    time_t     *tp, t;
    ngx_str_t  *value;

    tp = (time_t *) (p + cmd->offset);

    if (*tp != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t == 0) {
        return ngx_http_history_invalid(cf, cmd, &value[1],
                                        "it must be a positive time");
    }

    *tp = t;

    return NGX_CONF_OK;
}


static char *
ngx_http_history_set_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t      n;
    ngx_str_t     *value;
    ngx_uint_t     i, *code;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_uint_t));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);

        if (n == NGX_ERROR || n < 100 || n > 599) {
            return ngx_http_history_invalid(cf, cmd, &value[i],
                                      "it must be a status from 100 to 599");
        }

        code = ngx_array_push(*a);
        if (code == NULL) {
            return NGX_CONF_ERROR;
        }

        *code = n;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_history_set_pattern(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

#if (NGX_PCRE)
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;
#endif

    if (hlcf->pattern != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        hlcf->pattern = NULL;
        return NGX_CONF_OK;
    }

#if (NGX_PCRE)

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = value[1];
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, %V",
                           &value[1], &cmd->name, &rc.err);
        return NGX_CONF_ERROR;
    }

    hlcf->pattern = rc.regex;

    return NGX_CONF_OK;

#else

    return ngx_http_history_invalid(cf, cmd, &value[1],
                                    "nginx was built without PCRE");

#endif
}


static char *
ngx_http_history_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, char *reason)
{
    if (reason) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, %s",
                           value, &cmd->name, reason);

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive",
                           value, &cmd->name);
    }

    return NGX_CONF_ERROR;
}


static void *
ngx_http_history_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_history_main_conf_t));
    if (hmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hmcf->redis.addr = NULL;
     *     hmcf->redis.username = { 0, NULL };
     *     hmcf->redis.password = { 0, NULL };
     *     hmcf->redis.db = 0;
     *     hmcf->link = NULL;
     */

    hmcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;
    hmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    hmcf->redis.queue = NGX_CONF_UNSET_UINT;

    return hmcf;
}


static char *
ngx_http_history_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_history_main_conf_t *hmcf = conf;

    ngx_http_compile_complex_value_t   ccv;

#if (NGX_PCRE)
    u_char                             errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t                rc;
#endif

    ngx_conf_init_msec_value(hmcf->redis.connect_timeout, 1000);
    ngx_conf_init_msec_value(hmcf->redis.timeout, 1000);
    ngx_conf_init_uint_value(hmcf->redis.queue, 10000);

    if (hmcf->redis.addr == NULL) {
        return NGX_CONF_OK;
    }

    hmcf->default_key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (hmcf->default_key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &ngx_http_history_default_key;
    ccv.complex_value = hmcf->default_key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

#if (NGX_PCRE)

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = ngx_http_history_default_pattern;
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
        return NGX_CONF_ERROR;
    }

    hmcf->default_pattern = rc.regex;

#endif

    return NGX_CONF_OK;
}


static void *
ngx_http_history_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_history_loc_conf_t));
    if (hlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hlcf->prefix = { 0, NULL };
     *     hlcf->trim = { 0, NULL };
     *     hlcf->ttl = { 0, NULL };
     */

    hlcf->key = NGX_CONF_UNSET_PTR;
    hlcf->record = NGX_CONF_UNSET_PTR;
    hlcf->length = NGX_CONF_UNSET_UINT;
    hlcf->expire = NGX_CONF_UNSET;
    hlcf->status = NGX_CONF_UNSET_PTR;
#if (NGX_PCRE)
    hlcf->pattern = NGX_CONF_UNSET_PTR;
#endif

    return hlcf;
}


static char *
ngx_http_history_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_history_loc_conf_t *prev = parent;
    ngx_http_history_loc_conf_t *conf = child;

    ngx_uint_t                    *code;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_history_module);

    ngx_conf_merge_ptr_value(conf->key, prev->key, hmcf->default_key);
    ngx_conf_merge_ptr_value(conf->record, prev->record, NULL);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "history:");
    ngx_conf_merge_uint_value(conf->length, prev->length, 5);
    ngx_conf_merge_value(conf->expire, prev->expire, 90 * 86400);
    ngx_conf_merge_ptr_value(conf->status, prev->status, NULL);
#if (NGX_PCRE)
    ngx_conf_merge_ptr_value(conf->pattern, prev->pattern,
                             hmcf->default_pattern);
#endif

    if (conf->record && hmcf->redis.addr == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"history_record\" needs \"history_redis\" "
                           "in the http block");
        return NGX_CONF_ERROR;
    }

    if (conf->status == NULL) {
        conf->status = ngx_array_create(cf->pool, 1, sizeof(ngx_uint_t));
        if (conf->status == NULL) {
            return NGX_CONF_ERROR;
        }

        code = ngx_array_push(conf->status);
        if (code == NULL) {
            return NGX_CONF_ERROR;
        }

        *code = NGX_HTTP_OK;
    }

    conf->trim.data = ngx_pnalloc(cf->pool, 2 * NGX_TIME_T_LEN);
    if (conf->trim.data == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->trim.len = ngx_sprintf(conf->trim.data, "%ui", conf->length - 1)
                     - conf->trim.data;

    conf->ttl.data = conf->trim.data + NGX_TIME_T_LEN;
    conf->ttl.len = ngx_sprintf(conf->ttl.data, "%T", conf->expire)
                    - conf->ttl.data;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_history_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_history_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_history_init_process(ngx_cycle_t *cycle)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_history_module);

    if (hmcf == NULL || hmcf->redis.addr == NULL) {
        return NGX_OK;
    }

    hmcf->link = ngx_http_history_link_create(cycle, &hmcf->redis);
    if (hmcf->link == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_history_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_history_module);

    if (hmcf == NULL || hmcf->link == NULL) {
        return;
    }

    ngx_http_history_link_destroy(hmcf->link);
    hmcf->link = NULL;
}
