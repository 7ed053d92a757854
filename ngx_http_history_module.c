
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * The module: its directives, contexts and ngx_module_t; creating and
 * merging the configuration; postconfiguration, worker start and exit; the
 * directive setters shared by the other files.  It calls into every job's
 * file (their directive handlers, phase handlers and variables) and into
 * the Redis link only to create and destroy it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_history_module.h"


static ngx_int_t ngx_http_history_add_variables(ngx_conf_t *cf);
static char *ngx_http_history_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void ngx_http_history_merge_handler(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *prev, ngx_http_history_loc_conf_t *conf);
static ngx_int_t ngx_http_history_merge_record(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *conf);
static ngx_int_t ngx_http_history_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_history_init_process(ngx_cycle_t *cycle);
static void ngx_http_history_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_history_needs_redis_flag(ngx_conf_t *cf, void *post,
    void *data);


static ngx_conf_post_t  ngx_http_history_needs_redis_post =
    { ngx_http_history_needs_redis_flag };


/* the bounds ngx_http_history_set_number() checks; no post handler */

static ngx_conf_num_bounds_t  ngx_http_history_length_bounds = {
    NULL, 1, NGX_HTTP_HISTORY_LENGTH_MAX
};

static ngx_conf_num_bounds_t  ngx_http_history_shards_bounds = {
    NULL, 1, NGX_HTTP_HISTORY_SHARDS_MAX
};


static ngx_conf_enum_t  ngx_http_history_fallbacks[] = {
    { ngx_string("empty"), NGX_HTTP_HISTORY_FALLBACK_EMPTY },
    { ngx_string("error"), NGX_HTTP_HISTORY_FALLBACK_ERROR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_history_commands[] = {

    { ngx_string("history_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_history_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

#if (NGX_SSL)

    { ngx_string("history_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.verify),
      NULL },

    { ngx_string("history_redis_ssl_verify_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.verify_depth),
      NULL },

    { ngx_string("history_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.trusted_certificate),
      NULL },

    { ngx_string("history_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.name),
      NULL },

    { ngx_string("history_redis_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.server_name),
      NULL },

    { ngx_string("history_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.certificate),
      NULL },

    { ngx_string("history_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.certificate_key),
      NULL },

    { ngx_string("history_redis_ssl_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_history_ssl_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl),
      NULL },

    { ngx_string("history_redis_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.protocols),
      &ngx_http_history_ssl_protocols },

    { ngx_string("history_redis_ssl_ciphers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.ciphers),
      NULL },

    { ngx_string("history_redis_ssl_session_reuse"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_history_main_conf_t, ssl.session_reuse),
      NULL },

#endif

    { ngx_string("history_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, key),
      NULL },

    { ngx_string("history_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, prefix),
      NULL },

    { ngx_string("history_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_number,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, length),
      &ngx_http_history_length_bounds },

    { ngx_string("history_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, expire),
      NULL },

    { ngx_string("history_record"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_record_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, record),
      NULL },

    { ngx_string("history_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_history_set_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, status),
      NULL },

    { ngx_string("history_id_pattern"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_pattern,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_serve"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_history_serve,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, fallback),
      &ngx_http_history_fallbacks },

    { ngx_string("history_fetch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, fetch),
      &ngx_http_history_needs_redis_post },

    { ngx_string("history_forget"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, forget),
      NULL },

    { ngx_string("history_last_action"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, last_action),
      &ngx_http_history_needs_redis_post },

    { ngx_string("history_last_action_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, last_action_key),
      NULL },

    { ngx_string("history_online_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, online_timeout),
      NULL },

    { ngx_string("history_online_shards"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_number,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, online_shards),
      &ngx_http_history_shards_bounds },

    { ngx_string("history_online"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_history_online,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_count"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_history_count_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_count_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, count_expire),
      NULL },

    { ngx_string("history_views"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_history_views,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_stats"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_history_stats,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_history_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_key_pattern"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_key_pattern,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("history_new_visitor_expire"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_history_set_time,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_history_loc_conf_t, new_expire),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_history_module_ctx = {
    ngx_http_history_add_variables,        /* preconfiguration */
    ngx_http_history_init,                 /* postconfiguration */

    ngx_http_history_create_main_conf,     /* create main configuration */
    ngx_http_history_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_history_create_loc_conf,      /* create location configuration */
    ngx_http_history_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_history_module = {
    NGX_MODULE_V1,
    &ngx_http_history_module_ctx,          /* module context */
    ngx_http_history_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_history_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_history_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_history_default_key =
    ngx_string("$cookie_sessionid");


static ngx_http_variable_t  ngx_http_history_vars[] = {

    { ngx_string("history"), NULL, ngx_http_history_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("history_key"), NULL, ngx_http_history_key_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_history_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_history_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


char *
ngx_http_history_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_main_conf_t *hmcf = conf;

    ngx_str_t                      *value, s;
    ngx_url_t                       u;
    ngx_int_t                       n;
    ngx_uint_t                      i, sentinel;
    ngx_addr_t                     *addr;
    ngx_array_t                    *addrs;
    ngx_http_history_redis_conf_t  *rcf;

    rcf = &hmcf->redis;

    if (rcf->addr) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* with "sentinel=", the addresses are Sentinels: another default port */

    sentinel = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            sentinel = 1;
        }
    }

    addrs = ngx_array_create(cf->pool, 3, sizeof(ngx_addr_t));
    if (addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 7
            && ngx_strncmp(value[i].data, "cluster", 7) == 0)
        {
            /* the addresses are seeds of a Redis Cluster */
            rcf->cluster = 1;
            continue;
        }

        if (value[i].len == 3 && ngx_strncmp(value[i].data, "tls", 3) == 0) {
#if (NGX_SSL)
            rcf->ssl = &hmcf->ssl;
            continue;
#else
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tls\" in \"%V\" directive needs nginx "
                               "built with OpenSSL", &cmd->name);
            return NGX_CONF_ERROR;
#endif
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL)
        {
            ngx_memzero(&u, sizeof(ngx_url_t));

            u.url = value[i];
            u.default_port = sentinel ? 26379 : 6379;

            if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
                if (u.err) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "%s in \"%V\" of the \"%V\" "
                                       "directive", u.err, &u.url,
                                       &cmd->name);
                }

                return NGX_CONF_ERROR;
            }

            if (u.naddrs == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i],
                                                "no address");
            }

            if (addrs->nelts == 0) {
                rcf->host = u.host;
            }

            addr = ngx_array_push(addrs);
            if (addr == NULL) {
                return NGX_CONF_ERROR;
            }

            *addr = u.addrs[0];
            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            rcf->sentinel_name.data = value[i].data + 9;
            rcf->sentinel_name.len = value[i].len - 9;

            if (rcf->sentinel_name.len == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_password=", 18) == 0) {
            rcf->sentinel_password.data = value[i].data + 18;
            rcf->sentinel_password.len = value[i].len - 18;

            if (rcf->sentinel_password.len == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;

            if (rcf->password.len == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "username=", 9) == 0) {
            rcf->username.data = value[i].data + 9;
            rcf->username.len = value[i].len - 9;

            if (rcf->username.len == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->connect_timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR || n == 0) {
                return ngx_http_history_invalid(cf, cmd, &value[i], NULL);
            }

            rcf->queue = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "replay=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                rcf->replay = 0;
                continue;
            }

            /* the last moments before a failover, not a log of writes */

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n > NGX_HTTP_HISTORY_REPLAY_MAX) {
                return ngx_http_history_invalid(cf, cmd, &value[i],
                                                "it must be a time up to "
                                                "1m, or off");
            }

            rcf->replay = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_reply=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            /* room for one id's list at least, and an array's overhead */

            n = ngx_parse_size(&s);
            if (n == NGX_ERROR || n < 1024) {
                return ngx_http_history_invalid(cf, cmd, &value[i],
                                                "it must be 1k or more");
            }

            rcf->max_reply = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->username.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"username=\" needs \"password=\" in \"%V\" "
                           "directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (addrs->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (addrs->nelts > 1 && !sentinel && !rcf->cluster) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "several addresses in \"%V\" directive need "
                           "\"sentinel=\" or \"cluster\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->cluster && sentinel) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cluster\" cannot be used with \"sentinel=\" "
                           "in \"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->cluster && rcf->db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"db=\" cannot be used with \"cluster\" in "
                           "\"%V\" directive (Redis Cluster has db 0 only)",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->sentinel_password.len && !sentinel) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_password=\" needs \"sentinel=\" in "
                           "\"%V\" directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->replay != NGX_CONF_UNSET_MSEC && !sentinel) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"replay=\" needs \"sentinel=\" in \"%V\" "
                           "directive", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rcf->ssl && sentinel) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls\" in \"%V\" directive does not work "
                           "with \"sentinel=\" yet", &cmd->name);
        return NGX_CONF_ERROR;
    }

    rcf->addr = addrs->elts;
    rcf->seeds = *addrs;

    for (i = 0; rcf->ssl && i < addrs->nelts; i++) {
        if (rcf->addr[i].sockaddr->sa_family == AF_UNIX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tls\" in \"%V\" directive is for TCP, "
                               "not the unix socket \"%V\"",
                               &cmd->name, &rcf->addr[i].name);
            return NGX_CONF_ERROR;
        }
    }

    if (sentinel) {
        rcf->sentinels = addrs;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_history_set_number(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char                 *reason;
    ngx_int_t               n;
    ngx_str_t              *value;
    ngx_uint_t             *np;
    ngx_conf_num_bounds_t  *bounds;

    bounds = cmd->post;
    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < bounds->low || n > bounds->high) {
        reason = ngx_pnalloc(cf->temp_pool, sizeof("it must be a number "
                                                   "from  to ")
                                            + 2 * NGX_INT_T_LEN);
        if (reason == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_sprintf(reason, "it must be a number from %i to %i%Z",
                           bounds->low, bounds->high);

        return ngx_http_history_invalid(cf, cmd, &value[1], (char *) reason);
    }

    *np = n;

    return NGX_CONF_OK;
}


char *
ngx_http_history_set_time(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    time_t     *tp, t;
    ngx_str_t  *value;

    tp = (time_t *) (p + cmd->offset);

    if (*tp != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t == 0) {
        return ngx_http_history_invalid(cf, cmd, &value[1],
                                        "it must be a positive time");
    }

    *tp = t;

    return NGX_CONF_OK;
}


char *
ngx_http_history_set_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t      n;
    ngx_str_t     *value;
    ngx_uint_t     i, *code;
    ngx_array_t  **a;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_uint_t));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);

        if (n == NGX_ERROR || n < 100 || n > 599) {
            return ngx_http_history_invalid(cf, cmd, &value[i],
                                      "it must be a status from 100 to 599");
        }

        code = ngx_array_push(*a);
        if (code == NULL) {
            return NGX_CONF_ERROR;
        }

        *code = n;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_history_set_pattern(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_history_loc_conf_t *hlcf = conf;

    ngx_str_t  *value;

    if (hlcf->id_check != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        hlcf->id_check = NGX_HTTP_HISTORY_ID_ANY;
        return NGX_CONF_OK;
    }

#if (NGX_PCRE)

    if (ngx_http_history_regex(cf, cmd, &value[1], &hlcf->pattern) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    hlcf->id_check = NGX_HTTP_HISTORY_ID_PATTERN;

    return NGX_CONF_OK;

#else

    return ngx_http_history_invalid(cf, cmd, &value[1],
                                    "nginx was built without PCRE");

#endif
}


#if (NGX_PCRE)

/* a regular expression of a directive, its error naming the directive */

ngx_int_t
ngx_http_history_regex(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *value,
    ngx_regex_t **re)
{
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = *value;
    rc.pool = cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, %V",
                           value, &cmd->name, &rc.err);
        return NGX_ERROR;
    }

    *re = rc.regex;

    return NGX_OK;
}

#endif


/* as ngx_conf_set_enum_slot(), naming the directive and what it takes */

char *
ngx_http_history_set_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char           *last;
    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;
    u_char            reason[NGX_MAX_CONF_ERRSTR];

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    last = ngx_snprintf(reason, sizeof(reason) - 1, "it must be");

    for (i = 0; e[i].name.len; i++) {
        last = ngx_snprintf(last, reason + sizeof(reason) - 1 - last,
                            "%s \"%V\"", i == 0 ? "" : e[i + 1].name.len
                                                     ? "," : " or",
                            &e[i].name);
    }

    *last = '\0';

    return ngx_http_history_invalid(cf, cmd, &value[1], (char *) reason);
}


/* "daily" and "unique", from the argument "first" on */

ngx_int_t
ngx_http_history_count_flags(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_uint_t first, ngx_uint_t *flags)
{
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;
    *flags = 0;

    for (i = first; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "daily") == 0) {
            *flags |= NGX_HTTP_HISTORY_COUNT_DAILY;
            continue;
        }

        if (ngx_strcmp(value[i].data, "unique") == 0) {
            *flags |= NGX_HTTP_HISTORY_COUNT_UNIQUE;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"%V\" directive",
                           &value[i], &cmd->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_http_history_invalid(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *value, char *reason)
{
    if (reason) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, %s",
                           value, &cmd->name, reason);

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive",
                           value, &cmd->name);
    }

    return NGX_CONF_ERROR;
}


/*
 * What history_serve, _online, _views and _stats have in common: the
 * location's content handler, and the need for history_redis
 */

void
ngx_http_history_set_handler(ngx_conf_t *cf, ngx_http_handler_pt h)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = h;

    ngx_http_history_needs_redis(cf);
}


/*
 * Called by the directives that need history_redis: the first one is kept,
 * so that, without history_redis, the error names its file and line.
 */

void
ngx_http_history_needs_redis(ngx_conf_t *cf)
{
    ngx_str_t                     *value;
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_history_module);

    if (hmcf->needs.len) {
        return;
    }

    value = cf->args->elts;

    hmcf->needs_file.data = ngx_pstrdup(cf->pool, &cf->conf_file->file.name);
    if (hmcf->needs_file.data == NULL) {
        return;
    }

    hmcf->needs_file.len = cf->conf_file->file.name.len;
    hmcf->needs_line = cf->conf_file->line;
    hmcf->needs = value[0];
}


/* history_fetch and history_last_action need it when on */

static char *
ngx_http_history_needs_redis_flag(ngx_conf_t *cf, void *post, void *data)
{
    ngx_flag_t  *fp = data;

    if (*fp) {
        ngx_http_history_needs_redis(cf);
    }

    return NGX_CONF_OK;
}


void *
ngx_http_history_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_history_main_conf_t));
    if (hmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hmcf->redis.addr = NULL;
     *     hmcf->redis.username = { 0, NULL };
     *     hmcf->redis.password = { 0, NULL };
     *     hmcf->redis.db = 0;
     *     hmcf->link = NULL;
     *     hmcf->needs = { 0, NULL };
     */

    hmcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;
    hmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    hmcf->redis.queue = NGX_CONF_UNSET_UINT;
    hmcf->redis.replay = NGX_CONF_UNSET_MSEC;
    hmcf->random = NGX_INVALID_FILE;

    ngx_http_history_ssl_create_conf(&hmcf->ssl);

    return hmcf;
}


char *
ngx_http_history_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_history_main_conf_t *hmcf = conf;

    ngx_str_t                          name;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    ngx_conf_init_msec_value(hmcf->redis.connect_timeout, 1000);
    ngx_conf_init_msec_value(hmcf->redis.timeout, 1000);
    ngx_conf_init_uint_value(hmcf->redis.queue, 30000);

    /* a master's last moments: with Sentinel only */
    ngx_conf_init_msec_value(hmcf->redis.replay,
                             hmcf->redis.sentinel_name.len
                             ? NGX_HTTP_HISTORY_REPLAY_DEFAULT : 0);

    if (hmcf->redis.addr == NULL) {

        if (hmcf->needs.len) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%V\" needs \"history_redis\" in the http block "
                          "in %V:%ui", &hmcf->needs, &hmcf->needs_file,
                          hmcf->needs_line);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (hmcf->redis.ssl
        && ngx_http_history_ssl_init_conf(cf, hmcf->redis.ssl) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    /*
     * a cluster may name its nodes by hostname: they are resolved with the
     * http block's "resolver", if it has one (nginx's default has no
     * address), else reached by their IP addresses
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (hmcf->redis.cluster && clcf->resolver
        && clcf->resolver->connections.nelts)
    {
        hmcf->redis.resolver = clcf->resolver;
        hmcf->redis.resolver_timeout = clcf->resolver_timeout;

        /* resolver_timeout's default, as nginx merges it */
        ngx_conf_init_msec_value(hmcf->redis.resolver_timeout, 30000);
    }

    ngx_str_set(&name, "history_stats");

    hmcf->stats_zone = ngx_shared_memory_add(cf, &name,
                                 8 * ngx_pagesize
                                 + sizeof(ngx_http_history_stats_shm_t),
                                 &ngx_http_history_module);
    if (hmcf->stats_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    hmcf->stats_zone->init = ngx_http_history_stats_init_zone;

    hmcf->default_key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (hmcf->default_key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &ngx_http_history_default_key;
    ccv.complex_value = hmcf->default_key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


void *
ngx_http_history_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_history_loc_conf_t  *hlcf;

    hlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_history_loc_conf_t));
    if (hlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hlcf->prefix = { 0, NULL };
     *     hlcf->trim = { 0, NULL };
     *     hlcf->ttl = { 0, NULL };
     *     hlcf->new_ttl = { 0, NULL };
     *     hlcf->key_regex = NULL;
     */

    hlcf->key = NGX_CONF_UNSET_PTR;
    hlcf->record = NGX_CONF_UNSET_PTR;
    hlcf->length = NGX_CONF_UNSET_UINT;
    hlcf->expire = NGX_CONF_UNSET;
    hlcf->status = NGX_CONF_UNSET_PTR;
#if (NGX_PCRE)
    hlcf->id_check = NGX_CONF_UNSET_UINT;
#endif
    hlcf->format = NGX_CONF_UNSET_UINT;
    hlcf->fallback = NGX_CONF_UNSET_UINT;
    hlcf->fetch = NGX_CONF_UNSET;
    hlcf->forget = NGX_CONF_UNSET;
    hlcf->cookie = NGX_CONF_UNSET_PTR;
    hlcf->key_mode = NGX_CONF_UNSET_UINT;
    hlcf->new_expire = NGX_CONF_UNSET;
    hlcf->last_action = NGX_CONF_UNSET;
    hlcf->last_action_key = NGX_CONF_UNSET_PTR;
    hlcf->online_timeout = NGX_CONF_UNSET;
    hlcf->online_shards = NGX_CONF_UNSET_UINT;
    hlcf->count = NGX_CONF_UNSET_PTR;
    hlcf->count_expire = NGX_CONF_UNSET;
    hlcf->views_flags = NGX_CONF_UNSET_UINT;

    return hlcf;
}


static char *
ngx_http_history_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_history_loc_conf_t *prev = parent;
    ngx_http_history_loc_conf_t *conf = child;

    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_history_module);

    ngx_conf_merge_ptr_value(conf->key, prev->key, hmcf->default_key);
    ngx_conf_merge_ptr_value(conf->record, prev->record, NULL);
    ngx_conf_merge_str_value(conf->prefix, prev->prefix, "history:");
    ngx_conf_merge_uint_value(conf->length, prev->length, 5);
    ngx_conf_merge_value(conf->expire, prev->expire, 90 * 86400);
    ngx_conf_merge_ptr_value(conf->status, prev->status, NULL);
    if (conf->id_check == NGX_CONF_UNSET_UINT) {
        conf->id_check = (prev->id_check == NGX_CONF_UNSET_UINT)
                         ? NGX_HTTP_HISTORY_ID_DIGITS : prev->id_check;
#if (NGX_PCRE)
        conf->pattern = prev->pattern;
#endif
    }

    ngx_conf_merge_uint_value(conf->fallback, prev->fallback,
                              NGX_HTTP_HISTORY_FALLBACK_EMPTY);
    ngx_conf_merge_value(conf->fetch, prev->fetch, 0);
    ngx_conf_merge_value(conf->forget, prev->forget, 0);
    ngx_conf_merge_ptr_value(conf->cookie, prev->cookie, NULL);
    ngx_conf_merge_value(conf->last_action, prev->last_action, 0);
    ngx_conf_merge_ptr_value(conf->last_action_key, prev->last_action_key,
                             NULL);
    ngx_conf_merge_value(conf->online_timeout, prev->online_timeout, 300);
    ngx_conf_merge_uint_value(conf->online_shards, prev->online_shards, 1);
    ngx_conf_merge_value(conf->count_expire, prev->count_expire,
                         30 * 86400);

    /*
     * history_count, as history_record (and access_log or mirror), acts in
     * the log phase: nested locations and "if" blocks inherit it, with its
     * flags
     */

    if (conf->count == NGX_CONF_UNSET_PTR) {
        conf->count_flags = prev->count_flags;
    }

    ngx_conf_merge_ptr_value(conf->count, prev->count, NULL);

    ngx_http_history_merge_handler(cf, prev, conf);

    if (ngx_http_history_merge_record(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_history_visitor_merge(cf, prev, conf);
}


/*
 * history_serve, history_views, history_online and history_stats are
 * content handlers: as proxy_pass, they reach the "if" and "limit_except"
 * blocks of their location, not nested locations
 */

static void
ngx_http_history_merge_handler(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *prev, ngx_http_history_loc_conf_t *conf)
{
    ngx_http_handler_pt        h;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->noname) {
        conf->format = prev->format;
        conf->views_flags = prev->views_flags;
        conf->online = prev->online;
        conf->stats = prev->stats;
        conf->handler = prev->handler;

        if (clcf->lmt_excpt && clcf->handler == NULL) {
            clcf->handler = conf->handler;
        }

    } else {
        ngx_conf_init_uint_value(conf->format, 0);
        ngx_conf_init_uint_value(conf->views_flags, 0);

        h = clcf->handler;

        if (h == ngx_http_history_serve_handler
            || h == ngx_http_history_views_handler
            || h == ngx_http_history_online_handler
            || h == ngx_http_history_stats_handler)
        {
            conf->handler = h;
        }
    }
}


/*
 * What recording needs: the statuses that are views, and the arguments of
 * LTRIM and EXPIRE as Redis wants them
 */

static ngx_int_t
ngx_http_history_merge_record(ngx_conf_t *cf,
    ngx_http_history_loc_conf_t *conf)
{
    ngx_uint_t  *code;

    if (conf->status == NULL) {
        conf->status = ngx_array_create(cf->pool, 1, sizeof(ngx_uint_t));
        if (conf->status == NULL) {
            return NGX_ERROR;
        }

        code = ngx_array_push(conf->status);
        if (code == NULL) {
            return NGX_ERROR;
        }

        *code = NGX_HTTP_OK;
    }

    conf->trim.data = ngx_pnalloc(cf->pool, 3 * NGX_TIME_T_LEN);
    if (conf->trim.data == NULL) {
        return NGX_ERROR;
    }

    conf->trim.len = ngx_sprintf(conf->trim.data, "%ui", conf->length - 1)
                     - conf->trim.data;

    conf->ttl.data = conf->trim.data + NGX_TIME_T_LEN;
    conf->ttl.len = ngx_sprintf(conf->ttl.data, "%T", conf->expire)
                    - conf->ttl.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_history_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_history_log_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_history_fetch_handler;

    return ngx_http_history_visitor_init(cf);
}


static ngx_int_t
ngx_http_history_init_process(ngx_cycle_t *cycle)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_history_module);

    if (hmcf == NULL || hmcf->redis.addr == NULL) {
        return NGX_OK;
    }

    /*
     * only the processes that serve requests: not the cache manager and
     * the cache loader, which run this too
     */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    hmcf->random = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY,
                                 NGX_FILE_OPEN, 0);

    if (hmcf->random == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      ngx_open_file_n " \"/dev/urandom\" failed");
        return NGX_ERROR;
    }

    hmcf->seen = ngx_pcalloc(cycle->pool, NGX_HTTP_HISTORY_SEEN_SIZE
                                          * sizeof(ngx_http_history_seen_t));
    if (hmcf->seen == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_history_stats_attach(cycle, hmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    hmcf->link = ngx_http_history_link_create(cycle, &hmcf->redis,
                                              hmcf->stats);
    if (hmcf->link == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_history_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_history_main_conf_t  *hmcf;

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_history_module);

    if (hmcf == NULL) {
        return;
    }

    if (hmcf->random != NGX_INVALID_FILE) {
        (void) ngx_close_file(hmcf->random);
        hmcf->random = NGX_INVALID_FILE;
    }

    if (hmcf->link) {
        ngx_http_history_link_destroy(hmcf->link);
        hmcf->link = NULL;
    }

    if (hmcf->stats) {
        ngx_http_history_stats_detach(hmcf);
    }
}
