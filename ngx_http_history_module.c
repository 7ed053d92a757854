
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
#define NGX_HTTP_HISTORY_VISITOR_LEN  32

/* the longest expires= (68 years): now + expires cannot overflow */
#define NGX_HTTP_HISTORY_COOKIE_EXPIRES_MAX  (68 * 365 * 86400)

#define NGX_HTTP_HISTORY_JSON         1
#define NGX_HTTP_HISTORY_TEXT         2

#define NGX_HTTP_HISTORY_EMPTY        0
#define NGX_HTTP_HISTORY_ERROR        1

#define NGX_HTTP_HISTORY_OP_FETCH     0
#define NGX_HTTP_HISTORY_OP_SERVE     1
#define NGX_HTTP_HISTORY_OP_FORGET    2
#define NGX_HTTP_HISTORY_OP_ONLINE    3
#define NGX_HTTP_HISTORY_OP_VIEWS     4

#define NGX_HTTP_HISTORY_COUNT_DAILY  0x01
#define NGX_HTTP_HISTORY_COUNT_UNIQUE 0x02

#define NGX_HTTP_HISTORY_IDS_MAX      50
#define NGX_HTTP_HISTORY_ARGS_MAX     256
#define NGX_HTTP_HISTORY_SEEN_SIZE    4096

#define NGX_HTTP_HISTORY_STATS_SLOTS  256
#define NGX_HTTP_HISTORY_STATS_FIELDS                                         \
    (sizeof(ngx_http_history_link_stats_t) / sizeof(ngx_atomic_t))


typedef struct {
    ngx_str_t                       name;
    ngx_int_t                       index;
    time_t                          expires;
    ngx_str_t                       attrs;
} ngx_http_history_cookie_t;


typedef struct {
    char                           *json;
    char                           *prometheus;
    char                           *help;
} ngx_http_history_stats_name_t;


/* a visitor whose last action was written in this second, per worker */

typedef struct {
    time_t                          time;
    ngx_uint_t                      hash;
    uint32_t                        check;
} ngx_http_history_seen_t;


typedef struct {
    ngx_uint_t                      nunits;
    ngx_uint_t                      nargs;
    size_t                          used;
    unsigned                        overflow:1;

    ngx_http_history_argv_t         unit[NGX_HTTP_HISTORY_UNIT_MAX];
    const char                     *argv[NGX_HTTP_HISTORY_ARGS_MAX];
    size_t                          len[NGX_HTTP_HISTORY_ARGS_MAX];
    u_char                          numbers[8 * NGX_TIME_T_LEN];
} ngx_http_history_batch_t;


typedef struct {
    ngx_http_history_redis_conf_t   redis;
    ngx_http_history_link_t        *link;
    ngx_http_complex_value_t       *default_key;
#if (NGX_PCRE)
    ngx_regex_t                    *default_pattern;
#endif
    ngx_fd_t                        random;

    ngx_shm_zone_t                 *stats_zone;

    /* per worker */
    ngx_http_history_link_stats_t  *stats;
    ngx_http_history_seen_t        *seen;
    time_t                          pruned;
    time_t                          day_time;
    u_char                          day[sizeof("2026-11-23") - 1];
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
    ngx_flag_t                      digits;    /* the default pattern */
#endif
    ngx_uint_t                      serve;
    ngx_uint_t                      fallback;
    ngx_flag_t                      fetch;
    ngx_flag_t                      forget;
    ngx_http_history_cookie_t      *cookie;
    ngx_flag_t                      last_action;
    ngx_http_complex_value_t       *last_action_key;
    time_t                          online_timeout;
    ngx_http_complex_value_t       *count;
    ngx_uint_t                      count_flags;
    time_t                          count_expire;
    ngx_uint_t                      views;
    ngx_flag_t                      online;
    ngx_flag_t                      stats;

    /* LTRIM's stop index and EXPIRE's seconds, as Redis wants them */
    ngx_str_t                       trim;
    ngx_str_t                       ttl;
} ngx_http_history_loc_conf_t;


/*
 * A request's context.  On the main request it also holds who the visitor
 * is, for the main request and its subrequests alike.
 */

typedef struct {
    ngx_http_request_t             *request;
    ngx_http_history_cmd_t         *cmd;
    ngx_event_t                     event;
    ngx_array_t                    *ids;
    ngx_str_t                       key;
    ngx_str_t                       body;
    ngx_uint_t                      op;
    unsigned                        key_done:1;
    unsigned                        issue:1;
    unsigned                        cookie_set:1;
    unsigned                        cleanup:1;
    unsigned                        waiting:1;
    unsigned                        done:1;
    unsigned                        failed:1;
} ngx_http_history_ctx_t;


static ngx_int_t ngx_http_history_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_valid_id(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *id);
static void ngx_http_history_record(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_link_t *link,
    ngx_str_t *key, ngx_str_t *id);
static void ngx_http_history_command(ngx_http_history_batch_t *b,
    char *name);
static void ngx_http_history_arg(ngx_http_history_batch_t *b, u_char *data,
    size_t len);
static void ngx_http_history_arg_num(ngx_http_history_batch_t *b, time_t n);
static ngx_http_history_cmd_t *ngx_http_history_batch_send(
    ngx_http_history_link_t *link, ngx_str_t *key,
    ngx_http_history_batch_t *b, ngx_http_history_reply_pt handler,
    void *data);
static ngx_int_t ngx_http_history_make_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, char *part, ngx_str_t *id,
    ngx_str_t *suffix, ngx_str_t *k);
static void ngx_http_history_last_action(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key);
static void ngx_http_history_count(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key, ngx_str_t *id);
static void ngx_http_history_today(ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *day);
static ngx_int_t ngx_http_history_parse_ids(ngx_http_request_t *r,
    ngx_array_t **ids);
static ngx_int_t ngx_http_history_online_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_views_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_query_start(ngx_http_request_t *r,
    ngx_http_history_ctx_t **ctx, ngx_array_t **ids);
static ngx_int_t ngx_http_history_query(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_str_t *k, ngx_http_history_batch_t *b,
    ngx_uint_t op);
static ngx_int_t ngx_http_history_online_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_history_views_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, redisReply *reply);
static off_t ngx_http_history_reply_number(redisReply *e);
static ngx_int_t ngx_http_history_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_history_count_read(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx);
static ngx_int_t ngx_http_history_stats_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_visitor(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *key);
static ngx_uint_t ngx_http_history_valid_visitor(u_char *p, size_t len);
static ngx_int_t ngx_http_history_random(ngx_http_history_main_conf_t *hmcf,
    ngx_log_t *log, u_char *p);
static ngx_http_history_ctx_t *ngx_http_history_get_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_history_read(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_str_t *key, ngx_uint_t op);
static ngx_int_t ngx_http_history_wait(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_str_t *k, ngx_http_history_batch_t *b,
    ngx_uint_t op);
static void ngx_http_history_reply(ngx_http_history_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_history_resume(ngx_event_t *ev);
static void ngx_http_history_cleanup(void *data);
static ngx_int_t ngx_http_history_fetch_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_serve_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_respond(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx);
static ngx_int_t ngx_http_history_render(ngx_http_request_t *r,
    ngx_array_t *ids, ngx_uint_t format, ngx_str_t *exclude,
    ngx_uint_t limit, ngx_str_t *out);
static ngx_uint_t ngx_http_history_safe_id(u_char *p, size_t len);
static ngx_int_t ngx_http_history_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_history_set_cookie(ngx_http_request_t *r,
    ngx_http_history_cookie_t *cookie, ngx_str_t *key);
static ngx_int_t ngx_http_history_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_history_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_history_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
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
static char *ngx_http_history_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_serve(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_uint_t ngx_http_history_cookie_attr_valid(ngx_str_t *s);
static char *ngx_http_history_count_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_online(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_history_views(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_history_count_flags(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_uint_t first, ngx_uint_t *flags);
static char *ngx_http_history_stats(ngx_conf_t *cf, ngx_command_t *cmd,
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


static ngx_conf_enum_t  ngx_http_history_fallbacks[] = {
    { ngx_string("empty"), NGX_HTTP_HISTORY_EMPTY },
    { ngx_string("error"), NGX_HTTP_HISTORY_ERROR },
    { ngx_null_string, 0 }
};


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

    { ngx_string("history_serve"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_history_serve,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, fallback),
      &ngx_http_history_fallbacks },

    { ngx_string("history_fetch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, fetch),
      NULL },

    { ngx_string("history_forget"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, forget),
      NULL },

    { ngx_string("history_last_action"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, last_action),
      NULL },

    { ngx_string("history_last_action_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, last_action_key),
      NULL },

    { ngx_string("history_online_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, online_timeout),
      NULL },

    { ngx_string("history_online"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_history_online,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_count"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_history_count_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_count_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, count_expire),
      NULL },

    { ngx_string("history_views"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_history_views,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_stats"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_history_stats,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_history_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_history_module_ctx = {
    ngx_http_history_add_variables,        /* preconfiguration */
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


static ngx_http_variable_t  ngx_http_history_vars[] = {

    { ngx_string("history"), NULL, ngx_http_history_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("history_key"), NULL, ngx_http_history_key_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_history_stats_name_t  ngx_http_history_stats_names[] = {
    { "pid", "pid", "" },
    { "connected", "redis_connected",
      "Whether the worker's Redis link is connected." },
    { "queue", "queue_depth",
      "Units of work waiting to be written or answered." },
    { "queued", "commands_queued_total", "Units of work accepted." },
    { "sent", "commands_sent_total", "Units of work written to Redis." },
    { "replied", "commands_replied_total",
      "Units of work Redis answered without an error." },
    { "errors", "commands_errors_total",
      "Units of work Redis answered with an error." },
    { "dropped", "commands_dropped_total",
      "Units of work dropped: the queue was full, or Redis was away "
      "while the worker exited." },
    { "failed", "commands_failed_total",
      "Units of work lost with a connection (maybe executed)." },
    { "connects", "connects_total", "Connection attempts." },
    { "reads", "reads_total", "Reads answered." },
    { "fallbacks", "fallbacks_total", "Reads answered with the fallback." }
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


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

    if (key.len > NGX_HTTP_HISTORY_KEY_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: visitor key of %uz bytes is too long, "
                      "ignored", key.len);
        ngx_str_null(&key);
    }

    if (hlcf->last_action && key.len) {
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
            ngx_http_history_count(r, hlcf, hmcf, &key, &id);
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

    if (hlcf->digits) {

        /* the default pattern, "^[0-9]+$", checked without PCRE */

        for (p = id->data; p < last; p++) {
            if (*p < '0' || *p > '9') {
                goto mismatch;
            }
        }

        return NGX_OK;
    }

    /* a PCRE error (a match limit hit) does not count as a match */

    if (hlcf->pattern && ngx_regex_exec(hlcf->pattern, id, NULL, 0) < 0) {
        goto mismatch;
    }

#endif

    return NGX_OK;

#if (NGX_PCRE)

mismatch:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "history: product id \"%V\" does not match "
                  "history_id_pattern, view not recorded", id);
    return NGX_DECLINED;

#endif
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
    ngx_str_t                 k;
    ngx_http_history_batch_t  b;

    if (ngx_http_history_make_key(r, hlcf, "", key, NULL, &k) != NGX_OK) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "history: record \"%V\" for \"%V\"", id, &k);

    ngx_memzero(&b, offsetof(ngx_http_history_batch_t, unit));

    ngx_http_history_command(&b, "MULTI");

    ngx_http_history_command(&b, "LREM");
    ngx_http_history_arg(&b, k.data, k.len);
    ngx_http_history_arg(&b, (u_char *) "0", 1);
    ngx_http_history_arg(&b, id->data, id->len);

    ngx_http_history_command(&b, "LPUSH");
    ngx_http_history_arg(&b, k.data, k.len);
    ngx_http_history_arg(&b, id->data, id->len);

    ngx_http_history_command(&b, "LTRIM");
    ngx_http_history_arg(&b, k.data, k.len);
    ngx_http_history_arg(&b, (u_char *) "0", 1);
    ngx_http_history_arg(&b, hlcf->trim.data, hlcf->trim.len);

    ngx_http_history_command(&b, "EXPIRE");
    ngx_http_history_arg(&b, k.data, k.len);
    ngx_http_history_arg(&b, hlcf->ttl.data, hlcf->ttl.len);

    ngx_http_history_command(&b, "EXEC");

    (void) ngx_http_history_batch_send(link, &k, &b, NULL, NULL);
}


/*
 * A unit of work being built: commands, their arguments, and room for the
 * numbers among them.  Lives on the stack of the one who sends it.
 */

static void
ngx_http_history_command(ngx_http_history_batch_t *b, char *name)
{
    ngx_http_history_argv_t  *u;

    if (b->nunits == NGX_HTTP_HISTORY_UNIT_MAX) {
        b->overflow = 1;
        return;
    }

    u = &b->unit[b->nunits++];

    u->argc = 0;
    u->argv = &b->argv[b->nargs];
    u->argvlen = &b->len[b->nargs];

    ngx_http_history_arg(b, (u_char *) name, ngx_strlen(name));
}


static void
ngx_http_history_arg(ngx_http_history_batch_t *b, u_char *data, size_t len)
{
    if (b->overflow || b->nargs == NGX_HTTP_HISTORY_ARGS_MAX) {
        b->overflow = 1;
        return;
    }

    b->argv[b->nargs] = (const char *) data;
    b->len[b->nargs++] = len;
    b->unit[b->nunits - 1].argc++;
}


static void
ngx_http_history_arg_num(ngx_http_history_batch_t *b, time_t n)
{
    u_char  *p;

    if (b->used + NGX_TIME_T_LEN > sizeof(b->numbers)) {
        b->overflow = 1;
        return;
    }

    p = b->numbers + b->used;
    b->used = ngx_sprintf(p, "%T", n) - b->numbers;

    ngx_http_history_arg(b, p, b->numbers + b->used - p);
}


static ngx_http_history_cmd_t *
ngx_http_history_batch_send(ngx_http_history_link_t *link, ngx_str_t *key,
    ngx_http_history_batch_t *b, ngx_http_history_reply_pt handler,
    void *data)
{
    if (b->overflow) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "history: too many redis commands in one unit");
        return NULL;
    }

    return ngx_http_history_link_send(link, key, b->unit, b->nunits,
                                      handler, data);
}


/* <prefix><part>[<id>][:<suffix>], in the request's pool */

static ngx_int_t
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
 * The visitor's last action: SET <last action key> <now> EX <timeout> and
 * ZADD <prefix>online <now> <visitor>, at most once a second per visitor
 * and worker.  Once a second per worker the online set is also pruned of
 * visitors gone for longer than the timeout, and its TTL refreshed.
 */

static void
ngx_http_history_last_action(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *key)
{
    time_t                     now;
    uint32_t                   check;
    ngx_str_t                  k, online;
    ngx_uint_t                 hash;
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

    if (ngx_http_history_make_key(r, hlcf, "online", NULL, NULL, &online)
        != NGX_OK)
    {
        return;
    }

    ngx_memzero(&b, offsetof(ngx_http_history_batch_t, unit));

    ngx_http_history_command(&b, "SET");
    ngx_http_history_arg(&b, k.data, k.len);
    ngx_http_history_arg_num(&b, now);
    ngx_http_history_arg(&b, (u_char *) "EX", 2);
    ngx_http_history_arg_num(&b, hlcf->online_timeout);

    ngx_http_history_command(&b, "ZADD");
    ngx_http_history_arg(&b, online.data, online.len);
    ngx_http_history_arg_num(&b, now);
    ngx_http_history_arg(&b, key->data, key->len);

    if (hmcf->pruned != now) {
        hmcf->pruned = now;

        ngx_http_history_command(&b, "ZREMRANGEBYSCORE");
        ngx_http_history_arg(&b, online.data, online.len);
        ngx_http_history_arg(&b, (u_char *) "-inf", 4);
        ngx_http_history_arg_num(&b, now - hlcf->online_timeout);

        ngx_http_history_command(&b, "EXPIRE");
        ngx_http_history_arg(&b, online.data, online.len);
        ngx_http_history_arg_num(&b, hlcf->online_timeout);
    }

    (void) ngx_http_history_batch_send(hmcf->link, key, &b, NULL, NULL);
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

    ngx_memzero(&b, offsetof(ngx_http_history_batch_t, unit));

    if (ngx_http_history_make_key(r, hlcf, "views:", id, NULL, &k)
        != NGX_OK)
    {
        return;
    }

    ngx_http_history_command(&b, "INCR");
    ngx_http_history_arg(&b, k.data, k.len);

    if (hlcf->count_flags & NGX_HTTP_HISTORY_COUNT_DAILY) {
        ngx_http_history_today(hmcf, &day);

        if (ngx_http_history_make_key(r, hlcf, "views:", id, &day, &k)
            != NGX_OK)
        {
            return;
        }

        ngx_http_history_command(&b, "INCR");
        ngx_http_history_arg(&b, k.data, k.len);

        ngx_http_history_command(&b, "EXPIRE");
        ngx_http_history_arg(&b, k.data, k.len);
        ngx_http_history_arg_num(&b, hlcf->count_expire);
    }

    if ((hlcf->count_flags & NGX_HTTP_HISTORY_COUNT_UNIQUE) && key->len) {
        if (ngx_http_history_make_key(r, hlcf, "visitors:", id, NULL, &k)
            != NGX_OK)
        {
            return;
        }

        ngx_http_history_command(&b, "PFADD");
        ngx_http_history_arg(&b, k.data, k.len);
        ngx_http_history_arg(&b, key->data, key->len);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "history: count \"%V\"", id);

    (void) ngx_http_history_batch_send(hmcf->link, id, &b, NULL, NULL);
}


/* today's date in UTC, YYYY-MM-DD, worked out once a second */

static void
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


/* ?ids=a,b,c: at most NGX_HTTP_HISTORY_IDS_MAX, each at most 256 bytes */

static ngx_int_t
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


static ngx_int_t
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


static ngx_int_t
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

static ngx_int_t
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

static ngx_int_t
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


/*
 * Who the visitor is: history_key, or else the module's own visitor cookie
 * when history_cookie is set, or else a new visitor id if the response
 * header can still carry it.  Decided once per main request.
 */

static ngx_int_t
ngx_http_history_visitor(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *key)
{
    u_char                        *p;
    ngx_http_history_ctx_t        *ctx;
    ngx_http_variable_value_t     *vv;
    ngx_http_history_cookie_t     *cookie;
    ngx_http_history_main_conf_t  *hmcf;

    ctx = ngx_http_history_get_ctx(r->main);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->key_done) {
        *key = ctx->key;
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, hlcf->key, &ctx->key) != NGX_OK) {
        return NGX_ERROR;
    }

    cookie = hlcf->cookie;

    if (ctx->key.len || cookie == NULL) {
        goto done;
    }

    vv = ngx_http_get_indexed_variable(r, cookie->index);

    if (vv && !vv->not_found && vv->len) {
        if (ngx_http_history_valid_visitor(vv->data, vv->len)) {
            ctx->key.data = vv->data;
            ctx->key.len = vv->len;
            goto done;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: malformed \"%V\" cookie of %uz bytes, "
                      "ignored", &cookie->name, (size_t) vv->len);
    }

    if (r->main->header_sent) {
        /* too late to set a cookie: a visitor without history */
        goto done;
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

done:

    ctx->key_done = 1;
    *key = ctx->key;

    return NGX_OK;
}


static ngx_uint_t
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


static ngx_http_history_ctx_t *
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
    ngx_str_t                     k;
    ngx_http_history_batch_t      b;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    if (key->len == 0) {
        ctx->op = op;
        ctx->ids = NULL;
        ctx->failed = 0;
        ctx->done = 1;
        return NGX_DECLINED;
    }

    if (ngx_http_history_make_key(r, hlcf, "", key, NULL, &k) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->ids = NULL;

    ngx_memzero(&b, offsetof(ngx_http_history_batch_t, unit));

    if (op == NGX_HTTP_HISTORY_OP_FORGET) {
        ngx_http_history_command(&b, "DEL");
        ngx_http_history_arg(&b, k.data, k.len);

    } else {
        ngx_http_history_command(&b, "LRANGE");
        ngx_http_history_arg(&b, k.data, k.len);
        ngx_http_history_arg(&b, (u_char *) "0", 1);
        ngx_http_history_arg(&b, (u_char *) "-1", 2);
    }

    return ngx_http_history_wait(r, ctx, &k, &b, op);
}


/*
 * Sends a unit and makes the request wait for ngx_http_history_resume()
 * on an event: the answer, or the timeout.  NGX_DECLINED: nothing to wait
 * for, ctx says what happened.
 */

static ngx_int_t
ngx_http_history_wait(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx,
    ngx_str_t *k, ngx_http_history_batch_t *b, ngx_uint_t op)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    ctx->op = op;
    ctx->failed = 0;
    ctx->done = 1;

    if (hmcf->link == NULL || !ngx_http_history_link_up(hmcf->link, k)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "history: redis is away");
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

    ctx->cmd = ngx_http_history_batch_send(hmcf->link, k, b,
                                           ngx_http_history_reply, ctx);
    if (ctx->cmd == NULL) {
        ctx->failed = 1;
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


/* called by the link: keep what the request needs, wake it up */

static void
ngx_http_history_reply(ngx_http_history_cmd_t *cmd, redisReply *reply)
{
    size_t                   i;
    ngx_str_t               *id;
    redisReply              *e;
    ngx_http_request_t      *r;
    ngx_http_history_ctx_t  *ctx;

    ctx = cmd->data;
    r = ctx->request;

    ctx->cmd = NULL;

    if (reply == NULL) {
        ctx->failed = 1;
        goto done;
    }

    if (ctx->op == NGX_HTTP_HISTORY_OP_FORGET) {
        goto done;
    }

    if (ctx->op == NGX_HTTP_HISTORY_OP_ONLINE
        || ctx->op == NGX_HTTP_HISTORY_OP_VIEWS)
    {
        if ((ctx->op == NGX_HTTP_HISTORY_OP_ONLINE
             ? ngx_http_history_online_body(r, ctx, reply)
             : ngx_http_history_views_body(r, ctx, reply))
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "history: unexpected reply from redis");
            ctx->failed = 1;
        }

        goto done;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "history: redis answered a read with a reply "
                      "of type %d", reply->type);
        ctx->failed = 1;
        goto done;
    }

    ctx->ids = ngx_array_create(r->pool, reply->elements + 1,
                                sizeof(ngx_str_t));
    if (ctx->ids == NULL) {
        ctx->failed = 1;
        goto done;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING || e->len == 0) {
            continue;
        }

        id = ngx_array_push(ctx->ids);
        if (id == NULL) {
            ctx->failed = 1;
            goto done;
        }

        id->len = e->len;
        id->data = ngx_pnalloc(r->pool, e->len);
        if (id->data == NULL) {
            ctx->failed = 1;
            goto done;
        }

        ngx_memcpy(id->data, e->str, e->len);
    }

done:

    ctx->done = 1;

    if (ctx->event.timer_set) {
        ngx_del_timer(&ctx->event);
    }

    ngx_post_event(&ctx->event, &ngx_posted_events);
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

        ngx_http_history_link_cancel(ctx->cmd);
        ctx->cmd = NULL;
        ctx->failed = 1;
        ctx->done = 1;
    }

    ctx->waiting = 0;

    if (ctx->op == NGX_HTTP_HISTORY_OP_FETCH) {
        ngx_http_history_count_read(r, ctx);

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

    if (ctx->cmd) {
        ngx_http_history_link_cancel(ctx->cmd);
        ctx->cmd = NULL;
    }

    if (ctx->event.timer_set) {
        ngx_del_timer(&ctx->event);
    }

    if (ctx->event.posted) {
        ngx_delete_posted_event(&ctx->event);
    }
}


static ngx_int_t
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

    ngx_http_history_count_read(r, ctx);

    return NGX_DECLINED;
}


static ngx_int_t
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


static ngx_int_t
ngx_http_history_respond(ngx_http_request_t *r, ngx_http_history_ctx_t *ctx)
{
    u_char                       *dst, *src;
    ngx_int_t                     rc, n;
    ngx_str_t                     body, exclude, value;
    ngx_buf_t                    *b;
    ngx_uint_t                    limit;
    ngx_chain_t                   out;
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_history_module);

    ngx_http_history_count_read(r, ctx);

    if (ctx->failed && hlcf->fallback == NGX_HTTP_HISTORY_ERROR) {
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

    ngx_str_null(&exclude);
    limit = NGX_MAX_UINT32_VALUE;

    if (ngx_http_arg(r, (u_char *) "exclude", 7, &value) == NGX_OK
        && value.len)
    {
        dst = ngx_pnalloc(r->pool, value.len);
        if (dst == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    if (ngx_http_history_render(r, ctx->ids, hlcf->serve, &exclude, limit,
                                &body)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

send:

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = body.len;

    if (hlcf->serve != NGX_HTTP_HISTORY_TEXT) {
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        ngx_str_set(&r->headers_out.content_type, "text/plain");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (body.len == 0) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body.data;
    b->last = body.data + body.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * The list as JSON (every id, escaped), or as comma-separated text (ids
 * that could break a header or the list are left out).
 */

static ngx_int_t
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

        if (format == NGX_HTTP_HISTORY_JSON) {
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

            if (format == NGX_HTTP_HISTORY_JSON) {
                len += (n ? 1 : 0) + 2 + id[i].len
                       + ngx_escape_json(NULL, id[i].data, id[i].len);

                if (p) {
                    if (n) {
                        *p++ = ',';
                    }

                    *p++ = '"';
                    p = (u_char *) ngx_escape_json(p, id[i].data, id[i].len);
                    *p++ = '"';
                }

            } else {
                if (!ngx_http_history_safe_id(id[i].data, id[i].len)) {
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

        if (p && format == NGX_HTTP_HISTORY_JSON) {
            *p++ = ']';
        }
    }

    out->len = p - out->data;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_history_safe_id(u_char *p, size_t len)
{
    u_char  *last;

    for (last = p + len; p < last; p++) {
        if (*p <= ' ' || *p == ',' || *p == 0x7f) {
            return 0;
        }
    }

    return 1;
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

    if (ctx->issue && !ctx->cookie_set) {
        if (ngx_http_history_set_cookie(r, hlcf->cookie, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->cookie_set = 1;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
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


static ngx_int_t
ngx_http_history_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_history_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_history_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                s, none;
    ngx_http_history_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_history_module);

    ngx_str_null(&none);

    if (ctx == NULL || ctx->ids == NULL) {
        ngx_str_null(&s);

    } else if (ngx_http_history_render(r, ctx->ids, NGX_HTTP_HISTORY_TEXT,
                                       &none, NGX_MAX_UINT32_VALUE, &s)
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


static ngx_int_t
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


static ngx_int_t
ngx_http_history_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the figures go on from where they were */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    shm_zone->data = ngx_slab_calloc(shpool, NGX_HTTP_HISTORY_STATS_SLOTS
                                     * sizeof(ngx_http_history_link_stats_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_history_count_read(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    if (hmcf->stats == NULL) {
        return;
    }

    hmcf->stats->reads++;

    if (ctx->failed) {
        hmcf->stats->fallbacks++;
    }
}


/*
 * Every worker's figures and their totals: JSON, or Prometheus' text
 * format with ?format=prometheus.
 */

static ngx_int_t
ngx_http_history_stats_handler(ngx_http_request_t *r)
{
    u_char                         *p;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_str_t                       format;
    ngx_buf_t                      *b;
    ngx_uint_t                      i, j, n, prometheus;
    ngx_atomic_uint_t               total[NGX_HTTP_HISTORY_STATS_FIELDS];
    ngx_chain_t                     out;
    ngx_atomic_t                   *v;
    ngx_http_history_link_stats_t  *slots;
    ngx_http_history_main_conf_t   *hmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    prometheus = ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
                 && format.len == 10
                 && ngx_strncmp(format.data, "prometheus", 10) == 0;

    slots = hmcf->stats_zone->data;

    n = 0;
    ngx_memzero(total, sizeof(total));

    for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
        if (slots[i].pid == 0) {
            continue;
        }

        n++;
        v = (ngx_atomic_t *) &slots[i];

        for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            total[j] += v[j];
        }
    }

    len = (n + 1) * NGX_HTTP_HISTORY_STATS_FIELDS
          * (prometheus ? 128 : 32 + NGX_ATOMIC_T_LEN)
          + (prometheus ? NGX_HTTP_HISTORY_STATS_FIELDS * 160 : 64);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = p;

    if (prometheus) {
        for (j = 1; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            p = ngx_sprintf(p, "# HELP nginx_history_%s %s\n"
                               "# TYPE nginx_history_%s %s\n",
                            ngx_http_history_stats_names[j].prometheus,
                            ngx_http_history_stats_names[j].help,
                            ngx_http_history_stats_names[j].prometheus,
                            j <= 2 ? "gauge" : "counter");

            for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
                if (slots[i].pid) {
                    v = (ngx_atomic_t *) &slots[i];
                    p = ngx_sprintf(p, "nginx_history_%s{worker=\"%ui\","
                                       "pid=\"%uA\"} %uA\n",
                                ngx_http_history_stats_names[j].prometheus,
                                i, v[0], v[j]);
                }
            }
        }

        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        p = ngx_cpymem(p, "{\"workers\":[", sizeof("{\"workers\":[") - 1);

        for (i = 0, n = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
            if (slots[i].pid == 0) {
                continue;
            }

            v = (ngx_atomic_t *) &slots[i];
            p = ngx_sprintf(p, "%s{\"worker\":%ui", n++ ? "," : "", i);

            for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
                p = ngx_sprintf(p, ",\"%s\":%uA",
                                ngx_http_history_stats_names[j].json, v[j]);
            }

            *p++ = '}';
        }

        p = ngx_cpymem(p, "],\"total\":{", sizeof("],\"total\":{") - 1);

        for (j = 1; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            p = ngx_sprintf(p, "%s\"%s\":%uA", j > 1 ? "," : "",
                            ngx_http_history_stats_names[j].json, total[j]);
        }

        p = ngx_cpymem(p, "}}\n", 3);

        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    b->last = p;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static char *
ngx_http_history_stats(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (hlcf->stats) {
        return "is duplicate";
    }

    hlcf->stats = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_history_stats_handler;

    return NGX_CONF_OK;
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


/* as ngx_conf_set_enum_slot(), naming the directive and what it takes */

static char *
ngx_http_history_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *last;
    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;
    u_char            reason[NGX_MAX_CONF_ERRSTR];

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    last = ngx_snprintf(reason, sizeof(reason) - 1, "it must be");

    for (i = 0; e[i].name.len; i++) {
        last = ngx_snprintf(last, reason + sizeof(reason) - 1 - last,
                            "%s \"%V\"", i == 0 ? "" : e[i + 1].name.len
                                                     ? "," : " or",
                            &e[i].name);
    }

    *last = '\0';

    return ngx_http_history_invalid(cf, cmd, &value[1], (char *) reason);
}


static char *
ngx_http_history_serve(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (hlcf->serve != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 1 || ngx_strcmp(value[1].data, "json") == 0) {
        hlcf->serve = NGX_HTTP_HISTORY_JSON;

    } else if (ngx_strcmp(value[1].data, "text") == 0) {
        hlcf->serve = NGX_HTTP_HISTORY_TEXT;

    } else {
        return ngx_http_history_invalid(cf, cmd, &value[1],
                                        "it must be \"json\" or \"text\"");
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_history_serve_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_history_count_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (hlcf->count != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

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


static char *
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


static char *
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


/* "daily" and "unique", from the argument "first" on */

static ngx_int_t
ngx_http_history_count_flags(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_uint_t first, ngx_uint_t *flags)
{
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;
    *flags = 0;

    for (i = first; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "daily") == 0) {
            *flags |= NGX_HTTP_HISTORY_COUNT_DAILY;
            continue;
        }

        if (ngx_strcmp(value[i].data, "unique") == 0) {
            *flags |= NGX_HTTP_HISTORY_COUNT_UNIQUE;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static char *
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
    hmcf->random = NGX_INVALID_FILE;

    return hmcf;
}


static char *
ngx_http_history_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_history_main_conf_t *hmcf = conf;

    ngx_str_t                          name;
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

    ngx_str_set(&name, "history_stats");

    hmcf->stats_zone = ngx_shared_memory_add(cf, &name,
                                 8 * ngx_pagesize
                                 + NGX_HTTP_HISTORY_STATS_SLOTS
                                   * sizeof(ngx_http_history_link_stats_t),
                                 &ngx_http_history_module);
    if (hmcf->stats_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    hmcf->stats_zone->init = ngx_http_history_stats_init_zone;

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
    hlcf->serve = NGX_CONF_UNSET_UINT;
    hlcf->fallback = NGX_CONF_UNSET_UINT;
    hlcf->fetch = NGX_CONF_UNSET;
    hlcf->forget = NGX_CONF_UNSET;
    hlcf->cookie = NGX_CONF_UNSET_PTR;
    hlcf->last_action = NGX_CONF_UNSET;
    hlcf->last_action_key = NGX_CONF_UNSET_PTR;
    hlcf->online_timeout = NGX_CONF_UNSET;
    hlcf->count = NGX_CONF_UNSET_PTR;
    hlcf->count_expire = NGX_CONF_UNSET;
    hlcf->views = NGX_CONF_UNSET_UINT;

    return hlcf;
}


static char *
ngx_http_history_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_history_loc_conf_t *prev = parent;
    ngx_http_history_loc_conf_t *conf = child;

    char                          *name;
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

    conf->digits = (conf->pattern == hmcf->default_pattern);
#endif

    ngx_conf_merge_uint_value(conf->serve, prev->serve, 0);
    ngx_conf_merge_uint_value(conf->fallback, prev->fallback,
                              NGX_HTTP_HISTORY_EMPTY);
    ngx_conf_merge_value(conf->fetch, prev->fetch, 0);
    ngx_conf_merge_value(conf->forget, prev->forget, 0);
    ngx_conf_merge_ptr_value(conf->cookie, prev->cookie, NULL);
    ngx_conf_merge_value(conf->last_action, prev->last_action, 0);
    ngx_conf_merge_ptr_value(conf->last_action_key, prev->last_action_key,
                             NULL);
    ngx_conf_merge_value(conf->online_timeout, prev->online_timeout, 300);
    ngx_conf_merge_value(conf->count_expire, prev->count_expire,
                         30 * 86400);

    if (conf->count == NGX_CONF_UNSET_PTR) {
        conf->count = NULL;
    }

    if (conf->views == NGX_CONF_UNSET_UINT) {
        conf->views = 0;
    }

    if (hmcf->redis.addr == NULL) {
        if (conf->record) {
            name = "history_record";

        } else if (conf->serve) {
            name = "history_serve";

        } else if (conf->fetch) {
            name = "history_fetch";

        } else if (conf->cookie) {
            name = "history_cookie";

        } else if (conf->last_action) {
            name = "history_last_action";

        } else if (conf->count) {
            name = "history_count";

        } else if (conf->online) {
            name = "history_online";

        } else if (conf->views) {
            name = "history_views";

        } else if (conf->stats) {
            name = "history_stats";

        } else {
            name = NULL;
        }

        if (name) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%s\" needs \"history_redis\" "
                               "in the http block", name);
            return NGX_CONF_ERROR;
        }
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

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_history_fetch_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_history_header_filter;

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

    hmcf->random = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY,
                                 NGX_FILE_OPEN, 0);

    if (hmcf->random == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"/dev/urandom\" failed");
        return NGX_ERROR;
    }

    hmcf->seen = ngx_pcalloc(cycle->pool, NGX_HTTP_HISTORY_SEEN_SIZE
                                          * sizeof(ngx_http_history_seen_t));
    if (hmcf->seen == NULL) {
        return NGX_ERROR;
    }

    hmcf->stats = (ngx_http_history_link_stats_t *) hmcf->stats_zone->data
                  + ngx_worker % NGX_HTTP_HISTORY_STATS_SLOTS;
    hmcf->stats->pid = ngx_pid;

    hmcf->link = ngx_http_history_link_create(cycle, &hmcf->redis,
                                              hmcf->stats);
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

    if (hmcf == NULL) {
        return;
    }

    if (hmcf->random != NGX_INVALID_FILE) {
        (void) ngx_close_file(hmcf->random);
        hmcf->random = NGX_INVALID_FILE;
    }

    if (hmcf->link) {
        ngx_http_history_link_destroy(hmcf->link);
        hmcf->link = NULL;
    }
}
