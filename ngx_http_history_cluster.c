
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Redis Cluster: which master holds each of the 16,384 hash slots, as
 * CLUSTER SHARDS (Redis 7) or else CLUSTER SLOTS tells; the map kept fresh
 * on a timer, after MOVED and after a node's connection fails, one refresh
 * at a time and at most one a second per worker, spread across workers;
 * and what MOVED, ASK, TRYAGAIN, CLUSTERDOWN, EXECABORT and CROSSSLOT mean
 * for the unit they answer; nodes named by hostname, resolved with
 * nginx's resolver and kept for its TTL.  Calls the link's node table only
 * (ngx_http_history_cluster.h) and nginx's resolver; never sees a request
 * or a unit.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_history_cluster.h"


#define NGX_HTTP_HISTORY_REFRESH_MIN     1000
#define NGX_HTTP_HISTORY_REFRESH_SPREAD  250
#define NGX_HTTP_HISTORY_REFRESH_EVERY   10000
#define NGX_HTTP_HISTORY_CLUSTER_LOG     60

/* hostnames a worker keeps, the longest, and when to ask after a failure */
#define NGX_HTTP_HISTORY_NAMES           64
#define NGX_HTTP_HISTORY_NAME_LEN        253
#define NGX_HTTP_HISTORY_NAME_RETRY      10


typedef struct {
    ngx_uint_t                     start;
    ngx_uint_t                     end;
    ngx_http_history_node_t       *node;
} ngx_http_history_range_t;


/*
 * A hostname a map or a redirect named, and the address nginx's resolver
 * gave for it: one address (port 0), kept until the resolver's TTL (or
 * its valid=) has passed, and used while it is asked again.
 */

typedef struct {
    ngx_http_history_cluster_t    *cluster;
    ngx_resolver_ctx_t            *ctx;        /* a resolution in flight */
    ngx_sockaddr_t                 sockaddr;
    socklen_t                      socklen;    /* 0: no address yet */
    time_t                         valid;      /* asked again after this */
    time_t                         used;       /* last named */
    time_t                         logged;
    unsigned                       starting:1; /* in ngx_resolve_name() */
    size_t                         len;
    u_char                         name[NGX_HTTP_HISTORY_NAME_LEN + 1];
} ngx_http_history_name_t;


struct ngx_http_history_cluster_s {
    ngx_http_history_link_t       *link;
    ngx_log_t                     *log;

    /* the nodes named by hostname */
    ngx_resolver_t                *resolver;   /* NULL: none configured */
    ngx_msec_t                     resolver_timeout;
    time_t                         names_logged;
    ngx_uint_t                     nnames;
    ngx_http_history_name_t        names[NGX_HTTP_HISTORY_NAMES];

    ngx_event_t                    refresh;
    ngx_msec_t                     asked;      /* when a map was last asked */
    ngx_http_history_node_t       *asking;     /* ... of that node */
    ngx_http_history_node_t       *fallback;   /* for slots with no owner */
    ngx_uint_t                     next;       /* the node to ask next */
    ngx_uint_t                     tries;      /* nodes asked, no map yet */

    time_t                         hostname_logged;
    time_t                         port_logged;
    time_t                         error_logged;

    unsigned                       waiting:1;  /* a refresh in flight */
    unsigned                       slots:1;    /* CLUSTER SLOTS */
    unsigned                       tls:1;      /* the nodes' TLS ports */

    ngx_http_history_node_t       *map[NGX_HTTP_HISTORY_SLOTS];
};


static void ngx_http_history_cluster_refresh_handler(ngx_event_t *ev);
static void ngx_http_history_cluster_reply(void *data, redisReply *reply);
static void ngx_http_history_cluster_retry(ngx_http_history_cluster_t *cl,
    ngx_uint_t now);
static ngx_int_t ngx_http_history_cluster_shards(
    ngx_http_history_cluster_t *cl, redisReply *reply, ngx_array_t *ranges);
static ngx_int_t ngx_http_history_cluster_slots(
    ngx_http_history_cluster_t *cl, redisReply *reply, ngx_array_t *ranges);
static ngx_int_t ngx_http_history_cluster_bounded(ngx_array_t *ranges);
static void ngx_http_history_cluster_apply(ngx_http_history_cluster_t *cl,
    ngx_array_t *ranges);
static void ngx_http_history_cluster_no_port(ngx_http_history_cluster_t *cl,
    redisReply *node);
static redisReply *ngx_http_history_cluster_field(redisReply *map,
    char *name);
static ngx_uint_t ngx_http_history_cluster_is(redisReply *reply, char *s);
static ngx_http_history_node_t *ngx_http_history_cluster_endpoint(
    ngx_http_history_cluster_t *cl, redisReply *endpoint, redisReply *ip,
    ngx_int_t port);
static ngx_http_history_node_t *ngx_http_history_cluster_addr(
    ngx_http_history_cluster_t *cl, u_char *host, size_t len,
    ngx_int_t port, ngx_http_history_node_t *asked);
static ngx_uint_t ngx_http_history_cluster_address(u_char *host,
    size_t len);
static ngx_uint_t ngx_http_history_cluster_hostname(u_char *host,
    size_t len);
static ngx_int_t ngx_http_history_cluster_resolve(
    ngx_http_history_cluster_t *cl, u_char *host, size_t len,
    ngx_sockaddr_t *sa, socklen_t *socklen);
static ngx_http_history_name_t *ngx_http_history_cluster_name(
    ngx_http_history_cluster_t *cl, u_char *host, size_t len);
static void ngx_http_history_cluster_ask(ngx_http_history_cluster_t *cl,
    ngx_http_history_name_t *name);
static void ngx_http_history_cluster_resolved(ngx_resolver_ctx_t *ctx);
static ngx_int_t ngx_http_history_cluster_sockaddr_cmp(struct sockaddr *a,
    struct sockaddr *b);


ngx_http_history_cluster_t *
ngx_http_history_cluster_create(ngx_http_history_link_t *link,
    ngx_http_history_redis_conf_t *rcf, ngx_log_t *log)
{
    ngx_uint_t                   i;
    ngx_addr_t                  *addr;
    ngx_http_history_node_t     *node;
    ngx_http_history_cluster_t  *cl;

    cl = ngx_calloc(sizeof(ngx_http_history_cluster_t), log);
    if (cl == NULL) {
        return NULL;
    }

    cl->link = link;
    cl->log = log;
    cl->tls = (rcf->ssl != NULL);

    /* the seeds: whichever answers first gives the map */

    addr = rcf->seeds.elts;

    for (i = 0; i < rcf->seeds.nelts; i++) {
        node = ngx_http_history_link_node_add(link, addr[i].sockaddr,
                                              addr[i].socklen, NULL);
        if (node == NULL) {
            ngx_free(cl);
            return NULL;
        }

        if (cl->fallback == NULL) {
            cl->fallback = node;
        }
    }

    cl->refresh.handler = ngx_http_history_cluster_refresh_handler;
    cl->refresh.data = cl;
    cl->refresh.log = log;
    cl->refresh.cancelable = 1;

    cl->resolver = rcf->resolver;
    cl->resolver_timeout = rcf->resolver_timeout;

    cl->asked = ngx_current_msec - NGX_HTTP_HISTORY_REFRESH_MIN;

    /* a timer, not a posted event: nothing else may wake the worker */
    ngx_add_timer(&cl->refresh, 1);

    return cl;
}


void
ngx_http_history_cluster_destroy(ngx_http_history_cluster_t *cl)
{
    ngx_uint_t  i;

    /* the resolutions in flight: their handlers are not called */

    for (i = 0; i < cl->nnames; i++) {
        if (cl->names[i].ctx) {
            ngx_resolve_name_done(cl->names[i].ctx);
            cl->names[i].ctx = NULL;
        }
    }

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }

    if (cl->refresh.posted) {
        ngx_delete_posted_event(&cl->refresh);
    }

    ngx_free(cl);
}


/* the master of a slot; before the map has it, a node that will redirect */

ngx_http_history_node_t *
ngx_http_history_cluster_node(ngx_http_history_cluster_t *cl,
    ngx_uint_t slot)
{
    ngx_http_history_node_t  *node;

    node = cl->map[slot];

    return node ? node : cl->fallback;
}


/*
 * A refresh soon: at most one a second, one at a time, a little later in
 * some workers than in others so that a failover does not bring every
 * worker's CLUSTER SHARDS to the same node at once.
 */

void
ngx_http_history_cluster_refresh(ngx_http_history_cluster_t *cl)
{
    ngx_msec_t      delay, elapsed;
    ngx_msec_int_t  left;

    if (cl->waiting || cl->refresh.posted) {
        return;
    }

    elapsed = ngx_current_msec - cl->asked;

    delay = elapsed < NGX_HTTP_HISTORY_REFRESH_MIN
            ? NGX_HTTP_HISTORY_REFRESH_MIN - elapsed : 0;

    delay += ngx_random() % NGX_HTTP_HISTORY_REFRESH_SPREAD;

    if (cl->refresh.timer_set) {
        left = (ngx_msec_int_t) (cl->refresh.timer.key - ngx_current_msec);

        if (left <= (ngx_msec_int_t) delay) {
            return;
        }

        ngx_del_timer(&cl->refresh);
    }

    ngx_add_timer(&cl->refresh, delay);
}


static void
ngx_http_history_cluster_refresh_handler(ngx_event_t *ev)
{
    ngx_uint_t                   i, k, n;
    ngx_http_history_node_t    **nodes, *node;
    ngx_http_history_batch_t     b;
    ngx_http_history_cluster_t  *cl;

    cl = ev->data;

    if (cl->waiting) {
        return;
    }

    nodes = ngx_http_history_link_nodes(cl->link, &n);

    if (n == 0) {
        return;
    }

    /* a node already connected answers at once; else the next in turn */

    node = NULL;
    k = cl->next % n;

    for (i = 0; i < n; i++) {
        if (ngx_http_history_node_connected_now(nodes[(cl->next + i) % n])) {
            k = (cl->next + i) % n;
            node = nodes[k];
            break;
        }
    }

    if (node == NULL) {
        node = nodes[k];
    }

    cl->next = k + 1;

    ngx_http_history_batch_init(&b, NULL);
    ngx_http_history_batch_command(&b, "CLUSTER");

    if (cl->slots) {
        ngx_http_history_batch_arg(&b, (u_char *) "SLOTS", 5);

    } else {
        ngx_http_history_batch_arg(&b, (u_char *) "SHARDS", 6);
    }

    cl->asked = ngx_current_msec;
    cl->asking = node;
    cl->tries++;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, ngx_http_history_node_log(node), 0,
                   "history: cluster map asked, try %ui of %ui",
                   cl->tries, n);

    if (ngx_http_history_node_query(node, &b,
                                    ngx_http_history_cluster_reply, cl)
        != NGX_OK)
    {
        ngx_http_history_cluster_retry(cl, 0);
        return;
    }

    cl->waiting = 1;
}


static void
ngx_http_history_cluster_reply(void *data, redisReply *reply)
{
    ngx_http_history_cluster_t *cl = data;

    ngx_int_t                       rc;
    ngx_uint_t                      n;
    ngx_pool_t                     *pool;
    ngx_array_t                     ranges;
    ngx_http_history_node_stats_t  *ns;

    cl->waiting = 0;

    if (reply == NULL) {
        /* that node is away: the next one at once, until all were asked */
        (void) ngx_http_history_link_nodes(cl->link, &n);
        ngx_http_history_cluster_retry(cl, cl->tries < n);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        if (!cl->slots
            && ngx_strlcasestrn((u_char *) reply->str,
                                (u_char *) reply->str + reply->len,
                                (u_char *) "unknown subcommand",
                                sizeof("unknown subcommand") - 2)
               != NULL)
        {
            /* before Redis 7: CLUSTER SLOTS; not for -LOADING and such */
            cl->slots = 1;
            cl->tries--;
            ngx_http_history_cluster_retry(cl, 1);
            return;
        }

        cl->slots = 0;

        if (ngx_time() - cl->error_logged >= NGX_HTTP_HISTORY_CLUSTER_LOG) {
            cl->error_logged = ngx_time();
            ngx_log_error(NGX_LOG_ERR,
                          ngx_http_history_node_log(cl->asking), 0,
                          "redis gave no cluster map: \"%*s\"",
                          (size_t) reply->len, reply->str);
        }

        ngx_http_history_cluster_retry(cl, 0);
        return;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, cl->log);
    if (pool == NULL) {
        ngx_http_history_cluster_retry(cl, 0);
        return;
    }

    if (ngx_array_init(&ranges, pool, 16, sizeof(ngx_http_history_range_t))
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        ngx_http_history_cluster_retry(cl, 0);
        return;
    }

    if (cl->slots) {
        rc = ngx_http_history_cluster_slots(cl, reply, &ranges);

    } else {
        rc = ngx_http_history_cluster_shards(cl, reply, &ranges);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_history_cluster_bounded(&ranges);
    }

    if (rc != NGX_OK) {
        if (ngx_time() - cl->error_logged >= NGX_HTTP_HISTORY_CLUSTER_LOG) {
            cl->error_logged = ngx_time();
            ngx_log_error(NGX_LOG_ERR,
                          ngx_http_history_node_log(cl->asking), 0,
                          "redis sent an invalid cluster map (CLUSTER %s)",
                          cl->slots ? "SLOTS" : "SHARDS");
        }

        ngx_destroy_pool(pool);
        ngx_http_history_cluster_retry(cl, 0);
        return;
    }

    ngx_http_history_cluster_apply(cl, &ranges);

    ngx_destroy_pool(pool);

    ns = ngx_http_history_node_stats(cl->asking);
    ns->refreshes++;

    cl->fallback = cl->asking;
    cl->tries = 0;

    /* and again in a while, in case nothing else asks for it */

    if (!cl->refresh.timer_set && !cl->refresh.posted) {
        ngx_add_timer(&cl->refresh, NGX_HTTP_HISTORY_REFRESH_EVERY
                                    + ngx_random() % 1000);
    }
}


/* now: another node right away; else the next refresh a second on */

static void
ngx_http_history_cluster_retry(ngx_http_history_cluster_t *cl,
    ngx_uint_t now)
{
    if (now) {
        if (cl->refresh.timer_set) {
            ngx_del_timer(&cl->refresh);
        }

        if (!cl->refresh.posted) {
            ngx_post_event(&cl->refresh, &ngx_posted_events);
        }

        return;
    }

    cl->tries = 0;
    ngx_http_history_cluster_refresh(cl);
}


/*
 * CLUSTER SHARDS: an array of shards, each a flat map with "slots" (pairs
 * of integers) and "nodes" (flat maps with "ip", "endpoint", "port",
 * "tls-port", "role", "health").  A shard's master that is not "online"
 * gives no owner: its slots stay where the map had them until one is
 * promoted.  The port is that of the link's kind, whichever connection
 * asked: "tls-port" over TLS, "port" over TCP; Redis gives a node only
 * the ports it has (with --port 0, no "port"), and "tls-port" only with
 * tls-cluster yes.  A master without one is no owner either, and that is
 * logged.
 */

static ngx_int_t
ngx_http_history_cluster_shards(ngx_http_history_cluster_t *cl,
    redisReply *reply, ngx_array_t *ranges)
{
    size_t                     i, j, k;
    redisReply                *shard, *slots, *nodes, *n, *v, *ip, *port;
    ngx_http_history_node_t   *node;
    ngx_http_history_range_t  *range;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        shard = reply->element[i];

        if (shard->type != REDIS_REPLY_ARRAY) {
            return NGX_ERROR;
        }

        slots = ngx_http_history_cluster_field(shard, "slots");
        nodes = ngx_http_history_cluster_field(shard, "nodes");

        if (slots == NULL || nodes == NULL
            || slots->type != REDIS_REPLY_ARRAY
            || nodes->type != REDIS_REPLY_ARRAY
            || slots->elements % 2)
        {
            return NGX_ERROR;
        }

        node = NULL;

        for (j = 0; j < nodes->elements; j++) {
            n = nodes->element[j];

            if (n->type != REDIS_REPLY_ARRAY) {
                return NGX_ERROR;
            }

            v = ngx_http_history_cluster_field(n, "role");

            if (v == NULL || !ngx_http_history_cluster_is(v, "master")) {
                continue;
            }

            v = ngx_http_history_cluster_field(n, "health");

            if (v && !ngx_http_history_cluster_is(v, "online")) {
                continue;
            }

            port = ngx_http_history_cluster_field(n, cl->tls ? "tls-port"
                                                             : "port");

            if (port == NULL || port->type != REDIS_REPLY_INTEGER) {
                ngx_http_history_cluster_no_port(cl, n);
                continue;
            }

            ip = ngx_http_history_cluster_field(n, "ip");
            v = ngx_http_history_cluster_field(n, "endpoint");

            node = ngx_http_history_cluster_endpoint(cl, v, ip,
                                                 (ngx_int_t) port->integer);
            break;
        }

        if (node == NULL) {
            continue;
        }

        for (k = 0; k < slots->elements; k += 2) {
            if (slots->element[k]->type != REDIS_REPLY_INTEGER
                || slots->element[k + 1]->type != REDIS_REPLY_INTEGER
                || slots->element[k]->integer < 0
                || slots->element[k]->integer
                   > slots->element[k + 1]->integer
                || slots->element[k + 1]->integer
                   >= NGX_HTTP_HISTORY_SLOTS)
            {
                return NGX_ERROR;
            }

            range = ngx_array_push(ranges);
            if (range == NULL) {
                return NGX_ERROR;
            }

            range->start = (ngx_uint_t) slots->element[k]->integer;
            range->end = (ngx_uint_t) slots->element[k + 1]->integer;
            range->node = node;
        }
    }

    return NGX_OK;
}


/*
 * CLUSTER SLOTS: an array of [start, end, [ip, port, id, ...], replicas];
 * the first node is the master, its port that of the asking connection's
 * kind (TLS or not), as in MOVED and ASK.
 */

static ngx_int_t
ngx_http_history_cluster_slots(ngx_http_history_cluster_t *cl,
    redisReply *reply, ngx_array_t *ranges)
{
    size_t                     i;
    redisReply                *r, *m, *ip;
    ngx_http_history_node_t   *node;
    ngx_http_history_range_t  *range;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        r = reply->element[i];

        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3
            || r->element[0]->type != REDIS_REPLY_INTEGER
            || r->element[1]->type != REDIS_REPLY_INTEGER
            || r->element[0]->integer < 0
            || r->element[0]->integer > r->element[1]->integer
            || r->element[1]->integer >= NGX_HTTP_HISTORY_SLOTS)
        {
            return NGX_ERROR;
        }

        m = r->element[2];

        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2
            || m->element[0]->type != REDIS_REPLY_STRING
            || m->element[1]->type != REDIS_REPLY_INTEGER)
        {
            return NGX_ERROR;
        }

        /*
         * since Redis 7 the first element is the endpoint, and a flat map
         * after the id has the "ip" of a node named by hostname
         */

        ip = NULL;

        if (m->elements > 3 && m->element[3]->type == REDIS_REPLY_ARRAY) {
            ip = ngx_http_history_cluster_field(m->element[3], "ip");
        }

        node = ngx_http_history_cluster_endpoint(cl, m->element[0], ip,
                                         (ngx_int_t) m->element[1]->integer);
        if (node == NULL) {
            continue;
        }

        range = ngx_array_push(ranges);
        if (range == NULL) {
            return NGX_ERROR;
        }

        range->start = (ngx_uint_t) r->element[0]->integer;
        range->end = (ngx_uint_t) r->element[1]->integer;
        range->node = node;
    }

    return NGX_OK;
}


/*
 * A map names each slot once: one whose ranges add up to more slots than
 * there are (repeated, overlapping) is refused, so that applying it costs
 * at most a pass over the slots
 */

static ngx_int_t
ngx_http_history_cluster_bounded(ngx_array_t *ranges)
{
    ngx_uint_t                 i, total;
    ngx_http_history_range_t  *range;

    range = ranges->elts;
    total = 0;

    for (i = 0; i < ranges->nelts; i++) {
        total += range[i].end - range[i].start + 1;

        if (total > NGX_HTTP_HISTORY_SLOTS) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The new map: the slots it names get their owner; slots it has no owner
 * for keep theirs.  Then each node learns how many slots it has (a node
 * with none is let go once idle) and waiting units follow their slots.
 */

static void
ngx_http_history_cluster_apply(ngx_http_history_cluster_t *cl,
    ngx_array_t *ranges)
{
    ngx_uint_t                 i, s, n, count;
    ngx_http_history_node_t  **nodes;
    ngx_http_history_range_t  *range;

    range = ranges->elts;

    for (i = 0; i < ranges->nelts; i++) {
        for (s = range[i].start; s <= range[i].end; s++) {
            cl->map[s] = range[i].node;
        }
    }

    nodes = ngx_http_history_link_nodes(cl->link, &n);

    for (i = 0; i < n; i++) {
        count = 0;

        for (s = 0; s < NGX_HTTP_HISTORY_SLOTS; s++) {
            if (cl->map[s] == nodes[i]) {
                count++;
            }
        }

        ngx_http_history_node_slots(nodes[i], count);
    }

    ngx_http_history_link_reroute(cl->link);
}


/*
 * What an error reply means in a cluster.  MOVED gives its slot to the
 * node it names at once and asks for a refresh; ASK names a node for this
 * unit only.  *target is the node named, or NULL if it cannot be used (a
 * hostname not resolved yet, or too many nodes).
 */

ngx_http_history_redirect_e
ngx_http_history_cluster_redirect(ngx_http_history_cluster_t *cl,
    ngx_http_history_node_t *node, redisReply *reply,
    ngx_http_history_node_t **target)
{
    u_char                       *p, *last, *sp, *colon;
    ngx_int_t                     slot, port;
    ngx_http_history_node_t      *to, *from;
    ngx_http_history_redirect_e   type;

    *target = NULL;

    p = (u_char *) reply->str;
    last = p + reply->len;

#define ngx_http_history_prefix(s)                                           \
    ((size_t) (last - p) >= sizeof(s) - 1                                    \
     && ngx_strncmp(p, s, sizeof(s) - 1) == 0)

    if (ngx_http_history_prefix("MOVED ")) {
        type = NGX_HTTP_HISTORY_REPLY_MOVED;
        p += sizeof("MOVED ") - 1;

    } else if (ngx_http_history_prefix("ASK ")) {
        type = NGX_HTTP_HISTORY_REPLY_ASK;
        p += sizeof("ASK ") - 1;

    } else if (ngx_http_history_prefix("TRYAGAIN")) {
        return NGX_HTTP_HISTORY_REPLY_TRYAGAIN;

    } else if (ngx_http_history_prefix("CLUSTERDOWN")) {
        ngx_http_history_cluster_refresh(cl);
        return NGX_HTTP_HISTORY_REPLY_CLUSTERDOWN;

    } else if (ngx_http_history_prefix("EXECABORT")) {
        return NGX_HTTP_HISTORY_REPLY_EXECABORT;

    } else if (ngx_http_history_prefix("CROSSSLOT")) {
        return NGX_HTTP_HISTORY_REPLY_CROSSSLOT;

    } else {
        return NGX_HTTP_HISTORY_REPLY_ERROR;
    }

#undef ngx_http_history_prefix

    /* "<slot> <host>:<port>"; an empty host is the node that answered */

    sp = ngx_strlchr(p, last, ' ');

    if (sp == NULL) {
        return NGX_HTTP_HISTORY_REPLY_ERROR;
    }

    slot = ngx_atoi(p, sp - p);

    if (slot == NGX_ERROR || slot >= NGX_HTTP_HISTORY_SLOTS) {
        return NGX_HTTP_HISTORY_REPLY_ERROR;
    }

    p = sp + 1;

    for (colon = last - 1; colon >= p && *colon != ':'; colon--) {
        /* void */
    }

    if (colon < p) {
        return NGX_HTTP_HISTORY_REPLY_ERROR;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);

    if (port == NGX_ERROR || port < 1 || port > 65535) {
        return NGX_HTTP_HISTORY_REPLY_ERROR;
    }

    to = ngx_http_history_cluster_addr(cl, p, colon - p, port, node);

    *target = to;

    if (type == NGX_HTTP_HISTORY_REPLY_MOVED) {
        from = cl->map[slot];

        if (to && from != to) {
            cl->map[slot] = to;

            if (from) {
                ngx_http_history_node_slots(from,
                                  ngx_http_history_node_nslots(from) - 1);
            }

            ngx_http_history_node_slots(to,
                                  ngx_http_history_node_nslots(to) + 1);
        }

        ngx_http_history_cluster_refresh(cl);
    }

    return type;
}


/*
 * A master of CLUSTER SHARDS without a port of the link's kind: a TLS-only
 * node asked for "port", or a node of a cluster without tls-cluster yes
 * (or without a TLS port) asked for "tls-port".  Its slots stay where the
 * map had them; logged once a minute.
 */

static void
ngx_http_history_cluster_no_port(ngx_http_history_cluster_t *cl,
    redisReply *node)
{
    redisReply  *ip;

    if (ngx_time() - cl->port_logged < NGX_HTTP_HISTORY_CLUSTER_LOG) {
        return;
    }

    cl->port_logged = ngx_time();

    ip = ngx_http_history_cluster_field(node, "ip");

    if (ip == NULL || ip->type != REDIS_REPLY_STRING) {
        ip = NULL;
    }

    ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                  "redis cluster master \"%*s\" skipped: CLUSTER SHARDS "
                  "gives it no \"%s\" (%s)",
                  ip ? (size_t) ip->len : (size_t) 1, ip ? ip->str : "?",
                  cl->tls ? "tls-port" : "port",
                  cl->tls ? "TLS to a cluster needs tls-cluster yes on "
                            "its nodes"
                          : "a TLS-only cluster needs \"tls\" in "
                            "\"history_redis\"");
}


/* a field of a RESP2 flat map: [name, value, name, value, ...] */

static redisReply *
ngx_http_history_cluster_field(redisReply *map, char *name)
{
    size_t  i;

    for (i = 0; i + 1 < map->elements; i += 2) {
        if (ngx_http_history_cluster_is(map->element[i], name)) {
            return map->element[i + 1];
        }
    }

    return NULL;
}


static ngx_uint_t
ngx_http_history_cluster_is(redisReply *reply, char *s)
{
    size_t  len;

    len = ngx_strlen(s);

    return (reply->type == REDIS_REPLY_STRING
            || reply->type == REDIS_REPLY_STATUS)
           && reply->len == len
           && ngx_strncmp(reply->str, s, len) == 0;
}


/*
 * The node a map names: by the endpoint Redis tells clients to use
 * (cluster-preferred-endpoint-type), by its "ip" when that endpoint is a
 * hostname and there is no resolver (logged once a minute), or when the
 * endpoint is unknown ("?").
 */

static ngx_http_history_node_t *
ngx_http_history_cluster_endpoint(ngx_http_history_cluster_t *cl,
    redisReply *endpoint, redisReply *ip, ngx_int_t port)
{
    redisReply  *use;

    if (endpoint
        && (endpoint->type != REDIS_REPLY_STRING
            || (endpoint->len == 1 && endpoint->str[0] == '?')))
    {
        endpoint = NULL;
    }

    if (ip
        && (ip->type != REDIS_REPLY_STRING
            || (ip->len == 1 && ip->str[0] == '?')))
    {
        ip = NULL;
    }

    use = endpoint;

    if (endpoint == NULL || endpoint->len == 0) {
        use = ip ? ip : endpoint;

    } else if (cl->resolver == NULL
               && !ngx_http_history_cluster_address((u_char *) endpoint->str,
                                                    endpoint->len)
               && ip
               && ngx_http_history_cluster_address((u_char *) ip->str,
                                                   ip->len))
    {
        use = ip;

        if (ngx_time() - cl->hostname_logged >= NGX_HTTP_HISTORY_CLUSTER_LOG)
        {
            cl->hostname_logged = ngx_time();

            ngx_log_error(NGX_LOG_WARN, cl->log, 0,
                          "redis cluster node \"%*s:%i\" reached by its "
                          "\"ip\": its endpoint is a hostname, which needs "
                          "\"resolver\" in the http block",
                          (size_t) ip->len, ip->str, port);
        }
    }

    if (use == NULL) {
        return NULL;
    }

    return ngx_http_history_cluster_addr(cl, (u_char *) use->str, use->len,
                                         port, cl->asking);
}


/*
 * The node at host:port, made if new.  The host is an IP address, an
 * empty one means the node that answered, and a hostname is resolved
 * (ngx_http_history_cluster_resolve()): until its address is known, or
 * without a resolver, it gives no node, and units and slots wait for a
 * map that has one.
 */

static ngx_http_history_node_t *
ngx_http_history_cluster_addr(ngx_http_history_cluster_t *cl, u_char *host,
    size_t len, ngx_int_t port, ngx_http_history_node_t *asked)
{
    socklen_t         socklen;
    in_addr_t         inaddr;
    ngx_str_t         name;
    ngx_sockaddr_t    sa;
    struct sockaddr  *asked_sa;

    if (port < 1 || port > 65535) {
        return NULL;
    }

    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    if (len == 0) {
        if (asked == NULL) {
            return NULL;
        }

        asked_sa = ngx_http_history_node_sockaddr(asked, &socklen);

        if (socklen > sizeof(ngx_sockaddr_t)) {
            return NULL;
        }

        ngx_memcpy(&sa, asked_sa, socklen);
        ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);

        return ngx_http_history_link_node_add(cl->link, &sa.sockaddr,
                                              socklen, NULL);
    }

    inaddr = ngx_inet_addr(host, len);

    if (inaddr != INADDR_NONE) {
        sa.sockaddr_in.sin_family = AF_INET;
        sa.sockaddr_in.sin_addr.s_addr = inaddr;
        sa.sockaddr_in.sin_port = htons((in_port_t) port);

        socklen = sizeof(struct sockaddr_in);

        return ngx_http_history_link_node_add(cl->link, &sa.sockaddr,
                                              socklen, NULL);
    }

#if (NGX_HAVE_INET6)

    if (ngx_inet6_addr(host, len, sa.sockaddr_in6.sin6_addr.s6_addr)
        == NGX_OK)
    {
        sa.sockaddr_in6.sin6_family = AF_INET6;
        sa.sockaddr_in6.sin6_port = htons((in_port_t) port);

        socklen = sizeof(struct sockaddr_in6);

        return ngx_http_history_link_node_add(cl->link, &sa.sockaddr,
                                              socklen, NULL);
    }

#endif

    /* a hostname: never anything but a DNS name goes to the log */

    if (!ngx_http_history_cluster_hostname(host, len)) {

        if (ngx_time() - cl->names_logged >= NGX_HTTP_HISTORY_CLUSTER_LOG) {
            cl->names_logged = ngx_time();

            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "redis cluster node skipped: its host of %uz "
                          "bytes is neither an address nor a hostname",
                          len);
        }

        return NULL;
    }

    if (cl->resolver == NULL) {

        if (ngx_time() - cl->hostname_logged >= NGX_HTTP_HISTORY_CLUSTER_LOG)
        {
            cl->hostname_logged = ngx_time();

            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "redis cluster node \"%*s:%i\" skipped: hostnames "
                          "need \"resolver\" in the http block", len, host,
                          port);
        }

        return NULL;
    }

    if (ngx_http_history_cluster_resolve(cl, host, len, &sa, &socklen)
        != NGX_OK)
    {
        return NULL;
    }

    ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);

    /* over TLS, the certificate is checked for that name */

    name.data = host;
    name.len = len;

    return ngx_http_history_link_node_add(cl->link, &sa.sockaddr, socklen,
                                          &name);
}


/* whether host is an IP address */

static ngx_uint_t
ngx_http_history_cluster_address(u_char *host, size_t len)
{
#if (NGX_HAVE_INET6)
    u_char  buf[16];
#endif

    if (len == 0) {
        return 0;
    }

    if (ngx_inet_addr(host, len) != INADDR_NONE) {
        return 1;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(host, len, buf) == NGX_OK) {
        return 1;
    }
#endif

    return 0;
}


/*
 * Whether host, not an IP address, may be a DNS name: letters, digits,
 * "-", "_" and dots, beginning with a letter or digit, at most 253 bytes
 * (nginx's resolver checks the labels)
 */

static ngx_uint_t
ngx_http_history_cluster_hostname(u_char *host, size_t len)
{
    u_char  c;
    size_t  i;

    if (len == 0 || len > NGX_HTTP_HISTORY_NAME_LEN) {
        return 0;
    }

    if (ngx_inet_addr(host, len) != INADDR_NONE) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = host[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9'))
        {
            continue;
        }

        if (i > 0 && (c == '-' || c == '_' || c == '.')) {
            continue;
        }

        return 0;
    }

    return 1;
}


/*
 * The address of a hostname, as nginx's resolver gave it.  A name new, or
 * known for longer than the resolver said it is valid, is asked (again);
 * meanwhile what is known is used.  NGX_AGAIN: no address yet, NGX_DECLINED:
 * the table of names is full.
 */

static ngx_int_t
ngx_http_history_cluster_resolve(ngx_http_history_cluster_t *cl,
    u_char *host, size_t len, ngx_sockaddr_t *sa, socklen_t *socklen)
{
    ngx_http_history_name_t  *name;

    name = ngx_http_history_cluster_name(cl, host, len);

    if (name == NULL) {

        if (ngx_time() - cl->names_logged >= NGX_HTTP_HISTORY_CLUSTER_LOG) {
            cl->names_logged = ngx_time();

            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "redis cluster node \"%*s\" skipped: more than "
                          "%d hostnames", len, host, NGX_HTTP_HISTORY_NAMES);
        }

        return NGX_DECLINED;
    }

    name->used = ngx_time();

    if (name->ctx == NULL && name->valid < ngx_time()) {
        ngx_http_history_cluster_ask(cl, name);
    }

    if (name->socklen == 0) {
        return NGX_AGAIN;
    }

    ngx_memcpy(sa, &name->sockaddr, name->socklen);
    *socklen = name->socklen;

    return NGX_OK;
}


/*
 * The entry of a hostname, made if new: in a free one, or in the one
 * named longest ago, if not this second and not being resolved
 */

static ngx_http_history_name_t *
ngx_http_history_cluster_name(ngx_http_history_cluster_t *cl, u_char *host,
    size_t len)
{
    ngx_uint_t                i;
    ngx_http_history_name_t  *name, *old;

    old = NULL;

    for (i = 0; i < cl->nnames; i++) {
        name = &cl->names[i];

        if (name->len == len && ngx_strncasecmp(name->name, host, len) == 0) {
            return name;
        }

        if (name->ctx == NULL && (old == NULL || name->used < old->used)) {
            old = name;
        }
    }

    if (cl->nnames < NGX_HTTP_HISTORY_NAMES) {
        name = &cl->names[cl->nnames++];

    } else if (old && old->used != ngx_time()) {
        name = old;

    } else {
        return NULL;
    }

    ngx_memzero(name, sizeof(ngx_http_history_name_t));

    name->cluster = cl;
    name->len = len;
    ngx_strlow(name->name, host, len);

    return name;
}


/* a resolution of the name; its handler may run before this returns */

static void
ngx_http_history_cluster_ask(ngx_http_history_cluster_t *cl,
    ngx_http_history_name_t *name)
{
    ngx_resolver_ctx_t  *ctx;

    ctx = ngx_resolve_start(cl->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        name->valid = ngx_time() + NGX_HTTP_HISTORY_NAME_RETRY;
        return;
    }

    ctx->name.data = name->name;
    ctx->name.len = name->len;
    ctx->handler = ngx_http_history_cluster_resolved;
    ctx->data = name;
    ctx->timeout = cl->resolver_timeout;

    /* a worker that exits does not wait for it */
    ctx->cancelable = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, cl->log, 0,
                   "history: redis cluster node \"%s\" resolving",
                   name->name);

    name->ctx = ctx;
    name->starting = 1;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ctx is freed */
        name->ctx = NULL;
        name->valid = ngx_time() + NGX_HTTP_HISTORY_NAME_RETRY;
    }

    name->starting = 0;
}


/*
 * The resolver's answer: of its addresses (as many as it has), the same
 * one every time, the lowest, IPv4 first.  A new or changed address asks
 * for the map again, which then gives the name's slots their node.  A
 * failure keeps what was known, and is logged once a minute per name.
 */

static void
ngx_http_history_cluster_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_http_history_name_t *name = ctx->data;

    time_t                       now;
    ngx_uint_t                   i, changed;
    ngx_resolver_addr_t         *addr;
    ngx_http_history_cluster_t  *cl;

    cl = name->cluster;
    now = ngx_time();

    name->ctx = NULL;

    addr = NULL;

    if (ctx->state == NGX_OK) {
        for (i = 0; i < ctx->naddrs; i++) {
            if (ctx->addrs[i].socklen > (socklen_t) sizeof(ngx_sockaddr_t)) {
                continue;
            }

            if (addr == NULL
                || ngx_http_history_cluster_sockaddr_cmp(
                       ctx->addrs[i].sockaddr, addr->sockaddr) < 0)
            {
                addr = &ctx->addrs[i];
            }
        }
    }

    if (addr == NULL) {
        name->valid = (ctx->valid > now) ? ctx->valid
                                         : now + NGX_HTTP_HISTORY_NAME_RETRY;

        if (now - name->logged >= NGX_HTTP_HISTORY_CLUSTER_LOG) {
            name->logged = now;

            ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                          "redis cluster node \"%s\" could not be resolved "
                          "(%i: %s)%s", name->name, ctx->state,
                          ngx_resolver_strerror(ctx->state),
                          name->socklen ? ", its last address kept" : "");
        }

        ngx_resolve_name_done(ctx);
        return;
    }

    changed = (name->socklen == 0
               || ngx_cmp_sockaddr(&name->sockaddr.sockaddr, name->socklen,
                                   addr->sockaddr, addr->socklen, 0)
                  != NGX_OK);

    if (changed) {
        ngx_memcpy(&name->sockaddr, addr->sockaddr, addr->socklen);
        name->socklen = addr->socklen;
        ngx_inet_set_port(&name->sockaddr.sockaddr, 0);
    }

    name->valid = ctx->valid;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, cl->log, 0,
                   "history: redis cluster node \"%s\" resolved, %ui "
                   "addresses, valid %T s", name->name, ctx->naddrs,
                   ctx->valid - now);

    ngx_resolve_name_done(ctx);

    /* an answer at once (nginx's cache) is used by the map being read */

    if (changed && !name->starting) {
        ngx_http_history_cluster_refresh(cl);
    }
}


static ngx_int_t
ngx_http_history_cluster_sockaddr_cmp(struct sockaddr *a, struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) {
        return (a->sa_family == AF_INET) ? -1 : 1;
    }

#if (NGX_HAVE_INET6)
    if (a->sa_family == AF_INET6) {
        return ngx_memcmp(&((struct sockaddr_in6 *) a)->sin6_addr,
                          &((struct sockaddr_in6 *) b)->sin6_addr, 16);
    }
#endif

    return ngx_memcmp(&((struct sockaddr_in *) a)->sin_addr,
                      &((struct sockaddr_in *) b)->sin_addr, 4);
}
