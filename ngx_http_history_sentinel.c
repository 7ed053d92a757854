
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Redis Sentinel for the link: finds the master that the Sentinels watch
 * and follows it when it moves.
 *
 * The link asks for the master before each connection to a data node
 * (ngx_http_history_sentinel_resolve()): the Sentinels are asked in turn,
 * one connection at a time, each within connect_timeout, with SENTINEL
 * get-master-addr-by-name, and the first answer goes back to the link.
 * One connection per worker stays SUBSCRIBEd to +switch-master on a
 * Sentinel (pinged, and moved to the next Sentinel when it fails); when
 * it names a new master for our group, the link is told "the master
 * changed, to this address" (what follows, a new connection and the
 * replay of what the old master acknowledged last, is the link's), and
 * its next connection goes there.  ngx_http_history_sentinel_role()
 * checks a node's ROLE reply for the link.
 *
 * It may call nginx's core and event API (ngx_event_connect_peer(),
 * timers, logging), hiredis's reader through the link's reply pool
 * (ngx_http_history_reader_create(), _release()) and the link's command
 * formatting (ngx_http_history_batch_*(), ngx_http_history_format()).
 * It knows no request, no unit of work and no node: the link calls it
 * and it answers through the two handlers the link gives it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_history_sentinel.h"


#define NGX_HTTP_HISTORY_SENTINEL_RECV_SIZE     4096
#define NGX_HTTP_HISTORY_SENTINEL_PING          1000
#define NGX_HTTP_HISTORY_SENTINEL_BACKOFF_MIN   100
#define NGX_HTTP_HISTORY_SENTINEL_BACKOFF_MAX   1000
#define NGX_HTTP_HISTORY_SENTINEL_LOG_INTERVAL  60

/* a Sentinel's longest answer, a +switch-master message, is far less */
#define NGX_HTTP_HISTORY_SENTINEL_REPLY_MAX     4096


/* one connection to a Sentinel: a question, or the subscription */

typedef struct {
    ngx_http_history_sentinel_t   *sentinel;
    ngx_peer_connection_t          peer;
    redisReader                   *reader;
    ngx_http_history_replies_t     replies;
    ngx_http_history_scan_t        scan;
    ngx_buf_t                      request;    /* formatted once */
    ngx_buf_t                      out;        /* what is left to write */
    ngx_uint_t                     index;      /* which Sentinel */
    ngx_uint_t                     auth;       /* AUTH replies to come */
    ngx_event_t                    timer;      /* retry, ping */
    ngx_msec_t                     backoff;
    unsigned                       subscriber:1;
    unsigned                       connecting:1;
    unsigned                       subscribed:1;
    unsigned                       pinged:1;
    unsigned                       lost:1;     /* events may be missed */
} ngx_http_history_sentinel_conn_t;


struct ngx_http_history_sentinel_s {
    ngx_http_history_redis_conf_t *conf;
    ngx_http_history_link_stats_t *stats;
    ngx_log_t                      log;
    ngx_uint_t                     log_level;
    time_t                         logged;

    ngx_addr_t                    *addrs;      /* the Sentinels */
    ngx_uint_t                     naddrs;
    ngx_uint_t                     current;    /* the one to ask first */
    ngx_uint_t                     tried;      /* asked in this round */

    ngx_http_history_sentinel_conn_t  query;
    ngx_http_history_sentinel_conn_t  sub;

    ngx_http_history_sentinel_found_pt  found;
    void                          *found_data;
    ngx_http_history_sentinel_moved_pt  moved;
    void                          *moved_data;

    ngx_str_t                     *peer;       /* the one talked to, for
                                                  the log */

    /* the address handed to the link, and the one +switch-master named */
    ngx_addr_t                     master;
    ngx_sockaddr_t                 master_sockaddr;
    u_char                         master_text[NGX_SOCKADDR_STRLEN];
    ngx_sockaddr_t                 answer_sockaddr;
    socklen_t                      answer_socklen;
    ngx_sockaddr_t                 next_sockaddr;
    socklen_t                      next_socklen;
    unsigned                       next:1;
    unsigned                       known:1;

    ngx_buf_t                      ping;
    u_char                        *recv_buf;
};


static ngx_int_t ngx_http_history_sentinel_request(
    ngx_http_history_sentinel_t *s, ngx_pool_t *pool, ngx_buf_t *buf,
    char *command, char *arg1, ngx_str_t *arg2, ngx_uint_t *auth);
static void ngx_http_history_sentinel_connect(
    ngx_http_history_sentinel_conn_t *sc);
static void ngx_http_history_sentinel_write_handler(ngx_event_t *wev);
static void ngx_http_history_sentinel_read_handler(ngx_event_t *rev);
static void ngx_http_history_sentinel_send(
    ngx_http_history_sentinel_conn_t *sc);
static ngx_int_t ngx_http_history_sentinel_reply(
    ngx_http_history_sentinel_conn_t *sc, redisReply *reply);
static ngx_int_t ngx_http_history_sentinel_answer(
    ngx_http_history_sentinel_t *s, redisReply *reply);
static ngx_int_t ngx_http_history_sentinel_message(
    ngx_http_history_sentinel_t *s, redisReply *reply);
static ngx_int_t ngx_http_history_sentinel_parse(ngx_sockaddr_t *sa,
    socklen_t *socklen, u_char *host, size_t hlen, u_char *port,
    size_t plen);
static void ngx_http_history_sentinel_failed(
    ngx_http_history_sentinel_conn_t *sc);
static void ngx_http_history_sentinel_close(
    ngx_http_history_sentinel_conn_t *sc);
static void ngx_http_history_sentinel_timer_handler(ngx_event_t *ev);
static void ngx_http_history_sentinel_use(ngx_http_history_sentinel_t *s,
    ngx_sockaddr_t *sa, socklen_t socklen);
static void ngx_http_history_sentinel_quiet(ngx_http_history_sentinel_t *s);
static void ngx_http_history_sentinel_log_for(
    ngx_http_history_sentinel_conn_t *sc);
static ngx_uint_t ngx_http_history_sentinel_is(redisReply *reply,
    char *text);
static u_char *ngx_http_history_sentinel_log_error(ngx_log_t *log,
    u_char *buf, size_t len);


ngx_http_history_sentinel_t *
ngx_http_history_sentinel_create(ngx_cycle_t *cycle, ngx_pool_t *pool,
    ngx_http_history_redis_conf_t *rcf, ngx_http_history_link_stats_t *stats,
    ngx_http_history_sentinel_moved_pt moved, void *data)
{
    ngx_uint_t                         i;
    ngx_pool_cleanup_t                *cln;
    ngx_http_history_sentinel_t       *s;
    ngx_http_history_sentinel_conn_t  *sc;

    s = ngx_pcalloc(pool, sizeof(ngx_http_history_sentinel_t));
    if (s == NULL) {
        return NULL;
    }

    s->conf = rcf;
    s->stats = stats;

    /* the slot may have been another worker's */
    stats->master[0] = '\0';
    stats->sentinel = 0;
    stats->failovers = 0;
    stats->replayed = 0;
    stats->maybe_lost = 0;
    s->moved = moved;
    s->moved_data = data;

    s->addrs = rcf->sentinels->elts;
    s->naddrs = rcf->sentinels->nelts;

    s->log = *cycle->log;
    s->log.handler = ngx_http_history_sentinel_log_error;
    s->log.data = s;
    s->log.action = NULL;
    s->log_level = cycle->log->log_level;

    s->recv_buf = ngx_pnalloc(pool, NGX_HTTP_HISTORY_SENTINEL_RECV_SIZE);
    if (s->recv_buf == NULL) {
        return NULL;
    }

    /* until a Sentinel names it: the group's name, nowhere */

    s->master.sockaddr = &s->master_sockaddr.sockaddr;
    s->master.socklen = s->addrs[0].socklen;
    ngx_memcpy(&s->master_sockaddr, s->addrs[0].sockaddr,
               s->addrs[0].socklen);
    s->master.name.data = s->master_text;
    s->master.name.len = ngx_snprintf(s->master_text, NGX_SOCKADDR_STRLEN,
                                      "sentinel=%V", &rcf->sentinel_name)
                         - s->master_text;

    if (ngx_http_history_sentinel_request(s, pool, &s->query.request,
                                          "SENTINEL",
                                          "get-master-addr-by-name",
                                          &rcf->sentinel_name,
                                          &s->query.auth)
        != NGX_OK
        || ngx_http_history_sentinel_request(s, pool, &s->sub.request,
                                             "SUBSCRIBE", "+switch-master",
                                             NULL, &s->sub.auth)
           != NGX_OK
        || ngx_http_history_sentinel_request(s, pool, &s->ping, "PING",
                                             NULL, NULL, NULL)
           != NGX_OK)
    {
        return NULL;
    }

    s->sub.subscriber = 1;

    for (i = 0; i < 2; i++) {
        sc = i ? &s->sub : &s->query;

        sc->sentinel = s;
        sc->peer.get = ngx_event_get_peer;
        sc->peer.log = &s->log;
        sc->peer.log_error = NGX_ERROR_ERR;

        sc->replies.pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE,
                                           cycle->log);
        if (sc->replies.pool == NULL) {
            return NULL;
        }

        cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == NULL) {
            ngx_destroy_pool(sc->replies.pool);
            return NULL;
        }

        /* the pool of then: a large reply gives the replies a new one */
        cln->handler = ngx_http_history_replies_cleanup;
        cln->data = &sc->replies;

        sc->replies.log = &s->log;

        sc->timer.handler = ngx_http_history_sentinel_timer_handler;
        sc->timer.data = sc;
        sc->timer.log = &s->log;
        sc->timer.cancelable = 1;
    }

    ngx_http_history_sentinel_connect(&s->sub);

    return s;
}


/* [AUTH password] (unless auth is NULL) and one command, formatted once */

static ngx_int_t
ngx_http_history_sentinel_request(ngx_http_history_sentinel_t *s,
    ngx_pool_t *pool, ngx_buf_t *buf, char *command, char *arg1,
    ngx_str_t *arg2, ngx_uint_t *auth)
{
    u_char                    *p;
    size_t                     size;
    ngx_uint_t                 i;
    ngx_http_history_batch_t   b;

    ngx_http_history_batch_init(&b, NULL);

    if (auth) {
        *auth = 0;
    }

    if (auth && s->conf->sentinel_password.len) {
        ngx_http_history_batch_command(&b, "AUTH");
        ngx_http_history_batch_arg(&b, s->conf->sentinel_password.data,
                                   s->conf->sentinel_password.len);
        *auth = 1;
    }

    ngx_http_history_batch_command(&b, command);

    if (arg1) {
        ngx_http_history_batch_arg(&b, (u_char *) arg1, ngx_strlen(arg1));
    }

    if (arg2) {
        ngx_http_history_batch_arg(&b, arg2->data, arg2->len);
    }

    size = 0;

    for (i = 0; i < b.ncommands; i++) {
        size += ngx_http_history_format_size(&b.command[i]);
    }

    p = ngx_pnalloc(pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    buf->start = p;
    buf->end = p + size;
    buf->memory = 1;

    for (i = 0; i < b.ncommands; i++) {
        p = ngx_http_history_format(p, &b.command[i]);
    }

    return NGX_OK;
}


void
ngx_http_history_sentinel_destroy(ngx_http_history_sentinel_t *s)
{
    ngx_uint_t                         i;
    ngx_http_history_sentinel_conn_t  *sc;

    for (i = 0; i < 2; i++) {
        sc = i ? &s->sub : &s->query;

        if (sc->timer.timer_set) {
            ngx_del_timer(&sc->timer);
        }

        ngx_http_history_sentinel_close(sc);
    }

    s->found = NULL;
}


/* where the link's node connects until a Sentinel has named the master */

ngx_addr_t *
ngx_http_history_sentinel_addr(ngx_http_history_sentinel_t *s)
{
    return &s->master;
}


void
ngx_http_history_sentinel_resolve(ngx_http_history_sentinel_t *s,
    ngx_http_history_sentinel_found_pt found, void *data)
{
    s->found = found;
    s->found_data = data;

    if (s->next) {
        /* +switch-master has just named it: no need to ask */

        s->next = 0;
        ngx_http_history_sentinel_use(s, &s->next_sockaddr, s->next_socklen);
        return;
    }

    if (s->query.peer.connection) {
        /* a question is already on its way */
        return;
    }

    s->tried = 0;

    ngx_http_history_sentinel_connect(&s->query);
}


/*
 * A node's ROLE reply: NGX_OK if it says master; otherwise the Sentinel
 * that named it is asked last next time
 */

ngx_int_t
ngx_http_history_sentinel_role(ngx_http_history_sentinel_t *s,
    redisReply *reply, ngx_log_t *log)
{
    redisReply  *role;

    role = (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0)
           ? reply->element[0] : NULL;

    if (role && ngx_http_history_sentinel_is(role, "master")) {
        return NGX_OK;
    }

    /* the Sentinel that named it is asked last next time */

    s->current = (s->current + 1) % s->naddrs;

    if (role
        && (role->type == REDIS_REPLY_STRING
            || role->type == REDIS_REPLY_STATUS))
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "redis is not the master (ROLE \"%*s\"), "
                      "asking the Sentinels again",
                      ngx_min((size_t) role->len, 32), role->str);
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "redis sent an invalid reply to ROLE");

    return NGX_DECLINED;
}


static void
ngx_http_history_sentinel_connect(ngx_http_history_sentinel_conn_t *sc)
{
    ngx_int_t                     rc;
    ngx_addr_t                   *addr;
    ngx_connection_t             *c;
    ngx_http_history_sentinel_t  *s;

    s = sc->sentinel;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        if (!sc->subscriber) {
            ngx_http_history_sentinel_failed(sc);
        }

        return;
    }

    if (!sc->subscriber) {
        /* start with the Sentinel that answered last */
        sc->index = (s->current + s->tried) % s->naddrs;
    }

    if (s->log.log_level == NGX_LOG_EMERG
        && ngx_time() - s->logged >= NGX_HTTP_HISTORY_SENTINEL_LOG_INTERVAL)
    {
        s->log.log_level = s->log_level;
    }

    addr = &s->addrs[sc->index];

    sc->peer.sockaddr = addr->sockaddr;
    sc->peer.socklen = addr->socklen;
    sc->peer.name = &addr->name;

    ngx_http_history_sentinel_log_for(sc);

    rc = ngx_event_connect_peer(&sc->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        sc->peer.connection = NULL;
        ngx_http_history_sentinel_failed(sc);
        return;
    }

    c = sc->peer.connection;

    c->data = sc;
    c->read->handler = ngx_http_history_sentinel_read_handler;
    c->write->handler = ngx_http_history_sentinel_write_handler;

    if (sc->subscriber) {
        /* the subscription never keeps an exiting worker */
        c->read->cancelable = 1;
        c->write->cancelable = 1;
    }

    sc->reader = ngx_http_history_reader_create(&sc->replies);
    if (sc->reader == NULL) {
        ngx_http_history_sentinel_failed(sc);
        return;
    }

    ngx_http_history_scan_init(&sc->scan,
                               NGX_HTTP_HISTORY_SENTINEL_REPLY_MAX);

    sc->out = sc->request;
    sc->out.pos = sc->request.start;
    sc->out.last = sc->request.end;
    sc->subscribed = 0;
    sc->pinged = 0;

    ngx_add_timer(c->write, s->conf->connect_timeout);

    if (rc == NGX_AGAIN) {
        sc->connecting = 1;
        return;
    }

    sc->connecting = 0;

    ngx_http_history_sentinel_send(sc);
}


static void
ngx_http_history_sentinel_write_handler(ngx_event_t *wev)
{
    int                                err;
    socklen_t                          len;
    ngx_connection_t                  *c;
    ngx_http_history_sentinel_conn_t  *sc;

    c = wev->data;
    sc = c->data;

    ngx_http_history_sentinel_log_for(sc);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_ERR, &sc->sentinel->log, NGX_ETIMEDOUT,
                      "sentinel timed out");
        ngx_http_history_sentinel_failed(sc);
        return;
    }

    if (sc->connecting) {
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            (void) ngx_connection_error(c, err, "connect() failed");
            ngx_http_history_sentinel_failed(sc);
            return;
        }

        sc->connecting = 0;
    }

    ngx_http_history_sentinel_send(sc);
}


static void
ngx_http_history_sentinel_send(ngx_http_history_sentinel_conn_t *sc)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = sc->peer.connection;

    while (sc->out.pos < sc->out.last) {
        n = c->send(c, sc->out.pos, sc->out.last - sc->out.pos);

        if (n == NGX_ERROR) {
            ngx_http_history_sentinel_failed(sc);
            return;
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_history_sentinel_failed(sc);
            }

            return;
        }

        sc->out.pos += n;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* the answer is due within the same short time */

    if (!sc->subscribed && !c->read->timer_set) {
        ngx_add_timer(c->read, sc->sentinel->conf->connect_timeout);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_history_sentinel_failed(sc);
    }
}


static void
ngx_http_history_sentinel_read_handler(ngx_event_t *rev)
{
    void                              *r;
    size_t                             used, budget;
    ssize_t                            n;
    ngx_int_t                          rc;
    ngx_connection_t                  *c;
    ngx_http_history_sentinel_t       *s;
    ngx_http_history_sentinel_conn_t  *sc;

    c = rev->data;
    sc = c->data;
    s = sc->sentinel;

    ngx_http_history_sentinel_log_for(sc);

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_ERR, &s->log, NGX_ETIMEDOUT,
                      "sentinel timed out");
        ngx_http_history_sentinel_failed(sc);
        return;
    }

    if (c->close) {
        ngx_http_history_sentinel_close(sc);
        return;
    }

    if (sc->connecting) {
        /* the write handler tells whether the connection was made */
        return;
    }

    budget = NGX_HTTP_HISTORY_SENTINEL_RECV_SIZE * 16;

    while (rev->ready) {

        if (budget == 0) {
            /* the rest after the other events: a Sentinel holds no worker */
            ngx_post_event(rev, &ngx_posted_events);
            return;
        }

        n = c->recv(c, s->recv_buf, NGX_HTTP_HISTORY_SENTINEL_RECV_SIZE);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            if (n == 0) {
                ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                              "sentinel closed connection");
            }

            ngx_http_history_sentinel_failed(sc);
            return;
        }

        budget -= n;

        /* what hiredis may read: up to a reply the limit refuses */

        used = ngx_http_history_scan(&sc->scan, s->recv_buf, n);

        if (used
            && redisReaderFeed(sc->reader, (const char *) s->recv_buf, used)
               != REDIS_OK)
        {
            ngx_http_history_sentinel_failed(sc);
            return;
        }

        for ( ;; ) {
            if (redisReaderGetReply(sc->reader, &r) != REDIS_OK) {
                ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                              "sentinel sent an invalid reply: %s",
                              sc->reader->errstr);
                ngx_http_history_sentinel_failed(sc);
                return;
            }

            if (r == NULL) {
                break;
            }

            rc = ngx_http_history_sentinel_reply(sc, r);

            ngx_http_history_reader_release(&sc->replies);

            if (rc == NGX_DONE) {
                return;
            }

            if (rc != NGX_OK) {
                ngx_http_history_sentinel_failed(sc);
                return;
            }
        }

        if (sc->scan.error) {
            /* too large, too deep, or not Redis's protocol */
            ngx_log_error(NGX_LOG_ERR, &s->log, 0, sc->scan.error,
                          sc->scan.number, sc->scan.max);
            ngx_http_history_sentinel_failed(sc);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_history_sentinel_failed(sc);
    }
}


/*
 * One reply: NGX_OK to go on reading, NGX_DONE when the connection has
 * been closed or handed over, NGX_ERROR when the Sentinel failed.
 */

static ngx_int_t
ngx_http_history_sentinel_reply(ngx_http_history_sentinel_conn_t *sc,
    redisReply *reply)
{
    ngx_connection_t             *c;
    ngx_http_history_sentinel_t  *s;

    s = sc->sentinel;
    c = sc->peer.connection;

    if (sc->auth) {
        sc->auth--;

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                          "sentinel refused AUTH: \"%*s\"",
                          ngx_min((size_t) reply->len, 128), reply->str);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (!sc->subscriber) {
        if (ngx_http_history_sentinel_answer(s, reply) != NGX_OK) {
            return NGX_ERROR;
        }

        /* the answer is in s->master_sockaddr: hand it over */

        ngx_http_history_sentinel_close(sc);

        s->current = sc->index;
        s->stats->sentinel = sc->index + 1;
        s->log.log_level = s->log_level;

        if (s->found == NULL) {
            /* a check after the subscription was lost: did it move? */

            if (s->known
                && ngx_cmp_sockaddr(&s->master_sockaddr.sockaddr,
                                    s->master.socklen,
                                    &s->answer_sockaddr.sockaddr,
                                    s->answer_socklen, 1)
                   != NGX_OK)
            {
                ngx_log_error(NGX_LOG_NOTICE, &s->log, 0,
                              "sentinel: master \"%V\" moved while not "
                              "subscribed", &s->conf->sentinel_name);

                ngx_memcpy(&s->next_sockaddr, &s->answer_sockaddr,
                           s->answer_socklen);
                s->next_socklen = s->answer_socklen;
                s->next = 1;

                if (s->moved) {
                    s->moved(s->moved_data, &s->next_sockaddr.sockaddr,
                             s->next_socklen);
                }
            }

            return NGX_DONE;
        }

        if (s->next) {
            /* +switch-master came while asking: it is newer */
            s->next = 0;
            ngx_http_history_sentinel_use(s, &s->next_sockaddr,
                                          s->next_socklen);
            return NGX_DONE;
        }

        ngx_http_history_sentinel_use(s, &s->answer_sockaddr,
                                      s->answer_socklen);

        return NGX_DONE;
    }

    if (!sc->subscribed) {
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
            || !ngx_http_history_sentinel_is(reply->element[0], "subscribe"))
        {
            ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                          "sentinel refused SUBSCRIBE");
            return NGX_ERROR;
        }

        sc->subscribed = 1;
        sc->backoff = 0;

        if (sc->lost && s->known && s->query.peer.connection == NULL) {
            /* what was announced while not subscribed is gone: ask */
            s->tried = 0;
            ngx_http_history_sentinel_connect(&s->query);
        }

        sc->lost = 0;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        ngx_add_timer(&sc->timer, NGX_HTTP_HISTORY_SENTINEL_PING);

        return NGX_OK;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
        && ngx_http_history_sentinel_is(reply->element[0], "pong"))
    {
        sc->pinged = 0;
        return NGX_OK;
    }

    return ngx_http_history_sentinel_message(s, reply);
}


/* SENTINEL get-master-addr-by-name: [ip, port] into s->answer_sockaddr */

static ngx_int_t
ngx_http_history_sentinel_answer(ngx_http_history_sentinel_t *s,
    redisReply *reply)
{
    redisReply  *host, *port;

    if (reply->type == REDIS_REPLY_NIL) {
        ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                      "sentinel does not know master \"%V\"",
                      &s->conf->sentinel_name);
        return NGX_ERROR;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                      "sentinel replied with an error: \"%*s\"",
                      ngx_min((size_t) reply->len, 128), reply->str);
        return NGX_ERROR;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        goto invalid;
    }

    host = reply->element[0];
    port = reply->element[1];

    if (ngx_http_history_sentinel_parse(&s->answer_sockaddr,
                                        &s->answer_socklen,
                                        (u_char *) host->str, host->len,
                                        (u_char *) port->str, port->len)
        != NGX_OK)
    {
        goto invalid;
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                  "sentinel sent an invalid master address");

    return NGX_ERROR;
}


/*
 * A message on the subscription: "+switch-master" with
 * "<name> <old ip> <old port> <new ip> <new port>"
 */

static ngx_int_t
ngx_http_history_sentinel_message(ngx_http_history_sentinel_t *s,
    redisReply *reply)
{
    u_char          *p, *last, *field[5];
    size_t           len[5];
    socklen_t        socklen;
    ngx_uint_t       n;
    redisReply      *payload;
    ngx_sockaddr_t   sa;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || !ngx_http_history_sentinel_is(reply->element[0], "message")
        || !ngx_http_history_sentinel_is(reply->element[1], "+switch-master")
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                      "sentinel sent an unexpected message");
        return NGX_ERROR;
    }

    payload = reply->element[2];

    p = (u_char *) payload->str;
    last = p + payload->len;

    for (n = 0; n < 5 && p < last; n++) {
        field[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[n] = p - field[n];

        if (p < last) {
            p++;
        }
    }

    if (n != 5 || p != last) {
        ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                      "sentinel sent an invalid +switch-master");
        return NGX_ERROR;
    }

    if (len[0] != s->conf->sentinel_name.len
        || ngx_strncmp(field[0], s->conf->sentinel_name.data, len[0]) != 0)
    {
        /* another group watched by the same Sentinels */
        return NGX_OK;
    }

    if (ngx_http_history_sentinel_parse(&sa, &socklen, field[3], len[3],
                                        field[4], len[4])
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, &s->log, 0,
                      "sentinel sent an invalid +switch-master");
        return NGX_ERROR;
    }

    ngx_memcpy(&s->next_sockaddr, &sa, socklen);
    s->next_socklen = socklen;

    s->log.action = "following the master";

    ngx_log_error(NGX_LOG_NOTICE, &s->log, 0,
                  "sentinel: master \"%V\" moved to %*s:%*s",
                  &s->conf->sentinel_name, len[3], field[3],
                  len[4], field[4]);

    s->next = 1;

    if (s->moved) {
        s->moved(s->moved_data, &s->next_sockaddr.sockaddr,
                 s->next_socklen);
    }

    return NGX_OK;
}


/* a numeric address (Sentinel announces addresses) and a port */

static ngx_int_t
ngx_http_history_sentinel_parse(ngx_sockaddr_t *sa, socklen_t *socklen,
    u_char *host, size_t hlen, u_char *port, size_t plen)
{
    ngx_int_t  n;
    in_addr_t  in;
#if (NGX_HAVE_INET6)
    u_char     in6[16];
#endif

    n = ngx_atoi(port, plen);

    if (n < 1 || n > 65535 || hlen == 0) {
        return NGX_ERROR;
    }

    ngx_memzero(sa, sizeof(ngx_sockaddr_t));

    in = ngx_inet_addr(host, hlen);

    if (in != INADDR_NONE) {
        sa->sockaddr_in.sin_family = AF_INET;
        sa->sockaddr_in.sin_addr.s_addr = in;
        sa->sockaddr_in.sin_port = htons((in_port_t) n);
        *socklen = sizeof(struct sockaddr_in);
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)

    if (ngx_inet6_addr(host, hlen, in6) == NGX_OK) {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        ngx_memcpy(sa->sockaddr_in6.sin6_addr.s6_addr, in6, 16);
        sa->sockaddr_in6.sin6_port = htons((in_port_t) n);
        *socklen = sizeof(struct sockaddr_in6);
        return NGX_OK;
    }

#endif

    return NGX_ERROR;
}


/* the master found: into s->master, counted if it moved, to the link */

static void
ngx_http_history_sentinel_use(ngx_http_history_sentinel_t *s,
    ngx_sockaddr_t *sa, socklen_t socklen)
{
    size_t                              len;
    ngx_http_history_sentinel_found_pt  found;

    if (s->known
        && ngx_cmp_sockaddr(&s->master_sockaddr.sockaddr, s->master.socklen,
                            &sa->sockaddr, socklen, 1)
           != NGX_OK)
    {
        s->stats->failovers++;
    }

    s->known = 1;

    ngx_memcpy(&s->master_sockaddr, sa, socklen);
    s->master.socklen = socklen;
    s->master.name.len = ngx_sock_ntop(&s->master_sockaddr.sockaddr,
                                       socklen, s->master_text,
                                       NGX_SOCKADDR_STRLEN, 1);

    len = ngx_min(s->master.name.len, NGX_SOCKADDR_STRLEN - 1);
    ngx_memcpy(s->stats->master, s->master_text, len);
    s->stats->master[len] = '\0';

    found = s->found;
    s->found = NULL;

    if (found) {
        found(s->found_data, &s->master);
    }
}


/*
 * A Sentinel failed: a question goes on to the next Sentinel, and after
 * the last one the link hears that none answered; the subscription
 * moves to the next Sentinel after a short delay.
 */

static void
ngx_http_history_sentinel_failed(ngx_http_history_sentinel_conn_t *sc)
{
    ngx_http_history_sentinel_t         *s;
    ngx_http_history_sentinel_found_pt   found;

    s = sc->sentinel;

    ngx_http_history_sentinel_close(sc);
    ngx_http_history_sentinel_quiet(s);

    if (sc->subscriber) {
        if (ngx_exiting || ngx_terminate || ngx_quit) {
            return;
        }

        sc->lost = 1;

        sc->index = (sc->index + 1) % s->naddrs;

        sc->backoff = sc->backoff
                      ? ngx_min(sc->backoff * 2,
                                NGX_HTTP_HISTORY_SENTINEL_BACKOFF_MAX)
                      : NGX_HTTP_HISTORY_SENTINEL_BACKOFF_MIN;

        ngx_add_timer(&sc->timer, sc->backoff);
        return;
    }

    if (++s->tried < s->naddrs && !(ngx_exiting || ngx_terminate || ngx_quit))
    {
        ngx_http_history_sentinel_connect(sc);
        return;
    }

    /* none answered: the next round starts with the next one */

    s->current = (s->current + 1) % s->naddrs;
    s->tried = 0;

    found = s->found;
    s->found = NULL;

    if (found) {
        found(s->found_data, NULL);
    }
}


static void
ngx_http_history_sentinel_close(ngx_http_history_sentinel_conn_t *sc)
{
    if (sc->peer.connection) {
        ngx_close_connection(sc->peer.connection);
        sc->peer.connection = NULL;
    }

    if (sc->reader) {
        redisReaderFree(sc->reader);
        sc->reader = NULL;
        ngx_http_history_reader_release(&sc->replies);
    }

    sc->connecting = 0;
    sc->subscribed = 0;
    sc->pinged = 0;
}


/* the subscription's retry and ping */

static void
ngx_http_history_sentinel_timer_handler(ngx_event_t *ev)
{
    ssize_t                            n;
    ngx_connection_t                  *c;
    ngx_http_history_sentinel_t       *s;
    ngx_http_history_sentinel_conn_t  *sc;

    sc = ev->data;
    s = sc->sentinel;
    c = sc->peer.connection;

    ngx_http_history_sentinel_log_for(sc);

    if (c == NULL) {
        ngx_http_history_sentinel_connect(sc);
        return;
    }

    if (sc->pinged) {
        ngx_log_error(NGX_LOG_ERR, &s->log, NGX_ETIMEDOUT,
                      "sentinel did not answer PING");
        ngx_http_history_sentinel_failed(sc);
        return;
    }

    n = c->send(c, s->ping.start, s->ping.end - s->ping.start);

    if (n != s->ping.end - s->ping.start) {
        /* a few bytes that do not fit an empty socket buffer: dead */
        ngx_http_history_sentinel_failed(sc);
        return;
    }

    sc->pinged = 1;

    ngx_add_timer(&sc->timer, NGX_HTTP_HISTORY_SENTINEL_PING);
}


/*
 * After a failure, which was logged unless the log was quiet: quiet for
 * a while (until a Sentinel answers, or the interval has passed)
 */

static void
ngx_http_history_sentinel_quiet(ngx_http_history_sentinel_t *s)
{
    if (s->log.log_level != NGX_LOG_EMERG) {
        s->logged = ngx_time();
        s->log.log_level = NGX_LOG_EMERG;
    }
}


/* what the log says: which Sentinel, doing what */

static void
ngx_http_history_sentinel_log_for(ngx_http_history_sentinel_conn_t *sc)
{
    ngx_http_history_sentinel_t  *s;

    s = sc->sentinel;

    s->peer = sc->peer.name;
    s->log.action = sc->subscriber ? "subscribed to a Sentinel"
                                   : "asking a Sentinel for the master";
}


/* a bulk or status string equal to a word */

static ngx_uint_t
ngx_http_history_sentinel_is(redisReply *reply, char *text)
{
    size_t  len;

    if (reply->type != REDIS_REPLY_STRING
        && reply->type != REDIS_REPLY_STATUS)
    {
        return 0;
    }

    len = ngx_strlen(text);

    return (size_t) reply->len == len
           && ngx_strncasecmp((u_char *) reply->str, (u_char *) text, len)
              == 0;
}


static u_char *
ngx_http_history_sentinel_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                       *p;
    ngx_http_history_sentinel_t  *s;

    s = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    if (s->peer) {
        return ngx_snprintf(p, len, ", sentinel: %V, master: \"%V\"",
                            s->peer, &s->conf->sentinel_name);
    }

    return ngx_snprintf(p, len, ", master: \"%V\"",
                        &s->conf->sentinel_name);
}
