
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
 *         released after each reply) is fed in pieces of 1 to 16 bytes and
 *         must give the same replies, and fail at the same point, as a
 *         reader fed everything at once with hiredis's own functions (with
 *         the same refusal of arrays of more than 65536 elements, which
 *         hiredis would otherwise try to allocate).
 */


#include "../ngx_http_history_module.h"
#include "harness.h"


#define FUZZ_ARGS_MAX  256


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


static void
fuzz_reader(const uint8_t *data, size_t size, uint8_t seed)
{
    int                          wrc, grc;
    void                        *w, *g;
    size_t                       pos, n;
    ngx_uint_t                   k, want_failed, got_failed;
    redisReader                 *oracle, *reader;
    ngx_http_history_replies_t   rp;

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

            if (g != NULL || pos == size) {
                break;
            }

            n = 1 + (seed + pos) % 16;

            if (n > size - pos) {
                n = size - pos;
            }

            if (redisReaderFeed(reader, (const char *) data + pos, n)
                != REDIS_OK)
            {
                abort();
            }

            pos += n;
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
