
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


typedef struct {
    ngx_uint_t                     queued;
    ngx_uint_t                     sent;
    ngx_uint_t                     replied;
    ngx_uint_t                     errors;
    ngx_uint_t                     dropped;
    ngx_uint_t                     failed;
    ngx_uint_t                     connects;
} ngx_http_history_link_stats_t;


struct ngx_http_history_cmd_s {
    ngx_queue_t                    queue;
    ngx_buf_t                      buf;
    ngx_uint_t                     replies;
    ngx_http_history_reply_pt      handler;
    void                          *data;
    unsigned                       error:1;
};


ngx_http_history_link_t *ngx_http_history_link_create(ngx_cycle_t *cycle,
    ngx_http_history_redis_conf_t *rcf);
void ngx_http_history_link_destroy(ngx_http_history_link_t *link);
ngx_http_history_cmd_t *ngx_http_history_link_send(
    ngx_http_history_link_t *link, ngx_str_t *key,
    ngx_http_history_argv_t *unit, ngx_uint_t n,
    ngx_http_history_reply_pt handler, void *data);
void ngx_http_history_link_cancel(ngx_http_history_cmd_t *cmd);
ngx_uint_t ngx_http_history_link_up(ngx_http_history_link_t *link,
    ngx_str_t *key);
ngx_http_history_link_stats_t *ngx_http_history_link_stats(
    ngx_http_history_link_t *link);


#endif /* _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_ */
