
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Statistics: the shared memory zone where each worker's link keeps its
 * figures, a slot per running worker, and history_stats, which reports
 * them as JSON or for Prometheus.  Calls only ngx_http_history_send() of
 * the read side, to answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


/* the fields before it (pid, connected, queue) are not counters */
#define NGX_HTTP_HISTORY_STATS_COUNTERS  3

/* nor are those after it said to be gauges (tls) */
#define ngx_http_history_stats_gauge(j)                                       \
    ((j) < NGX_HTTP_HISTORY_STATS_COUNTERS                                    \
     || ngx_strcmp(ngx_http_history_stats_names[j].type, "gauge") == 0)


/* a field of ngx_http_history_link_stats_t, in its order, and its names */

typedef struct {
    char                           *json;
    char                           *prometheus;
    char                           *type;      /* Prometheus' metric type */
    char                           *help;
} ngx_http_history_stats_name_t;


static void ngx_http_history_stats_reap(ngx_http_history_stats_shm_t *shm);
static void ngx_http_history_stats_retire(ngx_http_history_stats_shm_t *shm,
    ngx_http_history_stats_slot_t *slot);
static ngx_uint_t ngx_http_history_stats_running(
    ngx_http_history_stats_shm_t *shm, ngx_http_history_stats_slot_t **run);
static u_char *ngx_http_history_stats_prometheus(u_char *p,
    ngx_http_history_main_conf_t *hmcf, ngx_http_history_stats_slot_t **run,
    ngx_uint_t n);
static u_char *ngx_http_history_stats_json(u_char *p,
    ngx_http_history_main_conf_t *hmcf, ngx_http_history_stats_slot_t **run,
    ngx_uint_t n, ngx_atomic_uint_t *total);
static u_char *ngx_http_history_stats_sentinel(u_char *p,
    ngx_http_history_main_conf_t *hmcf, ngx_http_history_stats_slot_t *slot,
    ngx_uint_t metric);
static u_char *ngx_http_history_stats_nodes(u_char *p,
    ngx_http_history_link_stats_t *link);
static u_char *ngx_http_history_stats_node_metrics(u_char *p,
    ngx_http_history_stats_slot_t **run, ngx_uint_t n);


/* the Sentinel's families: "name help", "name type" */

static char  *ngx_http_history_stats_sentinel_help[] = {
    "failovers_total Moves to a new master followed.",
    "replayed_total Units sent again to a new master (replay=).",
    "maybe_lost_total Units a replaced master acknowledged that could not "
        "be sent again.",
    "master_info The master in use and the Sentinel that named it."
};

static char  *ngx_http_history_stats_sentinel_type[] = {
    "failovers_total counter",
    "replayed_total counter",
    "maybe_lost_total counter",
    "master_info gauge"
};


static ngx_http_history_stats_name_t  ngx_http_history_stats_names[] = {
    { "pid", "pid", NULL, "" },
    { "connected", "redis_connected", "gauge",
      "Whether the worker's Redis link is connected." },
    { "queue", "queue_depth", "gauge",
      "Units of work waiting to be written or answered." },
    { "queued", "commands_queued_total", "counter",
      "Units of work accepted." },
    { "sent", "commands_sent_total", "counter",
      "Units of work written to Redis." },
    { "replied", "commands_replied_total", "counter",
      "Units of work Redis answered without an error." },
    { "errors", "commands_errors_total", "counter",
      "Units of work Redis answered with an error." },
    { "dropped", "commands_dropped_total", "counter",
      "Units of work dropped: the queue was full, or Redis was away "
      "while the worker exited." },
    { "failed", "commands_failed_total", "counter",
      "Units of work lost with a connection (maybe executed)." },
    { "connects", "connects_total", "counter", "Connection attempts." },
    { "reads", "reads_total", "counter", "Reads answered." },
    { "fallbacks", "fallbacks_total", "counter",
      "Reads answered with the fallback." },
    { "resent", "commands_resent_total", "counter",
      "Idempotent units of work sent again after a lost connection." },
    { "redirected", "commands_redirected_total", "counter",
      "Units of work a cluster redirected (MOVED, ASK, TRYAGAIN, "
      "CLUSTERDOWN)." },
    { "tls", "redis_tls", "gauge",
      "The worker's Redis connections up over TLS (one per connected "
      "node of a cluster)." },
    { "tls_handshakes", "tls_handshakes_total", "counter",
      "TLS handshakes with Redis done and verified." },
    { "tls_reused", "tls_sessions_reused_total", "counter",
      "TLS handshakes that resumed the session of a former connection." },
    { "tls_failures", "tls_failures_total", "counter",
      "TLS handshakes with Redis that failed, timed out, or whose "
      "certificate was refused." }
};


/* a cluster node's figures, in ngx_http_history_node_stats_t's order */

static ngx_http_history_stats_name_t  ngx_http_history_stats_node_names[] = {
    { "slots", "node_slots", "gauge",
      "Hash slots the worker's map gives the node." },
    { "connected", "node_connected", "gauge",
      "Whether the worker's connection to the node is up." },
    { "redirects", "node_redirects_total", "counter",
      "Units of work the node redirected (MOVED, ASK, TRYAGAIN, "
      "CLUSTERDOWN)." },
    { "refreshes", "node_refreshes_total", "counter",
      "Cluster slot maps the node answered." },
    { "tls", "node_tls", "gauge",
      "Whether the worker's connection to the node is up over TLS." },
    { "tls_handshakes", "node_tls_handshakes_total", "counter",
      "TLS handshakes with the node done and verified." },
    { "tls_reused", "node_tls_sessions_reused_total", "counter",
      "TLS handshakes with the node that resumed its former session." },
    { "tls_failures", "node_tls_failures_total", "counter",
      "TLS handshakes with the node that failed, timed out, or whose "
      "certificate was refused." }
};


#define NGX_HTTP_HISTORY_STATS_NODE_FIELDS                                    \
    (sizeof(ngx_http_history_stats_node_names)                                \
     / sizeof(ngx_http_history_stats_name_t))


ngx_int_t
ngx_http_history_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the old workers keep their slots until they exit */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    shm_zone->data = ngx_slab_calloc(shpool,
                                     sizeof(ngx_http_history_stats_shm_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A worker takes a free slot at its start: its own until it exits, its
 * figures starting from zero.  A slot is free when its pid is 0; the
 * compare-and-set makes it one worker's only.
 */

ngx_int_t
ngx_http_history_stats_attach(ngx_cycle_t *cycle,
    ngx_http_history_main_conf_t *hmcf)
{
    ngx_uint_t                      i;
    ngx_http_history_stats_shm_t   *shm;
    ngx_http_history_stats_slot_t  *slot;

    shm = hmcf->stats_zone->data;

    ngx_http_history_stats_reap(shm);

    for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
        slot = &shm->slots[i];

        if (slot->link.pid == 0
            && ngx_atomic_cmp_set(&slot->link.pid, 0,
                                  (ngx_atomic_uint_t) ngx_pid))
        {
            slot->worker = (ngx_atomic_uint_t) ngx_worker;

            hmcf->slot = slot;
            hmcf->stats = &slot->link;

            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                  "history: all %d slots of the \"history_stats\" zone "
                  "are taken, the figures of this worker are not shown",
                  NGX_HTTP_HISTORY_STATS_SLOTS);

    hmcf->stats = ngx_pcalloc(cycle->pool,
                              sizeof(ngx_http_history_link_stats_t));
    if (hmcf->stats == NULL) {
        return NGX_ERROR;
    }

    hmcf->stats->pid = ngx_pid;

    return NGX_OK;
}


/* at the worker's exit, once its link is gone */

void
ngx_http_history_stats_detach(ngx_http_history_main_conf_t *hmcf)
{
    if (hmcf->slot) {
        ngx_http_history_stats_retire(hmcf->stats_zone->data, hmcf->slot);
        hmcf->slot = NULL;
    }

    hmcf->stats = NULL;
}


/*
 * The slots of workers that died without giving them back (killed, or
 * failed at their start): taken over by compare-and-set on the dead pid,
 * so that only one process retires each.
 */

static void
ngx_http_history_stats_reap(ngx_http_history_stats_shm_t *shm)
{
    ngx_uint_t                      i;
    ngx_atomic_uint_t               pid;
    ngx_http_history_stats_slot_t  *slot;

    for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
        slot = &shm->slots[i];
        pid = slot->link.pid;

        if (pid == 0 || pid == (ngx_atomic_uint_t) ngx_pid) {
            continue;
        }

        if (kill((ngx_pid_t) pid, 0) == -1 && ngx_errno == NGX_ESRCH
            && ngx_atomic_cmp_set(&slot->link.pid, pid,
                                  (ngx_atomic_uint_t) ngx_pid))
        {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "history: worker %uA is gone, its "
                          "\"history_stats\" slot is free", pid);

            ngx_http_history_stats_retire(shm, slot);
        }
    }
}


/*
 * The counters go into the total of the workers gone, and the slot is
 * zeroed before it is free again.
 */

static void
ngx_http_history_stats_retire(ngx_http_history_stats_shm_t *shm,
    ngx_http_history_stats_slot_t *slot)
{
    ngx_uint_t     j;
    ngx_atomic_t  *v, *gone;

    v = (ngx_atomic_t *) &slot->link;
    gone = (ngx_atomic_t *) &shm->gone;

    for (j = NGX_HTTP_HISTORY_STATS_COUNTERS;
         j < NGX_HTTP_HISTORY_STATS_FIELDS;
         j++)
    {
        if (!ngx_http_history_stats_gauge(j)) {
            (void) ngx_atomic_fetch_add(&gone[j], v[j]);
        }

        v[j] = 0;
    }

    for (j = 1; j < NGX_HTTP_HISTORY_STATS_COUNTERS; j++) {
        v[j] = 0;
    }

    slot->worker = 0;

    ngx_memory_barrier();

    slot->link.pid = 0;
}


/* the slots of running workers, by worker number (then slot) */

static ngx_uint_t
ngx_http_history_stats_running(ngx_http_history_stats_shm_t *shm,
    ngx_http_history_stats_slot_t **run)
{
    ngx_uint_t                      i, j, n;
    ngx_http_history_stats_slot_t  *slot;

    n = 0;

    for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
        slot = &shm->slots[i];

        if (slot->link.pid == 0) {
            continue;
        }

        for (j = n; j > 0 && run[j - 1]->worker > slot->worker; j--) {
            run[j] = run[j - 1];
        }

        run[j] = slot;
        n++;
    }

    return n;
}


void
ngx_http_history_stats_read(ngx_http_request_t *r,
    ngx_http_history_ctx_t *ctx)
{
    ngx_http_history_main_conf_t  *hmcf;

    /* one read, one count: history_fetch and history_serve may share it */

    if (ctx->counted) {
        return;
    }

    ctx->counted = 1;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    if (hmcf->stats == NULL) {
        return;
    }

    hmcf->stats->reads++;

    if (ctx->failed) {
        hmcf->stats->fallbacks++;
    }
}


/*
 * Every worker's figures and their totals: JSON, or Prometheus' text
 * format with ?format=prometheus.
 */

ngx_int_t
ngx_http_history_stats_handler(ngx_http_request_t *r)
{
    u_char                         *p;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_str_t                       format, type, body;
    ngx_uint_t                      i, j, n, prometheus;
    ngx_atomic_uint_t               total[NGX_HTTP_HISTORY_STATS_FIELDS];
    ngx_atomic_t                   *v;
    ngx_http_history_stats_shm_t   *shm;
    ngx_http_history_stats_slot_t  *run[NGX_HTTP_HISTORY_STATS_SLOTS];
    ngx_http_history_main_conf_t   *hmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_history_module);

    prometheus = ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
                 && format.len == sizeof("prometheus") - 1
                 && ngx_strncmp(format.data, "prometheus",
                                sizeof("prometheus") - 1) == 0;

    shm = hmcf->stats_zone->data;

    ngx_http_history_stats_reap(shm);

    n = ngx_http_history_stats_running(shm, run);

    /* the counters go on from those of the workers gone, gauges do not */

    v = (ngx_atomic_t *) &shm->gone;

    for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
        total[j] = ngx_http_history_stats_gauge(j) ? 0 : v[j];
    }

    for (i = 0; i < n; i++) {
        v = (ngx_atomic_t *) &run[i]->link;

        for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            total[j] += v[j];
        }
    }

    len = (n + 1) * NGX_HTTP_HISTORY_STATS_FIELDS
          * (prometheus ? 128 : 32 + NGX_ATOMIC_T_LEN)
          + (prometheus ? NGX_HTTP_HISTORY_STATS_FIELDS * 160 : 64)
          + n * (512 + 2 * NGX_SOCKADDR_STRLEN)
          + n * NGX_HTTP_HISTORY_STATS_NODES
            * (prometheus ? NGX_HTTP_HISTORY_STATS_NODE_FIELDS
                            * (160 + NGX_SOCKADDR_STRLEN)
                          : 64 + NGX_SOCKADDR_STRLEN
                            + NGX_HTTP_HISTORY_STATS_NODE_FIELDS
                              * (24 + NGX_ATOMIC_T_LEN))
          + (prometheus ? NGX_HTTP_HISTORY_STATS_NODE_FIELDS * 200 : 0);

    body.data = ngx_pnalloc(r->pool, len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (prometheus) {
        p = ngx_http_history_stats_prometheus(body.data, hmcf, run, n);
        ngx_str_set(&type, "text/plain; version=0.0.4");

    } else {
        p = ngx_http_history_stats_json(body.data, hmcf, run, n, total);
        ngx_str_set(&type, "application/json");
    }

    body.len = p - body.data;

    return ngx_http_history_send(r, &type, &body);
}


/* a metric family per field, a sample per running worker */

static u_char *
ngx_http_history_stats_prometheus(u_char *p,
    ngx_http_history_main_conf_t *hmcf, ngx_http_history_stats_slot_t **run,
    ngx_uint_t n)
{
    ngx_uint_t                      i, j;
    ngx_atomic_t                   *v;
    ngx_http_history_stats_name_t  *name;

    for (j = 1; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
        name = &ngx_http_history_stats_names[j];

        p = ngx_sprintf(p, "# HELP nginx_history_%s %s\n"
                           "# TYPE nginx_history_%s %s\n",
                        name->prometheus, name->help, name->prometheus,
                        name->type);

        for (i = 0; i < n; i++) {
            v = (ngx_atomic_t *) &run[i]->link;
            p = ngx_sprintf(p, "nginx_history_%s{worker=\"%uA\","
                               "pid=\"%uA\"} %uA\n",
                            name->prometheus, run[i]->worker, v[0], v[j]);
        }
    }

    /* with Sentinel, its families too, one after the other */

    for (j = 0; hmcf->redis.sentinel_name.len && j < 4; j++) {
        p = ngx_sprintf(p, "# HELP nginx_history_sentinel_%s\n"
                           "# TYPE nginx_history_sentinel_%s\n",
                        ngx_http_history_stats_sentinel_help[j],
                        ngx_http_history_stats_sentinel_type[j]);

        for (i = 0; i < n; i++) {
            p = ngx_http_history_stats_sentinel(p, hmcf, run[i], 1 + j);
        }
    }

    return ngx_http_history_stats_node_metrics(p, run, n);
}


/* {"workers":[{"worker":N,"pid":P,...},...],"total":{...}} */

static u_char *
ngx_http_history_stats_json(u_char *p, ngx_http_history_main_conf_t *hmcf,
    ngx_http_history_stats_slot_t **run, ngx_uint_t n,
    ngx_atomic_uint_t *total)
{
    ngx_uint_t     i, j;
    ngx_atomic_t  *v;

    p = ngx_cpymem(p, "{\"workers\":[", sizeof("{\"workers\":[") - 1);

    for (i = 0; i < n; i++) {
        v = (ngx_atomic_t *) &run[i]->link;
        p = ngx_sprintf(p, "%s{\"worker\":%uA", i ? "," : "",
                        run[i]->worker);

        for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            p = ngx_sprintf(p, ",\"%s\":%uA",
                            ngx_http_history_stats_names[j].json, v[j]);
        }

        p = ngx_http_history_stats_sentinel(p, hmcf, run[i], 0);
        p = ngx_http_history_stats_nodes(p, &run[i]->link);

        *p++ = '}';
    }

    p = ngx_cpymem(p, "],\"total\":{", sizeof("],\"total\":{") - 1);

    for (j = 1; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", j > 1 ? "," : "",
                        ngx_http_history_stats_names[j].json, total[j]);
    }

    return ngx_cpymem(p, "}}\n", 3);
}


/*
 * With Sentinel, where a worker's link is: the master it uses, the
 * Sentinel that named it, the moves followed and the units they sent
 * again or may have lost: JSON members (metric 0), or the sample of
 * one Prometheus family (metric 1 to 4, in the order of
 * ngx_http_history_stats_sentinel_help[]).  The master's text is written
 * by that worker while this one reads it: only the characters an address
 * has are shown.
 */

static u_char *
ngx_http_history_stats_sentinel(u_char *p, ngx_http_history_main_conf_t *hmcf,
    ngx_http_history_stats_slot_t *slot, ngx_uint_t metric)
{
    u_char                         master[NGX_SOCKADDR_STRLEN], c;
    ngx_str_t                     *sentinel;
    ngx_uint_t                     i, k, n;
    ngx_addr_t                    *addrs;
    ngx_http_history_link_stats_t *st;

    if (hmcf->redis.sentinel_name.len == 0) {
        return p;
    }

    st = &slot->link;

    for (i = 0, n = 0; i < NGX_SOCKADDR_STRLEN && st->master[i]; i++) {
        c = st->master[i];

        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
            || (c >= 'A' && c <= 'F') || c == '.' || c == ':' || c == '['
            || c == ']')
        {
            master[n++] = c;
        }
    }

    addrs = hmcf->redis.sentinels->elts;
    k = st->sentinel;
    sentinel = (k > 0 && k <= hmcf->redis.sentinels->nelts)
               ? &addrs[k - 1].name : NULL;

    switch (metric) {

    case 0: /* JSON */
        break;

    case 1:
        return ngx_sprintf(p, "nginx_history_sentinel_failovers_total"
                              "{worker=\"%uA\",pid=\"%uA\"} %uA\n",
                           slot->worker, st->pid, st->failovers);

    case 2:
        return ngx_sprintf(p, "nginx_history_sentinel_replayed_total"
                              "{worker=\"%uA\",pid=\"%uA\"} %uA\n",
                           slot->worker, st->pid, st->replayed);

    case 3:
        return ngx_sprintf(p, "nginx_history_sentinel_maybe_lost_total"
                              "{worker=\"%uA\",pid=\"%uA\"} %uA\n",
                           slot->worker, st->pid, st->maybe_lost);

    default: /* 4 */
        p = ngx_sprintf(p, "nginx_history_sentinel_master_info"
                           "{worker=\"%uA\",pid=\"%uA\",master=\"%*s\","
                           "sentinel=\"",
                        slot->worker, st->pid, n, master);

        if (sentinel) {
            p = ngx_cpymem(p, sentinel->data, sentinel->len);
        }

        return ngx_cpymem(p, "\"} 1\n", sizeof("\"} 1\n") - 1);
    }

    p = ngx_sprintf(p, ",\"master\":\"%*s\"", n, master);

    if (sentinel) {
        p = ngx_sprintf(p, ",\"sentinel\":\"%V\"", sentinel);

    } else {
        p = ngx_cpymem(p, ",\"sentinel\":null",
                       sizeof(",\"sentinel\":null") - 1);
    }

    return ngx_sprintf(p, ",\"failovers\":%uA,\"replayed\":%uA,"
                          "\"maybe_lost\":%uA",
                       st->failovers, st->replayed, st->maybe_lost);
}


/*
 * A worker's cluster nodes, as its map has them: address, role, slots,
 * connected, redirects, refreshes and TLS.  None with a single server.
 */

static u_char *
ngx_http_history_stats_nodes(u_char *p, ngx_http_history_link_stats_t *link)
{
    ngx_uint_t                      j, k;
    ngx_atomic_t                   *v;
    ngx_http_history_node_stats_t  *ns;

    for (k = 0; k < NGX_HTTP_HISTORY_STATS_NODES; k++) {
        ns = &link->nodes[k];

        if (!ns->used) {
            break;
        }

        p = ngx_sprintf(p, "%s{\"address\":\"%s\",\"role\":\"%s\"",
                        k ? "," : ",\"nodes\":[", ns->addr,
                        ns->role == NGX_HTTP_HISTORY_ROLE_MASTER
                        ? "master" : "none");

        v = &ns->slots;

        for (j = 0; j < NGX_HTTP_HISTORY_STATS_NODE_FIELDS; j++) {
            p = ngx_sprintf(p, ",\"%s\":%uA",
                            ngx_http_history_stats_node_names[j].json, v[j]);
        }

        *p++ = '}';
    }

    if (k) {
        *p++ = ']';
    }

    return p;
}


/* a metric family per node figure, a sample per worker and node */

static u_char *
ngx_http_history_stats_node_metrics(u_char *p,
    ngx_http_history_stats_slot_t **run, ngx_uint_t n)
{
    ngx_uint_t                      i, j, k;
    ngx_atomic_t                   *v;
    ngx_http_history_stats_name_t  *name;
    ngx_http_history_node_stats_t  *ns;

    for (i = 0; i < n; i++) {
        if (run[i]->link.nodes[0].used) {
            break;
        }
    }

    if (i == n) {
        /* a single server */
        return p;
    }

    for (j = 0; j < NGX_HTTP_HISTORY_STATS_NODE_FIELDS; j++) {
        name = &ngx_http_history_stats_node_names[j];

        p = ngx_sprintf(p, "# HELP nginx_history_%s %s\n"
                           "# TYPE nginx_history_%s %s\n",
                        name->prometheus, name->help, name->prometheus,
                        name->type);

        for (i = 0; i < n; i++) {
            for (k = 0; k < NGX_HTTP_HISTORY_STATS_NODES; k++) {
                ns = &run[i]->link.nodes[k];

                if (!ns->used) {
                    break;
                }

                v = &ns->slots;

                p = ngx_sprintf(p, "nginx_history_%s{worker=\"%uA\","
                                   "pid=\"%uA\",node=\"%s\","
                                   "role=\"%s\"} %uA\n",
                                name->prometheus, run[i]->worker,
                                run[i]->link.pid, ns->addr,
                                ns->role == NGX_HTTP_HISTORY_ROLE_MASTER
                                ? "master" : "none", v[j]);
            }
        }
    }

    return p;
}


char *
ngx_http_history_stats(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    if (hlcf->stats) {
        return "is duplicate";
    }

    if (sizeof(ngx_http_history_stats_names)
        != NGX_HTTP_HISTORY_STATS_FIELDS
           * sizeof(ngx_http_history_stats_name_t))
    {
        /* a field of the link's figures without its names */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "history_stats: the table of names has %uz "
                           "entries for %uz fields",
                           sizeof(ngx_http_history_stats_names)
                           / sizeof(ngx_http_history_stats_name_t),
                           (size_t) NGX_HTTP_HISTORY_STATS_FIELDS);
        return NGX_CONF_ERROR;
    }

    if (NGX_HTTP_HISTORY_STATS_NODE_FIELDS != NGX_HTTP_HISTORY_NODE_FIGURES) {
        /* a field of a node's figures without its names */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "history_stats: the table of node names has "
                           "%uz entries for %uz fields",
                           (size_t) NGX_HTTP_HISTORY_STATS_NODE_FIELDS,
                           (size_t) NGX_HTTP_HISTORY_NODE_FIGURES);
        return NGX_CONF_ERROR;
    }

    hlcf->stats = 1;

    ngx_http_history_set_handler(cf, ngx_http_history_stats_handler);

    return NGX_CONF_OK;
}
