
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#ifndef _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_
#define _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


/*
 * The link speaks Redis: a unit is one or more commands sent together,
 * routed by one key (its hash slot) to the node that holds it, and
 * answered once, with the reply to its last command.  A unit is built on
 * the caller's stack as a batch (ngx_http_history_batch_init(), _command(),
 * _arg(), _key(), _number()) and handed to ngx_http_history_link_send(),
 * which formats it once into a unit of its own.
 */

/* the most commands one unit may carry (MULTI ... EXEC) */
#define NGX_HTTP_HISTORY_COMMANDS_MAX  64

/* the most arguments, command names included, of all of a unit's commands */
#define NGX_HTTP_HISTORY_ARGS_MAX      256

/* Redis Cluster's hash slots */
#define NGX_HTTP_HISTORY_SLOTS         16384


/*
 * The most elements a reply's array may have: more than the longest list
 * or id set the module asks for, far less than what would exhaust memory
 */
#define NGX_HTTP_HISTORY_ELEMENTS_MAX  65536


/*
 * The most a reply may take by default: its strings, and
 * NGX_HTTP_HISTORY_OBJECT_SIZE for each reply object in it.  The largest
 * reply the module asks for, a list of history_length 1000 ids of 256
 * bytes, takes about 320 KB.  A reply that announces more is refused at
 * its header, before its body is read.
 */
#define NGX_HTTP_HISTORY_REPLY_MAX     (2 * 1024 * 1024)
#define NGX_HTTP_HISTORY_OBJECT_SIZE   64

/* how deep replies may nest: EXEC's array of arrays needs 2 */
#define NGX_HTTP_HISTORY_DEPTH_MAX     4


#if (HIREDIS_MAJOR >= 1)
typedef size_t  ngx_http_history_elements_t;
#else
typedef int     ngx_http_history_elements_t;
#endif


typedef struct ngx_http_history_link_s  ngx_http_history_link_t;
typedef struct ngx_http_history_node_s  ngx_http_history_node_t;
typedef struct ngx_http_history_unit_s  ngx_http_history_unit_t;
typedef struct ngx_http_history_ssl_conf_s  ngx_http_history_ssl_conf_t;


/*
 * Called once per unit: with the reply to its last command, or with NULL
 * when the unit failed (an error reply, dropped, connection lost, timed
 * out).  The reply is freed after the handler returns.  A handler must not
 * send through the link.
 */
typedef void (*ngx_http_history_reply_pt)(void *data, redisReply *reply);


typedef struct {
    ngx_addr_t                    *addr;       /* the first of seeds */
    ngx_array_t                    seeds;      /* of ngx_addr_t */
    ngx_flag_t                     cluster;
    ngx_array_t                   *sentinels;  /* of ngx_addr_t */
    ngx_str_t                      sentinel_name;
    ngx_str_t                      sentinel_password;
    ngx_str_t                      host;       /* as history_redis names it */
    ngx_str_t                      username;
    ngx_str_t                      password;
    ngx_uint_t                     db;
    ngx_msec_t                     connect_timeout;
    ngx_msec_t                     timeout;
    ngx_uint_t                     queue;
    size_t                         max_reply;  /* 0: the default */
    ngx_msec_t                     replay;     /* Sentinel: 0 is off */
    ngx_http_history_ssl_conf_t   *ssl;        /* NULL: plain TCP */

    /* a cluster's nodes named by hostname: the http block's resolver */
    ngx_resolver_t                *resolver;   /* NULL: none configured */
    ngx_msec_t                     resolver_timeout;
} ngx_http_history_redis_conf_t;


/* one Redis command in argv form */
typedef struct {
    int                            argc;
    const char                   **argv;
    size_t                        *argvlen;
} ngx_http_history_command_t;


/*
 * A unit being built: its key and slot, its commands, their arguments
 * (pointers to the caller's memory) and room for the numbers among them.
 * Every key a command names must be in the unit's slot: a unit goes to one
 * node, and a transaction may hold one slot's keys only.
 */

typedef struct {
    ngx_str_t                      key;
    ngx_uint_t                     slot;
    ngx_uint_t                     ncommands;
    ngx_uint_t                     nargs;
    size_t                         used;
    unsigned                       overflow:1;
    unsigned                       crossslot:1;
    unsigned                       idempotent:1;

    ngx_http_history_command_t     command[NGX_HTTP_HISTORY_COMMANDS_MAX];
    const char                    *argv[NGX_HTTP_HISTORY_ARGS_MAX];
    size_t                         len[NGX_HTTP_HISTORY_ARGS_MAX];
    u_char                         numbers[8 * NGX_TIME_T_LEN];
} ngx_http_history_batch_t;


/* the nodes of a cluster a worker reports on, the first it uses */
#define NGX_HTTP_HISTORY_STATS_NODES   16

#define NGX_HTTP_HISTORY_ROLE_NONE     0
#define NGX_HTTP_HISTORY_ROLE_MASTER   1


/*
 * One node of a worker's link, in the link's figures: those from "slots"
 * up to "addr" are all ngx_atomic_t, in the order history_stats shows them.
 */

typedef struct {
    ngx_atomic_t                   used;       /* 1 once addr is written */
    ngx_atomic_t                   role;       /* master when it has slots */
    ngx_atomic_t                   slots;      /* slots the map gives it */
    ngx_atomic_t                   connected;
    ngx_atomic_t                   redirects;  /* MOVED, ASK, TRYAGAIN ... */
    ngx_atomic_t                   refreshes;  /* slot maps it answered */
    ngx_atomic_t                   tls;        /* 1 when TLS is up */
    ngx_atomic_t                   tls_handshakes;
    ngx_atomic_t                   tls_reused; /* ... resuming a session */
    ngx_atomic_t                   tls_failures;
    u_char                         addr[NGX_SOCKADDR_STRLEN + 1];
} ngx_http_history_node_stats_t;


/* the node's fields that are figures */
#define NGX_HTTP_HISTORY_NODE_FIGURES                                         \
    ((offsetof(ngx_http_history_node_stats_t, addr)                           \
      - offsetof(ngx_http_history_node_stats_t, slots))                       \
     / sizeof(ngx_atomic_t))


/*
 * What a worker's link has done, in shared memory so that any worker can
 * report every worker's figures: one writer (the worker), many readers.
 * The counters come first, all of them ngx_atomic_t, up to "nodes".
 */

typedef struct {
    ngx_atomic_t                   pid;
    ngx_atomic_t                   state;      /* 1 when connected */
    ngx_atomic_t                   depth;      /* units waiting now */
    ngx_atomic_t                   queued;     /* units accepted */
    ngx_atomic_t                   sent;
    ngx_atomic_t                   replied;
    ngx_atomic_t                   errors;     /* answered with an error */
    ngx_atomic_t                   dropped;    /* queue full, or exiting */
    ngx_atomic_t                   failed;     /* lost with a connection */
    ngx_atomic_t                   connects;
    ngx_atomic_t                   reads;      /* reads answered */
    ngx_atomic_t                   fallbacks;  /* ... with the fallback */
    ngx_atomic_t                   resent;     /* idempotent, after a loss */
    ngx_atomic_t                   redirected; /* units sent elsewhere */
    ngx_atomic_t                   tls;        /* connections up over TLS */
    ngx_atomic_t                   tls_handshakes;
    ngx_atomic_t                   tls_reused; /* ... resuming a session */
    ngx_atomic_t                   tls_failures;

    /*
     * Sentinel only, shown apart from the counters above: the master in
     * use, as text, 1 + the index of the Sentinel that named it, and the
     * moves of the master followed
     */
    u_char                         master[NGX_SOCKADDR_STRLEN];
    ngx_atomic_t                   sentinel;
    ngx_atomic_t                   failovers;

    /*
     * units the master acknowledged in the last moments before it
     * changed: the idempotent ones sent again to the new master, and the
     * others, which may have been lost
     */
    ngx_atomic_t                   replayed;
    ngx_atomic_t                   maybe_lost;

    /* a cluster only: the nodes of the worker's map */
    ngx_http_history_node_stats_t  nodes[NGX_HTTP_HISTORY_STATS_NODES];
} ngx_http_history_link_stats_t;


/* the fields of ngx_http_history_link_stats_t that are figures */
#define NGX_HTTP_HISTORY_LINK_FIGURES                                         \
    (offsetof(ngx_http_history_link_stats_t, master) / sizeof(ngx_atomic_t))


/*
 * Replies from Redis: hiredis's reader builds them in a pool of their own,
 * released as a whole once a reply has been handled.
 */

typedef struct {
    ngx_pool_t                    *pool;
    ngx_log_t                     *log;
    size_t                         size;       /* allocated since released */
    unsigned                       logged:1;   /* the reader's error too */
} ngx_http_history_replies_t;


/*
 * The bytes from Redis as they come, before hiredis's reader sees them:
 * where each reply ends, and what it will take, known from its headers
 * ("$<length>", "*<count>"), so that a reply too large for the limit is
 * refused before its body is read.
 */

typedef struct {
    size_t                         max;
    size_t                         size;       /* the reply being read */
    size_t                         skip;       /* of a string, with CRLF */
    size_t                         line;       /* bytes of a line so far */
    size_t                         number;
    ngx_uint_t                     left[NGX_HTTP_HISTORY_DEPTH_MAX + 1];
    ngx_uint_t                     depth;
    ngx_uint_t                     state;
    ngx_uint_t                     replies;    /* complete replies */
    u_char                         type;
    u_char                         prev;
    const char                    *error;      /* why refused, or NULL */
    unsigned                       too_large:1;
} ngx_http_history_scan_t;


/*
 * What the replies to a unit must look like: one entry of the link's
 * command table per command (its name and the shape of its reply), and
 * where a MULTI began.  The entry NGX_HTTP_HISTORY_KIND_TAG is the link's
 * own PING <tag>, which must come back as it was sent.
 */

#define NGX_HTTP_HISTORY_KIND_TAG      1

typedef struct {
    u_char                        *kind;
    ngx_uint_t                     n;
    ngx_uint_t                     next;       /* replies checked */
    ngx_uint_t                     multi;      /* MULTI's index + 1 */
    ngx_str_t                      tag;        /* PING <tag>, if any */
    unsigned                       aborted:1;  /* MULTI was refused */
} ngx_http_history_shape_t;


ngx_http_history_link_t *ngx_http_history_link_create(ngx_cycle_t *cycle,
    ngx_http_history_redis_conf_t *rcf, ngx_http_history_link_stats_t *stats);
void ngx_http_history_link_destroy(ngx_http_history_link_t *link);
ngx_http_history_unit_t *ngx_http_history_link_send(
    ngx_http_history_link_t *link, ngx_http_history_batch_t *b,
    ngx_http_history_reply_pt handler, void *data);
void ngx_http_history_link_cancel(ngx_http_history_unit_t *unit);
ngx_uint_t ngx_http_history_link_up(ngx_http_history_link_t *link,
    ngx_str_t *key);

void ngx_http_history_batch_init(ngx_http_history_batch_t *b,
    ngx_str_t *key);
void ngx_http_history_batch_command(ngx_http_history_batch_t *b,
    char *name);
void ngx_http_history_batch_arg(ngx_http_history_batch_t *b, u_char *data,
    size_t len);
void ngx_http_history_batch_key(ngx_http_history_batch_t *b,
    ngx_str_t *key);
void ngx_http_history_batch_number(ngx_http_history_batch_t *b, time_t n);
void ngx_http_history_batch_idempotent(ngx_http_history_batch_t *b);
ngx_uint_t ngx_http_history_key_slot(u_char *key, size_t len);

redisReader *ngx_http_history_reader_create(
    ngx_http_history_replies_t *rp);
void ngx_http_history_reader_release(ngx_http_history_replies_t *rp);

size_t ngx_http_history_format_size(ngx_http_history_command_t *command);
u_char *ngx_http_history_format(u_char *p,
    ngx_http_history_command_t *command);

void ngx_http_history_replies_cleanup(void *data);
void ngx_http_history_scan_init(ngx_http_history_scan_t *s, size_t max);
size_t ngx_http_history_scan(ngx_http_history_scan_t *s, u_char *p,
    size_t len);

ngx_uint_t ngx_http_history_shape_kind(ngx_http_history_command_t *cmd);
ngx_int_t ngx_http_history_shape_check(ngx_http_history_shape_t *s,
    redisReply *reply, const char **expected);
ngx_str_t *ngx_http_history_shape_name(ngx_uint_t kind);


#endif /* _NGX_HTTP_HISTORY_REDIS_H_INCLUDED_ */
