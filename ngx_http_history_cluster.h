
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#ifndef _NGX_HTTP_HISTORY_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_HISTORY_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_history_redis.h"


/*
 * What passes between the link (ngx_http_history_redis.c: nodes, units,
 * connections) and Redis Cluster's logic (ngx_http_history_cluster.c: the
 * slot map, its refreshes, what a redirect means).  Private to the two.
 */

typedef struct ngx_http_history_cluster_s  ngx_http_history_cluster_t;


/* what an error reply asks of the unit it answers */

typedef enum {
    NGX_HTTP_HISTORY_REPLY_ERROR = 0,       /* a plain error */
    NGX_HTTP_HISTORY_REPLY_MOVED,           /* the slot has a new owner */
    NGX_HTTP_HISTORY_REPLY_ASK,             /* once, elsewhere, ASKING */
    NGX_HTTP_HISTORY_REPLY_TRYAGAIN,        /* later, the same node */
    NGX_HTTP_HISTORY_REPLY_CLUSTERDOWN,     /* later, maybe elsewhere */
    NGX_HTTP_HISTORY_REPLY_EXECABORT,       /* a queued command failed */
    NGX_HTTP_HISTORY_REPLY_CROSSSLOT        /* a bug of the module's */
} ngx_http_history_redirect_e;


/* ngx_http_history_cluster.c, for the link */

ngx_http_history_cluster_t *ngx_http_history_cluster_create(
    ngx_http_history_link_t *link, ngx_http_history_redis_conf_t *rcf,
    ngx_log_t *log);
void ngx_http_history_cluster_destroy(ngx_http_history_cluster_t *cl);
ngx_http_history_node_t *ngx_http_history_cluster_node(
    ngx_http_history_cluster_t *cl, ngx_uint_t slot);
ngx_http_history_redirect_e ngx_http_history_cluster_redirect(
    ngx_http_history_cluster_t *cl, ngx_http_history_node_t *node,
    redisReply *reply, ngx_http_history_node_t **target);
void ngx_http_history_cluster_refresh(ngx_http_history_cluster_t *cl);


/* ngx_http_history_redis.c, for the cluster's logic */

ngx_http_history_node_t *ngx_http_history_link_node_add(
    ngx_http_history_link_t *link, struct sockaddr *sockaddr,
    socklen_t socklen, ngx_str_t *name);
ngx_http_history_node_t **ngx_http_history_link_nodes(
    ngx_http_history_link_t *link, ngx_uint_t *n);
void ngx_http_history_link_reroute(ngx_http_history_link_t *link);
ngx_int_t ngx_http_history_node_query(ngx_http_history_node_t *node,
    ngx_http_history_batch_t *b, ngx_http_history_reply_pt handler,
    void *data);
ngx_uint_t ngx_http_history_node_connected_now(ngx_http_history_node_t *node);
void ngx_http_history_node_slots(ngx_http_history_node_t *node,
    ngx_uint_t slots);
ngx_uint_t ngx_http_history_node_nslots(ngx_http_history_node_t *node);
struct sockaddr *ngx_http_history_node_sockaddr(
    ngx_http_history_node_t *node, socklen_t *socklen);
ngx_http_history_node_stats_t *ngx_http_history_node_stats(
    ngx_http_history_node_t *node);
ngx_log_t *ngx_http_history_node_log(ngx_http_history_node_t *node);


#endif /* _NGX_HTTP_HISTORY_CLUSTER_H_INCLUDED_ */
