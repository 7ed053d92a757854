
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * TLS to Redis through nginx's own SSL (ngx_event_openssl): the
 * history_redis_ssl_* settings made into one SSL context when the
 * configuration is read, and a node's TLS on the connection the link has
 * opened: the session of the last connection offered again, the name sent
 * as SNI, the certificate checked against the trusted CA and the node's
 * name (an address against the certificate's IP addresses), the new
 * session kept for the next connection, close_notify on close; each
 * handshake counted in the link's figures and the node's.  It calls
 * nginx's ngx_ssl_* and OpenSSL only; it knows no request and no Redis
 * command.  The link calls it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_history_ssl.h"


#if (NGX_SSL)

static void ngx_http_history_ssl_save_session(ngx_connection_t *c);
static void ngx_http_history_ssl_closed(ngx_connection_t *c);
static ngx_int_t ngx_http_history_ssl_check_name(
    ngx_http_history_ssl_node_t *sn, ngx_connection_t *c);
static char *ngx_http_history_ssl_failed(ngx_conf_t *cf, char *directive,
    ngx_str_t *value);


ngx_conf_bitmask_t  ngx_http_history_ssl_protocols[] = {
    { ngx_string("SSLv2"), NGX_SSL_SSLv2 },
    { ngx_string("SSLv3"), NGX_SSL_SSLv3 },
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};


/* where a TLS connection keeps its node, for OpenSSL's session callback */

static int  ngx_http_history_ssl_node_index = -1;

#endif


void
ngx_http_history_ssl_create_conf(ngx_http_history_ssl_conf_t *scf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     scf->name = { 0, NULL };
     *     scf->trusted_certificate = { 0, NULL };
     *     scf->certificate = { 0, NULL };
     *     scf->certificate_key = { 0, NULL };
     *     scf->ciphers = { 0, NULL };
     *     scf->protocols = 0;
     *     scf->ssl = NULL;
     */

    scf->verify = NGX_CONF_UNSET;
    scf->verify_depth = NGX_CONF_UNSET;
    scf->server_name = NGX_CONF_UNSET;
    scf->session_reuse = NGX_CONF_UNSET;
    scf->passwords = NGX_CONF_UNSET_PTR;
}


/*
 * The defaults, the checks that take more than one directive, and the SSL
 * context; only when history_redis has "tls".
 */

char *
ngx_http_history_ssl_init_conf(ngx_conf_t *cf,
    ngx_http_history_ssl_conf_t *scf)
{
#if (NGX_SSL)

    ngx_pool_cleanup_t  *cln;

    ngx_conf_init_value(scf->verify, 1);
    ngx_conf_init_value(scf->verify_depth, 1);
    ngx_conf_init_value(scf->server_name, 0);
    ngx_conf_init_value(scf->session_reuse, 1);
    ngx_conf_init_ptr_value(scf->passwords, NULL);

    if (scf->protocols == 0) {
        scf->protocols = NGX_CONF_BITMASK_SET
                         |NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3;
    }

    if (scf->ciphers.data == NULL) {
        ngx_str_set(&scf->ciphers, "DEFAULT");
    }

    if (scf->verify && scf->trusted_certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"history_redis_ssl_verify\" is on but no "
                           "\"history_redis_ssl_trusted_certificate\" is "
                           "set: name the CA that signed Redis's "
                           "certificate (a public one is in "
                           "/etc/ssl/certs/ca-certificates.crt), or set "
                           "\"history_redis_ssl_verify off\"");
        return NGX_CONF_ERROR;
    }

    if (scf->certificate_key.len && scf->certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"history_redis_ssl_certificate_key\" \"%V\" "
                           "is set but no \"history_redis_ssl_certificate\"",
                           &scf->certificate_key);
        return NGX_CONF_ERROR;
    }

    if (scf->certificate.len && scf->certificate_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"history_redis_ssl_certificate\" \"%V\" is set "
                           "but no \"history_redis_ssl_certificate_key\"",
                           &scf->certificate);
        return NGX_CONF_ERROR;
    }

    scf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (scf->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    scf->ssl->log = cf->log;

    if (ngx_ssl_create(scf->ssl, scf->protocols, NULL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(scf->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = scf->ssl;

    if (ngx_ssl_ciphers(cf, scf->ssl, &scf->ciphers, 0) != NGX_OK) {
        return ngx_http_history_ssl_failed(cf, "history_redis_ssl_ciphers",
                                           &scf->ciphers);
    }

    if (scf->certificate.len
        && ngx_ssl_certificate(cf, scf->ssl, &scf->certificate,
                               &scf->certificate_key, scf->passwords)
           != NGX_OK)
    {
        return ngx_http_history_ssl_failed(cf,
                                        "history_redis_ssl_certificate\" and "
                                        "\"history_redis_ssl_certificate_key",
                                        &scf->certificate);
    }

    if (scf->trusted_certificate.len
        && ngx_ssl_trusted_certificate(cf, scf->ssl,
                                       &scf->trusted_certificate,
                                       scf->verify_depth)
           != NGX_OK)
    {
        return ngx_http_history_ssl_failed(cf,
                                      "history_redis_ssl_trusted_certificate",
                                      &scf->trusted_certificate);
    }

    if (ngx_ssl_client_session_cache(cf, scf->ssl, scf->session_reuse)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_history_ssl_node_index == -1) {
        ngx_http_history_ssl_node_index = SSL_get_ex_new_index(0, NULL, NULL,
                                                               NULL, NULL);
        if (ngx_http_history_ssl_node_index == -1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_get_ex_new_index() failed");
            return NGX_CONF_ERROR;
        }
    }

#endif

    return NGX_CONF_OK;
}


#if (NGX_SSL)

static char *
ngx_http_history_ssl_failed(ngx_conf_t *cf, char *directive,
    ngx_str_t *value)
{
    /* nginx's SSL has logged why; this names the directive */

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%s\" directive",
                       value, directive);

    return NGX_CONF_ERROR;
}


char *
ngx_http_history_ssl_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_str_t                    *value;
    ngx_http_history_ssl_conf_t  *scf;

    scf = (ngx_http_history_ssl_conf_t *) (p + cmd->offset);

    if (scf->passwords != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    scf->passwords = ngx_ssl_read_password_file(cf, &value[1]);

    if (scf->passwords == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

#endif


/*
 * A node's TLS: the name its certificate must carry, which is also the
 * one sent as SNI, is history_redis_ssl_name or else the host the node
 * was given by ("[::1]" without its brackets).
 */

ngx_int_t
ngx_http_history_ssl_node_init(ngx_http_history_ssl_node_t *sn,
    ngx_http_history_redis_conf_t *rcf, ngx_str_t *host,
    ngx_http_history_link_stats_t *stats,
    ngx_http_history_node_stats_t *node_stats, ngx_pool_t *pool)
{
    u_char     *p;
    size_t      len;
    ngx_str_t  *name;
#if (NGX_HAVE_INET6)
    u_char      buf[16];
#endif

    ngx_memzero(sn, sizeof(ngx_http_history_ssl_node_t));

    sn->conf = rcf->ssl;
    sn->timeout = rcf->connect_timeout;
    sn->stats = stats;
    sn->node_stats = node_stats;

    if (sn->conf == NULL) {
        return NGX_OK;
    }

    name = sn->conf->name.len ? &sn->conf->name : host;

    p = name->data;
    len = name->len;

    if (len > 2 && p[0] == '[' && p[len - 1] == ']') {
        p++;
        len -= 2;
    }

    sn->name.data = ngx_pnalloc(pool, len + 1);
    if (sn->name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sn->name.data, p, len);
    sn->name.data[len] = '\0';
    sn->name.len = len;

    sn->address = (ngx_inet_addr(sn->name.data, len) != INADDR_NONE);

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(sn->name.data, len, buf) == NGX_OK) {
        sn->address = 1;
    }
#endif

    return NGX_OK;
}


void
ngx_http_history_ssl_node_free(ngx_http_history_ssl_node_t *sn)
{
#if (NGX_SSL)

    if (sn->session) {
        ngx_ssl_free_session(sn->session);
        sn->session = NULL;
    }

#endif
}


/*
 * Starts TLS on a connection that has just connected: NGX_DECLINED for a
 * plain one, NGX_AGAIN when the handshake goes on in nginx's handlers (the
 * write timer left from connecting still runs, so the handshake is within
 * connect_timeout) and calls handler when it is over, which then calls
 * ngx_http_history_ssl_handshaked(); NGX_OK or NGX_ERROR when it is
 * already over, checked.
 */

ngx_int_t
ngx_http_history_ssl_handshake(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c, ngx_connection_handler_pt handler)
{
#if (NGX_SSL)

    ngx_int_t  rc;

    if (sn->conf == NULL) {
        return NGX_DECLINED;
    }

    /* nginx's SSL state and buffer: in a pool of the connection's own */

    c->pool = ngx_create_pool(512, c->log);
    if (c->pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_ssl_create_connection(sn->conf->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (SSL_set_ex_data(c->ssl->connection, ngx_http_history_ssl_node_index,
                        sn)
        == 0)
    {
        ngx_ssl_error(NGX_LOG_ALERT, c->log, 0, "SSL_set_ex_data() failed");
        return NGX_ERROR;
    }

    /* as per RFC 6066, an address is never sent as SNI */

    if (sn->conf->server_name && !sn->address
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) sn->name.data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, c->log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed",
                      sn->name.data);
        return NGX_ERROR;
    }

    if (sn->conf->session_reuse) {
        c->ssl->save_session = ngx_http_history_ssl_save_session;

        if (sn->session && ngx_ssl_set_session(c, sn->session) != NGX_OK) {
            /* not offered again: the next handshake is a full one */
            ngx_ssl_free_session(sn->session);
            sn->session = NULL;
            return NGX_ERROR;
        }
    }

    c->log->action = "SSL handshaking to redis";

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, sn->timeout);
        }

        c->ssl->handler = handler;
        return NGX_AGAIN;
    }

    return ngx_http_history_ssl_handshaked(sn, c);

#else

    return NGX_DECLINED;

#endif
}


/*
 * The handshake is over: done, and the certificate is the one of the
 * node's name signed by a trusted CA, or it failed, timed out, or is
 * refused; logged (nginx's SSL logs its own errors), counted.
 */

ngx_int_t
ngx_http_history_ssl_handshaked(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c)
{
#if (NGX_SSL)

    long  rc;

    if (!c->ssl->handshaked) {
        if (c->write->timedout || c->read->timedout) {
            c->timedout = 1;
            ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                          "redis SSL handshake timed out");
        }

        goto failed;
    }

    if (sn->conf->verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "redis SSL certificate verify error: (%l:%s)",
                          rc, X509_verify_cert_error_string(rc));
            goto failed;
        }

        if (ngx_http_history_ssl_check_name(sn, c) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "redis SSL certificate does not match \"%V\"",
                          &sn->name);
            goto failed;
        }
    }

    sn->up = 1;
    sn->stats->tls++;
    sn->stats->tls_handshakes++;
    sn->node_stats->tls = 1;
    sn->node_stats->tls_handshakes++;

    if (SSL_session_reused(c->ssl->connection)) {
        sn->stats->tls_reused++;
        sn->node_stats->tls_reused++;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "redis SSL handshake done: %s, %s, session %s",
                   SSL_get_version(c->ssl->connection),
                   SSL_get_cipher_name(c->ssl->connection),
                   SSL_session_reused(c->ssl->connection) ? "reused"
                                                          : "new");

    return NGX_OK;

failed:

    sn->stats->tls_failures++;
    sn->node_stats->tls_failures++;

    /* a session of a connection that failed is not offered again */

    if (sn->session) {
        ngx_ssl_free_session(sn->session);
        sn->session = NULL;
    }

    return NGX_ERROR;

#else

    return NGX_OK;

#endif
}


#if (NGX_SSL)

/*
 * nginx's host check matches names only: an address is checked against
 * the certificate's IP addresses.
 */

static ngx_int_t
ngx_http_history_ssl_check_name(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c)
{
    int    rc;
    X509  *cert;

    if (!sn->address) {
        return ngx_ssl_check_host(c, &sn->name);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    rc = X509_check_ip_asc(cert, (char *) sn->name.data, 0);

    X509_free(cert);

    return (rc == 1) ? NGX_OK : NGX_ERROR;
}


/*
 * OpenSSL has a new session for the connection (with TLS 1.3, a ticket
 * that arrives after the handshake): the node keeps the latest.
 */

static void
ngx_http_history_ssl_save_session(ngx_connection_t *c)
{
    ngx_ssl_session_t            *session;
    ngx_http_history_ssl_node_t  *sn;

    sn = SSL_get_ex_data(c->ssl->connection, ngx_http_history_ssl_node_index);
    if (sn == NULL) {
        return;
    }

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (sn->session) {
        ngx_ssl_free_session(sn->session);
    }

    sn->session = session;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "redis SSL session saved: %p", session);
}

#endif


/*
 * Closes a node's connection, sending close_notify first on TLS (Redis's
 * own is not waited for).  If the socket cannot take it now, nginx's SSL
 * finishes the shutdown and the connection is closed then; unless the
 * worker is exiting, when a quiet shutdown frees it at once.
 */

void
ngx_http_history_ssl_close(ngx_http_history_ssl_node_t *sn,
    ngx_connection_t *c)
{
#if (NGX_SSL)

    if (sn->up) {
        sn->up = 0;
        sn->stats->tls--;
        sn->node_stats->tls = 0;
    }

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {

            if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
                /* nginx's own 3 s wait: it never keeps a worker exiting */
                c->read->cancelable = 1;
                c->write->cancelable = 1;
                c->ssl->handler = ngx_http_history_ssl_closed;
                return;
            }

            c->error = 1;
            (void) ngx_ssl_shutdown(c);
        }
    }

    ngx_http_history_ssl_closed(c);

#else

    ngx_close_connection(c);

#endif
}


#if (NGX_SSL)

static void
ngx_http_history_ssl_closed(ngx_connection_t *c)
{
    ngx_pool_t  *pool;

    pool = c->pool;

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}

#endif
