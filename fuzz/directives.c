
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * The module's own directive handlers, called as ngx_conf_handler() calls
 * them while nginx reads its configuration.
 *
 * The input: the first byte, modulo the number of directives in
 * fuzz_directives[] (their order is fixed: the seeds depend on it), picks
 * the directive; the rest are its arguments, each ended by '\n' (the last
 * one may go without).  An argument holds any other byte, NUL included, as
 * a quoted string of nginx.conf can.  An input with more than
 * FUZZ_ARGS_MAX arguments is skipped, and so is one whose number of
 * arguments the command's NGX_CONF_* flags refuse: ngx_conf_handler()
 * refuses it before calling the handler.
 *
 * Each input gets a fresh configuration context: cf->pool and
 * cf->temp_pool (destroyed after it), the module's main and location
 * configurations from its own create_main_conf() and create_loc_conf(),
 * zeroed configurations of ngx_http_core_module (the handlers set
 * clcf->handler, and variables are indexed in cmcf->variables), and the
 * arguments, each in a buffer of its exact size and the NUL that nginx's
 * reader puts after a token, so that AddressSanitizer sees any read past
 * it.  cf->log's writer keeps what the handler logs.  getaddrinfo() is
 * replaced (below): history_redis resolves names through ngx_parse_url(),
 * and a fuzzer must not ask DNS.
 *
 * Checked, for every directive:
 *
 *   - the handler returns NGX_CONF_OK, NGX_CONF_ERROR, or a non-empty
 *     printable string (which nginx prints after the directive's name);
 *   - NGX_CONF_ERROR comes with exactly one [emerg], logged through
 *     ngx_conf_log_error() (it ends with the file and line); NGX_CONF_OK
 *     and a string come with none; nothing is logged at [alert], [crit]
 *     or [error];
 *   - a message "invalid value" or "invalid parameter" quotes one of the
 *     arguments and names the directive, 'invalid value "ARG" in "NAME"
 *     directive[, REASON]'; any other message names the directive, but
 *     those of nginx's own script compiler (history_count's variables);
 *   - called again on the same configuration after NGX_CONF_OK, the
 *     handler returns "is duplicate" and logs nothing;
 *
 * and, for each directive, the answer (OK, or which message) and what it
 * stores, against a plain reading of docs/directives.md: see the
 * fuzz_check_*() functions.  Keywords are compared as nginx compares them
 * in its own slots, as C strings: "secure\0x" is "secure".
 */


#include "../ngx_http_history_module.h"
#include "harness.h"

#include <netdb.h>


#define FUZZ_ARGS_MAX      8
#define FUZZ_MSGS_MAX      8
#define FUZZ_CONF_FILE     "fuzz.conf"
#define FUZZ_CONF_SUFFIX   " in " FUZZ_CONF_FILE ":1"


typedef struct fuzz_call_s  fuzz_call_t;

typedef void (*fuzz_check_pt)(fuzz_call_t *fc);


typedef struct {
    ngx_str_t                       name;
    char                         *(*set)(ngx_conf_t *cf, ngx_command_t *cmd,
                                         void *conf);
    fuzz_check_pt                   check;
    ngx_command_t                  *cmd;
} fuzz_directive_t;


struct fuzz_call_s {
    fuzz_directive_t               *d;
    ngx_conf_t                     *cf;
    ngx_str_t                      *value;    /* value[0]: the name */
    ngx_uint_t                      nargs;    /* value[1..nargs] */
    void                           *conf;
    char                           *rv;
    ngx_http_history_main_conf_t   *hmcf;
    ngx_http_history_loc_conf_t    *hlcf;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_core_loc_conf_t       *clcf;
};


/* what the handler logged, less debug */

typedef struct {
    ngx_uint_t                      level;
    size_t                          len;
    u_char                          text[NGX_MAX_ERROR_STR];
} fuzz_msg_t;


static void fuzz_check_redis(fuzz_call_t *fc);
static void fuzz_check_number(fuzz_call_t *fc);
static void fuzz_check_time(fuzz_call_t *fc);
static void fuzz_check_status(fuzz_call_t *fc);
static void fuzz_check_pattern(fuzz_call_t *fc);
static void fuzz_check_serve(fuzz_call_t *fc);
static void fuzz_check_enum(fuzz_call_t *fc);
static void fuzz_check_online(fuzz_call_t *fc);
static void fuzz_check_count(fuzz_call_t *fc);
static void fuzz_check_views(fuzz_call_t *fc);
static void fuzz_check_stats(fuzz_call_t *fc);
static void fuzz_check_cookie(fuzz_call_t *fc);


/*
 * The input's first byte modulo their number picks one: the seeds in
 * t/fuzz/directives/ start with 'P' + index (80 % 16 == 0), so a change
 * here means rewriting that byte of each seed.
 */

static fuzz_directive_t  fuzz_directives[] = {
    { ngx_string("history_redis"), ngx_http_history_redis,
      fuzz_check_redis, NULL },
    { ngx_string("history_length"), ngx_http_history_set_number,
      fuzz_check_number, NULL },
    { ngx_string("history_expire"), ngx_http_history_set_time,
      fuzz_check_time, NULL },
    { ngx_string("history_status"), ngx_http_history_set_status,
      fuzz_check_status, NULL },
    { ngx_string("history_id_pattern"), ngx_http_history_set_pattern,
      fuzz_check_pattern, NULL },
    { ngx_string("history_serve"), ngx_http_history_serve,
      fuzz_check_serve, NULL },
    { ngx_string("history_fallback"), ngx_http_history_set_enum,
      fuzz_check_enum, NULL },
    { ngx_string("history_online_timeout"), ngx_http_history_set_time,
      fuzz_check_time, NULL },
    { ngx_string("history_online"), ngx_http_history_online,
      fuzz_check_online, NULL },
    { ngx_string("history_count"), ngx_http_history_count_set,
      fuzz_check_count, NULL },
    { ngx_string("history_count_expire"), ngx_http_history_set_time,
      fuzz_check_time, NULL },
    { ngx_string("history_views"), ngx_http_history_views,
      fuzz_check_views, NULL },
    { ngx_string("history_stats"), ngx_http_history_stats,
      fuzz_check_stats, NULL },
    { ngx_string("history_cookie"), ngx_http_history_cookie,
      fuzz_check_cookie, NULL },
    { ngx_string("history_key_pattern"), ngx_http_history_set_key_pattern,
      fuzz_check_pattern, NULL },
    { ngx_string("history_online_shards"), ngx_http_history_set_number,
      fuzz_check_number, NULL },
};

#define FUZZ_NDIRECTIVES                                                      \
    (sizeof(fuzz_directives) / sizeof(fuzz_directive_t))


/* as ngx_conf_handler() checks the number of arguments */

static ngx_uint_t  fuzz_argument_number[] = {
    NGX_CONF_NOARGS,
    NGX_CONF_TAKE1,
    NGX_CONF_TAKE2,
    NGX_CONF_TAKE3,
    NGX_CONF_TAKE4,
    NGX_CONF_TAKE5,
    NGX_CONF_TAKE6,
    NGX_CONF_TAKE7
};


static ngx_log_t          fuzz_cf_log;
static ngx_uint_t         fuzz_stderr;
static fuzz_msg_t         fuzz_msgs[FUZZ_MSGS_MAX];
static ngx_uint_t         fuzz_nmsgs;     /* all, also those not kept */
static ngx_uint_t         fuzz_nemerg;
static ngx_conf_file_t    fuzz_conf_file;
static u_char             fuzz_want[NGX_MAX_CONF_ERRSTR];
static u_char             fuzz_line_buf[8192];

static ngx_uint_t         fuzz_known_empty_name;
static ngx_uint_t         fuzz_known_expires;
static ngx_uint_t         fuzz_known_ctl;


/*
 * getaddrinfo() without DNS, for ngx_inet_resolve_host(): a name ending in
 * ".invalid" (RFC 6761) is not found; any other is 127.0.0.2.  The
 * executable's definition wins over libc's and over the sanitizers' weak
 * interceptors.
 */

typedef struct {
    struct addrinfo                 ai;
    struct sockaddr_in              sin;
} fuzz_addrinfo_t;


int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
    size_t            len;
    fuzz_addrinfo_t  *a;

    if (node == NULL) {
        return EAI_NONAME;
    }

    len = strlen(node);

    if (len >= sizeof(".invalid") - 1
        && strcmp(node + len - (sizeof(".invalid") - 1), ".invalid") == 0)
    {
        return EAI_NONAME;
    }

    a = calloc(1, sizeof(fuzz_addrinfo_t));
    if (a == NULL) {
        return EAI_MEMORY;
    }

    a->sin.sin_family = AF_INET;
    a->sin.sin_addr.s_addr = htonl(0x7f000002);

    a->ai.ai_family = AF_INET;
    a->ai.ai_socktype = SOCK_STREAM;
    a->ai.ai_addr = (struct sockaddr *) &a->sin;
    a->ai.ai_addrlen = sizeof(struct sockaddr_in);

    *res = &a->ai;

    return 0;
}


void
freeaddrinfo(struct addrinfo *res)
{
    free(res);
}


/* cf->log's writer: keep what is not debug */

static void
fuzz_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    u_char      *p, *last;
    fuzz_msg_t  *m;

    if (fuzz_stderr) {
        (void) ngx_write_fd(ngx_stderr, buf, len);
    }

    if (level >= NGX_LOG_DEBUG) {
        return;
    }

    if (level == NGX_LOG_EMERG) {
        fuzz_nemerg++;
    }

    if (fuzz_nmsgs++ >= FUZZ_MSGS_MAX) {
        return;
    }

    /* "TIME [LEVEL] PID#TID: MESSAGE\n" */

    last = buf + len - NGX_LINEFEED_SIZE;

    p = ngx_strlchr(buf, last, ']');
    FUZZ_CHECK(p != NULL, "a log line without a level: \"%s\"",
               fuzz_show(buf, len));

    while (p + 1 < last && !(p[0] == ':' && p[1] == ' ')) {
        p++;
    }

    FUZZ_CHECK(p + 1 < last, "a log line without a message: \"%s\"",
               fuzz_show(buf, len));

    p += 2;

    m = &fuzz_msgs[fuzz_nmsgs - 1];
    m->level = level;
    m->len = last - p;
    ngx_memcpy(m->text, p, m->len);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_uint_t         i, k;
    ngx_command_t     *cmd;
    fuzz_directive_t  *d;

    fuzz_init();

    fuzz_stderr = fuzz_log_stderr();

    fuzz_cf_log.log_level = NGX_LOG_DEBUG_ALL;
    fuzz_cf_log.file = &fuzz_log_file;
    fuzz_cf_log.writer = fuzz_writer;

    ngx_str_set(&fuzz_conf_file.file.name, FUZZ_CONF_FILE);
    fuzz_conf_file.file.fd = 0;     /* not NGX_INVALID_FILE: "in file:line" */
    fuzz_conf_file.file.log = &fuzz_cf_log;
    fuzz_conf_file.line = 1;

    /* the module's confs at [0] (harness.h), ngx_http_core_module's at [1] */
    ngx_http_core_module.ctx_index = 1;

    fuzz_known_empty_name = fuzz_known("cookie-empty-name");
    fuzz_known_expires = fuzz_known("cookie-expires-overflow");
    fuzz_known_ctl = fuzz_known("cookie-attr-ctl");

    for (k = 0; k < FUZZ_NDIRECTIVES; k++) {
        d = &fuzz_directives[k];

        for (cmd = ngx_http_history_module.commands; cmd->name.len; cmd++) {
            if (cmd->name.len == d->name.len
                && ngx_strncmp(cmd->name.data, d->name.data, d->name.len) == 0)
            {
                d->cmd = cmd;
                break;
            }
        }

        if (d->cmd == NULL || d->cmd->set != d->set) {
            fprintf(stderr, "fuzz/directives.c: \"%s\" %s in the module's "
                    "commands: update fuzz_directives[]\n",
                    (char *) d->name.data,
                    d->cmd ? "has another handler" : "is not");
            abort();
        }
    }

    /* a handler of the module's own that is not fuzzed: say so */

    for (cmd = ngx_http_history_module.commands; cmd->name.len; cmd++) {

        if (cmd->set == ngx_conf_set_flag_slot
            || cmd->set == ngx_conf_set_str_slot
            || cmd->set == ngx_http_set_complex_value_slot)
        {
            continue;
        }

        for (i = 0; i < FUZZ_NDIRECTIVES; i++) {
            if (fuzz_directives[i].cmd == cmd) {
                break;
            }
        }

        if (i == FUZZ_NDIRECTIVES) {
            fprintf(stderr, "fuzz/directives.c: \"%.*s\" has a handler of "
                    "its own and is not fuzzed: add it to "
                    "fuzz_directives[]\n",
                    (int) cmd->name.len, cmd->name.data);
        }
    }

    return 0;
}


/* "history_cookie "a" "b"", for messages (escaped as fuzz_show() does) */

static const char *
fuzz_line(fuzz_call_t *fc)
{
    u_char      *p, *last;
    size_t       k;
    ngx_str_t   *v;
    ngx_uint_t   i;

    p = fuzz_line_buf;
    last = fuzz_line_buf + sizeof(fuzz_line_buf) - 8;

    p = ngx_slprintf(p, last, "%V", &fc->value[0]);

    for (i = 1; i <= fc->nargs; i++) {
        v = &fc->value[i];
        p = ngx_slprintf(p, last, " \"");

        for (k = 0; k < v->len && k < 200 && p < last; k++) {
            if (v->data[k] >= 0x20 && v->data[k] < 0x7f
                && v->data[k] != '\\' && v->data[k] != '"')
            {
                *p++ = v->data[k];

            } else {
                p = ngx_slprintf(p, last, "\\x%02xd", v->data[k]);
            }
        }

        if (k < v->len) {
            p = ngx_slprintf(p, last, "...(%uz bytes)", v->len);
        }

        p = ngx_slprintf(p, last, "\"");
    }

    *p = '\0';

    return (const char *) fuzz_line_buf;
}


static const char *
fuzz_rv(char *rv)
{
    if (rv == NGX_CONF_OK) {
        return "NGX_CONF_OK";
    }

    if (rv == NGX_CONF_ERROR) {
        return "NGX_CONF_ERROR";
    }

    return rv;
}


/* the argument up to its first NUL is lit, as ngx_strcmp() sees it */

static ngx_uint_t
fuzz_is(ngx_str_t *s, const char *lit)
{
    u_char  *nul;
    size_t   len;

    nul = memchr(s->data, '\0', s->len);
    len = nul ? (size_t) (nul - s->data) : s->len;

    return len == strlen(lit) && ngx_memcmp(s->data, lit, len) == 0;
}


/* the argument starts with lit; rest is what follows */

static ngx_uint_t
fuzz_prefix(ngx_str_t *s, const char *lit, ngx_str_t *rest)
{
    size_t  len;

    len = strlen(lit);

    if (s->len < len || ngx_memcmp(s->data, lit, len) != 0) {
        return 0;
    }

    rest->data = s->data + len;
    rest->len = s->len - len;

    return 1;
}


/* a decimal number of at least one digit, at most NGX_MAX_INT_T_VALUE */

static ngx_uint_t
fuzz_decimal(ngx_str_t *s, ngx_int_t *n)
{
    size_t     i;
    ngx_int_t  v;

    if (s->len == 0) {
        return 0;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return 0;
        }

        if (v > (NGX_MAX_INT_T_VALUE - (s->data[i] - '0')) / 10) {
            return 0;
        }

        v = v * 10 + (s->data[i] - '0');
    }

    *n = v;

    return 1;
}


static ngx_uint_t
fuzz_has(u_char *p, size_t len, u_char c)
{
    return memchr(p, c, len) != NULL;
}


/* a control byte: none may be in a header, nor in a cookie's attribute */

static ngx_uint_t
fuzz_has_ctl(u_char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            return 1;
        }
    }

    return 0;
}


/* the one [emerg] message, less " in fuzz.conf:1" */

static ngx_str_t
fuzz_emerg(void)
{
    ngx_str_t   msg;
    ngx_uint_t  i;

    ngx_str_null(&msg);

    for (i = 0; i < fuzz_nmsgs && i < FUZZ_MSGS_MAX; i++) {
        if (fuzz_msgs[i].level == NGX_LOG_EMERG) {
            msg.data = fuzz_msgs[i].text;
            msg.len = fuzz_msgs[i].len - (sizeof(FUZZ_CONF_SUFFIX) - 1);
            break;
        }
    }

    return msg;
}


/*
 * The answer is NGX_CONF_ERROR with the message want[0..len): built with
 * ngx_snprintf() into NGX_MAX_CONF_ERRSTR bytes, it is cut where
 * ngx_conf_log_error() cuts.
 */

static void
fuzz_want_error(fuzz_call_t *fc, u_char *last)
{
    size_t     len;
    ngx_str_t  msg;

    len = last - fuzz_want;

    FUZZ_CHECK(fc->rv == NGX_CONF_ERROR, "%s: %s, expected an error \"%s\"",
               fuzz_line(fc), fuzz_rv(fc->rv), fuzz_show(fuzz_want, len));

    msg = fuzz_emerg();

    FUZZ_CHECK(msg.len == len && ngx_memcmp(msg.data, fuzz_want, len) == 0,
               "%s: \"%s\", expected \"%s\"", fuzz_line(fc),
               fuzz_show(msg.data, msg.len), fuzz_show(fuzz_want, len));
}


static void
fuzz_want_invalid(fuzz_call_t *fc, ngx_uint_t i, const char *reason)
{
    u_char  *last;

    if (reason) {
        last = ngx_snprintf(fuzz_want, NGX_MAX_CONF_ERRSTR,
                            "invalid value \"%V\" in \"%V\" directive, %s",
                            &fc->value[i], &fc->value[0], reason);

    } else {
        last = ngx_snprintf(fuzz_want, NGX_MAX_CONF_ERRSTR,
                            "invalid value \"%V\" in \"%V\" directive",
                            &fc->value[i], &fc->value[0]);
    }

    fuzz_want_error(fc, last);
}


static void
fuzz_want_parameter(fuzz_call_t *fc, ngx_uint_t i)
{
    u_char  *last;

    last = ngx_snprintf(fuzz_want, NGX_MAX_CONF_ERRSTR,
                        "invalid parameter \"%V\" in \"%V\" directive",
                        &fc->value[i], &fc->value[0]);

    fuzz_want_error(fc, last);
}


static void
fuzz_want_ok(fuzz_call_t *fc)
{
    ngx_str_t  msg;

    msg = fuzz_emerg();

    FUZZ_CHECK(fc->rv == NGX_CONF_OK, "%s: %s \"%s\", expected NGX_CONF_OK",
               fuzz_line(fc), fuzz_rv(fc->rv),
               fuzz_show(msg.data, msg.len));
}


/*
 * A message that quotes a value: 'invalid value "ARG" in "NAME" directive'
 * and maybe ", REASON", for one of the arguments.  Another names the
 * directive; only nginx's script compiler (history_count) may not.
 */

static void
fuzz_check_message(fuzz_call_t *fc, fuzz_msg_t *m)
{
    u_char      *last;
    size_t       n, suffix;
    ngx_str_t    msg, rest, kind, name;
    ngx_uint_t   i;

    suffix = sizeof(FUZZ_CONF_SUFFIX) - 1;

    FUZZ_CHECK(m->len >= suffix
               && ngx_memcmp(m->text + m->len - suffix, FUZZ_CONF_SUFFIX,
                             suffix) == 0,
               "%s: [emerg] \"%s\" not through ngx_conf_log_error()",
               fuzz_line(fc), fuzz_show(m->text, m->len));

    msg.data = m->text;
    msg.len = m->len - suffix;

    if (fuzz_prefix(&msg, "invalid value \"", &rest)) {
        ngx_str_set(&kind, "value");

    } else if (fuzz_prefix(&msg, "invalid parameter \"", &rest)) {
        ngx_str_set(&kind, "parameter");

    } else {
        ngx_str_null(&kind);
    }

    if (kind.len) {
        for (i = 1; i <= fc->nargs; i++) {
            last = ngx_snprintf(fuzz_want, NGX_MAX_CONF_ERRSTR,
                                "invalid %V \"%V\" in \"%V\" directive",
                                &kind, &fc->value[i], &fc->value[0]);
            n = last - fuzz_want;

            if (msg.len < n || ngx_memcmp(msg.data, fuzz_want, n) != 0) {
                continue;
            }

            rest.data = msg.data + n;
            rest.len = msg.len - n;

            /* the end, ", REASON", or a cut in ", " */

            if (rest.len == 0
                || (ngx_memcmp(rest.data, ", ", ngx_min(rest.len, 2)) == 0
                    && (rest.len >= 2 || msg.len == NGX_MAX_CONF_ERRSTR)))
            {
                return;
            }
        }

        FUZZ_CHECK(0, "%s: \"%s\" quotes no argument, or not as "
                   "'invalid %s \"ARG\" in \"NAME\" directive'",
                   fuzz_line(fc), fuzz_show(msg.data, msg.len),
                   (char *) kind.data);
    }

    if (msg.len >= NGX_MAX_CONF_ERRSTR) {
        return;     /* cut: the name may be past it */
    }

    name.len = fc->value[0].len + sizeof("\"\" directive") - 1;
    name.data = fuzz_want;
    ngx_sprintf(name.data, "\"%V\" directive", &fc->value[0]);

    if (memmem(msg.data, msg.len, name.data, name.len)) {
        return;
    }

    if (fc->d->set == ngx_http_history_count_set
        && (fuzz_prefix(&msg, "invalid variable name", &rest)
            || fuzz_prefix(&msg, "the closing bracket in \"", &rest)
            || fuzz_prefix(&msg, "using variable \"$", &rest)))
    {
        return;     /* nginx's ngx_http_script_compile() */
    }

    FUZZ_CHECK(0, "%s: \"%s\" does not name the directive", fuzz_line(fc),
               fuzz_show(msg.data, msg.len));
}


/* what holds for any directive */

static void
fuzz_check_answer(fuzz_call_t *fc)
{
    size_t       len;
    ngx_uint_t   i;
    fuzz_msg_t  *m;

    for (i = 0; i < fuzz_nmsgs && i < FUZZ_MSGS_MAX; i++) {
        m = &fuzz_msgs[i];

        FUZZ_CHECK(m->level == NGX_LOG_EMERG || m->level >= NGX_LOG_WARN,
                   "%s: logged at level %lu: \"%s\"", fuzz_line(fc),
                   (unsigned long) m->level, fuzz_show(m->text, m->len));

        if (m->level == NGX_LOG_EMERG) {
            fuzz_check_message(fc, m);
        }
    }

    if (fc->rv == NGX_CONF_ERROR) {
        FUZZ_CHECK(fuzz_nemerg == 1,
                   "%s: NGX_CONF_ERROR with %lu [emerg] messages, not one "
                   "(with none, nginx says nothing of why it stops)",
                   fuzz_line(fc), (unsigned long) fuzz_nemerg);
        return;
    }

    FUZZ_CHECK(fuzz_nemerg == 0, "%s: %s after an [emerg]", fuzz_line(fc),
               fc->rv == NGX_CONF_OK ? "NGX_CONF_OK" : "a string");

    if (fc->rv == NGX_CONF_OK) {
        return;
    }

    /* a string: nginx logs '"NAME" directive STRING' */

    for (len = 0; len < 256 && fc->rv[len]; len++) {
        FUZZ_CHECK(fc->rv[len] >= 0x20 && fc->rv[len] < 0x7f,
                   "%s: returned a string with byte 0x%02x", fuzz_line(fc),
                   (u_char) fc->rv[len]);
    }

    FUZZ_CHECK(len > 0 && len < 256, "%s: returned a string of %s",
               fuzz_line(fc), len ? "256 bytes or more" : "nothing");

    FUZZ_CHECK(ngx_strcmp(fc->rv, "is duplicate") != 0,
               "%s: \"is duplicate\" on a fresh configuration",
               fuzz_line(fc));
}


/*
 * history_redis address [tls] [db=] [password=] [username=]
 * [connect_timeout=] [timeout=] [queue=] [max_reply=] [replay=]: the
 * address as
 * ngx_parse_url() takes it; tls exactly, with nginx's SSL (without it, an
 * error that says so), and not on a unix socket; db= a number; password=
 * and username= not empty, username= only with password=; the timeouts
 * positive times; queue= a positive number; max_reply= a size of 1k or
 * more; replay= off or a time up to 1m, and then an error, since it needs
 * sentinel=; no other parameter.  The last of a repeated parameter
 * counts.
 * (sentinel= and cluster are checked by t/proc/210 and t/proc/220.)
 */

static void
fuzz_check_redis(fuzz_call_t *fc)
{
    time_t                          t;
    ngx_int_t                       n, db;
    ngx_str_t                      *v, rest, password, username;
    ngx_url_t                       u;
    ngx_addr_t                      first;
    ngx_msec_t                      connect_timeout, timeout;
    ngx_uint_t                      i, queue, naddrs, sentinel_password;
    ngx_uint_t                      tls, replay;
    ngx_http_history_redis_conf_t  *rcf;

    v = fc->value;
    tls = 0;

    db = 0;
    queue = NGX_CONF_UNSET_UINT;
    connect_timeout = NGX_CONF_UNSET_MSEC;
    timeout = NGX_CONF_UNSET_MSEC;
    ngx_str_null(&password);
    ngx_str_null(&username);
    naddrs = 0;
    sentinel_password = 0;
    replay = 0;

    /* Sentinel mode is t/proc/210-sentinel.t's */

    for (i = 1; i <= fc->nargs; i++) {
        if (fuzz_prefix(&v[i], "sentinel=", &rest)
            || (v[i].len == 7 && ngx_strncmp(v[i].data, "cluster", 7) == 0))
        {
            return;
        }
    }

    for (i = 1; i <= fc->nargs; i++) {

        if (v[i].len == 3 && ngx_memcmp(v[i].data, "tls", 3) == 0) {
#if (NGX_SSL)
            tls = 1;
            continue;
#else
            fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"tls\" in "
                                            "\"history_redis\" directive "
                                            "needs nginx built with "
                                            "OpenSSL"));
            return;
#endif
        }

        /* an argument without "=" is an address */

        if (memchr(v[i].data, '=', v[i].len) == NULL) {
            ngx_memzero(&u, sizeof(ngx_url_t));

            u.url = v[i];
            u.default_port = 6379;

            if (ngx_parse_url(fc->cf->pool, &u) != NGX_OK) {
                if (u.err) {
                    fuzz_want_error(fc, ngx_snprintf(fuzz_want,
                                    NGX_MAX_CONF_ERRSTR,
                                    "%s in \"%V\" of the \"history_redis\" "
                                    "directive", u.err, &v[i]));
                }

                FUZZ_CHECK(fc->rv == NGX_CONF_ERROR, "%s: %s, "
                           "ngx_parse_url() fails", fuzz_line(fc),
                           fuzz_rv(fc->rv));
                return;
            }

            if (u.naddrs == 0) {
                fuzz_want_invalid(fc, i, "no address");
                return;
            }

            if (naddrs++ == 0) {
                first = u.addrs[0];
            }

            continue;
        }

        if (fuzz_prefix(&v[i], "db=", &rest)) {
            if (!fuzz_decimal(&rest, &db)) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

        } else if (fuzz_prefix(&v[i], "password=", &rest)) {
            if (rest.len == 0) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

            password = rest;

        } else if (fuzz_prefix(&v[i], "username=", &rest)) {
            if (rest.len == 0) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

            username = rest;

        } else if (fuzz_prefix(&v[i], "connect_timeout=", &rest)) {
            t = ngx_parse_time(&rest, 0);

            if (t == (time_t) NGX_ERROR || t == 0) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

            connect_timeout = t;

        } else if (fuzz_prefix(&v[i], "timeout=", &rest)) {
            t = ngx_parse_time(&rest, 0);

            if (t == (time_t) NGX_ERROR || t == 0) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

            timeout = t;

        } else if (fuzz_prefix(&v[i], "queue=", &rest)) {
            if (!fuzz_decimal(&rest, &n) || n == 0) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

            queue = n;

        } else if (fuzz_prefix(&v[i], "sentinel_password=", &rest)) {
            if (rest.len == 0) {
                fuzz_want_invalid(fc, i, NULL);
                return;
            }

            sentinel_password = 1;

        } else if (fuzz_prefix(&v[i], "max_reply=", &rest)) {
            if (ngx_parse_size(&rest) == NGX_ERROR
                || ngx_parse_size(&rest) < 1024)
            {
                fuzz_want_invalid(fc, i, "it must be 1k or more");
                return;
            }

        } else if (fuzz_prefix(&v[i], "replay=", &rest)) {
            if (!(rest.len == 3 && ngx_strncmp(rest.data, "off", 3) == 0)
                && (ngx_parse_time(&rest, 0) == NGX_ERROR
                    || ngx_parse_time(&rest, 0) > 60000))
            {
                fuzz_want_invalid(fc, i, "it must be a time up to 1m, "
                                  "or off");
                return;
            }

            replay = 1;

        } else {
            fuzz_want_parameter(fc, i);
            return;
        }
    }

    if (username.len && password.len == 0) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"username=\" needs "
                                        "\"password=\" in \"history_redis\" "
                                        "directive"));
        return;
    }

    if (naddrs == 0) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "no address in "
                                        "\"history_redis\" directive"));
        return;
    }

    if (naddrs > 1) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "several addresses in "
                                        "\"history_redis\" directive need "
                                        "\"sentinel=\" or \"cluster\""));
        return;
    }

    if (sentinel_password) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"sentinel_password=\" "
                                        "needs \"sentinel=\" in "
                                        "\"history_redis\" directive"));
        return;
    }

    if (replay) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"replay=\" needs "
                                        "\"sentinel=\" in \"history_redis\" "
                                        "directive"));
        return;
    }

    if (tls && first.sockaddr->sa_family == AF_UNIX) {
        fuzz_want_error(fc, ngx_snprintf(fuzz_want, NGX_MAX_CONF_ERRSTR,
                                         "\"tls\" in \"history_redis\" "
                                         "directive is for TCP, not the "
                                         "unix socket \"%V\"",
                                         &first.name));
        return;
    }

    fuzz_want_ok(fc);

    rcf = &fc->hmcf->redis;

    FUZZ_CHECK(rcf->addr != NULL
               && rcf->addr->socklen == first.socklen
               && ngx_memcmp(rcf->addr->sockaddr, first.sockaddr,
                             first.socklen) == 0
               && rcf->addr->name.len > 0,
               "%s: not the address of \"%s\"", fuzz_line(fc),
               fuzz_show(v[1].data, v[1].len));

    FUZZ_CHECK(rcf->db == (ngx_uint_t) db, "%s: db %lu, expected %ld",
               fuzz_line(fc), (unsigned long) rcf->db, (long) db);

    FUZZ_CHECK(rcf->password.len == password.len
               && rcf->username.len == username.len
               && (password.len == 0
                   || ngx_memcmp(rcf->password.data, password.data,
                                 password.len) == 0)
               && (username.len == 0
                   || ngx_memcmp(rcf->username.data, username.data,
                                 username.len) == 0),
               "%s: password \"%s\", username \"%s\"", fuzz_line(fc),
               fuzz_show(rcf->password.data, rcf->password.len),
               fuzz_show(rcf->username.data, rcf->username.len));

    FUZZ_CHECK(rcf->username.len == 0 || rcf->password.len > 0,
               "%s: a username without a password", fuzz_line(fc));

    /* unset until init_main_conf(), or positive */

    FUZZ_CHECK(rcf->connect_timeout == connect_timeout
               && rcf->timeout == timeout
               && rcf->connect_timeout != 0 && rcf->timeout != 0,
               "%s: connect_timeout %lu, timeout %lu, expected %lu, %lu",
               fuzz_line(fc), (unsigned long) rcf->connect_timeout,
               (unsigned long) rcf->timeout, (unsigned long) connect_timeout,
               (unsigned long) timeout);

    FUZZ_CHECK((rcf->ssl != NULL) == (tls != 0),
               "%s: tls %s, expected %s", fuzz_line(fc),
               rcf->ssl ? "on" : "off", tls ? "on" : "off");

    FUZZ_CHECK(rcf->queue == queue && rcf->queue != 0,
               "%s: queue %lu, expected %lu", fuzz_line(fc),
               (unsigned long) rcf->queue, (unsigned long) queue);
}


/*
 * history_length, history_online_shards: a number from 1 to 1000, to 64
 * (docs/directives.md), as the bounds in the command's post say
 */

static void
fuzz_check_number(fuzz_call_t *fc)
{
    u_char                  reason[64];
    ngx_int_t               n, high;
    ngx_uint_t             *np;
    ngx_conf_num_bounds_t  *bounds;

    bounds = fc->d->cmd->post;

    high = fuzz_is(&fc->d->name, "history_length") ? 1000 : 64;

    FUZZ_CHECK(bounds->low == 1 && bounds->high == high,
               "%s: bounds %ld to %ld, documented 1 to %ld", fuzz_line(fc),
               (long) bounds->low, (long) bounds->high, (long) high);

    if (!fuzz_decimal(&fc->value[1], &n)
        || n < bounds->low || n > bounds->high)
    {
        (void) ngx_sprintf(reason, "it must be a number from %i to %i%Z",
                           bounds->low, bounds->high);
        fuzz_want_invalid(fc, 1, (char *) reason);
        return;
    }

    fuzz_want_ok(fc);

    np = (ngx_uint_t *) ((char *) fc->conf + fc->d->cmd->offset);

    FUZZ_CHECK(*np == (ngx_uint_t) n, "%s: stored %lu", fuzz_line(fc),
               (unsigned long) *np);
}


/* history_expire, history_online_timeout, ...: a positive time (seconds) */

static void
fuzz_check_time(fuzz_call_t *fc)
{
    time_t  t, *tp;

    t = ngx_parse_time(&fc->value[1], 1);

    if (t == (time_t) NGX_ERROR || t <= 0) {
        fuzz_want_invalid(fc, 1, "it must be a positive time");
        return;
    }

    fuzz_want_ok(fc);

    tp = (time_t *) ((char *) fc->conf + fc->d->cmd->offset);

    FUZZ_CHECK(*tp == t && *tp > 0, "%s: stored %ld, expected %ld",
               fuzz_line(fc), (long) *tp, (long) t);
}


/* history_status: statuses from 100 to 599, kept in order */

static void
fuzz_check_status(fuzz_call_t *fc)
{
    ngx_int_t     n;
    ngx_uint_t    i, *code;
    ngx_array_t  *a;

    for (i = 1; i <= fc->nargs; i++) {
        if (!fuzz_decimal(&fc->value[i], &n) || n < 100 || n > 599) {
            fuzz_want_invalid(fc, i, "it must be a status from 100 to 599");
            return;
        }
    }

    fuzz_want_ok(fc);

    a = *(ngx_array_t **) ((char *) fc->conf + fc->d->cmd->offset);

    FUZZ_CHECK(a != NULL && a != NGX_CONF_UNSET_PTR && a->nelts == fc->nargs,
               "%s: %lu statuses stored", fuzz_line(fc),
               (unsigned long) (a && a != NGX_CONF_UNSET_PTR ? a->nelts : 0));

    code = a->elts;

    for (i = 1; i <= fc->nargs; i++) {
        (void) fuzz_decimal(&fc->value[i], &n);

        FUZZ_CHECK(code[i - 1] == (ngx_uint_t) n, "%s: status %lu is %lu",
                   fuzz_line(fc), (unsigned long) i,
                   (unsigned long) code[i - 1]);
    }
}


/*
 * history_id_pattern, history_key_pattern: "off", or a regex that
 * compiles (the message is PCRE2's, from the same ngx_regex_compile())
 */

static void
fuzz_check_pattern(fuzz_call_t *fc)
{
#if (NGX_PCRE)
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_uint_t           key, off, stored;
    ngx_regex_compile_t  rc;

    /* history_key_pattern keeps its own fields */
    key = fuzz_is(&fc->d->name, "history_key_pattern");

    if (fuzz_is(&fc->value[1], "off")) {
        fuzz_want_ok(fc);

        off = key ? fc->hlcf->key_mode == NGX_HTTP_HISTORY_KEY_OFF
                  : fc->hlcf->id_check == NGX_HTTP_HISTORY_ID_ANY;

        FUZZ_CHECK(off, "%s: still checked", fuzz_line(fc));
        return;
    }

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = fc->value[1];
    rc.pool = fc->cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        fuzz_want_error(fc, ngx_snprintf(fuzz_want, NGX_MAX_CONF_ERRSTR,
                                         "invalid value \"%V\" in \"%V\" "
                                         "directive, %V", &fc->value[1],
                                         &fc->value[0], &rc.err));
        return;
    }

    fuzz_want_ok(fc);

    stored = key ? fc->hlcf->key_mode == NGX_HTTP_HISTORY_KEY_REGEX
                   && fc->hlcf->key_regex != NULL
                 : fc->hlcf->id_check == NGX_HTTP_HISTORY_ID_PATTERN
                   && fc->hlcf->pattern != NULL;

    FUZZ_CHECK(stored, "%s: no pattern stored", fuzz_line(fc));
#endif
}


/* history_serve [json | text] */

static void
fuzz_check_serve(fuzz_call_t *fc)
{
    ngx_uint_t  want;

    if (fc->nargs == 0 || fuzz_is(&fc->value[1], "json")) {
        want = NGX_HTTP_HISTORY_FORMAT_JSON;

    } else if (fuzz_is(&fc->value[1], "text")) {
        want = NGX_HTTP_HISTORY_FORMAT_TEXT;

    } else {
        fuzz_want_invalid(fc, 1, "it must be \"json\" or \"text\"");
        return;
    }

    fuzz_want_ok(fc);

    FUZZ_CHECK(fc->hlcf->format == want
               && fc->clcf->handler == ngx_http_history_serve_handler,
               "%s: serve %lu, expected %lu, or not the handler",
               fuzz_line(fc), (unsigned long) fc->hlcf->format,
               (unsigned long) want);
}


/*
 * history_fallback: one of the names in cmd->post, exactly; otherwise the
 * reason lists them: 'it must be "a"', '... "a" or "b"', '... "a", "b" or
 * "c"'
 */

static void
fuzz_check_enum(fuzz_call_t *fc)
{
    u_char           *p, *last;
    ngx_str_t        *v;
    ngx_uint_t        i, n, *np;
    ngx_conf_enum_t  *e;
    u_char            reason[NGX_MAX_CONF_ERRSTR];

    v = &fc->value[1];
    e = fc->d->cmd->post;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == v->len
            && ngx_memcmp(e[i].name.data, v->data, v->len) == 0)
        {
            fuzz_want_ok(fc);

            np = (ngx_uint_t *) ((char *) fc->conf + fc->d->cmd->offset);

            FUZZ_CHECK(*np == e[i].value, "%s: stored %lu, expected %lu",
                       fuzz_line(fc), (unsigned long) *np,
                       (unsigned long) e[i].value);
            return;
        }
    }

    n = i;
    last = reason + sizeof(reason) - 1;
    p = ngx_slprintf(reason, last, "it must be");

    for (i = 0; i < n; i++) {
        p = ngx_slprintf(p, last, "%s \"%V\"",
                         i == 0 ? "" : (i == n - 1 ? " or" : ","),
                         &e[i].name);
    }

    *p = '\0';

    fuzz_want_invalid(fc, 1, (char *) reason);
}


static void
fuzz_check_online(fuzz_call_t *fc)
{
    fuzz_want_ok(fc);

    FUZZ_CHECK(fc->hlcf->online == 1
               && fc->clcf->handler == ngx_http_history_online_handler,
               "%s: online %ld, or not the handler", fuzz_line(fc),
               (long) fc->hlcf->online);
}


static void
fuzz_check_stats(fuzz_call_t *fc)
{
    fuzz_want_ok(fc);

    FUZZ_CHECK(fc->hlcf->stats == 1
               && fc->clcf->handler == ngx_http_history_stats_handler,
               "%s: stats %ld, or not the handler", fuzz_line(fc),
               (long) fc->hlcf->stats);
}


/* "daily" and "unique" from value[from..]; 0: one is neither (*bad) */

static ngx_uint_t
fuzz_count_flags(fuzz_call_t *fc, ngx_uint_t from, ngx_uint_t *flags,
    ngx_uint_t *bad)
{
    ngx_uint_t  i;

    *flags = 0;

    for (i = from; i <= fc->nargs; i++) {
        if (fuzz_is(&fc->value[i], "daily")) {
            *flags |= NGX_HTTP_HISTORY_COUNT_DAILY;

        } else if (fuzz_is(&fc->value[i], "unique")) {
            *flags |= NGX_HTTP_HISTORY_COUNT_UNIQUE;

        } else {
            *bad = i;
            return 0;
        }
    }

    return 1;
}


/*
 * history_count id [daily] [unique]: the id as a complex value (compiled
 * again here, its message kept: nginx's own), then only "daily" and
 * "unique"
 */

static void
fuzz_check_count(fuzz_call_t *fc)
{
    u_char                            *last;
    ngx_str_t                          msg;
    ngx_uint_t                         flags, bad, nmsgs, nemerg, ok;
    ngx_http_complex_value_t           cv;
    ngx_http_compile_complex_value_t   ccv;

    if (fuzz_is(&fc->value[1], "off")) {

        if (fc->nargs > 1) {
            fuzz_want_parameter(fc, 2);
            return;
        }

        fuzz_want_ok(fc);

        FUZZ_CHECK(fc->hlcf->count == NULL && fc->hlcf->count_flags == 0,
                   "%s: still counting", fuzz_line(fc));
        return;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = fc->cf;
    ccv.value = &fc->value[1];
    ccv.complex_value = &cv;

    nmsgs = fuzz_nmsgs;
    nemerg = fuzz_nemerg;
    last = fuzz_want;

    ok = (ngx_http_compile_complex_value(&ccv) == NGX_OK);

    if (!ok) {
        FUZZ_CHECK(fuzz_nemerg == nemerg + 1 && nmsgs < FUZZ_MSGS_MAX,
                   "%s: the id does not compile, and nginx says nothing",
                   fuzz_line(fc));

        msg.data = fuzz_msgs[nmsgs].text;
        msg.len = fuzz_msgs[nmsgs].len - (sizeof(FUZZ_CONF_SUFFIX) - 1);

        last = ngx_cpymem(fuzz_want, msg.data, msg.len);
    }

    fuzz_nmsgs = nmsgs;
    fuzz_nemerg = nemerg;

    if (!ok) {
        fuzz_want_error(fc, last);
        return;
    }

    if (!fuzz_count_flags(fc, 2, &flags, &bad)) {
        fuzz_want_parameter(fc, bad);
        return;
    }

    fuzz_want_ok(fc);

    FUZZ_CHECK(fc->hlcf->count != NULL
               && fc->hlcf->count != NGX_CONF_UNSET_PTR
               && fc->hlcf->count->value.len == fc->value[1].len
               && fc->hlcf->count->value.data == fc->value[1].data,
               "%s: not the id stored", fuzz_line(fc));

    FUZZ_CHECK(fc->hlcf->count_flags == flags, "%s: flags %lu, expected %lu",
               fuzz_line(fc), (unsigned long) fc->hlcf->count_flags,
               (unsigned long) flags);
}


/* history_views [daily] [unique] */

static void
fuzz_check_views(fuzz_call_t *fc)
{
    ngx_uint_t  flags, bad;

    if (!fuzz_count_flags(fc, 1, &flags, &bad)) {
        fuzz_want_parameter(fc, bad);
        return;
    }

    fuzz_want_ok(fc);

    FUZZ_CHECK(fc->hlcf->views_flags == flags
               && fc->clcf->handler == ngx_http_history_views_handler,
               "%s: views %lu, expected %lu, or not the handler",
               fuzz_line(fc), (unsigned long) fc->hlcf->views_flags,
               (unsigned long) flags);
}


/*
 * history_cookie name | off [expires=time | off] [domain=] [path=]
 * [secure] [httponly | nohttponly] [samesite=lax | strict | none |
 * nosamesite]: the name one or more letters, digits, "_" and "-";
 * expires= from 1s to 68y; domain= not empty, path= starting with "/",
 * both without ";" or a control byte; httponly and nohttponly, samesite=
 * and nosamesite not together; samesite=none only with secure; HttpOnly
 * and SameSite=Lax unless nohttponly, nosamesite or samesite= say
 * otherwise.  Stored: the name, expires, the
 * attributes as they go after the value in Set-Cookie ("; Max-Age=...;
 * Domain=...; Path=...; Secure; HttpOnly; SameSite=..."), and the index of
 * $cookie_NAME.
 *
 * And what a cookie needs, checked on what is stored, as the findings
 * "cookie-empty-name", "cookie-expires-overflow" and "cookie-attr-ctl"
 * (fixed; FUZZ_KNOWN lets them pass on a module without the fixes): a
 * name, an expiry ngx_http_history_set_cookie() can add to ngx_time()
 * without overflow, attributes without control bytes.
 */

static void
fuzz_check_cookie(fuzz_call_t *fc)
{
    u_char                     *p, *last, *attrs;
    time_t                      t, expires;
    ngx_str_t                  *v, rest, domain, path, samesite, name;
    char                       *reason;
    ngx_uint_t                  i, secure, httponly, nohttponly, nosamesite,
                                bad, parameter;
    ngx_http_variable_t        *var;
    ngx_http_history_cookie_t  *cookie;

    v = fc->value;

    if (fuzz_is(&v[1], "off")) {
        if (fc->nargs > 1) {
            fuzz_want_invalid(fc, 2, NULL);
            return;
        }

        fuzz_want_ok(fc);

        FUZZ_CHECK(fc->hlcf->cookie == NULL, "%s: a cookie stored",
                   fuzz_line(fc));
        return;
    }

    for (i = 0; i < v[1].len; i++) {
        p = &v[1].data[i];

        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
        {
            break;
        }
    }

    if (v[1].len == 0 || i < v[1].len) {
        fuzz_want_invalid(fc, 1, "a cookie name is letters, digits, "
                                 "\"_\" and \"-\"");
        return;
    }

    /*
     * bad: the first argument the code refuses, as a value (expires=,
     * domain=, path=) or as a parameter
     */

    reason = NULL;

    expires = 90 * 86400;
    ngx_str_null(&domain);
    ngx_str_set(&path, "/");
    ngx_str_null(&samesite);
    secure = 0;
    httponly = 0;
    nohttponly = 0;
    nosamesite = 0;
    bad = 0;
    parameter = 0;

    for (i = 2; i <= fc->nargs && bad == 0; i++) {

        if (fuzz_prefix(&v[i], "expires=", &rest)) {
            if (fuzz_is(&rest, "off")) {
                expires = 0;
                continue;
            }

            t = ngx_parse_time(&rest, 1);

            if (t == (time_t) NGX_ERROR || t == 0
                || t > 68 * 365 * 86400)
            {
                bad = i;
                reason = "expires= is from 1s to 68y, or off";
                continue;
            }

            expires = t;

        } else if (fuzz_prefix(&v[i], "domain=", &rest)) {
            if (rest.len == 0 || fuzz_has(rest.data, rest.len, ';')
                || fuzz_has_ctl(rest.data, rest.len))
            {
                bad = i;
                continue;
            }

            domain = rest;

        } else if (fuzz_prefix(&v[i], "path=", &rest)) {
            if (rest.len == 0 || rest.data[0] != '/'
                || fuzz_has(rest.data, rest.len, ';')
                || fuzz_has_ctl(rest.data, rest.len))
            {
                bad = i;
                continue;
            }

            path = rest;

        } else if (fuzz_is(&v[i], "secure")) {
            secure = 1;

        } else if (fuzz_is(&v[i], "httponly")) {
            httponly = 1;

        } else if (fuzz_is(&v[i], "nohttponly")) {
            nohttponly = 1;

        } else if (fuzz_is(&v[i], "nosamesite")) {
            nosamesite = 1;

        } else if (fuzz_is(&v[i], "samesite=lax")) {
            ngx_str_set(&samesite, "Lax");

        } else if (fuzz_is(&v[i], "samesite=strict")) {
            ngx_str_set(&samesite, "Strict");

        } else if (fuzz_is(&v[i], "samesite=none")) {
            ngx_str_set(&samesite, "None");

        } else {
            bad = i;
            parameter = 1;
        }
    }

    if (bad && parameter) {
        fuzz_want_parameter(fc, bad);
        return;
    }

    if (bad) {
        fuzz_want_invalid(fc, bad, reason);
        return;
    }

    if (httponly && nohttponly) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"httponly\" and "
                                        "\"nohttponly\" contradict each "
                                        "other in \"history_cookie\" "
                                        "directive"));
        return;
    }

    if (samesite.len && nosamesite) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"samesite=\" and "
                                        "\"nosamesite\" contradict each "
                                        "other in \"history_cookie\" "
                                        "directive"));
        return;
    }

    httponly = !nohttponly;

    if (samesite.len == 0 && !nosamesite) {
        ngx_str_set(&samesite, "Lax");
    }

    if (samesite.len == 4 && !secure) {
        fuzz_want_error(fc, ngx_sprintf(fuzz_want, "\"samesite=none\" needs "
                                        "\"secure\" in \"history_cookie\" "
                                        "directive"));
        return;
    }

    fuzz_want_ok(fc);

    cookie = fc->hlcf->cookie;

    FUZZ_CHECK(cookie != NULL && cookie != NGX_CONF_UNSET_PTR,
               "%s: no cookie stored", fuzz_line(fc));

    /* the needs */

    FUZZ_CHECK(cookie->name.len > 0 || fuzz_known_empty_name,
               "%s: a cookie without a name accepted (known: "
               "cookie-empty-name)", fuzz_line(fc));

    FUZZ_CHECK(cookie->expires >= 0
               && (cookie->expires <= NGX_MAX_TIME_T_VALUE - ngx_time()
                   || fuzz_known_expires),
               "%s: expires %ld accepted, ngx_time() + expires overflows "
               "in ngx_http_history_set_cookie() (known: "
               "cookie-expires-overflow)", fuzz_line(fc),
               (long) cookie->expires);

    FUZZ_CHECK(!fuzz_has_ctl(cookie->attrs.data, cookie->attrs.len)
               || fuzz_known_ctl,
               "%s: attributes with a control byte accepted: \"%s\" (known: "
               "cookie-attr-ctl)", fuzz_line(fc),
               fuzz_show(cookie->attrs.data, cookie->attrs.len));

    /* what the code promises */

    FUZZ_CHECK(cookie->name.len == v[1].len
               && ngx_memcmp(cookie->name.data, v[1].data, v[1].len) == 0,
               "%s: the name stored is \"%s\"", fuzz_line(fc),
               fuzz_show(cookie->name.data, cookie->name.len));

    FUZZ_CHECK(cookie->expires == expires, "%s: expires %ld, expected %ld",
               fuzz_line(fc), (long) cookie->expires, (long) expires);

    attrs = ngx_pnalloc(fc->cf->pool, sizeof("; Max-Age=") + NGX_TIME_T_LEN
                        + sizeof("; Domain=") + domain.len
                        + sizeof("; Path=") + path.len
                        + sizeof("; Secure; HttpOnly; SameSite=Strict"));
    if (attrs == NULL) {
        abort();
    }

    p = attrs;

    if (expires) {
        p = ngx_sprintf(p, "; Max-Age=%T", expires);
    }

    if (domain.len) {
        p = ngx_sprintf(p, "; Domain=%V", &domain);
    }

    p = ngx_sprintf(p, "; Path=%V", &path);

    if (secure) {
        p = ngx_sprintf(p, "; Secure");
    }

    if (httponly) {
        p = ngx_sprintf(p, "; HttpOnly");
    }

    if (samesite.len) {
        p = ngx_sprintf(p, "; SameSite=%V", &samesite);
    }

    last = p;

    FUZZ_CHECK(cookie->attrs.len == (size_t) (last - attrs)
               && ngx_memcmp(cookie->attrs.data, attrs, last - attrs) == 0,
               "%s: attributes \"%s\", expected \"%s\"", fuzz_line(fc),
               fuzz_show(cookie->attrs.data, cookie->attrs.len),
               fuzz_show(attrs, last - attrs));

    /* $cookie_NAME, lowercased as nginx indexes variables */

    name.len = sizeof("cookie_") - 1 + v[1].len;
    name.data = ngx_pnalloc(fc->cf->pool, name.len);
    if (name.data == NULL) {
        abort();
    }

    p = ngx_cpymem(name.data, "cookie_", sizeof("cookie_") - 1);
    ngx_strlow(p, v[1].data, v[1].len);

    var = fc->cmcf->variables.elts;

    FUZZ_CHECK(cookie->index >= 0
               && (ngx_uint_t) cookie->index < fc->cmcf->variables.nelts
               && var[cookie->index].name.len == name.len
               && ngx_memcmp(var[cookie->index].name.data, name.data,
                             name.len) == 0,
               "%s: index %ld is not $%s", fuzz_line(fc),
               (long) cookie->index, fuzz_show(name.data, name.len));
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                        *p, *last, *nl;
    char                          *rv;
    ngx_str_t                     *value;
    ngx_uint_t                     nargs, nemerg;
    ngx_conf_t                     cf;
    fuzz_call_t                    fc;
    ngx_command_t                 *cmd;
    fuzz_directive_t              *d;
    ngx_http_conf_ctx_t            ctx;
    void                          *main_conf[2], *srv_conf[2], *loc_conf[2];
    void                         **confp;

    if (size == 0) {
        return -1;
    }

    d = &fuzz_directives[data[0] % FUZZ_NDIRECTIVES];
    cmd = d->cmd;

    /* the arguments, each ended by '\n' (the last one may go without) */

    p = (u_char *) data + 1;
    last = (u_char *) data + size;

    for (nargs = 0; p < last; nargs++) {
        nl = memchr(p, '\n', last - p);
        p = nl ? nl + 1 : last;
    }

    if (nargs > FUZZ_ARGS_MAX) {
        return -1;
    }

    /* as ngx_conf_handler(), with nelts = nargs + 1 */

    if (!(cmd->type & NGX_CONF_ANY)) {

        if (cmd->type & NGX_CONF_FLAG) {
            if (nargs != 1) {
                return -1;
            }

        } else if (cmd->type & NGX_CONF_1MORE) {
            if (nargs < 1) {
                return -1;
            }

        } else if (cmd->type & NGX_CONF_2MORE) {
            if (nargs < 2) {
                return -1;
            }

        } else if (nargs + 1 > NGX_CONF_MAX_ARGS
                   || !(cmd->type & fuzz_argument_number[nargs]))
        {
            return -1;
        }
    }

    /* a fresh configuration context */

    ngx_memzero(&cf, sizeof(ngx_conf_t));

    cf.pool = ngx_create_pool(NGX_CYCLE_POOL_SIZE, &fuzz_cf_log);
    cf.temp_pool = ngx_create_pool(NGX_CYCLE_POOL_SIZE, &fuzz_cf_log);
    if (cf.pool == NULL || cf.temp_pool == NULL) {
        abort();
    }

    cf.name = "fuzz";
    cf.cycle = &fuzz_cycle;
    cf.log = &fuzz_cf_log;
    cf.conf_file = &fuzz_conf_file;
    cf.module_type = NGX_HTTP_MODULE;
    cf.cmd_type = (cmd->type & NGX_HTTP_MAIN_CONF) ? NGX_HTTP_MAIN_CONF
                                                   : NGX_HTTP_LOC_CONF;

    cf.args = ngx_array_create(cf.pool, nargs + 1, sizeof(ngx_str_t));
    if (cf.args == NULL) {
        abort();
    }

    value = ngx_array_push(cf.args);
    if (value == NULL) {
        abort();
    }

    *value = d->name;

    /* each argument: its bytes and the NUL of ngx_conf_read_token() */

    for (p = (u_char *) data + 1; p < last; /* void */) {
        nl = memchr(p, '\n', last - p);

        value = ngx_array_push(cf.args);
        if (value == NULL) {
            abort();
        }

        value->len = (nl ? nl : last) - p;
        value->data = ngx_pnalloc(cf.pool, value->len + 1);
        if (value->data == NULL) {
            abort();
        }

        ngx_memcpy(value->data, p, value->len);
        value->data[value->len] = '\0';

        p = nl ? nl + 1 : last;
    }

    ngx_memzero(&fc, sizeof(fuzz_call_t));

    fc.d = d;
    fc.cf = &cf;
    fc.value = cf.args->elts;
    fc.nargs = nargs;

    fc.hmcf = ngx_http_history_create_main_conf(&cf);
    fc.hlcf = ngx_http_history_create_loc_conf(&cf);
    fc.cmcf = ngx_pcalloc(cf.pool, sizeof(ngx_http_core_main_conf_t));
    fc.clcf = ngx_pcalloc(cf.pool, sizeof(ngx_http_core_loc_conf_t));

    if (fc.hmcf == NULL || fc.hlcf == NULL || fc.cmcf == NULL
        || fc.clcf == NULL)
    {
        abort();
    }

    main_conf[ngx_http_history_module.ctx_index] = fc.hmcf;
    main_conf[ngx_http_core_module.ctx_index] = fc.cmcf;
    srv_conf[ngx_http_history_module.ctx_index] = NULL;
    srv_conf[ngx_http_core_module.ctx_index] = NULL;
    loc_conf[ngx_http_history_module.ctx_index] = fc.hlcf;
    loc_conf[ngx_http_core_module.ctx_index] = fc.clcf;

    ctx.main_conf = main_conf;
    ctx.srv_conf = srv_conf;
    ctx.loc_conf = loc_conf;

    cf.ctx = &ctx;

    /* the module's conf, as ngx_conf_handler() finds it */

    confp = *(void ***) ((char *) cf.ctx + cmd->conf);
    fc.conf = confp[ngx_http_history_module.ctx_index];

    /* the call */

    fuzz_nmsgs = 0;
    fuzz_nemerg = 0;

    fc.rv = cmd->set(&cf, cmd, fc.conf);

    fuzz_check_answer(&fc);

    d->check(&fc);

    /* once more on the same configuration */

    if (fc.rv == NGX_CONF_OK) {
        nemerg = fuzz_nemerg;

        rv = cmd->set(&cf, cmd, fc.conf);

        FUZZ_CHECK(rv != NGX_CONF_OK && rv != NGX_CONF_ERROR
                   && ngx_strcmp(rv, "is duplicate") == 0
                   && fuzz_nemerg == nemerg,
                   "%s twice: %s, expected \"is duplicate\"", fuzz_line(&fc),
                   fuzz_rv(rv));
    }

    ngx_destroy_pool(cf.temp_pool);
    ngx_destroy_pool(cf.pool);

    return 0;
}
