/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * What the module's files share: the configuration and request context
 * types, constants, and the functions one job's file offers the others.
 */


#ifndef _NGX_HTTP_HISTORY_MODULE_H_INCLUDED_
#define _NGX_HTTP_HISTORY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_redis.h"
#include "ngx_http_history_ssl.h"


#define NGX_HTTP_HISTORY_KEY_MAX      256
#define NGX_HTTP_HISTORY_ID_MAX       256
#define NGX_HTTP_HISTORY_LENGTH_MAX   1000
#define NGX_HTTP_HISTORY_SHARDS_MAX   64
#define NGX_HTTP_HISTORY_VISITOR_LEN  32

/*
 * replay= with Sentinel: how long the master's acknowledged units are
 * kept.  A new master is announced up to 1 s after its promotion (the
 * Sentinels' INFO period in a failover; bench/sentinel-announce.pl), a
 * 2 s hello period later at a Sentinel that learns it from another:
 * 5 s covers it
 */
#define NGX_HTTP_HISTORY_REPLAY_DEFAULT  5000
#define NGX_HTTP_HISTORY_REPLAY_MAX      60000

/* the longest expires= (68 years): now + expires cannot overflow */
#define NGX_HTTP_HISTORY_COOKIE_EXPIRES_MAX  (68 * 365 * 86400)

/* what history_serve answers with */
#define NGX_HTTP_HISTORY_FORMAT_JSON     1
#define NGX_HTTP_HISTORY_FORMAT_TEXT     2

/* history_fallback: what a read answers when Redis does not */
#define NGX_HTTP_HISTORY_FALLBACK_EMPTY  0
#define NGX_HTTP_HISTORY_FALLBACK_ERROR  1

#define NGX_HTTP_HISTORY_OP_FETCH     0
#define NGX_HTTP_HISTORY_OP_SERVE     1
#define NGX_HTTP_HISTORY_OP_FORGET    2
#define NGX_HTTP_HISTORY_OP_ONLINE    3
#define NGX_HTTP_HISTORY_OP_VIEWS     4

/* what history_id_pattern checks */
#define NGX_HTTP_HISTORY_ID_DIGITS    0      /* the default, ^[0-9]+$ */
#define NGX_HTTP_HISTORY_ID_ANY       1      /* off */
#define NGX_HTTP_HISTORY_ID_PATTERN   2      /* a regular expression */

#define NGX_HTTP_HISTORY_COUNT_DAILY  0x01
#define NGX_HTTP_HISTORY_COUNT_UNIQUE 0x02

#define NGX_HTTP_HISTORY_IDS_MAX      50
#define NGX_HTTP_HISTORY_SEEN_SIZE    4096

/* what a visitor key must look like (history_key_pattern) */
#define NGX_HTTP_HISTORY_KEY_WORD     1    /* default, with a prefix */
#define NGX_HTTP_HISTORY_KEY_SESSION  2    /* default, bare prefix */
#define NGX_HTTP_HISTORY_KEY_REGEX    3
#define NGX_HTTP_HISTORY_KEY_OFF      4

#define NGX_HTTP_HISTORY_STATS_SLOTS  256
#define NGX_HTTP_HISTORY_STATS_FIELDS  NGX_HTTP_HISTORY_LINK_FIGURES


typedef struct {
    ngx_str_t                       name;
    ngx_int_t                       index;
    time_t                          expires;
    ngx_str_t                       attrs;
} ngx_http_history_cookie_t;


/*
 * The history_stats zone: a slot per running worker, taken at its start
 * and given back at its exit (or, if it died, by the next one to look),
 * so that old and new workers never share one during a reload.
 */

typedef struct {
    ngx_http_history_link_stats_t   link;
    ngx_atomic_t                    worker;    /* its ngx_worker */
} ngx_http_history_stats_slot_t;


typedef struct {
    /* the counters of the workers that have exited */
    ngx_http_history_link_stats_t   gone;
    ngx_http_history_stats_slot_t   slots[NGX_HTTP_HISTORY_STATS_SLOTS];
} ngx_http_history_stats_shm_t;


/* a visitor whose last action was written in this second, per worker */

typedef struct {
    time_t                          time;
    ngx_uint_t                      hash;
    uint32_t                        check;
} ngx_http_history_seen_t;


typedef struct {
    ngx_http_history_redis_conf_t   redis;
    ngx_http_history_ssl_conf_t     ssl;
    ngx_http_history_link_t        *link;
    ngx_http_complex_value_t       *default_key;
    ngx_fd_t                        random;

    ngx_shm_zone_t                 *stats_zone;

    /* the first directive that needs history_redis, and where it is */
    ngx_str_t                       needs;
    ngx_str_t                       needs_file;
    ngx_uint_t                      needs_line;

    /* the visitor namespaces of the configuration, for nginx -t */
    ngx_array_t                     spaces;

    /* per worker */
    ngx_http_history_stats_slot_t  *slot;
    ngx_http_history_link_stats_t  *stats;
    ngx_http_history_seen_t        *seen;
    time_t                          pruned[NGX_HTTP_HISTORY_SHARDS_MAX];
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
    ngx_uint_t                      id_check;
#if (NGX_PCRE)
    ngx_regex_t                    *pattern;
#endif
    ngx_uint_t                      format;    /* history_serve */
    ngx_uint_t                      fallback;
    ngx_flag_t                      fetch;
    ngx_flag_t                      forget;
    ngx_http_history_cookie_t      *cookie;
    ngx_flag_t                      issue;     /* may issue a visitor id */
    ngx_uint_t                      key_mode;  /* history_key_pattern */
#if (NGX_PCRE)
    ngx_regex_t                    *key_regex;
#endif
    ngx_uint_t                      key_check; /* key_mode, or a default */
    time_t                          new_expire;
    ngx_flag_t                      last_action;
    ngx_http_complex_value_t       *last_action_key;
    time_t                          online_timeout;
    ngx_uint_t                      online_shards;
    ngx_http_complex_value_t       *count;
    ngx_uint_t                      count_flags;
    time_t                          count_expire;
    ngx_uint_t                      views_flags;
    ngx_flag_t                      online;
    ngx_flag_t                      stats;

    /* the content handler of the module's, for "if" and "limit_except" */
    ngx_http_handler_pt             handler;

    /*
     * LTRIM's stop index and EXPIRE's seconds (a visitor's, a new
     * visitor's), as Redis wants them
     */
    ngx_str_t                       trim;
    ngx_str_t                       ttl;
    ngx_str_t                       new_ttl;
} ngx_http_history_loc_conf_t;


typedef struct ngx_http_history_ctx_s  ngx_http_history_ctx_t;


/* one of the units a request waits for, and the request */

typedef struct {
    ngx_http_history_ctx_t         *ctx;
    ngx_http_history_unit_t        *unit;
} ngx_http_history_part_t;


/*
 * A request's context.  On the main request it also holds the new
 * visitor id issued in this request, if any, for the main request and its
 * subrequests alike.  A read waits for one unit or, when its keys are in
 * several slots (history_views), for one unit per key: "left" are those
 * not answered yet.
 */

struct ngx_http_history_ctx_s {
    ngx_http_request_t             *request;
    ngx_http_history_part_t        *parts;
    ngx_uint_t                      nparts;
    ngx_uint_t                      nsent;
    ngx_uint_t                      left;
    off_t                          *counts;    /* see _query.c */
    u_char                         *sets;      /* each id's online set */
    ngx_event_t                     event;
    ngx_array_t                    *ids;
    ngx_str_t                       key;       /* a new visitor id */
    ngx_str_t                       body;
    ngx_uint_t                      op;
    unsigned                        malformed:1;
    unsigned                        bad_key:1;
    unsigned                        issue:1;   /* a new visitor id */
    unsigned                        cookie_set:1;
    unsigned                        cleanup:1;
    unsigned                        waiting:1;
    unsigned                        done:1;
    unsigned                        failed:1;
    unsigned                        counted:1;
};


/* ngx_http_history_module.c */
char *ngx_http_history_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_set_number(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_set_time(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_set_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_set_pattern(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_history_count_flags(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_uint_t first, ngx_uint_t *flags);
char *ngx_http_history_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, char *reason);
void ngx_http_history_needs_redis(ngx_conf_t *cf);
void *ngx_http_history_create_main_conf(ngx_conf_t *cf);
char *ngx_http_history_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_history_create_loc_conf(ngx_conf_t *cf);

void ngx_http_history_set_handler(ngx_conf_t *cf, ngx_http_handler_pt h);
#if (NGX_PCRE)
ngx_int_t ngx_http_history_regex(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, ngx_regex_t **re);
#endif

/* ngx_http_history_record.c */
ngx_int_t ngx_http_history_log_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_history_valid_id(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *id);
ngx_int_t ngx_http_history_make_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, char *part, ngx_str_t *id,
    ngx_str_t *suffix, ngx_str_t *k);
ngx_uint_t ngx_http_history_online_shard(ngx_http_history_loc_conf_t *hlcf,
    uint32_t crc);
ngx_int_t ngx_http_history_online_key(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_uint_t shard, ngx_str_t *k);
void ngx_http_history_today(ngx_http_history_main_conf_t *hmcf,
    ngx_str_t *day);
char *ngx_http_history_count_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_record_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_history_query.c */
ngx_int_t ngx_http_history_parse_ids(ngx_http_request_t *r,
    ngx_array_t **ids);
ngx_int_t ngx_http_history_online_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_history_views_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_history_online_part(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_uint_t shard, redisReply *reply);
ngx_int_t ngx_http_history_online_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx);
ngx_int_t ngx_http_history_views_count(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_uint_t i, redisReply *reply);
ngx_int_t ngx_http_history_views_body(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx);
char *ngx_http_history_online(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_views(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_history_visitor.c */
ngx_int_t ngx_http_history_visitor(ngx_http_request_t *r,
    ngx_http_history_loc_conf_t *hlcf, ngx_str_t *key);
ngx_uint_t ngx_http_history_valid_visitor(u_char *p, size_t len);
ngx_int_t ngx_http_history_set_cookie(ngx_http_request_t *r,
    ngx_http_history_cookie_t *cookie, ngx_str_t *key);
ngx_int_t ngx_http_history_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_history_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_history_visitor_init(ngx_conf_t *cf);
char *ngx_http_history_set_key_pattern(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_history_visitor_merge(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *prev, ngx_http_history_loc_conf_t *conf);

/* ngx_http_history_read.c */
ngx_http_history_ctx_t *ngx_http_history_get_ctx(
    ngx_http_request_t *r);
ngx_int_t ngx_http_history_wait(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_uint_t op, ngx_uint_t n);
ngx_int_t ngx_http_history_wait_send(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx, ngx_http_history_batch_t *b);
void ngx_http_history_reply(void *data, redisReply *reply);
ngx_int_t ngx_http_history_fetch_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_history_serve_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_history_respond(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx);
ngx_int_t ngx_http_history_send(ngx_http_request_t *r, ngx_str_t *type,
    ngx_str_t *body);
ngx_int_t ngx_http_history_get_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_history_render(ngx_http_request_t *r,
    ngx_array_t *ids, ngx_uint_t format, ngx_str_t *exclude,
    ngx_uint_t limit, ngx_str_t *out);
u_char *ngx_http_history_id_unsafe(u_char *p, size_t len);
uintptr_t ngx_http_history_escape_json(u_char *dst, u_char *src,
    size_t size);
ngx_uint_t ngx_http_history_valid_utf8(u_char *p, size_t len);
ngx_int_t ngx_http_history_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_history_serve(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_history_stats.c */
ngx_int_t ngx_http_history_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_int_t ngx_http_history_stats_attach(ngx_cycle_t *cycle,
    ngx_http_history_main_conf_t *hmcf);
void ngx_http_history_stats_detach(ngx_http_history_main_conf_t *hmcf);
void ngx_http_history_stats_read(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx);
ngx_int_t ngx_http_history_stats_handler(ngx_http_request_t *r);
char *ngx_http_history_stats(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


extern ngx_module_t  ngx_http_history_module;


#endif /* _NGX_HTTP_HISTORY_MODULE_H_INCLUDED_ */
