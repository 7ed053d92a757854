
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#ifndef _NGX_HTTP_HISTORY_SSL_H_INCLUDED_
#define _NGX_HTTP_HISTORY_SSL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_history_redis.h"


/*
 * TLS to Redis with nginx's own SSL (ngx_event_openssl): the settings of
 * the history_redis_ssl_* directives, one SSL context made from them when
 * the configuration is read, and what a node keeps of its TLS between
 * connections (the name it checks, the session it reuses).  Without
 * OpenSSL in nginx the functions are there and every connection is plain.
 */

struct ngx_http_history_ssl_conf_s {
    ngx_flag_t                      verify;
    ngx_int_t                       verify_depth;
    ngx_flag_t                      server_name;
    ngx_flag_t                      session_reuse;
    ngx_str_t                       name;
    ngx_str_t                       trusted_certificate;
    ngx_str_t                       certificate;
    ngx_str_t                       certificate_key;
    ngx_array_t                    *passwords;
    ngx_uint_t                      protocols;
    ngx_str_t                       ciphers;
#if (NGX_SSL)
    ngx_ssl_t                      *ssl;
#endif
};


/*
 * A node's TLS: the name its certificate must carry, its last session,
 * and where it is counted: the link's figures and the node's own.
 */

typedef struct {
    ngx_http_history_ssl_conf_t    *conf;      /* NULL: plain TCP */
    ngx_str_t                       name;      /* null-terminated */
    ngx_uint_t                      address;   /* the name is an address */
    ngx_msec_t                      timeout;
    ngx_http_history_link_stats_t  *stats;
    ngx_http_history_node_stats_t  *node_stats;
#if (NGX_SSL)
    ngx_ssl_session_t              *session;
#endif
    unsigned                        up:1;      /* counted in "tls" */
} ngx_http_history_ssl_node_t;


void ngx_http_history_ssl_create_conf(ngx_http_history_ssl_conf_t *scf);
char *ngx_http_history_ssl_init_conf(ngx_conf_t *cf,
    ngx_http_history_ssl_conf_t *scf);

ngx_int_t ngx_http_history_ssl_node_init(ngx_http_history_ssl_node_t *sn,
    ngx_http_history_redis_conf_t *rcf, ngx_str_t *host,
    ngx_http_history_link_stats_t *stats,
    ngx_http_history_node_stats_t *node_stats, ngx_pool_t *pool);
void ngx_http_history_ssl_node_free(ngx_http_history_ssl_node_t *sn);
ngx_int_t ngx_http_history_ssl_handshake(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c, ngx_connection_handler_pt handler);
ngx_int_t ngx_http_history_ssl_handshaked(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c);
void ngx_http_history_ssl_close(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c);

#if (NGX_SSL)
char *ngx_http_history_ssl_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);

extern ngx_conf_bitmask_t  ngx_http_history_ssl_protocols[];
#endif


#endif /* _NGX_HTTP_HISTORY_SSL_H_INCLUDED_ */
