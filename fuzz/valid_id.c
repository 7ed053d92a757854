
/*
 * Copyright (C) The ngx_http_history_module authors
 */


/*
 * The input, as it is, is a visitor id (a cookie's value) and a product id:
 *
 *   ngx_http_history_valid_visitor()  32 lowercase hex digits
 *   ngx_http_history_id_unsafe()      no byte <= 0x20, no ',' nor 0x7f,
 *                                     nor '<', '>', '&', '"', '\''
 *   ngx_http_history_valid_id()       1..256 bytes, safe, and matching
 *                                     history_id_pattern: the default
 *                                     "^[0-9]+$" (compiled with nginx's
 *                                     ngx_regex_compile(), and as the
 *                                     module checks it, without PCRE),
 *                                     and "off"
 *
 * Each answer is checked against a plain reimplementation of the rule.
 */


#include "../ngx_http_history_module.h"
#include "harness.h"


#if (NGX_PCRE)
static ngx_regex_t  *fuzz_default_pattern;
#endif


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
#if (NGX_PCRE)
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;
#endif

    fuzz_init();

#if (NGX_PCRE)

    /* as ngx_http_history_init_main_conf() does */

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    ngx_str_set(&rc.pattern, "^[0-9]+$");
    rc.pool = fuzz_pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        fprintf(stderr, "ngx_regex_compile(\"%.*s\"): %.*s\n",
                (int) rc.pattern.len, rc.pattern.data,
                (int) rc.err.len, rc.err.data);
        abort();
    }

    fuzz_default_pattern = rc.regex;

#else
    fprintf(stderr, "nginx without PCRE: history_id_pattern is not fuzzed\n");
#endif

    return 0;
}


static ngx_uint_t
fuzz_safe(const u_char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] <= ' ' || p[i] == ',' || p[i] == 0x7f || p[i] == '<'
            || p[i] == '>' || p[i] == '&' || p[i] == '"' || p[i] == '\'')
        {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
fuzz_digits(const u_char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }

    return len > 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t               i;
    ngx_int_t            rc;
    ngx_str_t            id;
    ngx_uint_t           want, got;
    ngx_http_request_t  *r;

    /* the input in a buffer of its own size, in the request's pool */

    r = fuzz_request(data, size);

    id = r->args;
    ngx_str_null(&r->args);

    /* the visitor cookie */

    want = (size == NGX_HTTP_HISTORY_VISITOR_LEN);

    for (i = 0; want && i < size; i++) {
        want = (data[i] >= '0' && data[i] <= '9')
               || (data[i] >= 'a' && data[i] <= 'f');
    }

    got = ngx_http_history_valid_visitor(id.data, id.len);

    FUZZ_CHECK(got == want, "valid_visitor(\"%s\") = %lu, expected %lu",
               fuzz_show(data, size), (unsigned long) got,
               (unsigned long) want);

    /* the bytes no id holds: for recording and for the text list */

    want = fuzz_safe(data, size);
    got = (ngx_http_history_id_unsafe(id.data, id.len) == NULL);

    FUZZ_CHECK(got == want, "id_unsafe(\"%s\") = %lu, expected %lu",
               fuzz_show(data, size), (unsigned long) got,
               (unsigned long) want);

    /* product ids: history_id_pattern off */

    fuzz_hlcf.id_check = NGX_HTTP_HISTORY_ID_ANY;

    rc = ngx_http_history_valid_id(r, &fuzz_hlcf, &id);

    want = size > 0 && size <= NGX_HTTP_HISTORY_ID_MAX
           && fuzz_safe(data, size);

    FUZZ_CHECK(rc == NGX_OK || rc == NGX_DECLINED,
               "valid_id(\"%s\") = %ld", fuzz_show(data, size), (long) rc);
    FUZZ_CHECK((rc == NGX_OK) == want,
               "valid_id(\"%s\", pattern off) = %ld, expected %s",
               fuzz_show(data, size), (long) rc, want ? "OK" : "DECLINED");

    /* product ids: the default, ^[0-9]+$, checked without PCRE */

    fuzz_hlcf.id_check = NGX_HTTP_HISTORY_ID_DIGITS;

    rc = ngx_http_history_valid_id(r, &fuzz_hlcf, &id);

    want = size <= NGX_HTTP_HISTORY_ID_MAX && fuzz_digits(data, size);

    FUZZ_CHECK((rc == NGX_OK) == want,
               "valid_id(\"%s\", digits) = %ld, expected %s",
               fuzz_show(data, size), (long) rc, want ? "OK" : "DECLINED");

#if (NGX_PCRE)

    /* the same pattern as a regular expression */

    fuzz_hlcf.id_check = NGX_HTTP_HISTORY_ID_PATTERN;
    fuzz_hlcf.pattern = fuzz_default_pattern;

    rc = ngx_http_history_valid_id(r, &fuzz_hlcf, &id);

    FUZZ_CHECK(rc == NGX_OK || rc == NGX_DECLINED,
               "valid_id(\"%s\") = %ld", fuzz_show(data, size), (long) rc);
    FUZZ_CHECK((rc == NGX_OK) == want,
               "valid_id(\"%s\", ^[0-9]+$) = %ld, expected %s",
               fuzz_show(data, size), (long) rc, want ? "OK" : "DECLINED");

    fuzz_hlcf.pattern = NULL;

#endif

    fuzz_hlcf.id_check = NGX_HTTP_HISTORY_ID_ANY;

    fuzz_done(r);

    return 0;
}
