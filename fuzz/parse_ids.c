
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * The input is a query string, r->args of a fake request, handed to
 * ngx_http_history_parse_ids() as history_online and history_views do
 * (it reads ngx_http_arg(r, "ids")).
 *
 * Checked against the rule as documented: the value of the first "ids"
 * argument, percent-decoded, split at commas, empty ids skipped; at most
 * NGX_HTTP_HISTORY_IDS_MAX ids of at most NGX_HTTP_HISTORY_ID_MAX bytes,
 * else NGX_DECLINED; a value that is not UTF-8, NGX_ABORT; no "ids"
 * argument: no ids.  On NGX_OK the ids must be the non-empty pieces in
 * order, each without a comma.
 */


#include "../ngx_http_history_module.h"
#include "harness.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();

    return 0;
}


/* UTF-8 as RFC 3629 has it (harness.h) */

static ngx_uint_t
fuzz_utf8(const u_char *p, const u_char *last)
{
    size_t  n;

    while (p < last) {
        n = fuzz_utf8_len(p, last);

        if (n == 0) {
            return 0;
        }

        p += n;
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              *buf, *dst, *src, *p, *last, *start;
    size_t               n, len;
    ngx_int_t            rc;
    ngx_str_t            value, *id;
    ngx_uint_t           i, want_ok, pieces, too_long, empty_after_max;
    ngx_array_t         *ids;
    ngx_http_request_t  *r;

    r = fuzz_request(data, size);

    ids = NULL;
    rc = ngx_http_history_parse_ids(r, &ids);

    FUZZ_CHECK(rc == NGX_OK || rc == NGX_DECLINED || rc == NGX_ABORT,
               "parse_ids(\"%s\") = %ld", fuzz_show(data, size), (long) rc);
    FUZZ_CHECK(ids != NULL, "parse_ids(\"%s\"): no array",
               fuzz_show(data, size));

    /* the reference: the decoded value, and its non-empty pieces */

    pieces = 0;
    empty_after_max = 0;
    too_long = 0;
    buf = NULL;
    last = NULL;

    if (ngx_http_arg(r, (u_char *) "ids", 3, &value) == NGX_OK) {
        buf = malloc(value.len + 1);
        if (buf == NULL) {
            abort();
        }

        dst = buf;
        src = value.data;
        ngx_unescape_uri(&dst, &src, value.len, 0);
        last = dst;

        for (start = buf, p = buf; p <= last; p++) {
            if (p < last && *p != ',') {
                continue;
            }

            len = p - start;

            if (len > NGX_HTTP_HISTORY_ID_MAX) {
                too_long = 1;
            }

            if (len) {
                pieces++;

            } else if (pieces >= NGX_HTTP_HISTORY_IDS_MAX) {
                empty_after_max = 1;
            }

            start = p + 1;
        }
    }

    if (buf && !fuzz_utf8(buf, last)) {
        FUZZ_CHECK(rc == NGX_ABORT, "parse_ids(\"%s\") = %ld, not UTF-8, "
                   "expected NGX_ABORT", fuzz_show(data, size), (long) rc);
        free(buf);
        fuzz_done(r);
        return 0;
    }

    FUZZ_CHECK(rc != NGX_ABORT, "parse_ids(\"%s\") = NGX_ABORT, UTF-8",
               fuzz_show(data, size));

    want_ok = !too_long && pieces <= NGX_HTTP_HISTORY_IDS_MAX;

    /*
     * known: an empty piece (",,", a trailing comma) after the 50th id
     * is taken for a 51st id, and the list is refused
     */

    if (want_ok && rc == NGX_DECLINED && empty_after_max
        && fuzz_known("ids-empty-after-max"))
    {
        want_ok = 0;
    }

    FUZZ_CHECK((rc == NGX_OK) == want_ok,
               "parse_ids(\"%s\") = %ld with %lu ids%s, expected %s",
               fuzz_show(data, size), (long) rc, (unsigned long) pieces,
               too_long ? ", one too long" : "",
               want_ok ? "NGX_OK" : "NGX_DECLINED");

    if (rc == NGX_OK) {
        id = ids->elts;

        FUZZ_CHECK(ids->nelts == pieces,
                   "parse_ids(\"%s\"): %lu ids, expected %lu",
                   fuzz_show(data, size), (unsigned long) ids->nelts,
                   (unsigned long) pieces);

        p = buf;

        for (i = 0; i < ids->nelts; i++) {
            FUZZ_CHECK(id[i].len > 0 && id[i].len <= NGX_HTTP_HISTORY_ID_MAX,
                       "parse_ids(\"%s\"): id %lu of %lu bytes",
                       fuzz_show(data, size), (unsigned long) i,
                       (unsigned long) id[i].len);

            FUZZ_CHECK(ngx_strlchr(id[i].data, id[i].data + id[i].len, ',')
                       == NULL,
                       "parse_ids(\"%s\"): id %lu holds a comma",
                       fuzz_show(data, size), (unsigned long) i);

            /* the next non-empty piece of the reference */

            while (p < last && *p == ',') {
                p++;
            }

            for (n = 0; p + n < last && p[n] != ','; n++) { /* void */ }

            FUZZ_CHECK(n == id[i].len && ngx_memcmp(p, id[i].data, n) == 0,
                       "parse_ids(\"%s\"): id %lu differs from the value",
                       fuzz_show(data, size), (unsigned long) i);

            p += n;
        }
    }

    free(buf);

    fuzz_done(r);

    return 0;
}
