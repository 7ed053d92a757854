
/*
 * Copyright (C) The ngx_http_history_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_history_redis.h"
#include "ngx_http_history_sentinel.h"
#include "ngx_http_history_cluster.h"
#include "ngx_http_history_ssl.h"


#define NGX_HTTP_HISTORY_BACKOFF_MIN    100
#define NGX_HTTP_HISTORY_BACKOFF_MAX    3000
#define NGX_HTTP_HISTORY_RECV_SIZE      16384
#define NGX_HTTP_HISTORY_CHAIN_MAX      64
#define NGX_HTTP_HISTORY_LOG_INTERVAL   60

/* a cluster: the most nodes a link makes, whatever the nodes announce */
#define NGX_HTTP_HISTORY_NODES_MAX      64

/* how often a unit is sent elsewhere, or retried later */
#define NGX_HTTP_HISTORY_REDIRECTS_MAX  5
#define NGX_HTTP_HISTORY_RETRIES_MAX    20
#define NGX_HTTP_HISTORY_RETRY_MIN      100
#define NGX_HTTP_HISTORY_RETRY_MAX      1000

/* ASK: this goes before the unit, in room kept in front of its commands */
#define NGX_HTTP_HISTORY_ASKING         "*1\r\n$6\r\nASKING\r\n"
#define NGX_HTTP_HISTORY_ASKING_LEN     (sizeof(NGX_HTTP_HISTORY_ASKING) - 1)

/* read and parsed in one read event at most; the rest in a posted one */
#define NGX_HTTP_HISTORY_READ_BUDGET    65536

/* a reply pool that grew past this is made anew, not kept */
#define NGX_HTTP_HISTORY_REPLIES_KEEP   65536

/* AUTH, SELECT, ROLE (with Sentinel), PING */
#define NGX_HTTP_HISTORY_HANDSHAKE_MAX  4

/* the longest integer line ":<number>" read */
#define NGX_HTTP_HISTORY_INTEGER_LEN    32

/*
 * Sentinel's replay= window: acknowledged units that cannot be sent again
 * are counted in this many spans of the window
 */
#define NGX_HTTP_HISTORY_REPLAY_SPANS   64


/* what a reply must look like */
#define NGX_HTTP_HISTORY_SHAPE_ANY          0
#define NGX_HTTP_HISTORY_SHAPE_OK           1   /* +OK */
#define NGX_HTTP_HISTORY_SHAPE_OK_NIL       2   /* +OK or nil */
#define NGX_HTTP_HISTORY_SHAPE_PONG         3   /* +PONG */
#define NGX_HTTP_HISTORY_SHAPE_STATUS       4
#define NGX_HTTP_HISTORY_SHAPE_INTEGER      5
#define NGX_HTTP_HISTORY_SHAPE_STRING       6
#define NGX_HTTP_HISTORY_SHAPE_STRINGS      7   /* an array of strings */
#define NGX_HTTP_HISTORY_SHAPE_STRINGS_NIL  8   /* ... of strings or nils */
#define NGX_HTTP_HISTORY_SHAPE_MULTI        9
#define NGX_HTTP_HISTORY_SHAPE_EXEC         10
#define NGX_HTTP_HISTORY_SHAPE_TAG          11  /* the string sent */

/* entries of ngx_http_history_command_kinds[] the link refers to */
#define NGX_HTTP_HISTORY_KIND_ANY           0
#define NGX_HTTP_HISTORY_KIND_PING_ARG      2
#define NGX_HTTP_HISTORY_KIND_AUTH          3
#define NGX_HTTP_HISTORY_KIND_SELECT        4
#define NGX_HTTP_HISTORY_KIND_PING          5
#define NGX_HTTP_HISTORY_KIND_ROLE          6
#define NGX_HTTP_HISTORY_KIND_NAMED         3   /* looked up from here */


/* ngx_http_history_scan() states */
#define NGX_HTTP_HISTORY_SCAN_TYPE     0
#define NGX_HTTP_HISTORY_SCAN_LINE     1
#define NGX_HTTP_HISTORY_SCAN_INTEGER  2
#define NGX_HTTP_HISTORY_SCAN_LENGTH   3
#define NGX_HTTP_HISTORY_SCAN_DIGITS   4
#define NGX_HTTP_HISTORY_SCAN_NIL      5
#define NGX_HTTP_HISTORY_SCAN_CR       6
#define NGX_HTTP_HISTORY_SCAN_LF       7
#define NGX_HTTP_HISTORY_SCAN_BULK     8


typedef struct {
    ngx_str_t                      name;
    ngx_uint_t                     shape;
    ngx_uint_t                     idempotent;  /* twice is as once */
} ngx_http_history_command_kind_t;


/* units acknowledged in one span of the replay= window, not kept */

typedef struct {
    ngx_msec_t                     span;       /* its start / its length */
    ngx_uint_t                     n;
} ngx_http_history_unsure_t;


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
    ngx_http_history_ssl_node_t    ssl;
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
    u_char                         handshake_kind[
                                       NGX_HTTP_HISTORY_HANDSHAKE_MAX];

    ngx_http_history_scan_t        scan;
    redisReply                    *held;       /* a tagged unit's reply */

    ngx_event_t                    reconnect;
    ngx_event_t                    flush;
    ngx_msec_t                     backoff;
    ngx_http_history_node_state_e  state;
    unsigned                       up:1;       /* Redis has answered */
    unsigned                       down_reported:1;
    unsigned                       resolved:1; /* by Sentinel, for now */

    time_t                         down_since;
    time_t                         down_logged;
    ngx_uint_t                     down_dropped;
    ngx_uint_t                     down_failed;
    ngx_uint_t                     unreported;
    time_t                         failure_logged;
    time_t                         error_logged;
    time_t                         drop_logged;

    ngx_uint_t                     nslots;     /* a cluster's map gives it */
    ngx_http_history_node_stats_t *stats;
};


/*
 * A unit as the link keeps it: its commands formatted in one buffer
 * right behind it, how many replies are still to come, and who waits.
 */

struct ngx_http_history_unit_s {
    ngx_queue_t                    queue;
    ngx_buf_t                      buf;
    ngx_uint_t                     slot;
    ngx_uint_t                     replies;
    ngx_http_history_reply_pt      handler;
    void                          *data;
    ngx_http_history_shape_t       shape;

    /* a cluster's answers: where to next, and how often it went there */
    u_char                        *commands;   /* buf.start but for ASKING */
    ngx_uint_t                     index;      /* replies come already */
    ngx_http_history_node_t       *target;
    ngx_uint_t                     redirect;
    ngx_uint_t                     redirects;
    ngx_uint_t                     retries;
    ngx_msec_t                     due;        /* when to retry */

    unsigned                       error:1;
    unsigned                       idempotent:1;
    unsigned                       resent:1;
    unsigned                       transaction:1;
    unsigned                       executed:1; /* some command took effect */
    unsigned                       asking:1;
    unsigned                       replayed:1; /* to a new master */

    /* the link's own query: any reply to the handler, fails when down */
    unsigned                       query:1;
};


struct ngx_http_history_link_s {
    ngx_http_history_redis_conf_t *conf;
    ngx_pool_t                    *pool;
    ngx_array_t                    nodes;      /* ngx_http_history_node_t * */
    ngx_uint_t                     queued;
    ngx_uint_t                     tags;
    u_char                        *recv_buf;
    ngx_chain_t                    chain[NGX_HTTP_HISTORY_CHAIN_MAX];
    ngx_http_history_link_stats_t *stats;
    ngx_http_history_sentinel_t   *sentinel;

    /* a cluster: its map, and units waiting to be retried */
    ngx_http_history_cluster_t    *cluster;
    ngx_queue_t                    retry;
    ngx_event_t                    retry_event;
    ngx_http_history_node_stats_t  spare;      /* nodes past the figures' */
    time_t                         redirect_logged;
    time_t                         nodes_logged;

    /*
     * Sentinel, with replay=: the units the master acknowledged lately,
     * the idempotent ones kept (oldest first, their "due" the time of the
     * reply), the others counted by span; the master that acknowledged
     * them, and when the link's last connection to it ended
     */
    ngx_queue_t                    kept;
    ngx_uint_t                     nkept;
    ngx_http_history_unsure_t     *unsure;
    ngx_msec_t                     span;
    ngx_msec_t                     closed;
    ngx_sockaddr_t                 kept_sockaddr;
    socklen_t                      kept_socklen;
    unsigned                       changed:1;  /* the master changed */
};


static ngx_http_history_node_t *ngx_http_history_link_node_push(
    ngx_http_history_link_t *link, ngx_addr_t *addr, ngx_str_t *name);
static ngx_int_t ngx_http_history_node_init(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node, ngx_addr_t *addr, ngx_str_t *name,
    ngx_log_t *log);
static ngx_http_history_unit_t *ngx_http_history_unit_create(
    ngx_http_history_link_t *link, ngx_http_history_batch_t *b,
    ngx_http_history_reply_pt handler, void *data);
static void ngx_http_history_node_queue(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd);
static void ngx_http_history_node_redirect(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd, redisReply *reply);
static void ngx_http_history_unit_redirect(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd);
static void ngx_http_history_unit_reset(ngx_http_history_unit_t *cmd,
    ngx_uint_t asking);
static void ngx_http_history_link_retry_handler(ngx_event_t *ev);
static void ngx_http_history_link_state(ngx_http_history_link_t *link);
static ngx_int_t ngx_http_history_node_prepare(
    ngx_http_history_node_t *node);
static ngx_uint_t ngx_http_history_batch_slot(ngx_http_history_batch_t *b);
static ngx_http_history_node_t *ngx_http_history_link_node(
    ngx_http_history_link_t *link, ngx_uint_t slot);
static void ngx_http_history_node_connect(ngx_http_history_node_t *node);
static void ngx_http_history_node_resolved(void *data, ngx_addr_t *addr);
static void ngx_http_history_link_moved(void *data,
    struct sockaddr *sockaddr, socklen_t socklen);
static ngx_uint_t ngx_http_history_link_kept_by(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node);
static void ngx_http_history_link_keep(ngx_http_history_link_t *link,
    ngx_http_history_unit_t *cmd);
static void ngx_http_history_link_trim(ngx_http_history_link_t *link,
    ngx_msec_t now);
static void ngx_http_history_link_unsure(ngx_http_history_link_t *link,
    ngx_msec_t when);
static void ngx_http_history_link_replay(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node);
static void ngx_http_history_node_connected(ngx_http_history_node_t *node);
static void ngx_http_history_node_ssl_handler(ngx_connection_t *c);
static void ngx_http_history_node_talk(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_test_connect(ngx_connection_t *c);
static void ngx_http_history_node_write_handler(ngx_event_t *wev);
static void ngx_http_history_node_read_handler(ngx_event_t *rev);
static void ngx_http_history_node_flush_handler(ngx_event_t *ev);
static void ngx_http_history_node_reconnect_handler(ngx_event_t *ev);
static void ngx_http_history_node_send(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_process(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_handshake_reply(
    ngx_http_history_node_t *node, redisReply *reply);
static ngx_int_t ngx_http_history_node_handshake_next(
    ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_node_reply(ngx_http_history_node_t *node,
    redisReply *reply);
static void ngx_http_history_node_ready(ngx_http_history_node_t *node);
static void ngx_http_history_node_quiet(ngx_http_history_node_t *node);
static void ngx_http_history_node_refused(ngx_http_history_node_t *node);
static ngx_int_t ngx_http_history_shape_match(ngx_uint_t shape,
    redisReply *reply);
static void ngx_http_history_scan_done(ngx_http_history_scan_t *s);
static ngx_uint_t ngx_http_history_reply_failed(redisReply *reply);
static void ngx_http_history_node_log_reply(ngx_http_history_node_t *node,
    redisReply *reply);
static void ngx_http_history_node_close(ngx_http_history_node_t *node);
static void ngx_http_history_node_disconnect(ngx_http_history_node_t *node);
static void ngx_http_history_node_up(ngx_http_history_node_t *node);
static void ngx_http_history_node_drop_all(ngx_http_history_node_t *node);
static void ngx_http_history_node_drop(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd);
static void ngx_http_history_node_log_drop(ngx_http_history_node_t *node);
static void ngx_http_history_unit_done(ngx_http_history_link_t *link,
    ngx_http_history_unit_t *cmd, redisReply *reply);
static void *ngx_http_history_replies_alloc(ngx_http_history_replies_t *rp,
    size_t size, ngx_uint_t zero);
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


/*
 * The commands whose replies the link can check, with the shape of the
 * reply each must get, and whether running one twice leaves what running
 * it once does (a unit made only of those is sent again after a lost
 * connection).  Others are let through as any reply, and are not sent
 * again; an error reply is right for every command but those of the
 * handshake.
 */

static ngx_http_history_command_kind_t  ngx_http_history_command_kinds[] = {
    { ngx_string("a command"), NGX_HTTP_HISTORY_SHAPE_ANY, 0 },
    { ngx_string("PING"), NGX_HTTP_HISTORY_SHAPE_TAG, 1 },
    { ngx_string("PING"), NGX_HTTP_HISTORY_SHAPE_STRING, 1 },
    { ngx_string("AUTH"), NGX_HTTP_HISTORY_SHAPE_OK, 1 },
    { ngx_string("SELECT"), NGX_HTTP_HISTORY_SHAPE_OK, 1 },
    { ngx_string("PING"), NGX_HTTP_HISTORY_SHAPE_PONG, 1 },
    { ngx_string("ROLE"), NGX_HTTP_HISTORY_SHAPE_ANY, 1 },

    { ngx_string("MULTI"), NGX_HTTP_HISTORY_SHAPE_MULTI, 1 },
    { ngx_string("EXEC"), NGX_HTTP_HISTORY_SHAPE_EXEC, 1 },
    { ngx_string("LRANGE"), NGX_HTTP_HISTORY_SHAPE_STRINGS, 1 },
    { ngx_string("MGET"), NGX_HTTP_HISTORY_SHAPE_STRINGS_NIL, 1 },
    { ngx_string("ZMSCORE"), NGX_HTTP_HISTORY_SHAPE_STRINGS_NIL, 1 },
    { ngx_string("SET"), NGX_HTTP_HISTORY_SHAPE_OK_NIL, 1 },
    { ngx_string("LTRIM"), NGX_HTTP_HISTORY_SHAPE_OK, 1 },
    { ngx_string("TYPE"), NGX_HTTP_HISTORY_SHAPE_STATUS, 1 },
    { ngx_string("DEL"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("UNLINK"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("EXISTS"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("EXPIRE"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("PEXPIRE"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("EXPIREAT"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("TTL"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("INCR"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 0 },
    { ngx_string("LPUSH"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 0 },
    { ngx_string("RPUSH"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 0 },
    { ngx_string("LREM"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("LLEN"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("PFADD"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("PFCOUNT"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("ZADD"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("ZCOUNT"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("ZREMRANGEBYSCORE"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 },
    { ngx_string("ZCARD"), NGX_HTTP_HISTORY_SHAPE_INTEGER, 1 }
};


/* what is expected, for the log; in the order of the shapes */

static char  *ngx_http_history_shape_names[] = {
    "any reply",
    "+OK",
    "+OK or nil",
    "+PONG",
    "a status",
    "an integer",
    "a string",
    "an array of strings",
    "an array of strings or nils",
    "+OK",
    "an array of one reply per queued command, or nil",
    "the string sent"
};


/* CRC16-CCITT (XMODEM: polynomial 0x1021, no reflection), a byte at a time */

static uint16_t  ngx_http_history_crc16[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
    0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
    0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
    0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
    0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
    0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
    0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
    0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
    0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
    0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
    0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
    0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
    0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
    0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
    0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
    0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
    0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
    0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
    0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
    0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
    0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0
};


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
    ngx_addr_t               *addr;
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

    if (ngx_array_init(&link->nodes, pool, 4,
                       sizeof(ngx_http_history_node_t *))
        != NGX_OK)
    {
        goto failed;
    }

    ngx_queue_init(&link->retry);
    ngx_queue_init(&link->kept);

    /* this worker's nodes, none yet (a reload reuses the figures) */
    ngx_memzero(stats->nodes, sizeof(stats->nodes));

    link->retry_event.handler = ngx_http_history_link_retry_handler;
    link->retry_event.data = link;
    link->retry_event.log = cycle->log;

    if (rcf->cluster) {

        /* the seeds first; the masters as the map names them */

        link->cluster = ngx_http_history_cluster_create(link, rcf,
                                                        cycle->log);
        if (link->cluster == NULL) {
            goto failed;
        }

        return link;
    }

    addr = rcf->addr;

    if (rcf->sentinel_name.len) {
        link->sentinel = ngx_http_history_sentinel_create(cycle, pool, rcf,
                                                 stats,
                                                 ngx_http_history_link_moved,
                                                 link);
        if (link->sentinel == NULL) {
            goto failed;
        }

        addr = ngx_http_history_sentinel_addr(link->sentinel);

        if (rcf->replay) {
            link->unsure = ngx_pcalloc(pool,
                                       NGX_HTTP_HISTORY_REPLAY_SPANS
                                       * sizeof(ngx_http_history_unsure_t));
            if (link->unsure == NULL) {
                goto failed;
            }

            link->span = ngx_max(rcf->replay / NGX_HTTP_HISTORY_REPLAY_SPANS,
                                 1);
        }
    }

    /* the address itself: a Sentinel changes it where it is */

    if (ngx_http_history_link_node_push(link, addr, NULL) == NULL) {
        goto failed;
    }

    return link;

failed:

    if (link && link->sentinel) {
        ngx_http_history_sentinel_destroy(link->sentinel);
    }

    ngx_destroy_pool(pool);
    return NULL;
}


/*
 * The node of an address, made if there is none: with a single server at
 * start-up, connecting at once; in a cluster as the map or a redirect
 * names it, connecting once it has work.  A node made for a hostname
 * checks that name in its TLS certificate, else its address.
 */

ngx_http_history_node_t *
ngx_http_history_link_node_add(ngx_http_history_link_t *link,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name)
{
    u_char                    text[NGX_SOCKADDR_STRLEN];
    ngx_uint_t                i, n;
    ngx_addr_t               *addr;
    ngx_http_history_node_t **nodes;

    nodes = link->nodes.elts;
    n = link->nodes.nelts;

    for (i = 0; i < n; i++) {
        if (ngx_cmp_sockaddr(nodes[i]->peer.sockaddr, nodes[i]->peer.socklen,
                             sockaddr, socklen, 1)
            == NGX_OK)
        {
            return nodes[i];
        }
    }

    if (n == NGX_HTTP_HISTORY_NODES_MAX) {
        /* a map or a redirect may name any address: logged once a while */

        if (ngx_time() - link->nodes_logged >= NGX_HTTP_HISTORY_LOG_INTERVAL) {
            link->nodes_logged = ngx_time();

            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "history: more than %d redis nodes, no more are "
                          "made until a reload", NGX_HTTP_HISTORY_NODES_MAX);
        }

        return NULL;
    }

    addr = ngx_pcalloc(link->pool, sizeof(ngx_addr_t));
    if (addr == NULL) {
        return NULL;
    }

    addr->sockaddr = ngx_pnalloc(link->pool, socklen);
    if (addr->sockaddr == NULL) {
        return NULL;
    }

    ngx_memcpy(addr->sockaddr, sockaddr, socklen);
    addr->socklen = socklen;

    addr->name.len = ngx_sock_ntop(sockaddr, socklen, text,
                                   NGX_SOCKADDR_STRLEN, 1);
    addr->name.data = ngx_pnalloc(link->pool, addr->name.len);
    if (addr->name.data == NULL) {
        return NULL;
    }

    ngx_memcpy(addr->name.data, text, addr->name.len);

    return ngx_http_history_link_node_push(link, addr, name);
}


/* a new node of the link, at that address */

static ngx_http_history_node_t *
ngx_http_history_link_node_push(ngx_http_history_link_t *link,
    ngx_addr_t *addr, ngx_str_t *name)
{
    ngx_uint_t                 n;
    ngx_http_history_node_t   *node, **np;

    n = link->nodes.nelts;

    node = ngx_pcalloc(link->pool, sizeof(ngx_http_history_node_t));
    np = ngx_array_push(&link->nodes);

    if (node == NULL || np == NULL) {
        return NULL;
    }

    /* the figures of the first nodes; the others share a spare */

    if (link->conf->cluster && n < NGX_HTTP_HISTORY_STATS_NODES) {
        node->stats = &link->stats->nodes[n];
        ngx_memzero(node->stats, sizeof(ngx_http_history_node_stats_t));
        ngx_memcpy(node->stats->addr, addr->name.data, addr->name.len);
        node->stats->addr[addr->name.len] = '\0';
        node->stats->used = 1;

    } else {
        node->stats = &link->spare;
    }

    *np = node;

    if (ngx_http_history_node_init(link, node, addr, name, ngx_cycle->log)
        != NGX_OK)
    {
        link->nodes.nelts--;
        return NULL;
    }

    return node;
}


ngx_http_history_node_t **
ngx_http_history_link_nodes(ngx_http_history_link_t *link, ngx_uint_t *n)
{
    *n = link->nodes.nelts;

    return link->nodes.elts;
}


static ngx_int_t
ngx_http_history_node_init(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node, ngx_addr_t *addr, ngx_str_t *name,
    ngx_log_t *log)
{
    u_char              *p;
    ngx_str_t            host;
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
    cln->data = &node->replies;

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

    /* a cluster's node: by the hostname it was named by, or its address */

    host = link->conf->host;

    if (name) {
        host = *name;

    } else if (link->conf->cluster) {
        host = addr->name;

        p = ngx_strlchr(host.data, host.data + host.len, ']');
        p = ngx_strlchr(p ? p : host.data, host.data + host.len, ':');

        if (p) {
            host.len = p - host.data;
        }
    }

    if (ngx_http_history_ssl_node_init(&node->ssl, link->conf, &host,
                                       link->stats, node->stats,
                                       link->pool)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!link->conf->cluster) {
        ngx_http_history_node_connect(node);
    }

    return NGX_OK;
}


/*
 * AUTH, SELECT and PING, formatted once and sent first on every
 * connection; nothing else is sent before their replies arrive, and the
 * connection is not counted as up before then: a server that accepts and
 * closes, greets with an error or does not answer is not Redis answering.
 */

static ngx_int_t
ngx_http_history_node_prepare(ngx_http_history_node_t *node)
{
    u_char                         *p;
    size_t                          size;
    ngx_uint_t                      i;
    ngx_http_history_batch_t        b;
    ngx_http_history_redis_conf_t  *rcf;

    rcf = node->link->conf;

    ngx_http_history_batch_init(&b, NULL);

    if (rcf->password.len) {
        ngx_http_history_batch_command(&b, "AUTH");

        if (rcf->username.len) {
            ngx_http_history_batch_arg(&b, rcf->username.data,
                                       rcf->username.len);
        }

        ngx_http_history_batch_arg(&b, rcf->password.data,
                                   rcf->password.len);

        node->handshake_kind[b.ncommands - 1] = NGX_HTTP_HISTORY_KIND_AUTH;
    }

    if (rcf->db) {
        ngx_http_history_batch_command(&b, "SELECT");
        ngx_http_history_batch_number(&b, (time_t) rcf->db);

        node->handshake_kind[b.ncommands - 1] = NGX_HTTP_HISTORY_KIND_SELECT;
    }

    if (node->link->sentinel) {
        /* a Sentinel's answer may be stale: is it the master? */
        ngx_http_history_batch_command(&b, "ROLE");

        node->handshake_kind[b.ncommands - 1] = NGX_HTTP_HISTORY_KIND_ROLE;
    }

    ngx_http_history_batch_command(&b, "PING");

    node->handshake_kind[b.ncommands - 1] = NGX_HTTP_HISTORY_KIND_PING;

    node->handshake_replies = b.ncommands;

    size = 0;

    for (i = 0; i < b.ncommands; i++) {
        size += ngx_http_history_format_size(&b.command[i]);
    }

    p = ngx_pnalloc(node->link->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    node->handshake.start = p;
    node->handshake.end = p + size;
    node->handshake.memory = 1;

    for (i = 0; i < b.ncommands; i++) {
        p = ngx_http_history_format(p, &b.command[i]);
    }

    return NGX_OK;
}


void
ngx_http_history_link_destroy(ngx_http_history_link_t *link)
{
    ngx_uint_t                 i, left;
    ngx_http_history_unit_t   *cmd;
    ngx_http_history_node_t   *node, **nodes;

    left = link->queued;

    if (link->sentinel) {
        ngx_http_history_sentinel_destroy(link->sentinel);
    }

    if (link->retry_event.timer_set) {
        ngx_del_timer(&link->retry_event);
    }

    while (!ngx_queue_empty(&link->retry)) {
        link->stats->dropped++;
        ngx_http_history_unit_done(link,
                                   ngx_queue_data(ngx_queue_head(&link->retry),
                                                  ngx_http_history_unit_t,
                                                  queue),
                                   NULL);
    }

    /* acknowledged: nothing to report */

    while (!ngx_queue_empty(&link->kept)) {
        cmd = ngx_queue_data(ngx_queue_head(&link->kept),
                             ngx_http_history_unit_t, queue);
        ngx_queue_remove(&cmd->queue);
        ngx_free(cmd);
    }

    link->nkept = 0;

    nodes = link->nodes.elts;

    for (i = 0; i < link->nodes.nelts; i++) {
        node = nodes[i];
        node->stats->connected = 0;

        if (node->reconnect.timer_set) {
            ngx_del_timer(&node->reconnect);
        }

        if (node->reconnect.posted) {
            ngx_delete_posted_event(&node->reconnect);
        }

        if (node->flush.posted) {
            ngx_delete_posted_event(&node->flush);
        }

        ngx_http_history_node_disconnect(node);

        while (!ngx_queue_empty(&node->inflight)) {
            ngx_http_history_unit_done(link,
                     ngx_queue_data(ngx_queue_head(&node->inflight),
                                    ngx_http_history_unit_t, queue),
                     NULL);
        }

        while (!ngx_queue_empty(&node->pending)) {
            ngx_http_history_node_drop(node,
                     ngx_queue_data(ngx_queue_head(&node->pending),
                                    ngx_http_history_unit_t, queue));
        }

        ngx_http_history_ssl_node_free(&node->ssl);
    }

    if (left) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "history: %ui redis commands not flushed on exit",
                      left);
    }

    if (link->cluster) {
        ngx_http_history_cluster_destroy(link->cluster);
    }

    ngx_destroy_pool(link->pool);
}


ngx_http_history_unit_t *
ngx_http_history_link_send(ngx_http_history_link_t *link,
    ngx_http_history_batch_t *b, ngx_http_history_reply_pt handler,
    void *data)
{
    ngx_uint_t                 i;
    ngx_queue_t               *q;
    ngx_http_history_unit_t   *cmd, *old;
    ngx_http_history_node_t   *node, *from, **nodes;

    if (b->overflow || b->crossslot || b->ncommands == 0) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "history: redis unit for \"%V\" not sent: %s",
                      &b->key,
                      b->crossslot ? "keys of another slot"
                                   : "no commands, or too many");
        return NULL;
    }

    /* a single server or Sentinel's master holds every slot */

    if (link->cluster) {
        (void) ngx_http_history_batch_slot(b);
    }

#if (NGX_DEBUG)
    if (ngx_cycle->log->log_level & NGX_LOG_DEBUG_EVENT) {
        (void) ngx_http_history_batch_slot(b);
    }
#endif

    node = ngx_http_history_link_node(link, b->slot);

    cmd = ngx_http_history_unit_create(link, b, handler, data);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_log_debug5(NGX_LOG_DEBUG_EVENT, &node->log, 0,
                   "history: redis unit %p for \"%V\": %ui commands, "
                   "%uz bytes, slot %ui",
                   cmd, &b->key, b->ncommands,
                   (size_t) (cmd->buf.last - cmd->buf.pos), b->slot);

    if (link->queued >= link->conf->queue) {

        /*
         * full: the oldest work not yet on the wire makes room, on the
         * node with the most waiting (in a cluster, the one that is away,
         * so that the others' work goes on landing)
         */

        from = node;
        nodes = link->nodes.elts;

        for (i = 0; i < link->nodes.nelts; i++) {
            if (nodes[i]->npending > from->npending) {
                from = nodes[i];
            }
        }

        old = NULL;

        for (q = ngx_queue_head(&from->pending);
             q != ngx_queue_sentinel(&from->pending);
             q = ngx_queue_next(q))
        {
            old = ngx_queue_data(q, ngx_http_history_unit_t, queue);

            if (old->buf.pos == old->buf.start && !old->query) {
                break;
            }

            old = NULL;
        }

        ngx_http_history_node_log_drop(from);

        if (old == NULL && !ngx_queue_empty(&link->retry)) {
            /* a cluster that is down: the oldest waiting for a retry */
            link->stats->dropped++;
            ngx_http_history_unit_done(link,
                                   ngx_queue_data(ngx_queue_head(&link->retry),
                                                  ngx_http_history_unit_t,
                                                  queue),
                                   NULL);

        } else if (old == NULL) {
            /* accepted and dropped at once, so that the figures add up */
            link->stats->queued++;
            link->stats->dropped++;
            node->down_dropped++;
            ngx_free(cmd);
            return NULL;

        } else {
            ngx_http_history_node_drop(from, old);
        }
    }

    link->queued++;
    link->stats->queued++;
    link->stats->depth = link->queued;

    ngx_http_history_node_queue(node, cmd);

    return cmd;
}


/*
 * A unit of the link's own (a cluster's map) to one node: it has any
 * reply, an error too, and fails at once if the connection does.
 */

ngx_int_t
ngx_http_history_node_query(ngx_http_history_node_t *node,
    ngx_http_history_batch_t *b, ngx_http_history_reply_pt handler,
    void *data)
{
    ngx_http_history_unit_t  *cmd;

    if (b->overflow || b->ncommands == 0) {
        return NGX_ERROR;
    }

    cmd = ngx_http_history_unit_create(node->link, b, handler, data);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->query = 1;
    cmd->idempotent = 0;

    node->link->queued++;
    node->link->stats->depth = node->link->queued;

    ngx_http_history_node_queue(node, cmd);

    return NGX_OK;
}


/*
 * A unit: its commands formatted once, behind room for an ASKING that a
 * cluster's ASK puts in front of them, and, when someone waits for its
 * reply, followed by "PING <tag>": the reply is handed over only once the
 * tag has come back, so that a reply slipped into the stream cannot give
 * a request another's answer.  The shape of each reply follows.
 */

static ngx_http_history_unit_t *
ngx_http_history_unit_create(ngx_http_history_link_t *link,
    ngx_http_history_batch_t *b, ngx_http_history_reply_pt handler,
    void *data)
{
    u_char                      *p, *start, tag[NGX_INT_T_LEN];
    size_t                       size, asking, tlen[2];
    ngx_uint_t                   k, tagged;
    const char                  *targv[2];
    ngx_http_history_unit_t     *cmd;
    ngx_http_history_command_t   targ;

    size = 0;

    for (k = 0; k < b->ncommands; k++) {
        size += ngx_http_history_format_size(&b->command[k]);
    }

    tagged = (handler != NULL);

    if (tagged) {
        targv[0] = "PING";
        tlen[0] = 4;
        targv[1] = (const char *) tag;
        tlen[1] = ngx_sprintf(tag, "%ui", ++link->tags) - tag;

        targ.argc = 2;
        targ.argv = targv;
        targ.argvlen = tlen;

        size += ngx_http_history_format_size(&targ);
    }

    asking = link->cluster ? NGX_HTTP_HISTORY_ASKING_LEN : 0;

    cmd = ngx_alloc(sizeof(ngx_http_history_unit_t) + asking + size
                    + b->ncommands + tagged, ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_http_history_unit_t));

    p = (u_char *) &cmd[1];
    p = ngx_cpymem(p, NGX_HTTP_HISTORY_ASKING, asking);
    start = p;

    cmd->commands = start;
    cmd->buf.start = start;
    cmd->buf.pos = start;
    cmd->buf.end = start + size;
    cmd->buf.memory = 1;

    for (k = 0; k < b->ncommands; k++) {
        p = ngx_http_history_format(p, &b->command[k]);
    }

    if (tagged) {
        p = ngx_http_history_format(p, &targ);

        /* "$<length>\r\n<tag>\r\n" ends the buffer */
        cmd->shape.tag.data = p - 2 - tlen[1];
        cmd->shape.tag.len = tlen[1];
    }

    cmd->buf.last = p;

    cmd->shape.kind = cmd->buf.end;
    cmd->shape.n = b->ncommands + tagged;

    /*
     * A unit someone waits for is not sent again: it gets its answer.
     * Others are when every command may run twice, or when the caller
     * says the unit as a whole may (the history transaction).
     */

    cmd->idempotent = !tagged;

    for (k = 0; k < b->ncommands; k++) {
        cmd->shape.kind[k] =
                       (u_char) ngx_http_history_shape_kind(&b->command[k]);

        if (!ngx_http_history_command_kinds[cmd->shape.kind[k]].idempotent) {
            cmd->idempotent = 0;
        }
    }

    if (b->idempotent && !tagged) {
        cmd->idempotent = 1;
    }

    if (tagged) {
        cmd->shape.kind[b->ncommands] = NGX_HTTP_HISTORY_KIND_TAG;
    }

    cmd->slot = b->slot;
    cmd->replies = cmd->shape.n;
    cmd->handler = handler;
    cmd->data = data;
    cmd->transaction = b->command[0].argc == 1
                       && b->command[0].argvlen[0] == 5
                       && ngx_strncmp(b->command[0].argv[0], "MULTI", 5) == 0;

    return cmd;
}


/* as new, or for another node: with ASKING in front, or not */

static void
ngx_http_history_unit_reset(ngx_http_history_unit_t *cmd, ngx_uint_t asking)
{
    cmd->asking = asking;
    cmd->buf.start = asking ? cmd->commands - NGX_HTTP_HISTORY_ASKING_LEN
                            : cmd->commands;
    cmd->buf.pos = cmd->buf.start;
    cmd->replies = cmd->shape.n + (asking ? 1 : 0);
    cmd->index = 0;
    cmd->shape.next = 0;
    cmd->shape.multi = 0;
    cmd->shape.aborted = 0;
    cmd->error = 0;
    cmd->executed = 0;
    cmd->redirect = NGX_HTTP_HISTORY_REPLY_ERROR;
    cmd->target = NULL;
}


/* a unit onto a node's queue; a node of a cluster connects when needed */

static void
ngx_http_history_node_queue(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd)
{
    ngx_queue_insert_tail(&node->pending, &cmd->queue);
    node->npending++;

    if (node->state >= NGX_HTTP_HISTORY_NODE_HANDSHAKE) {
        if (!node->flush.posted) {
            ngx_post_event(&node->flush, &ngx_posted_events);
        }

        return;
    }

    /* work is waiting: it keeps an exiting worker until flushed */
    node->reconnect.cancelable = 0;

    if (node->state == NGX_HTTP_HISTORY_NODE_DOWN
        && node->link->cluster
        && !node->reconnect.timer_set && !node->reconnect.posted)
    {
        ngx_post_event(&node->reconnect, &ngx_posted_events);
    }
}


void
ngx_http_history_link_cancel(ngx_http_history_unit_t *unit)
{
    unit->handler = NULL;
    unit->data = NULL;
}


/*
 * Whether the node of this key is connected or connecting: a read is only
 * worth sending then, since a request waits for the answer; while the node
 * waits to reconnect, Redis is known to be away.
 */

ngx_uint_t
ngx_http_history_link_up(ngx_http_history_link_t *link, ngx_str_t *key)
{
    ngx_uint_t  slot;

    slot = link->cluster ? ngx_http_history_key_slot(key->data, key->len)
                         : 0;

    return ngx_http_history_link_node(link, slot)->state
           != NGX_HTTP_HISTORY_NODE_DOWN;
}


/* the node that holds a hash slot */

static ngx_http_history_node_t *
ngx_http_history_link_node(ngx_http_history_link_t *link, ngx_uint_t slot)
{
    ngx_http_history_node_t  **nodes;

    if (link->cluster) {
        return ngx_http_history_cluster_node(link->cluster, slot);
    }

    /* a single server: every slot lives on the first node */

    nodes = link->nodes.elts;

    return nodes[0];
}


static void
ngx_http_history_node_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_history_node_quiet(ev->data);
    ngx_http_history_node_connect(ev->data);
}


static void
ngx_http_history_node_connect(ngx_http_history_node_t *node)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    if (node->link->sentinel && !node->resolved) {
        /* where the master is now: asked before every connection */
        node->state = NGX_HTTP_HISTORY_NODE_CONNECTING;
        ngx_http_history_sentinel_resolve(node->link->sentinel,
                                          ngx_http_history_node_resolved,
                                          node);
        return;
    }

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
ngx_http_history_node_resolved(void *data, ngx_addr_t *addr)
{
    ngx_http_history_node_t  *node = data;

    if (addr == NULL) {
        /* no Sentinel answered: as if the node were down */
        ngx_http_history_node_close(node);
        return;
    }

    node->peer.sockaddr = addr->sockaddr;
    node->peer.socklen = addr->socklen;
    node->peer.name = &addr->name;
    node->resolved = 1;

    ngx_http_history_node_connect(node);
}


/*
 * A Sentinel says the master moved: the connection to the old one is
 * closed, and the next one goes where the Sentinel said; what the old one
 * acknowledged lately is sent there again (replay=).  A connection to the
 * master announced, already checked with ROLE, is kept as it is.
 */

static void
ngx_http_history_link_moved(void *data, struct sockaddr *sockaddr,
    socklen_t socklen)
{
    ngx_http_history_link_t  *link = data;

    ngx_uint_t                 i;
    ngx_http_history_node_t   *node, **nodes;

    nodes = link->nodes.elts;

    for (i = 0; i < link->nodes.nelts; i++) {
        node = nodes[i];

        if (node->state == NGX_HTTP_HISTORY_NODE_READY
            && ngx_cmp_sockaddr(node->peer.sockaddr, node->peer.socklen,
                                sockaddr, socklen, 1)
               == NGX_OK)
        {
            continue;
        }

        link->changed = 1;

        if (node->peer.connection) {
            ngx_http_history_node_close(node);

        } else if (node->reconnect.timer_set) {
            ngx_del_timer(&node->reconnect);
            ngx_add_timer(&node->reconnect, 1);
        }
    }
}


static void
ngx_http_history_node_connected(ngx_http_history_node_t *node)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = node->peer.connection;

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_history_node_close(node);
        return;
    }

    /* TLS first, if configured, within connect_timeout */

    rc = ngx_http_history_ssl_handshake(&node->ssl, c,
                                        ngx_http_history_node_ssl_handler);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_history_node_close(node);
        return;
    }

    ngx_http_history_node_talk(node);
}


static void
ngx_http_history_node_ssl_handler(ngx_connection_t *c)
{
    ngx_http_history_node_t  *node;

    node = c->data;

    c->read->handler = ngx_http_history_node_read_handler;
    c->write->handler = ngx_http_history_node_write_handler;

    if (ngx_http_history_ssl_handshaked(&node->ssl, c) != NGX_OK) {
        ngx_http_history_node_close(node);
        return;
    }

    ngx_http_history_node_talk(node);
}


/* the connection is there (and secured): the Redis handshake, then work */

static void
ngx_http_history_node_talk(ngx_http_history_node_t *node)
{
    ngx_connection_t  *c;

    c = node->peer.connection;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    node->log.action = "talking to redis";

    ngx_http_history_scan_init(&node->scan, node->link->conf->max_reply);

    node->state = NGX_HTTP_HISTORY_NODE_HANDSHAKE;
    node->handshake_left = node->handshake_replies;
    node->handshake.pos = node->handshake.start;
    node->handshake.last = node->handshake.end;

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

    ngx_http_history_node_quiet(node);

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
    ngx_http_history_node_quiet(ev->data);
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
    ngx_http_history_unit_t  *cmd;
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
            if (node->handshake.pos != node->handshake.last) {
                cl[n].buf = &node->handshake;
                cl[n].next = NULL;
                n++;
            }

        } else {
            for (q = ngx_queue_head(&node->pending);
                 q != ngx_queue_sentinel(&node->pending)
                 && n < NGX_HTTP_HISTORY_CHAIN_MAX;
                 q = ngx_queue_next(q))
            {
                cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

                cl[n].buf = &cmd->buf;
                cl[n].next = NULL;

                if (n) {
                    cl[n - 1].next = &cl[n];
                }

                n++;
            }
        }

        /* what nginx's SSL holds is written at a flush, or with no chain */

        if (n) {
            cl[n - 1].buf->flush = 1;

        } else if (!c->buffered) {
            break;
        }

        out = c->send_chain(c, n ? cl : NULL, 0);

        if (out == NGX_CHAIN_ERROR) {
            ngx_http_history_node_close(node);
            return;
        }

        if (node->state == NGX_HTTP_HISTORY_NODE_READY) {
            for (i = 0; i < n; i++) {
                cmd = ngx_queue_data(ngx_queue_head(&node->pending),
                                     ngx_http_history_unit_t, queue);

                if (cmd->buf.pos != cmd->buf.last) {
                    break;
                }

                ngx_queue_remove(&cmd->queue);
                ngx_queue_insert_tail(&node->inflight, &cmd->queue);
                node->npending--;
                if (!cmd->query) {
                    link->stats->sent++;
                }
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
        || c->buffered
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
    size_t                    used, budget;
    ssize_t                   n;
    ngx_uint_t                progress;
    ngx_connection_t         *c;
    ngx_http_history_node_t  *node;
    ngx_http_history_link_t  *link;

    c = rev->data;
    node = c->data;
    link = node->link;

    ngx_http_history_node_quiet(node);

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
    budget = NGX_HTTP_HISTORY_READ_BUDGET;

    while (rev->ready) {

        if (budget == 0) {
            /* the rest after the other events: no reply holds the worker */
            ngx_post_event(rev, &ngx_posted_events);
            break;
        }

        n = c->recv(c, link->recv_buf,
                    ngx_min(budget, NGX_HTTP_HISTORY_RECV_SIZE));

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

        budget -= n;

        /* what hiredis may read: up to a reply the limits refuse */

        used = ngx_http_history_scan(&node->scan, link->recv_buf, n);

        if (used
            && redisReaderFeed(node->reader, (const char *) link->recv_buf,
                               used)
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

        if (node->scan.error) {
            ngx_http_history_node_refused(node);
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


/*
 * A reply the scan refused: too large for the limit (known from its
 * header), nested too deep, or not Redis's protocol.  Nothing of it is
 * read further; what was in flight fails.
 */

static void
ngx_http_history_node_refused(ngx_http_history_node_t *node)
{
    ngx_log_error(NGX_LOG_ERR, &node->log, 0, node->scan.error,
                  node->scan.number, node->scan.max);

    ngx_http_history_node_close(node);
}


static ngx_int_t
ngx_http_history_node_process(ngx_http_history_node_t *node)
{
    void  *r;

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

        if (node->state == NGX_HTTP_HISTORY_NODE_HANDSHAKE) {
            if (ngx_http_history_node_handshake_reply(node, r) != NGX_OK) {
                ngx_http_history_node_close(node);
                return NGX_ERROR;
            }

            ngx_http_history_reader_release(&node->replies);
            continue;
        }

        if (ngx_http_history_node_reply(node, r) != NGX_OK) {
            ngx_http_history_node_close(node);
            return NGX_ERROR;
        }
    }
}


/*
 * A reply is the next one of the oldest unit in flight, and must have the
 * shape its command gives; if it has not, or nothing waits for it, the
 * stream cannot be trusted any longer and the connection is dropped.
 */

static ngx_int_t
ngx_http_history_node_reply(ngx_http_history_node_t *node,
    redisReply *reply)
{
    ngx_uint_t                kind, readonly;
    const char               *expected;
    ngx_http_history_unit_t  *cmd;

    if (ngx_queue_empty(&node->inflight)) {
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis sent a reply nothing asked for");
        return NGX_ERROR;
    }

    cmd = ngx_queue_data(ngx_queue_head(&node->inflight),
                         ngx_http_history_unit_t, queue);

    if (cmd->asking && cmd->index == 0) {

        /* ASKING, put in front of the unit for an ASK */

        cmd->index++;
        cmd->replies--;

        if (reply->type != REDIS_REPLY_STATUS) {
            ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                          "redis answered ASKING with a reply of the "
                          "wrong shape, +OK expected");
            return NGX_ERROR;
        }

        ngx_http_history_reader_release(&node->replies);
        return NGX_OK;
    }

    kind = cmd->shape.kind[cmd->shape.next];
    readonly = 0;

    if (ngx_http_history_shape_check(&cmd->shape, reply, &expected)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis answered %V with a reply of the wrong shape, "
                      "%s expected", ngx_http_history_shape_name(kind),
                      expected);
        return NGX_ERROR;
    }

    if (kind == NGX_HTTP_HISTORY_KIND_TAG) {
        /* the tag is back: the reply before it was this unit's own */
        reply = node->held;
        node->held = NULL;

    } else {
        if (cmd->query) {
            /* the link's own: any reply goes to its handler */

        } else if (node->link->cluster) {
            ngx_http_history_node_redirect(node, cmd, reply);
            cmd->index++;

        } else if (ngx_http_history_reply_failed(reply)) {
            cmd->error = 1;
            ngx_http_history_node_log_reply(node, reply);

            /* written to a replica: where is the master now? */
            readonly = node->link->sentinel
                       && reply->type == REDIS_REPLY_ERROR
                       && reply->len >= 8
                       && ngx_strncmp(reply->str, "READONLY", 8) == 0;
        }

        if (cmd->shape.next == cmd->shape.n - 1
            && cmd->shape.kind[cmd->shape.next] == NGX_HTTP_HISTORY_KIND_TAG)
        {
            /* kept in the reply pool until the tag comes */
            node->held = reply;
            cmd->replies--;
            return NGX_OK;
        }
    }

    if (--cmd->replies == 0) {
        if (cmd->redirect != NGX_HTTP_HISTORY_REPLY_ERROR
            && (!cmd->executed || cmd->idempotent))
        {
            ngx_http_history_unit_redirect(node, cmd);

        } else {
            if (cmd->redirect != NGX_HTTP_HISTORY_REPLY_ERROR) {
                /* partly done here: not twice */
                cmd->error = 1;
            }

            ngx_http_history_unit_done(node->link, cmd, reply);
        }

        if (!node->up && !readonly) {
            ngx_http_history_node_up(node);
        }
    }

    ngx_http_history_reader_release(&node->replies);

    if (readonly) {
        /*
         * written to a replica: the connection closes, the master is
         * asked, and what this node acknowledged lately may be gone
         */
        node->link->changed = 1;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_history_node_handshake_reply(ngx_http_history_node_t *node,
    redisReply *reply)
{
    ngx_uint_t                        kind;
    ngx_http_history_command_kind_t  *hc;

    kind = node->handshake_kind[node->handshake_replies
                                - node->handshake_left];
    hc = &ngx_http_history_command_kinds[kind];

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis refused %V: \"%*s\"",
                      &hc->name, (size_t) reply->len, reply->str);
        return NGX_ERROR;
    }

    if (kind == NGX_HTTP_HISTORY_KIND_ROLE) {
        /* a Sentinel's answer may be stale: is it the master? */

        if (ngx_http_history_sentinel_role(node->link->sentinel, reply,
                                           &node->log)
            == NGX_OK)
        {
            return ngx_http_history_node_handshake_next(node);
        }

        if (ngx_http_history_link_kept_by(node->link, node)) {
            /* the master that acknowledged the units kept is no more */
            node->link->changed = 1;
        }

        return NGX_ERROR;
    }

    if (ngx_http_history_shape_match(hc->shape, reply) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis answered %V with a reply of the wrong shape, "
                      "%s expected",
                      &hc->name, ngx_http_history_shape_names[hc->shape]);
        return NGX_ERROR;
    }

    return ngx_http_history_node_handshake_next(node);
}


static ngx_int_t
ngx_http_history_node_handshake_next(ngx_http_history_node_t *node)
{
    if (--node->handshake_left == 0) {
        ngx_http_history_node_ready(node);
    }

    return NGX_OK;
}


/*
 * The handshake is answered: work is written from now on.  The link is
 * counted as up at once if no work waits, else once the first unit is
 * answered (a proxy may answer PING with its backend away).
 */

static void
ngx_http_history_node_ready(ngx_http_history_node_t *node)
{
    node->state = NGX_HTTP_HISTORY_NODE_READY;

    if (node->link->unsure) {
        /* a new master: what the old one acknowledged lately goes first */
        ngx_http_history_link_replay(node->link, node);
    }

    if (node->npending == 0) {
        ngx_http_history_node_up(node);
    }

    if (!node->flush.posted) {
        ngx_post_event(&node->flush, &ngx_posted_events);
    }
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
    time_t                    now;
    ngx_msec_t                delay;
    ngx_queue_t              *q, *next;
    ngx_http_history_unit_t  *cmd;
    ngx_http_history_link_t  *link;

    link = node->link;
    now = ngx_time();

    if (node->state == NGX_HTTP_HISTORY_NODE_READY) {
        /* the end of the replay= window, if the master changed */
        link->closed = ngx_current_msec;
    }

    ngx_http_history_node_disconnect(node);

    node->state = NGX_HTTP_HISTORY_NODE_DOWN;
    node->up = 0;
    node->resolved = 0;
    node->stats->connected = 0;
    ngx_http_history_link_state(link);
    node->log.action = NULL;

    if (node->down_since == 0) {
        node->down_since = now;
        node->down_logged = now;
        node->down_dropped = 0;
        node->down_failed = 0;

        /*
         * The failure that closed the connection was logged unless a
         * failure was logged less than a minute ago: a link that keeps
         * failing and recovering says so once a minute, not each time.
         */

        if (node->log.log_level != NGX_LOG_EMERG) {
            node->down_reported = 1;
            node->failure_logged = now;

        } else {
            node->down_reported = 0;
            node->unreported++;
        }

    } else if (now - node->down_logged >= NGX_HTTP_HISTORY_LOG_INTERVAL) {
        node->down_logged = now;
        node->down_reported = 1;
        node->log.log_level = node->log_level;

        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis unavailable for %T s, %ui commands dropped, "
                      "%ui failed", now - node->down_since,
                      node->down_dropped, node->down_failed);
    }

    /* the first failure was logged; stay quiet until it is back */
    node->log.log_level = NGX_LOG_EMERG;

    if (!ngx_queue_empty(&node->pending)) {
        q = ngx_queue_head(&node->pending);
        cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

        if (cmd->buf.pos != cmd->buf.start && !cmd->idempotent
            && !cmd->transaction && !cmd->query)
        {
            /* cut short, its first commands may have run: not twice */
            node->npending--;
            link->stats->failed++;
            node->down_failed++;
            ngx_http_history_unit_done(link, cmd, NULL);

        } else {
            /* nothing of it ran, or it may run twice: sent again, whole */
            cmd->buf.pos = cmd->buf.start;
        }
    }

    /*
     * Written, maybe executed, never answered: a unit that may run twice
     * is sent again, once, ahead of what waits; any other has failed
     */

    while (!ngx_queue_empty(&node->inflight)) {
        q = ngx_queue_last(&node->inflight);
        cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

        if (cmd->idempotent && !cmd->resent && !cmd->query) {
            ngx_queue_remove(q);
            ngx_http_history_unit_reset(cmd, cmd->asking);
            cmd->resent = 1;
            ngx_queue_insert_head(&node->pending, q);
            node->npending++;
            link->stats->resent++;
            continue;
        }

        if (cmd->replayed) {
            /* counted once already: now it may be lost */
            link->stats->maybe_lost++;

        } else if (!cmd->query) {
            link->stats->failed++;
            node->down_failed++;
        }

        ngx_http_history_unit_done(link, cmd, NULL);
    }

    /* the link's own queries fail at once, waiting or not */

    for (q = ngx_queue_head(&node->pending);
         q != ngx_queue_sentinel(&node->pending);
         q = next)
    {
        next = ngx_queue_next(q);
        cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

        if (cmd->query) {
            node->npending--;
            ngx_http_history_unit_done(link, cmd, NULL);
        }
    }

    if (link->cluster) {
        /* the map may have changed: a failover, a node gone */
        ngx_http_history_cluster_refresh(link->cluster);
        ngx_http_history_link_reroute(link);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_http_history_node_drop_all(node);
        return;
    }

    if (link->cluster && node->nslots == 0 && node->npending == 0) {
        /* no longer a master the map names, nothing to do: let it go */
        node->backoff = 0;
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
        ngx_http_history_ssl_close(&node->ssl, node->peer.connection);
        node->peer.connection = NULL;
    }

    node->held = NULL;

    if (node->reader) {
        redisReaderFree(node->reader);
        node->reader = NULL;
        ngx_http_history_reader_release(&node->replies);
    }
}


/*
 * Redis has answered on this connection: the handshake, and the first
 * unit if work was waiting.  Only now is the link up and the backoff
 * reset.
 */

static void
ngx_http_history_node_up(ngx_http_history_node_t *node)
{
    node->up = 1;
    node->backoff = 0;
    node->stats->connected = 1;
    ngx_http_history_link_state(node->link);

    if (node->down_since) {

        if (node->down_reported) {
            node->log.log_level = node->log_level;

            if (node->unreported) {
                ngx_log_error(NGX_LOG_NOTICE, &node->log, 0,
                              "redis connection restored after %T s, "
                              "%ui commands dropped, %ui failed "
                              "(and %ui shorter outages since the last "
                              "notice)",
                              ngx_time() - node->down_since,
                              node->down_dropped, node->down_failed,
                              node->unreported);

            } else {
                ngx_log_error(NGX_LOG_NOTICE, &node->log, 0,
                              "redis connection restored after %T s, "
                              "%ui commands dropped, %ui failed",
                              ngx_time() - node->down_since,
                              node->down_dropped, node->down_failed);
            }

            node->unreported = 0;
        }

        node->down_since = 0;
    }

    ngx_http_history_node_quiet(node);
}


/*
 * Whether a failure now may be logged: the log level of the node's log
 * is the configured one while the link is up and no failure was logged in
 * the last minute, else only emergencies pass.  Set at the start of each
 * of the node's event handlers, before anything there can fail.
 */

static void
ngx_http_history_node_quiet(ngx_http_history_node_t *node)
{
    if (node->down_since == 0
        && ngx_time() - node->failure_logged >= NGX_HTTP_HISTORY_LOG_INTERVAL)
    {
        node->log.log_level = node->log_level;

    } else {
        node->log.log_level = NGX_LOG_EMERG;
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
                                    ngx_http_history_unit_t, queue));
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
    ngx_http_history_unit_t *cmd)
{
    node->npending--;

    if (cmd->replayed) {
        node->link->stats->maybe_lost++;

    } else if (!cmd->query) {
        node->down_dropped++;
        node->link->stats->dropped++;
    }

    ngx_http_history_unit_done(node->link, cmd, NULL);
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
ngx_http_history_unit_done(ngx_http_history_link_t *link,
    ngx_http_history_unit_t *cmd, redisReply *reply)
{
    ngx_queue_remove(&cmd->queue);
    link->queued--;
    link->stats->depth = link->queued;

    if (cmd->query) {
        if (cmd->handler) {
            cmd->handler(cmd->data, reply);
        }

        ngx_free(cmd);
        return;
    }

    if (cmd->replayed) {
        /* answered once already, and counted then */

        if (reply == NULL || cmd->error) {
            link->stats->maybe_lost++;
        }

    } else if (reply) {
        if (cmd->error) {
            link->stats->errors++;

        } else {
            link->stats->replied++;
        }
    }

    if (cmd->handler) {
        cmd->handler(cmd->data, cmd->error ? NULL : reply);
    }

    if (reply && !cmd->error && link->unsure && cmd->shape.tag.len == 0) {
        /* acknowledged work: kept for a while, in case the master changes */
        ngx_http_history_link_keep(link, cmd);
        return;
    }

    ngx_free(cmd);
}


/*
 * Sentinel's replay=.  Redis acknowledges a write before its replicas
 * have it, and after a failover the old master, made a replica, drops
 * what it acknowledged since the new one was promoted: the views of the
 * second or so until +switch-master reaches the worker.  So the link
 * keeps what the master acknowledged in the last replay= time (at most
 * queue= units): when the link's next master is another node, or the
 * same one after it was a replica, the idempotent units among them (a
 * view's transaction, the last action, the online set) are sent again,
 * in their order, before anything else; the others (the counters' INCR)
 * cannot be, and are counted as maybe lost.  Whether the master that
 * acknowledged them is the one connected now:
 */

static ngx_uint_t
ngx_http_history_link_kept_by(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node)
{
    return link->kept_socklen
           && ngx_cmp_sockaddr(node->peer.sockaddr, node->peer.socklen,
                               &link->kept_sockaddr.sockaddr,
                               link->kept_socklen, 1)
              == NGX_OK;
}


/* an acknowledged unit, no longer queued: kept, or counted and freed */

static void
ngx_http_history_link_keep(ngx_http_history_link_t *link,
    ngx_http_history_unit_t *cmd)
{
    ngx_msec_t                now;
    ngx_http_history_unit_t  *old;

    now = ngx_current_msec;

    ngx_http_history_link_trim(link, now);

    if (!cmd->idempotent) {
        ngx_http_history_link_unsure(link, now);
        ngx_free(cmd);
        return;
    }

    if (link->nkept >= link->conf->queue) {
        /* the oldest makes room: it can no longer be sent again */
        old = ngx_queue_data(ngx_queue_head(&link->kept),
                             ngx_http_history_unit_t, queue);
        ngx_queue_remove(&old->queue);
        link->nkept--;
        ngx_http_history_link_unsure(link, old->due);
        ngx_free(old);
    }

    cmd->due = now;
    cmd->resent = 0;

    ngx_queue_insert_tail(&link->kept, &cmd->queue);
    link->nkept++;
}


/* the units acknowledged longer than replay= before "now" go */

static void
ngx_http_history_link_trim(ngx_http_history_link_t *link, ngx_msec_t now)
{
    ngx_http_history_unit_t  *cmd;

    while (!ngx_queue_empty(&link->kept)) {
        cmd = ngx_queue_data(ngx_queue_head(&link->kept),
                             ngx_http_history_unit_t, queue);

        if ((ngx_msec_int_t) (now - cmd->due)
            < (ngx_msec_int_t) link->conf->replay)
        {
            break;
        }

        ngx_queue_remove(&cmd->queue);
        link->nkept--;
        ngx_free(cmd);
    }
}


/* a unit acknowledged then that is not kept: counted in its span */

static void
ngx_http_history_link_unsure(ngx_http_history_link_t *link, ngx_msec_t when)
{
    ngx_msec_t                  span;
    ngx_http_history_unsure_t  *u;

    span = when / link->span;
    u = &link->unsure[span % NGX_HTTP_HISTORY_REPLAY_SPANS];

    if (u->span != span || u->n == 0) {
        u->span = span;
        u->n = 0;
    }

    u->n++;
}


/*
 * The node is connected to a master (ROLE says so).  If it is another one
 * than the one that acknowledged the units kept, or the same one after it
 * was not master, the idempotent units it acknowledged in the replay=
 * time before the link's connection to it ended go to the head of the
 * queue, oldest first; ahead of them are then only the units written on
 * that connection and not answered, sent again, and the ones never
 * written.  The rest of that time's units, and those that made room for
 * others, are counted as maybe lost (by span: at most 1/64 of replay=
 * counted too many).
 */

static void
ngx_http_history_link_replay(ngx_http_history_link_t *link,
    ngx_http_history_node_t *node)
{
    ngx_uint_t                  i, n, lost, level;
    ngx_msec_t                  start, end;
    ngx_queue_t                *q;
    ngx_http_history_unit_t    *cmd;
    ngx_http_history_unsure_t  *u;

    if (link->kept_socklen == 0
        || (!link->changed && ngx_http_history_link_kept_by(link, node)))
    {
        goto done;
    }

    ngx_http_history_link_trim(link, link->closed);

    lost = 0;

    for (i = 0; i < NGX_HTTP_HISTORY_REPLAY_SPANS; i++) {
        u = &link->unsure[i];

        start = u->span * link->span;
        end = start + link->span;

        if (u->n
            && (ngx_msec_int_t) (link->closed - end)
               < (ngx_msec_int_t) link->conf->replay
            && (ngx_msec_int_t) (link->closed - start) >= 0)
        {
            lost += u->n;
        }

        u->n = 0;
    }

    n = 0;

    while (!ngx_queue_empty(&link->kept)) {
        q = ngx_queue_last(&link->kept);
        cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

        ngx_queue_remove(q);
        ngx_http_history_unit_reset(cmd, 0);
        cmd->replayed = 1;

        ngx_queue_insert_head(&node->pending, q);
        node->npending++;
        link->queued++;
        n++;
    }

    link->nkept = 0;
    link->stats->replayed += n;
    link->stats->maybe_lost += lost;
    link->stats->depth = link->queued;

    if (n || lost) {
        /* once a master change, even while the node's log is quiet */

        level = node->log.log_level;
        node->log.log_level = node->log_level;

        ngx_log_error(NGX_LOG_NOTICE, &node->log, 0,
                      "redis master changed: %ui units the old one "
                      "acknowledged in its last %M ms sent again, %ui "
                      "that cannot be may have been lost",
                      n, link->conf->replay, lost);

        node->log.log_level = level;
    }

done:

    link->changed = 0;
    link->kept_socklen = node->peer.socklen;
    ngx_memcpy(&link->kept_sockaddr, node->peer.sockaddr,
               node->peer.socklen);
}


/*
 * In a cluster an error may be a redirect: the first one says where the
 * unit goes next, and it goes there whole when its last reply is in, if
 * nothing of it took effect here (a transaction answered with MOVED or ASK
 * for its commands and EXECABORT for EXEC took none) or it may run twice.
 * Any other error, inside EXEC's answer too, is the unit's own.
 */

static void
ngx_http_history_node_redirect(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd, redisReply *reply)
{
    ngx_uint_t                    first, i;
    ngx_http_history_node_t      *target;
    ngx_http_history_redirect_e   rc;

    first = cmd->asking ? 1 : 0;
    i = cmd->index - first;

    if (reply->type == REDIS_REPLY_ERROR) {

        rc = ngx_http_history_cluster_redirect(node->link->cluster, node,
                                               reply, &target);

        switch (rc) {

        case NGX_HTTP_HISTORY_REPLY_MOVED:
        case NGX_HTTP_HISTORY_REPLY_ASK:
        case NGX_HTTP_HISTORY_REPLY_TRYAGAIN:
        case NGX_HTTP_HISTORY_REPLY_CLUSTERDOWN:

            if (cmd->redirect == NGX_HTTP_HISTORY_REPLY_ERROR) {
                cmd->redirect = rc;
                cmd->target = target;
            }

            return;

        case NGX_HTTP_HISTORY_REPLY_EXECABORT:

            if (cmd->redirect != NGX_HTTP_HISTORY_REPLY_ERROR) {
                /* the transaction was redirected: nothing of it ran */
                return;
            }

            break;

        case NGX_HTTP_HISTORY_REPLY_CROSSSLOT:

            ngx_log_error(NGX_LOG_ALERT, &node->log, 0,
                          "redis refused keys of several slots in one "
                          "unit: \"%*s\"", (size_t) reply->len, reply->str);
            cmd->error = 1;
            cmd->executed = 1;
            return;

        default: /* NGX_HTTP_HISTORY_REPLY_ERROR */
            break;
        }

        cmd->error = 1;
        ngx_http_history_node_log_reply(node, reply);

    } else if (ngx_http_history_reply_failed(reply)) {
        /* EXEC's answer with an error inside: the unit's own, as alone */
        cmd->error = 1;
        ngx_http_history_node_log_reply(node, reply);
    }

    /* MULTI's OK and QUEUED change nothing */

    if (cmd->transaction
        && (i == 0
            || (reply->type == REDIS_REPLY_STATUS
                && i + 1 < cmd->shape.n
                && cmd->shape.kind[i] != NGX_HTTP_HISTORY_KIND_TAG)))
    {
        return;
    }

    cmd->executed = 1;
}


/*
 * A redirected unit goes where its answer said: MOVED to the slot's new
 * owner (the map has it now), ASK once to the node named, with ASKING;
 * TRYAGAIN and CLUSTERDOWN, or a node that cannot be used, a little later
 * to whichever node the map has then.  A unit redirected too often is
 * dropped and counted.
 */

static void
ngx_http_history_unit_redirect(ngx_http_history_node_t *node,
    ngx_http_history_unit_t *cmd)
{
    ngx_msec_t                delay;
    ngx_http_history_link_t  *link;
    ngx_http_history_node_t  *to;

    link = node->link;

    node->stats->redirects++;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, &node->log, 0,
                   "history: redis unit %p redirected (%ui), slot %ui",
                   cmd, cmd->redirect, cmd->slot);

    to = NULL;

    if (cmd->target
        && (cmd->redirect == NGX_HTTP_HISTORY_REPLY_MOVED
            || cmd->redirect == NGX_HTTP_HISTORY_REPLY_ASK))
    {
        if (++cmd->redirects > NGX_HTTP_HISTORY_REDIRECTS_MAX) {
            goto drop;
        }

        to = cmd->target;

    } else if (++cmd->retries > NGX_HTTP_HISTORY_RETRIES_MAX) {
        goto drop;
    }

    link->stats->redirected++;

    ngx_queue_remove(&cmd->queue);

    if (to) {
        ngx_http_history_unit_reset(cmd,
                               cmd->redirect == NGX_HTTP_HISTORY_REPLY_ASK);
        ngx_http_history_node_queue(to, cmd);
        return;
    }

    /* later: 100 ms, doubling to a second */

    ngx_http_history_unit_reset(cmd, 0);

    delay = ngx_min(NGX_HTTP_HISTORY_RETRY_MIN << ngx_min(cmd->retries - 1,
                                                          4),
                    NGX_HTTP_HISTORY_RETRY_MAX);

    cmd->due = ngx_current_msec + delay;

    ngx_queue_insert_tail(&link->retry, &cmd->queue);

    if (!link->retry_event.timer_set) {
        ngx_add_timer(&link->retry_event, delay);
    }

    return;

drop:

    if (ngx_time() - link->redirect_logged >= NGX_HTTP_HISTORY_LOG_INTERVAL) {
        link->redirect_logged = ngx_time();
        ngx_log_error(NGX_LOG_ERR, &node->log, 0,
                      "redis unit for slot %ui redirected too often, "
                      "dropped", cmd->slot);
    }

    link->stats->dropped++;
    cmd->error = 1;
    ngx_http_history_unit_done(link, cmd, NULL);
}


/* units due for a retry go to the node that has their slot now */

static void
ngx_http_history_link_retry_handler(ngx_event_t *ev)
{
    ngx_queue_t              *q, *next;
    ngx_msec_int_t            left, min;
    ngx_http_history_unit_t  *cmd;
    ngx_http_history_link_t  *link;

    link = ev->data;
    min = -1;

    for (q = ngx_queue_head(&link->retry);
         q != ngx_queue_sentinel(&link->retry);
         q = next)
    {
        next = ngx_queue_next(q);
        cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

        left = (ngx_msec_int_t) (cmd->due - ngx_current_msec);

        if (left > 0) {
            if (min < 0 || left < min) {
                min = left;
            }

            continue;
        }

        ngx_queue_remove(q);
        ngx_http_history_node_queue(
                           ngx_http_history_link_node(link, cmd->slot), cmd);
    }

    if (min >= 0) {
        ngx_add_timer(&link->retry_event, (ngx_msec_t) min);
    }
}


/*
 * After the map changed: units not yet written follow their slot to its
 * owner (an ASK's unit stays where it was sent).
 */

void
ngx_http_history_link_reroute(ngx_http_history_link_t *link)
{
    ngx_uint_t                 i;
    ngx_queue_t               *q, *next;
    ngx_http_history_node_t  **nodes, *node, *to;
    ngx_http_history_unit_t   *cmd;

    nodes = link->nodes.elts;

    for (i = 0; i < link->nodes.nelts; i++) {
        node = nodes[i];

        for (q = ngx_queue_head(&node->pending);
             q != ngx_queue_sentinel(&node->pending);
             q = next)
        {
            next = ngx_queue_next(q);
            cmd = ngx_queue_data(q, ngx_http_history_unit_t, queue);

            if (cmd->query || cmd->asking || cmd->buf.pos != cmd->buf.start) {
                continue;
            }

            to = ngx_http_history_link_node(link, cmd->slot);

            if (to == node) {
                continue;
            }

            ngx_queue_remove(q);
            node->npending--;
            ngx_http_history_node_queue(to, cmd);
        }
    }

    ngx_http_history_link_state(link);
}


ngx_uint_t
ngx_http_history_node_connected_now(ngx_http_history_node_t *node)
{
    return node->state == NGX_HTTP_HISTORY_NODE_READY;
}


/*
 * How many slots the map gives a node: one with slots is kept connected,
 * one without is let go once it has nothing to do.
 */

void
ngx_http_history_node_slots(ngx_http_history_node_t *node, ngx_uint_t slots)
{
    node->nslots = slots;
    node->stats->slots = slots;
    node->stats->role = slots ? NGX_HTTP_HISTORY_ROLE_MASTER
                              : NGX_HTTP_HISTORY_ROLE_NONE;

    if (slots
        && node->state == NGX_HTTP_HISTORY_NODE_DOWN
        && !node->reconnect.timer_set && !node->reconnect.posted)
    {
        ngx_post_event(&node->reconnect, &ngx_posted_events);
    }
}


ngx_uint_t
ngx_http_history_node_nslots(ngx_http_history_node_t *node)
{
    return node->nslots;
}


struct sockaddr *
ngx_http_history_node_sockaddr(ngx_http_history_node_t *node,
    socklen_t *socklen)
{
    *socklen = node->peer.socklen;

    return node->peer.sockaddr;
}


ngx_http_history_node_stats_t *
ngx_http_history_node_stats(ngx_http_history_node_t *node)
{
    return node->stats;
}


ngx_log_t *
ngx_http_history_node_log(ngx_http_history_node_t *node)
{
    return &node->log;
}


/*
 * The link is connected when every node with work of its own is: the
 * single server, or every master the map names.
 */

static void
ngx_http_history_link_state(ngx_http_history_link_t *link)
{
    ngx_uint_t                 i, up, n;
    ngx_http_history_node_t  **nodes;

    nodes = link->nodes.elts;
    up = 1;
    n = 0;

    for (i = 0; i < link->nodes.nelts; i++) {
        if (link->cluster && nodes[i]->nslots == 0) {
            continue;
        }

        n++;

        if (!nodes[i]->up) {
            up = 0;
        }
    }

    link->stats->state = (up && n) ? 1 : 0;
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


/*
 * After a large reply, the pool is made anew: a reset keeps every block
 * the pool grew, and the memory of one large reply would stay with the
 * worker.
 */

void
ngx_http_history_reader_release(ngx_http_history_replies_t *rp)
{
    ngx_pool_t  *pool;

    if (rp->size > NGX_HTTP_HISTORY_REPLIES_KEEP) {
        pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, rp->log);

        if (pool) {
            ngx_destroy_pool(rp->pool);
            rp->pool = pool;
            rp->size = 0;
            return;
        }
    }

    ngx_reset_pool(rp->pool);
    rp->size = 0;
}


static void *
ngx_http_history_replies_alloc(ngx_http_history_replies_t *rp, size_t size,
    ngx_uint_t zero)
{
    rp->size += size;

    return zero ? ngx_pcalloc(rp->pool, size) : ngx_pnalloc(rp->pool, size);
}


/* a pool cleanup: the replies' pool, as it is now */

void
ngx_http_history_replies_cleanup(void *data)
{
    ngx_http_history_replies_t  *rp = data;

    ngx_destroy_pool(rp->pool);
}


static redisReply *
ngx_http_history_reply_alloc(const redisReadTask *task, int type)
{
    redisReply                  *reply, *parent;
    ngx_http_history_replies_t  *rp;

    rp = task->privdata;

    reply = ngx_http_history_replies_alloc(rp, sizeof(redisReply), 1);
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

    p = ngx_http_history_replies_alloc(rp, len + 1, 0);
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
        element = ngx_http_history_replies_alloc(rp,
                                       elements * sizeof(redisReply *), 1);
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

/*
 * A unit being built.  Arguments point to the caller's memory until
 * ngx_http_history_link_send() has formatted them; numbers are printed
 * into the batch itself.
 */

void
ngx_http_history_batch_init(ngx_http_history_batch_t *b, ngx_str_t *key)
{
    ngx_memzero(b, offsetof(ngx_http_history_batch_t, command));

    /* the slot is worked out when something needs it: a cluster */

    b->slot = NGX_HTTP_HISTORY_SLOTS;

    if (key) {
        b->key = *key;
    }
}


static ngx_uint_t
ngx_http_history_batch_slot(ngx_http_history_batch_t *b)
{
    if (b->slot == NGX_HTTP_HISTORY_SLOTS) {
        b->slot = ngx_http_history_key_slot(b->key.data, b->key.len);
    }

    return b->slot;
}


void
ngx_http_history_batch_command(ngx_http_history_batch_t *b, char *name)
{
    ngx_http_history_command_t  *c;

    if (b->ncommands == NGX_HTTP_HISTORY_COMMANDS_MAX) {
        b->overflow = 1;
        return;
    }

    c = &b->command[b->ncommands++];

    c->argc = 0;
    c->argv = &b->argv[b->nargs];
    c->argvlen = &b->len[b->nargs];

    ngx_http_history_batch_arg(b, (u_char *) name, ngx_strlen(name));
}


void
ngx_http_history_batch_arg(ngx_http_history_batch_t *b, u_char *data,
    size_t len)
{
    if (b->overflow || b->ncommands == 0
        || b->nargs == NGX_HTTP_HISTORY_ARGS_MAX)
    {
        b->overflow = 1;
        return;
    }

    b->argv[b->nargs] = (const char *) data;
    b->len[b->nargs++] = len;
    b->command[b->ncommands - 1].argc++;
}


/* an argument that names a key: it must hash to the unit's slot */

void
ngx_http_history_batch_key(ngx_http_history_batch_t *b, ngx_str_t *key)
{
    if ((key->data != b->key.data || key->len != b->key.len)
        && ngx_http_history_key_slot(key->data, key->len)
           != ngx_http_history_batch_slot(b))
    {
        b->crossslot = 1;
    }

    ngx_http_history_batch_arg(b, key->data, key->len);
}


/*
 * The unit may be done twice without harm as a whole, whatever its
 * commands (the history transaction: LREM before LPUSH, then LTRIM): sent
 * again after a lost connection, and after a redirect even if part of it
 * took effect.  INCR is not.
 */

void
ngx_http_history_batch_idempotent(ngx_http_history_batch_t *b)
{
    b->idempotent = 1;
}


void
ngx_http_history_batch_number(ngx_http_history_batch_t *b, time_t n)
{
    u_char  *p;

    if (b->used + NGX_TIME_T_LEN > sizeof(b->numbers)) {
        b->overflow = 1;
        return;
    }

    p = b->numbers + b->used;
    b->used = ngx_sprintf(p, "%T", n) - b->numbers;

    ngx_http_history_batch_arg(b, p, b->numbers + b->used - p);
}


/*
 * The hash slot of a key, as Redis Cluster computes it: CRC16 (XMODEM)
 * of the key modulo 16384, or of its hash tag, the bytes between the
 * first "{" and the first "}" after it, if there is at least one.
 */

ngx_uint_t
ngx_http_history_key_slot(u_char *key, size_t len)
{
    u_char    *p, *last, *tag, *end;
    uint16_t   crc;

    last = key + len;

    tag = ngx_strlchr(key, last, '{');

    if (tag) {
        end = ngx_strlchr(tag + 1, last, '}');

        if (end && end > tag + 1) {
            key = tag + 1;
            last = end;
        }
    }

    crc = 0;

    for (p = key; p < last; p++) {
        crc = (uint16_t) (crc << 8)
              ^ ngx_http_history_crc16[((crc >> 8) ^ *p) & 0xff];
    }

    return crc & (NGX_HTTP_HISTORY_SLOTS - 1);
}


size_t
ngx_http_history_format_size(ngx_http_history_command_t *cmd)
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
ngx_http_history_format(u_char *p, ngx_http_history_command_t *cmd)
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


/*
 * The scan of what Redis sends, byte by byte, before hiredis's reader is
 * fed with it: RESP2's framing only ("+", "-" and ":" lines, "$<length>"
 * and its bytes, "*<count>" and its elements), at least as strict as
 * hiredis's, so that both see the same replies.  What each reply takes is
 * added up from its headers: a string counts its length, each reply
 * object NGX_HTTP_HISTORY_OBJECT_SIZE.  A header that would take the
 * reply past the limit stops the scan there, before the body is read.
 * Returns how many bytes can be given to hiredis; s->error says why the
 * rest cannot.  fuzz/protocol.c checks it against hiredis's reader.
 */

void
ngx_http_history_scan_init(ngx_http_history_scan_t *s, size_t max)
{
    ngx_memzero(s, sizeof(ngx_http_history_scan_t));

    s->max = max ? ngx_max(max, NGX_HTTP_HISTORY_OBJECT_SIZE)
                 : NGX_HTTP_HISTORY_REPLY_MAX;
    s->state = NGX_HTTP_HISTORY_SCAN_TYPE;
}


size_t
ngx_http_history_scan(ngx_http_history_scan_t *s, u_char *p, size_t len)
{
    u_char  *start, *end, ch;
    size_t   n;

    if (s->error) {
        return 0;
    }

    start = p;
    end = p + len;

    while (p < end) {

        switch (s->state) {

        case NGX_HTTP_HISTORY_SCAN_BULK:
            n = ngx_min(s->skip, (size_t) (end - p));
            p += n;
            s->skip -= n;

            if (s->skip == 0) {
                ngx_http_history_scan_done(s);
            }

            continue;

        case NGX_HTTP_HISTORY_SCAN_TYPE:
            ch = *p;

            if (s->depth == 0) {
                s->size = NGX_HTTP_HISTORY_OBJECT_SIZE;
            }

            s->type = ch;
            s->line = 0;
            s->number = 0;
            s->prev = '\0';

            switch (ch) {
            case '+':
            case '-':
                s->state = NGX_HTTP_HISTORY_SCAN_LINE;
                break;

            case ':':
                s->state = NGX_HTTP_HISTORY_SCAN_INTEGER;
                break;

            case '$':
            case '*':
                s->state = NGX_HTTP_HISTORY_SCAN_LENGTH;
                break;

            default:
                s->error = "redis sent an invalid reply: no type byte";
                return p - start;
            }

            break;

        case NGX_HTTP_HISTORY_SCAN_LINE:
        case NGX_HTTP_HISTORY_SCAN_INTEGER:
            ch = *p;

            if (ch == LF && s->prev == CR) {
                if (s->state == NGX_HTTP_HISTORY_SCAN_LINE) {
                    s->size += s->line - 1;
                }

                ngx_http_history_scan_done(s);
                break;
            }

            s->prev = ch;
            s->line++;

            if (s->state == NGX_HTTP_HISTORY_SCAN_INTEGER) {
                if (s->line > NGX_HTTP_HISTORY_INTEGER_LEN + 1) {
                    s->number = NGX_HTTP_HISTORY_INTEGER_LEN;
                    s->error = "redis sent an invalid reply: "
                               "an integer longer than %uz bytes";
                    return p - start;
                }

            } else if (s->line - 1 > s->max - s->size) {
                s->number = s->line - 1;
                s->too_large = 1;
                s->error = "redis sent a line of more than %uz bytes, "
                           "more than the %uz a reply may take";
                return p - start;
            }

            break;

        case NGX_HTTP_HISTORY_SCAN_LENGTH:
            ch = *p;

            if (ch == '-') {
                s->state = NGX_HTTP_HISTORY_SCAN_NIL;
                break;
            }

            if (ch < '0' || ch > '9') {
                goto invalid;
            }

            s->number = ch - '0';
            s->line = 1;
            s->state = NGX_HTTP_HISTORY_SCAN_DIGITS;
            break;

        case NGX_HTTP_HISTORY_SCAN_DIGITS:
            ch = *p;

            if (ch == CR) {
                s->state = NGX_HTTP_HISTORY_SCAN_LF;
                break;
            }

            /* 18 digits cannot overflow */

            if (ch < '0' || ch > '9' || ++s->line > 18) {
                goto invalid;
            }

            s->number = s->number * 10 + (ch - '0');
            break;

        case NGX_HTTP_HISTORY_SCAN_NIL:
            if (*p != '1') {
                goto invalid;
            }

            s->type = '_';
            s->state = NGX_HTTP_HISTORY_SCAN_CR;
            break;

        case NGX_HTTP_HISTORY_SCAN_CR:
            if (*p != CR) {
                goto invalid;
            }

            s->state = NGX_HTTP_HISTORY_SCAN_LF;
            break;

        case NGX_HTTP_HISTORY_SCAN_LF:
            if (*p != LF) {
                goto invalid;
            }

            if (s->type == '_') {
                ngx_http_history_scan_done(s);
                break;
            }

            if (s->type == '$') {
                if (s->number > s->max - s->size) {
                    s->too_large = 1;
                    s->error = "redis sent a string of %uz bytes, "
                               "more than the %uz a reply may take";
                    return p - start;
                }

                s->size += s->number;
                s->skip = s->number + 2;
                s->state = NGX_HTTP_HISTORY_SCAN_BULK;
                break;
            }

            /* an array */

            if (s->depth == NGX_HTTP_HISTORY_DEPTH_MAX) {
                s->number = NGX_HTTP_HISTORY_DEPTH_MAX;
                s->too_large = 1;
                s->error = "redis sent arrays nested deeper than %uz";
                return p - start;
            }

            if (s->number == 0) {
                ngx_http_history_scan_done(s);
                break;
            }

            if (s->number > NGX_HTTP_HISTORY_ELEMENTS_MAX
                || s->number > (s->max - s->size)
                               / NGX_HTTP_HISTORY_OBJECT_SIZE)
            {
                s->too_large = 1;
                s->error = "redis sent an array of %uz elements, "
                           "more than the %uz bytes a reply may take";
                return p - start;
            }

            s->size += s->number * NGX_HTTP_HISTORY_OBJECT_SIZE;
            s->left[++s->depth] = s->number;
            s->state = NGX_HTTP_HISTORY_SCAN_TYPE;
            break;
        }

        p++;
    }

    return p - start;

invalid:

    s->error = "redis sent an invalid reply: a bad length";

    return p - start;
}


/* an element or a reply is complete */

static void
ngx_http_history_scan_done(ngx_http_history_scan_t *s)
{
    while (s->depth) {
        if (--s->left[s->depth]) {
            s->state = NGX_HTTP_HISTORY_SCAN_TYPE;
            return;
        }

        s->depth--;
    }

    s->replies++;
    s->size = 0;
    s->state = NGX_HTTP_HISTORY_SCAN_TYPE;
}


/* the entry of ngx_http_history_command_kinds[] for a command */

ngx_uint_t
ngx_http_history_shape_kind(ngx_http_history_command_t *cmd)
{
    size_t       len;
    ngx_uint_t   i;
    const char  *name;

    if (cmd->argc == 0) {
        return NGX_HTTP_HISTORY_KIND_ANY;
    }

    name = cmd->argv[0];
    len = cmd->argvlen[0];

    for (i = NGX_HTTP_HISTORY_KIND_NAMED;
         i < sizeof(ngx_http_history_command_kinds)
             / sizeof(ngx_http_history_command_kind_t);
         i++)
    {
        /* the first letter, in either case, before the whole name */

        if (len == ngx_http_history_command_kinds[i].name.len
            && (name[0] | 0x20)
               == (ngx_http_history_command_kinds[i].name.data[0] | 0x20)
            && ngx_strncasecmp((u_char *) name,
                               ngx_http_history_command_kinds[i].name.data, len)
               == 0)
        {
            if (i == NGX_HTTP_HISTORY_KIND_PING && cmd->argc > 1) {
                return NGX_HTTP_HISTORY_KIND_PING_ARG;
            }

            return i;
        }
    }

    return NGX_HTTP_HISTORY_KIND_ANY;
}


ngx_str_t *
ngx_http_history_shape_name(ngx_uint_t kind)
{
    return &ngx_http_history_command_kinds[kind].name;
}


/*
 * The next reply of a unit against the shape its command must give:
 * an error for any command (inside MULTI, where a refused command makes
 * EXEC fail, too); +QUEUED for each command between MULTI and EXEC; for
 * EXEC, nil, or an array of one reply per command queued, each of that
 * command's shape; else the command's own shape.
 */

ngx_int_t
ngx_http_history_shape_check(ngx_http_history_shape_t *s, redisReply *reply,
    const char **expected)
{
    size_t      k;
    ngx_uint_t  i, first, shape;

    if (s->next >= s->n) {
        *expected = "no reply";
        return NGX_ERROR;
    }

    i = s->next++;
    shape = ngx_http_history_command_kinds[s->kind[i]].shape;
    *expected = ngx_http_history_shape_names[shape];

    if (shape == NGX_HTTP_HISTORY_SHAPE_TAG) {
        if (reply->type == REDIS_REPLY_STRING
            && (size_t) reply->len == s->tag.len
            && ngx_memcmp(reply->str, s->tag.data, s->tag.len) == 0)
        {
            return NGX_OK;
        }

        return NGX_ERROR;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        if (shape == NGX_HTTP_HISTORY_SHAPE_MULTI) {
            /* what follows runs at once, EXEC is refused */
            s->multi = i + 1;
            s->aborted = 1;

        } else if (shape == NGX_HTTP_HISTORY_SHAPE_EXEC) {
            s->multi = 0;
            s->aborted = 0;
        }

        return NGX_OK;
    }

    if (shape == NGX_HTTP_HISTORY_SHAPE_MULTI) {
        if (s->multi) {
            /* Redis refuses a MULTI inside MULTI */
            *expected = "an error";
            return NGX_ERROR;
        }

        s->multi = i + 1;
        return ngx_http_history_shape_match(shape, reply);
    }

    if (shape == NGX_HTTP_HISTORY_SHAPE_EXEC) {
        if (s->multi == 0 || s->aborted) {
            *expected = "an error";
            return NGX_ERROR;
        }

        first = s->multi;
        s->multi = 0;

        if (reply->type == REDIS_REPLY_NIL) {
            return NGX_OK;
        }

        if (reply->type != REDIS_REPLY_ARRAY
            || (size_t) reply->elements != i - first)
        {
            return NGX_ERROR;
        }

        for (k = 0; k < reply->elements; k++) {
            if (reply->element[k]->type == REDIS_REPLY_ERROR) {
                continue;
            }

            if (ngx_http_history_shape_match(
                    ngx_http_history_command_kinds[s->kind[first + k]].shape,
                    reply->element[k])
                != NGX_OK)
            {
                *expected = ngx_http_history_shape_names[
                    ngx_http_history_command_kinds[s->kind[first + k]].shape];
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    if (s->multi && !s->aborted) {
        *expected = "+QUEUED";

        return (reply->type == REDIS_REPLY_STATUS
                && reply->len == 6
                && ngx_strncmp(reply->str, "QUEUED", 6) == 0)
               ? NGX_OK : NGX_ERROR;
    }

    return ngx_http_history_shape_match(shape, reply);
}


static ngx_int_t
ngx_http_history_shape_match(ngx_uint_t shape, redisReply *reply)
{
    size_t  k;

    switch (shape) {

    case NGX_HTTP_HISTORY_SHAPE_ANY:
        return NGX_OK;

    case NGX_HTTP_HISTORY_SHAPE_OK_NIL:
        if (reply->type == REDIS_REPLY_NIL) {
            return NGX_OK;
        }

        /* fall through */

    case NGX_HTTP_HISTORY_SHAPE_OK:
    case NGX_HTTP_HISTORY_SHAPE_MULTI:
        return (reply->type == REDIS_REPLY_STATUS && reply->len == 2
                && ngx_strncmp(reply->str, "OK", 2) == 0)
               ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_HISTORY_SHAPE_PONG:
        return (reply->type == REDIS_REPLY_STATUS && reply->len == 4
                && ngx_strncmp(reply->str, "PONG", 4) == 0)
               ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_HISTORY_SHAPE_STATUS:
        return reply->type == REDIS_REPLY_STATUS ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_HISTORY_SHAPE_INTEGER:
        return reply->type == REDIS_REPLY_INTEGER ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_HISTORY_SHAPE_STRING:
        return reply->type == REDIS_REPLY_STRING ? NGX_OK : NGX_ERROR;

    case NGX_HTTP_HISTORY_SHAPE_STRINGS:
    case NGX_HTTP_HISTORY_SHAPE_STRINGS_NIL:
        if (reply->type != REDIS_REPLY_ARRAY) {
            return NGX_ERROR;
        }

        for (k = 0; k < reply->elements; k++) {
            if (reply->element[k]->type == REDIS_REPLY_STRING) {
                continue;
            }

            if (reply->element[k]->type == REDIS_REPLY_NIL
                && shape == NGX_HTTP_HISTORY_SHAPE_STRINGS_NIL)
            {
                continue;
            }

            return NGX_ERROR;
        }

        return NGX_OK;

    default:
        /* EXEC and a tag inside EXEC's array: never */
        return NGX_ERROR;
    }
}
