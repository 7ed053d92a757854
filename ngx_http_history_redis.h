
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#ifndef _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_
#define _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


/* the most Redis commands one unit of work may carry (MULTI ... EXEC) */
#define NGX_HTTP_HISTORY_UNIT_MAX  64


/*
 * The most elements a reply's array may have: more than the longest list
 * or id set the module asks for, far less than what would exhaust memory
 */
#define NGX_HTTP_HISTORY_ELEMENTS_MAX  65536


#if (HIREDIS_MAJOR >= 1)
typedef size_t  ngx_http_history_elements_t;
#else
typedef int     ngx_http_history_elements_t;
#endif


typedef struct ngx_http_history_link_s  ngx_http_history_link_t;
typedef struct ngx_http_history_node_s  ngx_http_history_node_t;
typedef struct ngx_http_history_cmd_s   ngx_http_history_cmd_t;


/*
 * Called once per unit of work: with the reply to its last command, or
 * with NULL when the unit failed (dropped, connection lost, timed out).
 * The reply is freed after the handler returns.  A handler must not send
 * through the link.
 */
typedef void (*ngx_http_history_reply_pt)(ngx_http_history_cmd_t *cmd,
    redisReply *reply);


typedef struct {
    ngx_addr_t                    *addr;
    ngx_str_t                      username;
    ngx_str_t                      password;
    ngx_uint_t                     db;
    ngx_msec_t                     connect_timeout;
    ngx_msec_t                     timeout;
    ngx_uint_t                     queue;
} ngx_http_history_redis_conf_t;


/* one Redis command in argv form */
typedef struct {
    int                            argc;
    const char                   **argv;
    size_t                        *argvlen;
} ngx_http_history_argv_t;


/*
 * What a worker's link has done, in shared memory so that any worker can
 * report every worker's figures: one writer (the worker), many readers.
 */

typedef struct {
    ngx_atomic_t                   pid;
    ngx_atomic_t                   state;      /* 1 when connected */
    ngx_atomic_t                   depth;      /* units waiting now */
    ngx_atomic_t                   queued;     /* units accepted */
    ngx_atomic_t                   sent;
    ngx_atomic_t                   replied;
    ngx_atomic_t                   errors;     /* answered with an error */
    ngx_atomic_t                   dropped;    /* queue full, or exiting */
    ngx_atomic_t                   failed;     /* lost with a connection */
    ngx_atomic_t                   connects;
    ngx_atomic_t                   reads;      /* reads answered */
    ngx_atomic_t                   fallbacks;  /* ... with the fallback */
} ngx_http_history_link_stats_t;


/*
 * Replies from Redis: hiredis's reader builds them in a pool of their own,
 * released as a whole once a reply has been handled.
 */

typedef struct {
    ngx_pool_t                    *pool;
    ngx_log_t                     *log;
    unsigned                       logged:1;   /* the reader's error too */
} ngx_http_history_replies_t;


struct ngx_http_history_cmd_s {
    ngx_queue_t                    queue;
    ngx_buf_t                      buf;
    ngx_uint_t                     replies;
    ngx_http_history_reply_pt      handler;
    void                          *data;
    unsigned                       error:1;
};


ngx_http_history_link_t *ngx_http_history_link_create(ngx_cycle_t *cycle,
    ngx_http_history_redis_conf_t *rcf, ngx_http_history_link_stats_t *stats);
void ngx_http_history_link_destroy(ngx_http_history_link_t *link);
ngx_http_history_cmd_t *ngx_http_history_link_send(
    ngx_http_history_link_t *link, ngx_str_t *key,
    ngx_http_history_argv_t *unit, ngx_uint_t n,
    ngx_http_history_reply_pt handler, void *data);
void ngx_http_history_link_cancel(ngx_http_history_cmd_t *cmd);
ngx_uint_t ngx_http_history_link_up(ngx_http_history_link_t *link,
    ngx_str_t *key);

redisReader *ngx_http_history_reader_create(
    ngx_http_history_replies_t *rp);
void ngx_http_history_reader_release(ngx_http_history_replies_t *rp);

size_t ngx_http_history_format_size(ngx_http_history_argv_t *cmd);
u_char *ngx_http_history_format(u_char *p, ngx_http_history_argv_t *cmd);


#endif /* _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_ */
