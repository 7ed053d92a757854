
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * Statistics: the shared memory zone where each worker's link keeps its
 * figures, and history_stats, which reports them as JSON or for
 * Prometheus.  Reads the zone; calls only ngx_http_history_send() of the
 * read side, to answer.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


/* a field of ngx_http_history_link_stats_t, in its order, and its names */

typedef struct {
    char                           *json;
    char                           *prometheus;
    char                           *type;      /* Prometheus' metric type */
    char                           *help;
} ngx_http_history_stats_name_t;


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
      "Reads answered with the fallback." }
};


ngx_int_t
ngx_http_history_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        /* a reload: the figures go on from where they were */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    shm_zone->data = ngx_slab_calloc(shpool, NGX_HTTP_HISTORY_STATS_SLOTS
                                     * sizeof(ngx_http_history_link_stats_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
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
    ngx_http_history_link_stats_t  *slots;
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

    slots = hmcf->stats_zone->data;

    n = 0;
    ngx_memzero(total, sizeof(total));

    for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
        if (slots[i].pid == 0) {
            continue;
        }

        n++;
        v = (ngx_atomic_t *) &slots[i];

        for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            total[j] += v[j];
        }
    }

    len = (n + 1) * NGX_HTTP_HISTORY_STATS_FIELDS
          * (prometheus ? 128 : 32 + NGX_ATOMIC_T_LEN)
          + (prometheus ? NGX_HTTP_HISTORY_STATS_FIELDS * 160 : 64);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = p;

    if (prometheus) {
        for (j = 1; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            p = ngx_sprintf(p, "# HELP nginx_history_%s %s\n"
                               "# TYPE nginx_history_%s %s\n",
                            ngx_http_history_stats_names[j].prometheus,
                            ngx_http_history_stats_names[j].help,
                            ngx_http_history_stats_names[j].prometheus,
                            ngx_http_history_stats_names[j].type);

            for (i = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
                if (slots[i].pid) {
                    v = (ngx_atomic_t *) &slots[i];
                    p = ngx_sprintf(p, "nginx_history_%s{worker=\"%ui\","
                                       "pid=\"%uA\"} %uA\n",
                                ngx_http_history_stats_names[j].prometheus,
                                i, v[0], v[j]);
                }
            }
        }

        ngx_str_set(&type, "text/plain; version=0.0.4");

    } else {
        p = ngx_cpymem(p, "{\"workers\":[", sizeof("{\"workers\":[") - 1);

        for (i = 0, n = 0; i < NGX_HTTP_HISTORY_STATS_SLOTS; i++) {
            if (slots[i].pid == 0) {
                continue;
            }

            v = (ngx_atomic_t *) &slots[i];
            p = ngx_sprintf(p, "%s{\"worker\":%ui", n++ ? "," : "", i);

            for (j = 0; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
                p = ngx_sprintf(p, ",\"%s\":%uA",
                                ngx_http_history_stats_names[j].json, v[j]);
            }

            *p++ = '}';
        }

        p = ngx_cpymem(p, "],\"total\":{", sizeof("],\"total\":{") - 1);

        for (j = 1; j < NGX_HTTP_HISTORY_STATS_FIELDS; j++) {
            p = ngx_sprintf(p, "%s\"%s\":%uA", j > 1 ? "," : "",
                            ngx_http_history_stats_names[j].json, total[j]);
        }

        p = ngx_cpymem(p, "}}\n", 3);

        ngx_str_set(&type, "application/json");
    }

    body.len = p - body.data;

    return ngx_http_history_send(r, &type, &body);
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

    hlcf->stats = 1;

    ngx_http_history_set_handler(cf, ngx_http_history_stats_handler);

    return NGX_CONF_OK;
}
