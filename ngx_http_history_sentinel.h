
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#ifndef _NGX_HTTP_HISTORY_SENTINEL_H_INCLUDED_
#define _NGX_HTTP_HISTORY_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_history_redis.h"


typedef struct ngx_http_history_sentinel_s  ngx_http_history_sentinel_t;


/* the master's address, or NULL when no Sentinel named one */
typedef void (*ngx_http_history_sentinel_found_pt)(void *data,
    ngx_addr_t *addr);

/* a Sentinel announced that the master moved, to that address */
typedef void (*ngx_http_history_sentinel_moved_pt)(void *data,
    struct sockaddr *sockaddr, socklen_t socklen);


ngx_http_history_sentinel_t *ngx_http_history_sentinel_create(
    ngx_cycle_t *cycle, ngx_pool_t *pool, ngx_http_history_redis_conf_t *rcf,
    ngx_http_history_link_stats_t *stats,
    ngx_http_history_sentinel_moved_pt moved, void *data);
void ngx_http_history_sentinel_destroy(ngx_http_history_sentinel_t *s);
ngx_addr_t *ngx_http_history_sentinel_addr(ngx_http_history_sentinel_t *s);
void ngx_http_history_sentinel_resolve(ngx_http_history_sentinel_t *s,
    ngx_http_history_sentinel_found_pt found, void *data);
ngx_int_t ngx_http_history_sentinel_role(ngx_http_history_sentinel_t *s,
    redisReply *reply, ngx_log_t *log);


#endif /* _NGX_HTTP_HISTORY_SENTINEL_H_INCLUDED_ */
