
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_history_redis.h"


#define NGX_HTTP_HISTORY_BACKOFF_MIN    100
#define NGX_HTTP_HISTORY_BACKOFF_MAX    3000
#define NGX_HTTP_HISTORY_RECV_SIZE      16384
#define NGX_HTTP_HISTORY_CHAIN_MAX      64
#define NGX_HTTP_HISTORY_LOG_INTERVAL   60


typedef enum {
    NGX_HTTP_HISTORY_NODE_DOWN = 0,
    NGX_HTTP_HISTORY_NODE_CONNECTING,
    NGX_HTTP_HISTORY_NODE_HANDSHAKE,
    NGX_HTTP_HISTORY_NODE_READY
} ngx_http_history_node_state_e;


/*
 * A node is one connection to one Redis server.  The link routes each
 * unit of work to a node by its key; with a single server there is one
 * node, a cluster will have one per master.
 */

struct ngx_http_history_node_s {
    ngx_http_history_link_t       *link;
    ngx_peer_connection_t          peer;
    redisReader                   *reader;
    ngx_http_history_replies_t     replies;
    ngx_log_t                      log;
    ngx_uint_t                     log_level;

    ngx_queue_t                    pending;    /* not fully written yet */
    ngx_queue_t                    inflight;   /* written, awaiting replies */
    ngx_uint_t                     npending;

    ngx_buf_t                      handshake;
    ngx_uint_t                     handshake_replies;
    ngx_uint_t                     handshake_left;

    ngx_event_t                    reconnect;
    ngx_event_t                    flush;
    ngx_msec_t                     backoff;
    ngx_http_history_node_state_e  state;

    time_t                         down_since;
    time_t                         down_logged;
    ngx_uint_t                     down_dropped;
    time_t                         error_logged;
    time_t                         drop_logged;
};


struct ngx_http_history_link_s {
    ngx_http_history_redis_conf_t *conf;
    ngx_pool_t                    *pool;
    ngx_http_history_node_t       *nodes;
    ngx_uint_t                     nnodes;
    ngx_uint_t                     queued;
    u_char                        *recv_buf;
    ngx_chain_t                    chain[NGX_HTTP_HISTORY_CHAIN_MAX];
    ngx_http_history_link_stats_t *stats;
};


static ngx_int_t ngx_http_history_node_init(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node, ngx_addr_t *addr, ngx_log_t *log);
static ngx_int_t ngx_http_history_node_prepare(
    ngx_http_history_node_t *node);
static ngx_http_history_node_t *ngx_http_history_link_node(
    ngx_http_history_link_t *link, ngx_str_t *key);
static void ngx_http_history_node_connect(ngx_http_history_node_t *node);
static void ngx_http_history_node_connected(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_test_connect(ngx_connection_t *c);
static void ngx_http_history_node_write_handler(ngx_event_t *wev);
static void ngx_http_history_node_read_handler(ngx_event_t *rev);
static void ngx_http_history_node_flush_handler(ngx_event_t *ev);
static void ngx_http_history_node_reconnect_handler(ngx_event_t *ev);
static void ngx_http_history_node_send(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_process(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_handshake_reply(
    ngx_http_history_node_t *node, redisReply *reply);
static ngx_uint_t ngx_http_history_reply_failed(redisReply *reply);
static void ngx_http_history_node_log_reply(ngx_http_history_node_t *node,
    redisReply *reply);
static void ngx_http_history_node_close(ngx_http_history_node_t *node);
static void ngx_http_history_node_disconnect(ngx_http_history_node_t *node);
static void ngx_http_history_node_up(ngx_http_history_node_t *node);
static void ngx_http_history_node_drop_all(ngx_http_history_node_t *node);
static void ngx_http_history_node_drop(ngx_http_history_node_t *node,
    ngx_http_history_cmd_t *cmd);
static void ngx_http_history_node_log_drop(ngx_http_history_node_t *node);
static void ngx_http_history_cmd_done(ngx_http_history_link_t *link,
    ngx_http_history_cmd_t *cmd, redisReply *reply);
static void ngx_http_history_replies_cleanup(void *data);
static redisReply *ngx_http_history_reply_alloc(const redisReadTask *task,
    int type);
static void *ngx_http_history_reply_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_http_history_reply_array(const redisReadTask *task,
    ngx_http_history_elements_t elements);
static void *ngx_http_history_reply_integer(const redisReadTask *task,
    long long value);
#if (HIREDIS_MAJOR >= 1)
static void *ngx_http_history_reply_double(const redisReadTask *task,
    double value, char *str, size_t len);
static void *ngx_http_history_reply_bool(const redisReadTask *task,
    int value);
#endif
static void *ngx_http_history_reply_nil(const redisReadTask *task);
static void ngx_http_history_reply_free(void *reply);
static ngx_uint_t ngx_http_history_format_digits(size_t n);
static u_char *ngx_http_history_format_number(u_char *p, size_t n);
static u_char *ngx_http_history_node_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


static redisReplyObjectFunctions  ngx_http_history_reply_functions = {
    ngx_http_history_reply_string,
    ngx_http_history_reply_array,
    ngx_http_history_reply_integer,
#if (HIREDIS_MAJOR >= 1)
    ngx_http_history_reply_double,
#endif
    ngx_http_history_reply_nil,
#if (HIREDIS_MAJOR >= 1)
    ngx_http_history_reply_bool,
#endif
    ngx_http_history_reply_free
};


ngx_http_history_link_t *
ngx_http_history_link_create(ngx_cycle_t *cycle,
    ngx_http_history_redis_conf_t *rcf, ngx_http_history_link_stats_t *stats)
{
    ngx_pool_t               *pool;
    ngx_http_history_link_t  *link;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    link = ngx_pcalloc(pool, sizeof(ngx_http_history_link_t));
    if (link == NULL) {
        goto failed;
    }

    link->conf = rcf;
    link->pool = pool;
    link->stats = stats;

    link->recv_buf = ngx_pnalloc(pool, NGX_HTTP_HISTORY_RECV_SIZE);
    if (link->recv_buf == NULL) {
        goto failed;
    }

    link->nnodes = 1;
    link->nodes = ngx_pcalloc(pool, sizeof(ngx_http_history_node_t));
    if (link->nodes == NULL) {
        goto failed;
    }

    if (ngx_http_history_node_init(link, &link->nodes[0], rcf->addr,
                                   cycle->log)
        != NGX_OK)
    {
        goto failed;
    }

    return link;

failed:

    ngx_destroy_pool(pool);
    return NULL;
}


static ngx_int_t
ngx_http_history_node_init(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node, ngx_addr_t *addr, ngx_log_t *log)
{
    ngx_pool_cleanup_t  *cln;

    node->link = link;

    node->log = *log;
    node->log.handler = ngx_http_history_node_log_error;
    node->log.data = node;
    node->log.action = NULL;
    node->log_level = log->log_level;

    node->peer.sockaddr = addr->sockaddr;
    node->peer.socklen = addr->socklen;
    node->peer.name = &addr->name;
    node->peer.get = ngx_event_get_peer;
    node->peer.log = &node->log;
    node->peer.log_error = NGX_ERROR_ERR;

    ngx_queue_init(&node->pending);
    ngx_queue_init(&node->inflight);

    cln = ngx_pool_cleanup_add(link->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    node->replies.pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (node->replies.pool == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_history_replies_cleanup;
    cln->data = node->replies.pool;

    node->replies.log = &node->log;

    if (ngx_http_history_node_prepare(node) != NGX_OK) {
        return NGX_ERROR;
    }

    node->reconnect.handler = ngx_http_history_node_reconnect_handler;
    node->reconnect.data = node;
    node->reconnect.log = &node->log;
    node->reconnect.cancelable = 1;

    node->flush.handler = ngx_http_history_node_flush_handler;
    node->flush.data = node;
    node->flush.log = &node->log;

    ngx_http_history_node_connect(node);

    return NGX_OK;
}


/*
 * AUTH and SELECT, formatted once and sent first on every connection;
 * nothing else is sent before their replies arrive.
 */

static ngx_int_t
ngx_http_history_node_prepare(ngx_http_history_node_t *node)
{
    u_char                         *p, db[NGX_INT_T_LEN];
    size_t                          size, len[5];
    ngx_uint_t                      i, n;
    const char                     *argv[5];
    ngx_http_history_argv_t         cmd[2];
    ngx_http_history_redis_conf_t  *rcf;

    rcf = node->link->conf;
    n = 0;

    if (rcf->password.len) {
        cmd[n].argc = 0;
        cmd[n].argv = argv;
        cmd[n].argvlen = len;

        argv[cmd[n].argc] = "AUTH";
        len[cmd[n].argc++] = 4;

        if (rcf->username.len) {
            argv[cmd[n].argc] = (const char *) rcf->username.data;
            len[cmd[n].argc++] = rcf->username.len;
        }

        argv[cmd[n].argc] = (const char *) rcf->password.data;
        len[cmd[n].argc++] = rcf->password.len;

        n++;
    }

    if (rcf->db) {
        p = ngx_sprintf(db, "%ui", rcf->db);

        cmd[n].argc = 2;
        cmd[n].argv = &argv[3];
        cmd[n].argvlen = &len[3];

        argv[3] = "SELECT";
        len[3] = 6;
        argv[4] = (const char *) db;
        len[4] = p - db;

        n++;
    }

    node->handshake_replies = n;

    if (n == 0) {
        return NGX_OK;
    }

    size = 0;

    for (i = 0; i < n; i++) {
        size += ngx_http_history_format_size(&cmd[i]);
    }

    p = ngx_pnalloc(node->link->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    node->handshake.start = p;
    node->handshake.end = p + size;
    node->handshake.memory = 1;

    for (i = 0; i < n; i++) {
        p = ngx_http_history_format(p, &cmd[i]);
    }

    return NGX_OK;
}


void
ngx_http_history_link_destroy(ngx_http_history_link_t *link)
{
    ngx_uint_t                i, left;
    ngx_http_history_node_t  *node;

    left = link->queued;

    for (i = 0; i < link->nnodes; i++) {
        node = &link->nodes[i];

        if (node->reconnect.timer_set) {
            ngx_del_timer(&node->reconnect);
        }

        if (node->flush.posted) {
            ngx_delete_posted_event(&node->flush);
        }

        ngx_http_history_node_disconnect(node);

        while (!ngx_queue_empty(&node->inflight)) {
            ngx_http_history_cmd_done(link,
                     ngx_queue_data(ngx_queue_head(&node->inflight),
                                    ngx_http_history_cmd_t, queue),
                     NULL);
        }

        while (!ngx_queue_empty(&node->pending)) {
            ngx_http_history_node_drop(node,
                     ngx_queue_data(ngx_queue_head(&node->pending),
                                    ngx_http_history_cmd_t, queue));
        }
    }

    if (left) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "history: %ui redis commands not flushed on exit",
                      left);
    }

    ngx_destroy_pool(link->pool);
}


ngx_http_history_cmd_t *
ngx_http_history_link_send(ngx_http_history_link_t *link, ngx_str_t *key,
    ngx_http_history_argv_t *unit, ngx_uint_t n,
    ngx_http_history_reply_pt handler, void *data)
{
    u_char                   *p;
    size_t                    size;
    ngx_uint_t                k;
    ngx_queue_t              *q;
    ngx_http_history_cmd_t   *cmd, *old;
    ngx_http_history_node_t  *node;

    if (n == 0 || n > NGX_HTTP_HISTORY_UNIT_MAX) {
        return NULL;
    }

    node = ngx_http_history_link_node(link, key);

    size = 0;

    for (k = 0; k < n; k++) {
        size += ngx_http_history_format_size(&unit[k]);
    }

    cmd = ngx_alloc(sizeof(ngx_http_history_cmd_t) + size, &node->log);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_http_history_cmd_t));

    p = (u_char *) &cmd[1];

    cmd->buf.start = p;
    cmd->buf.pos = p;
    cmd->buf.end = p + size;
    cmd->buf.memory = 1;

    for (k = 0; k < n; k++) {
        p = ngx_http_history_format(p, &unit[k]);
    }

    cmd->buf.last = p;
    cmd->replies = n;
    cmd->handler = handler;
    cmd->data = data;

    if (link->queued >= link->conf->queue) {

        /* full: the oldest work not yet on the wire makes room */

        old = NULL;

        for (q = ngx_queue_head(&node->pending);
             q != ngx_queue_sentinel(&node->pending);
             q = ngx_queue_next(q))
        {
            old = ngx_queue_data(q, ngx_http_history_cmd_t, queue);

            if (old->buf.pos == old->buf.start) {
                break;
            }

            old = NULL;
        }

        ngx_http_history_node_log_drop(node);

        if (old == NULL) {
            /* accepted and dropped at once, so that the figures add up */
            link->stats->queued++;
            link->stats->dropped++;
            node->down_dropped++;
            ngx_free(cmd);
            return NULL;
        }

        ngx_http_history_node_drop(node, old);
    }

    ngx_queue_insert_tail(&node->pending, &cmd->queue);
    node->npending++;
    link->queued++;
    link->stats->queued++;
    link->stats->depth = link->queued;

    if (node->state >= NGX_HTTP_HISTORY_NODE_HANDSHAKE) {
        if (!node->flush.posted) {
            ngx_post_event(&node->flush, &ngx_posted_events);
        }

    } else {
        /* work is waiting: it keeps an exiting worker until flushed */
        node->reconnect.cancelable = 0;
    }

    return cmd;
}


void
ngx_http_history_link_cancel(ngx_http_history_cmd_t *cmd)
{
    cmd->handler = NULL;
    cmd->data = NULL;
}


/*
 * Whether the node of this key is connected or connecting: a read is only
 * worth sending then, since a request waits for the answer; while the node
 * waits to reconnect, Redis is known to be away.
 */

ngx_uint_t
ngx_http_history_link_up(ngx_http_history_link_t *link, ngx_str_t *key)
{
    return ngx_http_history_link_node(link, key)->state
           != NGX_HTTP_HISTORY_NODE_DOWN;
}


static ngx_http_history_node_t *
ngx_http_history_link_node(ngx_http_history_link_t *link, ngx_str_t *key)
{
    /* a single server: every key lives on the first node */

    return &link->nodes[0];
}


static void
ngx_http_history_node_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_history_node_connect(ev->data);
}


static void
ngx_http_history_node_connect(ngx_http_history_node_t *node)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    node->link->stats->connects++;

    node->log.action = "connecting to redis";

    rc = ngx_event_connect_peer(&node->peer);

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, &node->log, 0,
                   "history redis connect: %i", rc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        node->peer.connection = NULL;
        ngx_http_history_node_close(node);
        return;
    }

    c = node->peer.connection;

    c->data = node;
    c->read->handler = ngx_http_history_node_read_handler;
    c->write->handler = ngx_http_history_node_write_handler;

    if (node->reader == NULL) {
        node->reader = ngx_http_history_reader_create(&node->replies);
        if (node->reader == NULL) {
            ngx_http_history_node_close(node);
            return;
        }
    }

    if (rc == NGX_AGAIN) {
        node->state = NGX_HTTP_HISTORY_NODE_CONNECTING;
        ngx_add_timer(c->write, node->link->conf->connect_timeout);
        return;
    }

    ngx_http_history_node_connected(node);
}


static void
ngx_http_history_node_connected(ngx_http_history_node_t *node)
{
    ngx_connection_t  *c;

    c = node->peer.connection;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_history_node_close(node);
        return;
    }

    node->log.action = "talking to redis";

    if (node->handshake_replies) {
        node->state = NGX_HTTP_HISTORY_NODE_HANDSHAKE;
        node->handshake_left = node->handshake_replies;
        node->handshake.pos = node->handshake.start;
        node->handshake.last = node->handshake.end;

    } else {
        node->state = NGX_HTTP_HISTORY_NODE_READY;
        ngx_http_history_node_up(node);
    }

    ngx_http_history_node_send(node);
}


static ngx_int_t
ngx_http_history_node_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

#if (NGX_HAVE_KQUEUE)

    if (ngx_event_flags & NGX_USE_KQUEUE_EVENT)  {
        if (c->write->pending_eof || c->read->pending_eof) {
            if (c->write->pending_eof) {
                err = c->write->kq_errno;

            } else {
                err = c->read->kq_errno;
            }

            (void) ngx_connection_error(c, err,
                                    "kevent() reported that connect() failed");
            return NGX_ERROR;
        }

    } else
#endif
    {
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            (void) ngx_connection_error(c, err, "connect() failed");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_history_node_write_handler(ngx_event_t *wev)
{
    ngx_connection_t         *c;
    ngx_http_history_node_t  *node;

    c = wev->data;
    node = c->data;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_ERR, &node->log, NGX_ETIMEDOUT,
                      "redis timed out");
        ngx_http_history_node_close(node);
        return;
    }

    if (node->state == NGX_HTTP_HISTORY_NODE_CONNECTING) {
        if (ngx_http_history_node_test_connect(c) != NGX_OK) {
            ngx_http_history_node_close(node);
            return;
        }

        ngx_http_history_node_connected(node);
        return;
    }

    ngx_http_history_node_send(node);
}


static void
ngx_http_history_node_flush_handler(ngx_event_t *ev)
{
    ngx_http_history_node_send(ev->data);
}


/*
 * Writes as much as the socket takes: the handshake alone until it is
 * answered, then everything pending, many units in one writev().
 */

static void
ngx_http_history_node_send(ngx_http_history_node_t *node)
{
    ngx_uint_t                i, n;
    ngx_chain_t              *cl, *out;
    ngx_queue_t              *q;
    ngx_connection_t         *c;
    ngx_http_history_cmd_t   *cmd;
    ngx_http_history_link_t  *link;

    link = node->link;
    c = node->peer.connection;

    if (c == NULL || node->state < NGX_HTTP_HISTORY_NODE_HANDSHAKE) {
        return;
    }

    while (c->write->ready) {

        cl = link->chain;
        n = 0;

        if (node->state == NGX_HTTP_HISTORY_NODE_HANDSHAKE) {
            if (node->handshake.pos == node->handshake.last) {
                break;
            }

            cl[n].buf = &node->handshake;
            cl[n].next = NULL;
            n++;

        } else {
            for (q = ngx_queue_head(&node->pending);
                 q != ngx_queue_sentinel(&node->pending)
                 && n < NGX_HTTP_HISTORY_CHAIN_MAX;
                 q = ngx_queue_next(q))
            {
                cmd = ngx_queue_data(q, ngx_http_history_cmd_t, queue);

                cl[n].buf = &cmd->buf;
                cl[n].next = NULL;

                if (n) {
                    cl[n - 1].next = &cl[n];
                }

                n++;
            }
        }

        if (n == 0) {
            break;
        }

        out = c->send_chain(c, cl, 0);

        if (out == NGX_CHAIN_ERROR) {
            ngx_http_history_node_close(node);
            return;
        }

        if (node->state == NGX_HTTP_HISTORY_NODE_READY) {
            for (i = 0; i < n; i++) {
                cmd = ngx_queue_data(ngx_queue_head(&node->pending),
                                     ngx_http_history_cmd_t, queue);

                if (cmd->buf.pos != cmd->buf.last) {
                    break;
                }

                ngx_queue_remove(&cmd->queue);
                ngx_queue_insert_tail(&node->inflight, &cmd->queue);
                node->npending--;
                link->stats->sent++;
            }
        }

        if (!ngx_queue_empty(&node->inflight)
            || node->state == NGX_HTTP_HISTORY_NODE_HANDSHAKE)
        {
            if (!c->read->timer_set) {
                ngx_add_timer(c->read, link->conf->timeout);
            }
        }

        if (out != NULL) {
            break;
        }
    }

    if (node->npending
        || (node->state == NGX_HTTP_HISTORY_NODE_HANDSHAKE
            && node->handshake.pos != node->handshake.last))
    {
        ngx_add_timer(c->write, link->conf->timeout);

    } else if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_history_node_close(node);
    }
}


static void
ngx_http_history_node_read_handler(ngx_event_t *rev)
{
    ssize_t                   n;
    ngx_uint_t                progress;
    ngx_connection_t         *c;
    ngx_http_history_node_t  *node;
    ngx_http_history_link_t  *link;

    c = rev->data;
    node = c->data;
    link = node->link;

    if (c->close) {
        /* worker_shutdown_timeout has passed */
        ngx_http_history_node_close(node);
        return;
    }

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_ERR, &node->log, NGX_ETIMEDOUT,
                      "redis timed out");
        ngx_http_history_node_close(node);
        return;
    }

    if (node->state == NGX_HTTP_HISTORY_NODE_CONNECTING) {
        return;
    }

    progress = 0;

    while (rev->ready) {
        n = c->recv(c, link->recv_buf, NGX_HTTP_HISTORY_RECV_SIZE);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                          "redis closed connection");
            ngx_http_history_node_close(node);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_history_node_close(node);
            return;
        }

        if (redisReaderFeed(node->reader, (const char *) link->recv_buf, n)
            != REDIS_OK)
        {
            ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                          "redis reply buffer failed");
            ngx_http_history_node_close(node);
            return;
        }

        if (ngx_http_history_node_process(node) != NGX_OK) {
            return;
        }

        progress = 1;
    }

    if (ngx_queue_empty(&node->inflight)
        && node->state == NGX_HTTP_HISTORY_NODE_READY)
    {
        if (rev->timer_set) {
            ngx_del_timer(rev);
        }

    } else if (progress) {
        ngx_add_timer(rev, link->conf->timeout);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_history_node_close(node);
    }
}


static ngx_int_t
ngx_http_history_node_process(ngx_http_history_node_t *node)
{
    void                     *r;
    redisReply               *reply;
    ngx_http_history_cmd_t   *cmd;
    ngx_http_history_link_t  *link;

    link = node->link;

    for ( ;; ) {

        if (redisReaderGetReply(node->reader, &r) != REDIS_OK) {
            if (!node->replies.logged) {
                ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                              "redis sent an invalid reply: %s",
                              node->reader->errstr);
            }

            node->replies.logged = 0;
            ngx_http_history_node_close(node);
            return NGX_ERROR;
        }

        if (r == NULL) {
            return NGX_OK;
        }

        /* the reply lives in node->replies until released */

        reply = r;

        if (node->state == NGX_HTTP_HISTORY_NODE_HANDSHAKE) {
            if (ngx_http_history_node_handshake_reply(node, reply)
                != NGX_OK)
            {
                ngx_http_history_node_close(node);
                return NGX_ERROR;
            }

            ngx_http_history_reader_release(&node->replies);
            continue;
        }

        if (ngx_queue_empty(&node->inflight)) {
            ngx_log_error(NGX_LOG_ALERT, &node->log, 0,
                          "redis sent a reply nothing waits for");
            ngx_http_history_node_close(node);
            return NGX_ERROR;
        }

        cmd = ngx_queue_data(ngx_queue_head(&node->inflight),
                             ngx_http_history_cmd_t, queue);

        if (ngx_http_history_reply_failed(reply)) {
            cmd->error = 1;
            ngx_http_history_node_log_reply(node, reply);
        }

        if (--cmd->replies == 0) {
            ngx_http_history_cmd_done(link, cmd, reply);
        }

        ngx_http_history_reader_release(&node->replies);
    }
}


static ngx_int_t
ngx_http_history_node_handshake_reply(ngx_http_history_node_t *node,
    redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis refused %s: \"%*s\"",
                      node->handshake_left == 1 && node->link->conf->db
                      ? "SELECT" : "AUTH",
                      (size_t) reply->len, reply->str);
        return NGX_ERROR;
    }

    if (--node->handshake_left == 0) {
        node->state = NGX_HTTP_HISTORY_NODE_READY;
        ngx_http_history_node_up(node);

        if (!node->flush.posted) {
            ngx_post_event(&node->flush, &ngx_posted_events);
        }
    }

    return NGX_OK;
}


/* an error reply, or an EXEC whose commands failed */

static ngx_uint_t
ngx_http_history_reply_failed(redisReply *reply)
{
    size_t  i;

    if (reply->type == REDIS_REPLY_ERROR) {
        return 1;
    }

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type == REDIS_REPLY_ERROR) {
                return 1;
            }
        }
    }

    return 0;
}


static void
ngx_http_history_node_log_reply(ngx_http_history_node_t *node,
    redisReply *reply)
{
    size_t  i;

    if (ngx_time() - node->error_logged < NGX_HTTP_HISTORY_LOG_INTERVAL) {
        return;
    }

    node->error_logged = ngx_time();

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type == REDIS_REPLY_ERROR) {
                reply = reply->element[i];
                break;
            }
        }
    }

    ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                  "redis replied with an error: \"%*s\"",
                  (size_t) reply->len, reply->str);
}


/*
 * Closes the connection: what was written and not answered has failed,
 * what was not written waits for the next connection, or, if the worker
 * is exiting, is dropped so that it cannot hold the worker.
 */

static void
ngx_http_history_node_close(ngx_http_history_node_t *node)
{
    ngx_msec_t                delay;
    ngx_http_history_cmd_t   *cmd;
    ngx_http_history_link_t  *link;

    link = node->link;

    ngx_http_history_node_disconnect(node);

    node->state = NGX_HTTP_HISTORY_NODE_DOWN;
    link->stats->state = 0;
    node->log.action = NULL;

    while (!ngx_queue_empty(&node->inflight)) {
        cmd = ngx_queue_data(ngx_queue_head(&node->inflight),
                             ngx_http_history_cmd_t, queue);
        link->stats->failed++;
        ngx_http_history_cmd_done(link, cmd, NULL);
    }

    if (!ngx_queue_empty(&node->pending)) {
        cmd = ngx_queue_data(ngx_queue_head(&node->pending),
                             ngx_http_history_cmd_t, queue);

        /* a unit cut short is sent again, whole */
        cmd->buf.pos = cmd->buf.start;
    }

    if (node->down_since == 0) {
        node->down_since = ngx_time();
        node->down_logged = ngx_time();
        node->down_dropped = 0;

        /* the first failure was logged; stay quiet until it is back */
        node->log.log_level = NGX_LOG_EMERG;

    } else if (ngx_time() - node->down_logged
               >= NGX_HTTP_HISTORY_LOG_INTERVAL)
    {
        node->down_logged = ngx_time();
        node->log.log_level = node->log_level;

        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis unavailable for %T s, %ui commands dropped",
                      ngx_time() - node->down_since, node->down_dropped);

        node->log.log_level = NGX_LOG_EMERG;
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_http_history_node_drop_all(node);
        return;
    }

    node->backoff = node->backoff ? ngx_min(node->backoff * 2,
                                            NGX_HTTP_HISTORY_BACKOFF_MAX)
                                  : NGX_HTTP_HISTORY_BACKOFF_MIN;

    delay = node->backoff / 2 + ngx_random() % (node->backoff / 2 + 1);

    node->reconnect.cancelable = (node->npending == 0);
    ngx_add_timer(&node->reconnect, delay);
}


static void
ngx_http_history_node_disconnect(ngx_http_history_node_t *node)
{
    if (node->peer.connection) {
        ngx_close_connection(node->peer.connection);
        node->peer.connection = NULL;
    }

    if (node->reader) {
        redisReaderFree(node->reader);
        node->reader = NULL;
        ngx_http_history_reader_release(&node->replies);
    }
}


static void
ngx_http_history_node_up(ngx_http_history_node_t *node)
{
    node->backoff = 0;
    node->link->stats->state = 1;

    if (node->down_since) {
        node->log.log_level = node->log_level;

        ngx_log_error(NGX_LOG_NOTICE, &node->log, 0,
                      "redis connection restored after %T s, "
                      "%ui commands dropped",
                      ngx_time() - node->down_since, node->down_dropped);

        node->down_since = 0;
    }
}


static void
ngx_http_history_node_drop_all(ngx_http_history_node_t *node)
{
    ngx_uint_t  n;

    n = node->npending;

    while (!ngx_queue_empty(&node->pending)) {
        ngx_http_history_node_drop(node,
                     ngx_queue_data(ngx_queue_head(&node->pending),
                                    ngx_http_history_cmd_t, queue));
    }

    if (n) {
        node->log.log_level = node->log_level;
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis unavailable while exiting, "
                      "%ui commands dropped", n);
    }
}


static void
ngx_http_history_node_drop(ngx_http_history_node_t *node,
    ngx_http_history_cmd_t *cmd)
{
    node->npending--;
    node->down_dropped++;
    node->link->stats->dropped++;

    ngx_http_history_cmd_done(node->link, cmd, NULL);
}


static void
ngx_http_history_node_log_drop(ngx_http_history_node_t *node)
{
    ngx_uint_t  level;

    if (ngx_time() - node->drop_logged < NGX_HTTP_HISTORY_LOG_INTERVAL) {
        return;
    }

    node->drop_logged = ngx_time();

    level = node->log.log_level;
    node->log.log_level = node->log_level;

    ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                  "redis queue is full (%ui commands), dropping the oldest",
                  node->link->conf->queue);

    node->log.log_level = level;
}


static void
ngx_http_history_cmd_done(ngx_http_history_link_t *link,
    ngx_http_history_cmd_t *cmd, redisReply *reply)
{
    ngx_queue_remove(&cmd->queue);
    link->queued--;
    link->stats->depth = link->queued;

    if (reply) {
        if (cmd->error) {
            link->stats->errors++;

        } else {
            link->stats->replied++;
        }
    }

    if (cmd->handler) {
        cmd->handler(cmd, cmd->error ? NULL : reply);
    }

    ngx_free(cmd);
}


static u_char *
ngx_http_history_node_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                   *p;
    ngx_http_history_node_t  *node;

    node = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    return ngx_snprintf(p, len, ", redis: %V", node->peer.name);
}


/*
 * hiredis's reader with reply objects in a pool: a reply is a handful of
 * small objects, and allocating and freeing each with malloc() cost more
 * than parsing it.  The objects are those hiredis's own functions build;
 * freeing one is a no-op, the pool is reset once the reply is handled
 * (the reader starts on the next reply only when asked for it).
 */

redisReader *
ngx_http_history_reader_create(ngx_http_history_replies_t *rp)
{
    redisReader  *reader;

    reader = redisReaderCreateWithFunctions(
                                          &ngx_http_history_reply_functions);
    if (reader == NULL) {
        return NULL;
    }

    reader->privdata = rp;

    return reader;
}


void
ngx_http_history_reader_release(ngx_http_history_replies_t *rp)
{
    ngx_reset_pool(rp->pool);
}


static void
ngx_http_history_replies_cleanup(void *data)
{
    ngx_pool_t  *pool = data;

    ngx_destroy_pool(pool);
}


static redisReply *
ngx_http_history_reply_alloc(const redisReadTask *task, int type)
{
    redisReply                  *reply, *parent;
    ngx_http_history_replies_t  *rp;

    rp = task->privdata;

    reply = ngx_pcalloc(rp->pool, sizeof(redisReply));
    if (reply == NULL) {
        return NULL;
    }

    reply->type = type;

    if (task->parent) {
        parent = task->parent->obj;
        parent->element[task->idx] = reply;
    }

    return reply;
}


static void *
ngx_http_history_reply_string(const redisReadTask *task, char *str,
    size_t len)
{
    u_char                      *p;
    redisReply                  *reply;
    ngx_http_history_replies_t  *rp;

    rp = task->privdata;

    p = ngx_pnalloc(rp->pool, len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, str, len);
    p[len] = '\0';

    /* a string, a status or an error (RESP3: also verbatim, big number) */

    reply = ngx_http_history_reply_alloc(task, task->type);
    if (reply == NULL) {
        return NULL;
    }

    reply->str = (char *) p;
    reply->len = len;

    return reply;
}


static void *
ngx_http_history_reply_array(const redisReadTask *task,
    ngx_http_history_elements_t elements)
{
    redisReply                  *reply, **element;
    ngx_http_history_replies_t  *rp;

    rp = task->privdata;

    /*
     * hiredis 0.14 asks for the element pointers as soon as it has read
     * the header: "*2147483647" alone would take 16 GB
     */

    if ((size_t) elements > NGX_HTTP_HISTORY_ELEMENTS_MAX) {
        ngx_log_error(NGX_LOG_ERR, rp->log, 0,
                      "redis sent an array of %uz elements, more than %d",
                      (size_t) elements, NGX_HTTP_HISTORY_ELEMENTS_MAX);
        rp->logged = 1;
        return NULL;
    }

    element = NULL;

    if (elements) {
        element = ngx_pcalloc(rp->pool, elements * sizeof(redisReply *));
        if (element == NULL) {
            return NULL;
        }
    }

    /* an array (RESP3: also a map, a set, a push, attributes) */

    reply = ngx_http_history_reply_alloc(task, task->type);
    if (reply == NULL) {
        return NULL;
    }

    reply->element = element;
    reply->elements = elements;

    return reply;
}


static void *
ngx_http_history_reply_integer(const redisReadTask *task, long long value)
{
    redisReply  *reply;

    reply = ngx_http_history_reply_alloc(task, REDIS_REPLY_INTEGER);
    if (reply == NULL) {
        return NULL;
    }

    reply->integer = value;

    return reply;
}


#if (HIREDIS_MAJOR >= 1)

/* RESP3 only; a server may send them nevertheless */

static void *
ngx_http_history_reply_double(const redisReadTask *task, double value,
    char *str, size_t len)
{
    redisReply  *reply;

    reply = ngx_http_history_reply_string(task, str, len);
    if (reply == NULL) {
        return NULL;
    }

    reply->type = REDIS_REPLY_DOUBLE;
    reply->dval = value;

    return reply;
}


static void *
ngx_http_history_reply_bool(const redisReadTask *task, int value)
{
    redisReply  *reply;

    reply = ngx_http_history_reply_alloc(task, REDIS_REPLY_BOOL);
    if (reply == NULL) {
        return NULL;
    }

    reply->integer = value != 0;

    return reply;
}

#endif


static void *
ngx_http_history_reply_nil(const redisReadTask *task)
{
    /* "$-1" and "*-1" alike (RESP3: "_") */

    return ngx_http_history_reply_alloc(task, REDIS_REPLY_NIL);
}


static void
ngx_http_history_reply_free(void *reply)
{
    /* the pool is reset as a whole */
}


/*
 * A command in Redis's protocol, the bytes redisFormatCommandArgv() would
 * write: "*<argc>\r\n", then "$<length>\r\n<argument>\r\n" for each
 * argument.  Every length is known beforehand, so a unit is written in one
 * pass into its own buffer; hiredis's formatter allocates each command and
 * writes its numbers with sprintf(), which was most of what recording a
 * view cost the worker (docs/performance.md).  fuzz/format.c checks the
 * bytes against redisFormatCommandArgv().
 */

size_t
ngx_http_history_format_size(ngx_http_history_argv_t *cmd)
{
    int     i;
    size_t  size;

    size = sizeof("*\r\n") - 1
           + ngx_http_history_format_digits((size_t) cmd->argc);

    for (i = 0; i < cmd->argc; i++) {
        size += sizeof("$\r\n\r\n") - 1
                + ngx_http_history_format_digits(cmd->argvlen[i])
                + cmd->argvlen[i];
    }

    return size;
}


u_char *
ngx_http_history_format(u_char *p, ngx_http_history_argv_t *cmd)
{
    int  i;

    *p++ = '*';
    p = ngx_http_history_format_number(p, (size_t) cmd->argc);
    *p++ = CR; *p++ = LF;

    for (i = 0; i < cmd->argc; i++) {
        *p++ = '$';
        p = ngx_http_history_format_number(p, cmd->argvlen[i]);
        *p++ = CR; *p++ = LF;

        p = ngx_cpymem(p, cmd->argv[i], cmd->argvlen[i]);
        *p++ = CR; *p++ = LF;
    }

    return p;
}


static ngx_uint_t
ngx_http_history_format_digits(size_t n)
{
    ngx_uint_t  digits;

    for (digits = 1; n >= 10; n /= 10) {
        digits++;
    }

    return digits;
}


static u_char *
ngx_http_history_format_number(u_char *p, size_t n)
{
    u_char  *d, digits[NGX_SIZE_T_LEN];

    d = digits + NGX_SIZE_T_LEN;

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, d, digits + NGX_SIZE_T_LEN - d);
}
