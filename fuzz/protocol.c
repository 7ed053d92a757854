
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * The link's own Redis protocol code against hiredis's, for any input.
 * The first byte says which:
 *
 *   even: the rest is an argv, each argument a length then its bytes (one
 *         byte 0..127, or two bytes with the high bit set: up to 32767,
 *         cut at the end of the input); ngx_http_history_format_size() and
 *         ngx_http_history_format() must give exactly the bytes of
 *         hiredis's redisFormatCommandArgv();
 *
 *   odd:  the rest is what Redis sends; the link's reader
 *         (ngx_http_history_reader_create(): reply objects in a pool,
 *         released after each reply) is fed in pieces of 1 to 16 bytes,
 *         each first through the link's scan (ngx_http_history_scan(),
 *         with a limit of 128 bytes, 1 KB, 16 KB or the default, from the
 *         first byte), and must give the same replies, and fail at the
 *         same point, as a reader fed everything at once with hiredis's
 *         own functions (with the same refusal of arrays of more than
 *         65536 elements, which hiredis would otherwise try to allocate),
 *         up to where the scan refuses.  No reply it gives takes more than
 *         the limit or nests deeper than NGX_HTTP_HISTORY_DEPTH_MAX; a
 *         reply the scan refuses as too large, if hiredis's reader has it
 *         whole, does.
 *
 *         Each reply is also checked with ngx_http_history_shape_check()
 *         as the reply to the next command of a unit the module sends
 *         (record, read, views, online, forget, count, handshake; from the
 *         first byte, then in turn), against a check of the harness's own
 *         written from what Redis answers each of those units: both must
 *         accept and refuse the same replies.
 */


#include "../ngx_http_history_module.h"
#include "harness.h"


#define FUZZ_ARGS_MAX  256


/*
 * The units, as the module and the link send them, and what Redis answers
 * each command, one letter per reply:
 *
 *   M  MULTI: +OK (an error: what follows runs at once, X is an error)
 *   X  EXEC: nil, or an array of one reply per command queued, each what
 *      its letter says or an error
 *   O  +OK         K  +OK or nil      P  +PONG        I  an integer
 *   A  an array of strings            N  ... of strings or nils
 *   T  the string "7", the tag of a unit whose reply goes to a request
 *
 * Between M and X, every reply is +QUEUED or an error.  An error answers
 * any command but T and those of the handshake.
 */

typedef struct {
    const char                *pattern;
    const char                *names[8];
    ngx_uint_t                 handshake;
} fuzz_unit_t;


static fuzz_unit_t  fuzz_units[] = {
    { "MIIOIX", { "MULTI", "LREM", "LPUSH", "LTRIM", "EXPIRE", "EXEC" }, 0 },
    { "AT", { "LRANGE", "PING" }, 0 },
    { "MNNIIXT", { "MULTI", "MGET", "MGET", "PFCOUNT", "PFCOUNT", "EXEC",
                   "PING" }, 0 },
    { "MINXT", { "MULTI", "ZCOUNT", "ZMSCORE", "EXEC", "PING" }, 0 },
    { "KIII", { "SET", "ZADD", "ZREMRANGEBYSCORE", "EXPIRE" }, 0 },
    { "IT", { "DEL", "PING" }, 0 },
    { "IIII", { "INCR", "INCR", "EXPIRE", "PFADD" }, 0 },
    { "OOP", { "AUTH", "SELECT", "PING" }, 1 }
};

#define FUZZ_UNITS  (sizeof(fuzz_units) / sizeof(fuzz_unit_t))


typedef struct {
    fuzz_unit_t               *unit;
    ngx_uint_t                 next;
    ngx_uint_t                 multi;      /* M's index + 1 */
    ngx_uint_t                 aborted;

    /* the link's */
    ngx_http_history_shape_t   shape;
    u_char                     kind[8];
} fuzz_shape_t;


static redisReplyObjectFunctions   fuzz_oracle_fn;
static void *(*fuzz_default_array)(const redisReadTask *task,
    ngx_http_history_elements_t elements);


static void *
fuzz_oracle_array(const redisReadTask *task,
    ngx_http_history_elements_t elements)
{
    if ((size_t) elements > NGX_HTTP_HISTORY_ELEMENTS_MAX) {
        return NULL;
    }

    return fuzz_default_array(task, elements);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    redisReader  *reader;

    fuzz_init();

    /* hiredis's own functions, from a reader made with them */

    reader = redisReaderCreate();
    if (reader == NULL) {
        abort();
    }

    fuzz_oracle_fn = *reader->fn;
    fuzz_default_array = reader->fn->createArray;
    fuzz_oracle_fn.createArray = fuzz_oracle_array;

    redisReaderFree(reader);

    return 0;
}


static void
fuzz_format(const uint8_t *data, size_t size)
{
    int                       argc, len;
    char                     *want;
    u_char                   *got, *last;
    size_t                    n, argvlen[FUZZ_ARGS_MAX];
    const char               *argv[FUZZ_ARGS_MAX];
    const uint8_t            *end;
    ngx_http_history_command_t   cmd;

    end = data + size;
    argc = 0;

    while (data < end && argc < FUZZ_ARGS_MAX) {
        n = *data++;

        if (n & 0x80) {
            n = (n & 0x7f) << 8;

            if (data < end) {
                n |= *data++;
            }
        }

        if (n > (size_t) (end - data)) {
            n = end - data;
        }

        argv[argc] = (const char *) data;
        argvlen[argc++] = n;
        data += n;
    }

    if (argc == 0) {
        return;
    }

    len = redisFormatCommandArgv(&want, argc, argv, argvlen);
    FUZZ_CHECK(len >= 0, "redisFormatCommandArgv() failed");

    cmd.argc = argc;
    cmd.argv = argv;
    cmd.argvlen = argvlen;

    n = ngx_http_history_format_size(&cmd);

    FUZZ_CHECK(n == (size_t) len, "%d arguments: size %zu, hiredis %d",
               argc, n, len);

    /* a buffer of its exact size: AddressSanitizer sees a byte more */

    got = malloc(n);
    if (got == NULL) {
        abort();
    }

    last = ngx_http_history_format(got, &cmd);

    FUZZ_CHECK((size_t) (last - got) == n, "wrote %zu bytes of %zu",
               (size_t) (last - got), n);
    FUZZ_CHECK(memcmp(got, want, n) == 0, "%d arguments: bytes differ",
               argc);

    free(got);
    redisFreeCommand(want);
}


/* the same reply, object for object */

static void
fuzz_same(redisReply *got, redisReply *want, ngx_uint_t depth)
{
    size_t  i;

    FUZZ_CHECK(got != NULL && want != NULL, "a reply missing at depth %lu",
               (unsigned long) depth);

    FUZZ_CHECK(got->type == want->type, "type %d, hiredis %d",
               got->type, want->type);

    switch (want->type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        FUZZ_CHECK(got->len == want->len, "length %zu, hiredis %zu",
                   (size_t) got->len, (size_t) want->len);
        FUZZ_CHECK(memcmp(got->str, want->str, want->len) == 0,
                   "string differs");
        FUZZ_CHECK(got->str[got->len] == '\0', "string not terminated");
        break;

    case REDIS_REPLY_INTEGER:
        FUZZ_CHECK(got->integer == want->integer, "integer %lld, hiredis %lld",
                   got->integer, want->integer);
        break;

    case REDIS_REPLY_ARRAY:
        FUZZ_CHECK(got->elements == want->elements,
                   "%zu elements, hiredis %zu",
                   (size_t) got->elements, (size_t) want->elements);

        for (i = 0; i < want->elements; i++) {
            fuzz_same(got->element[i], want->element[i], depth + 1);
        }

        break;

    default:
        break;
    }
}


/* what the scan counts for a reply: its objects and its strings */

static size_t
fuzz_reply_size(redisReply *r)
{
    size_t  size, i;

    size = NGX_HTTP_HISTORY_OBJECT_SIZE;

    switch (r->type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        size += r->len;
        break;

    case REDIS_REPLY_ARRAY:
        for (i = 0; i < r->elements; i++) {
            size += fuzz_reply_size(r->element[i]);
        }

        break;
    }

    return size;
}


static ngx_uint_t
fuzz_reply_depth(redisReply *r)
{
    size_t      i;
    ngx_uint_t  d, max;

    if (r->type != REDIS_REPLY_ARRAY) {
        return 0;
    }

    max = 0;

    for (i = 0; i < r->elements; i++) {
        d = fuzz_reply_depth(r->element[i]);
        max = ngx_max(max, d);
    }

    return max + 1;
}


static void
fuzz_shape_start(fuzz_shape_t *fs, ngx_uint_t n)
{
    int                       i;
    size_t                    len[1];
    const char               *argv[1];
    ngx_http_history_command_t   cmd;

    ngx_memzero(fs, sizeof(fuzz_shape_t));

    fs->unit = &fuzz_units[n % FUZZ_UNITS];

    for (i = 0; fs->unit->pattern[i]; i++) {
        argv[0] = fs->unit->names[i];
        len[0] = strlen(argv[0]);

        cmd.argc = 1;
        cmd.argv = argv;
        cmd.argvlen = len;

        fs->kind[i] = (fs->unit->pattern[i] == 'T')
                      ? NGX_HTTP_HISTORY_KIND_TAG
                      : (u_char) ngx_http_history_shape_kind(&cmd);
    }

    fs->shape.kind = fs->kind;
    fs->shape.n = i;
    ngx_str_set(&fs->shape.tag, "7");
}


static ngx_uint_t
fuzz_status(redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STATUS && (size_t) r->len == strlen(s)
           && memcmp(r->str, s, r->len) == 0;
}


/* a reply against one letter, outside MULTI */

static ngx_uint_t
fuzz_letter(char c, redisReply *r)
{
    size_t  i;

    switch (c) {

    case 'O':
    case 'M':
        return fuzz_status(r, "OK");

    case 'K':
        return fuzz_status(r, "OK") || r->type == REDIS_REPLY_NIL;

    case 'P':
        return fuzz_status(r, "PONG");

    case 'I':
        return r->type == REDIS_REPLY_INTEGER;

    case 'T':
        return r->type == REDIS_REPLY_STRING && r->len == 1
               && r->str[0] == '7';

    case 'A':
    case 'N':
        if (r->type != REDIS_REPLY_ARRAY) {
            return 0;
        }

        for (i = 0; i < r->elements; i++) {
            if (r->element[i]->type != REDIS_REPLY_STRING
                && !(c == 'N' && r->element[i]->type == REDIS_REPLY_NIL))
            {
                return 0;
            }
        }

        return 1;
    }

    return 0;
}


/* the harness's own check of the next reply of a unit */

static ngx_uint_t
fuzz_shape_ok(fuzz_shape_t *fs, redisReply *r)
{
    char        c;
    size_t      k;
    ngx_uint_t  i, first;

    i = fs->next++;
    c = fs->unit->pattern[i];

    if (r->type == REDIS_REPLY_ERROR) {
        if (c == 'T' || fs->unit->handshake) {
            return 0;
        }

        if (c == 'M') {
            fs->multi = i + 1;
            fs->aborted = 1;
        }

        if (c == 'X') {
            fs->multi = 0;
        }

        return 1;
    }

    if (c == 'M') {
        fs->multi = i + 1;
        return fuzz_status(r, "OK");
    }

    if (c == 'X') {
        if (fs->aborted) {
            return 0;
        }

        first = fs->multi;
        fs->multi = 0;

        if (r->type == REDIS_REPLY_NIL) {
            return 1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != i - first) {
            return 0;
        }

        for (k = 0; k < r->elements; k++) {
            if (r->element[k]->type != REDIS_REPLY_ERROR
                && !fuzz_letter(fs->unit->pattern[first + k], r->element[k]))
            {
                return 0;
            }
        }

        return 1;
    }

    if (fs->multi && !fs->aborted) {
        return fuzz_status(r, "QUEUED");
    }

    return fuzz_letter(c, r);
}


/*
 * The next reply of the unit: the link's check and the harness's agree.
 * Returns 0 once one refuses it (the link drops the connection there).
 */

static ngx_uint_t
fuzz_shape(fuzz_shape_t *fs, redisReply *r, ngx_uint_t k)
{
    ngx_int_t    rc;
    ngx_uint_t   want, n;
    const char  *expected;

    n = fs->next;

    want = fuzz_shape_ok(fs, r);

    /* the handshake's replies: as the link checks them, never an error */

    if (fs->unit->handshake && r->type == REDIS_REPLY_ERROR) {
        rc = NGX_ERROR;

    } else {
        expected = NULL;
        rc = ngx_http_history_shape_check(&fs->shape, r, &expected);
        FUZZ_CHECK(expected != NULL, "reply %lu: nothing said expected",
                   (unsigned long) k);
    }

    FUZZ_CHECK((rc == NGX_OK) == want,
               "reply %lu, %s's reply %lu (%c) of type %d: the link %s it, "
               "the harness %s", (unsigned long) k, fs->unit->names[n],
               (unsigned long) n, fs->unit->pattern[n], r->type,
               rc == NGX_OK ? "takes" : "refuses",
               want ? "takes it" : "does not");

    return want;
}


static void
fuzz_reader(const uint8_t *data, size_t size, uint8_t seed)
{
    int                          wrc, grc;
    void                        *w, *g;
    size_t                       pos, n, used, max;
    ngx_uint_t                   k, want_failed, got_failed, unit, shapes;
    redisReader                 *oracle, *reader;
    fuzz_shape_t                 fs;
    ngx_http_history_scan_t      scan;
    ngx_http_history_replies_t   rp;
    static size_t                limits[] = { 128, 1024, 16384, 0 };

    max = limits[(seed >> 1) % 4];
    ngx_http_history_scan_init(&scan, max);
    max = scan.max;

    unit = seed >> 3;
    fuzz_shape_start(&fs, unit);
    shapes = 1;

    oracle = redisReaderCreateWithFunctions(&fuzz_oracle_fn);
    if (oracle == NULL) {
        abort();
    }

    ngx_memzero(&rp, sizeof(ngx_http_history_replies_t));

    rp.pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &fuzz_log);
    rp.log = &fuzz_log;

    reader = ngx_http_history_reader_create(&rp);

    if (rp.pool == NULL || reader == NULL) {
        abort();
    }

    if (size && redisReaderFeed(oracle, (const char *) data, size)
                != REDIS_OK)
    {
        abort();
    }

    pos = 0;
    k = 0;
    want_failed = 0;
    got_failed = 0;

    for ( ;; ) {
        wrc = redisReaderGetReply(oracle, &w);

        if (wrc != REDIS_OK) {
            want_failed = 1;
            w = NULL;
        }

        /* the link's reader: more pieces until it has a reply or fails */

        for ( ;; ) {
            grc = redisReaderGetReply(reader, &g);

            if (grc != REDIS_OK) {
                got_failed = 1;
                g = NULL;
                break;
            }

            if (g != NULL || pos == size || scan.error) {
                break;
            }

            n = 1 + (seed + pos) % 16;

            if (n > size - pos) {
                n = size - pos;
            }

            used = ngx_http_history_scan(&scan, (u_char *) data + pos, n);

            FUZZ_CHECK(used <= n, "the scan took %zu bytes of %zu", used, n);
            FUZZ_CHECK(used == n || scan.error,
                       "the scan stopped without a reason");

            if (used
                && redisReaderFeed(reader, (const char *) data + pos, used)
                   != REDIS_OK)
            {
                abort();
            }

            pos += used;
        }

        if (g == NULL && !got_failed && scan.error) {

            /* refused by the scan: this reply is not read */

            if (w != NULL && scan.too_large) {
                FUZZ_CHECK(fuzz_reply_size(w) > max
                           || fuzz_reply_depth(w)
                              > NGX_HTTP_HISTORY_DEPTH_MAX,
                           "reply %lu refused as too large: %zu bytes of "
                           "%zu, depth %lu", (unsigned long) k,
                           fuzz_reply_size(w), max,
                           (unsigned long) fuzz_reply_depth(w));
            }

            if (w != NULL) {
                freeReplyObject(w);
            }

            break;
        }

        FUZZ_CHECK(got_failed == want_failed,
                   "reply %lu: the link's reader %s, hiredis's %s",
                   (unsigned long) k, got_failed ? "failed" : "did not fail",
                   want_failed ? "failed" : "did not fail");

        if (want_failed) {
            break;
        }

        FUZZ_CHECK((g == NULL) == (w == NULL),
                   "reply %lu: the link's reader %s one, hiredis's %s",
                   (unsigned long) k, g ? "has" : "has not",
                   w ? "has" : "has not");

        if (w == NULL) {
            break;
        }

        fuzz_same(g, w, 0);

        FUZZ_CHECK(fuzz_reply_size(g) <= max,
                   "reply %lu takes %zu bytes, more than %zu",
                   (unsigned long) k, fuzz_reply_size(g), max);
        FUZZ_CHECK(fuzz_reply_depth(g) <= NGX_HTTP_HISTORY_DEPTH_MAX,
                   "reply %lu nests %lu deep", (unsigned long) k,
                   (unsigned long) fuzz_reply_depth(g));

        /* the replies of units in turn, until one is refused */

        if (shapes) {
            shapes = fuzz_shape(&fs, g, k);

            if (shapes && fs.unit->pattern[fs.next] == '\0') {
                fuzz_shape_start(&fs, ++unit);
            }
        }

        freeReplyObject(w);
        ngx_http_history_reader_release(&rp);
        k++;
    }

    redisReaderFree(oracle);
    redisReaderFree(reader);
    ngx_destroy_pool(rp.pool);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    if (data[0] % 2 == 0) {
        fuzz_format(data + 1, size - 1);

    } else {
        fuzz_reader(data + 1, size - 1, data[0]);
    }

    return 0;
}
