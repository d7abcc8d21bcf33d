/* Unit tests for ctl_etcd_json: etcd v3 JSON gateway bodies. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_etcd_json.h"
#include "ut_leak.h"

TestSuite(ctl_etcd_json, .fini = ut_leak_check, .timeout = 10);

Test(ctl_etcd_json, base64_round_trips_every_padding)
{
    const char *in[] = {"", "a", "ab", "abc", "llumnix/discovery/"};

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char *b = ctl_etcd_b64(in[i], strlen(in[i])), *out = NULL;
        size_t n = 99;
        cr_assert_eq(ctl_etcd_unb64(b, &out, &n), GW_OK, "%s", b);
        cr_assert_eq(n, strlen(in[i]));
        cr_assert_str_eq(out, in[i]);
        free(out);
        free(b);
    }
}

Test(ctl_etcd_json, base64_refuses_garbage)
{
    char *out = NULL;
    size_t n;

    cr_assert_eq(ctl_etcd_unb64("abc", &out, &n), GW_EINVAL, "not a multiple of 4");
    cr_assert_eq(ctl_etcd_unb64("a*c=", &out, &n), GW_EINVAL);
    cr_assert_null(out);
}

Test(ctl_etcd_json, range_body_selects_the_prefix)
{
    char *s = ctl_etcd_range_body("ab");

    /* "ab" = YWI=, range end "ac" = YWM= */
    cr_assert_str_eq(s, "{\"key\":\"YWI=\",\"range_end\":\"YWM=\"}");
    free(s);
    s = ctl_etcd_watch_body("ab", 42);
    cr_assert_str_eq(
        s,
        "{\"create_request\":{\"key\":\"YWI=\",\"range_end\":\"YWM=\",\"start_revision\":\"42\"}}");
    free(s);
    s = ctl_etcd_put_body("k", "v", 7);
    cr_assert_str_eq(s, "{\"key\":\"aw==\",\"value\":\"dg==\",\"lease\":\"7\"}");
    free(s);
    s = ctl_etcd_key_body("k");
    cr_assert_str_eq(s, "{\"key\":\"aw==\"}");
    free(s);
}

Test(ctl_etcd_json, parses_a_range_answer)
{
    /* key "llumnix/discovery/a", value "{}" */
    const char *body = "{\"header\":{\"cluster_id\":\"1\",\"revision\":\"17\"},\"kvs\":[{\"key\":"
                       "\"bGx1bW5peC9kaXNjb3ZlcnkvYQ==\",\"create_revision\":\"3\",\"value\":"
                       "\"e30=\",\"lease\":\"99\"}],\"count\":\"1\"}";
    ctl_etcd_msg m;
    char *why = NULL;

    cr_assert_eq(ctl_etcd_parse_range(body, strlen(body), &m, &why), GW_OK, "%s", why);
    cr_assert_eq(m.revision, 17);
    cr_assert_eq(m.n_kvs, 1);
    cr_assert_str_eq(m.kvs[0].key, "llumnix/discovery/a");
    cr_assert_str_eq(m.kvs[0].value, "{}");
    cr_assert_eq(m.kvs[0].value_len, 2);
    cr_assert_not(m.kvs[0].is_delete);
    ctl_etcd_msg_fini(&m);
    body = "{\"header\":{\"revision\":5}}";
    cr_assert_eq(ctl_etcd_parse_range(body, strlen(body), &m, &why), GW_OK, "empty range");
    cr_assert_eq(m.n_kvs, 0);
    cr_assert_eq(m.revision, 5);
    ctl_etcd_msg_fini(&m);
}

Test(ctl_etcd_json, parses_watch_events_and_errors)
{
    const char *created = "{\"result\":{\"header\":{\"revision\":\"9\"},\"created\":true}}";
    const char *events = "{\"result\":{\"header\":{\"revision\":\"11\"},\"events\":[{\"kv\":{"
                         "\"key\":\"YQ==\",\"value\":\"eA==\"}},{\"type\":\"DELETE\",\"kv\":{"
                         "\"key\":\"Yg==\"}}]}}";
    const char *canceled = "{\"result\":{\"canceled\":true,\"compact_revision\":\"8\"}}";
    const char *err = "{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}";
    ctl_etcd_msg m;
    char *why = NULL;

    cr_assert_eq(ctl_etcd_parse_watch(created, strlen(created), &m, &why), GW_OK, "%s", why);
    cr_assert(m.created);
    cr_assert_eq(m.n_kvs, 0);
    ctl_etcd_msg_fini(&m);
    cr_assert_eq(ctl_etcd_parse_watch(events, strlen(events), &m, &why), GW_OK, "%s", why);
    cr_assert_eq(m.n_kvs, 2);
    cr_assert_str_eq(m.kvs[0].key, "a");
    cr_assert_str_eq(m.kvs[0].value, "x");
    cr_assert(m.kvs[1].is_delete);
    cr_assert_null(m.kvs[1].value);
    ctl_etcd_msg_fini(&m);
    cr_assert_eq(ctl_etcd_parse_watch(canceled, strlen(canceled), &m, &why), GW_OK);
    cr_assert(m.canceled);
    cr_assert_eq(m.compact_revision, 8);
    ctl_etcd_msg_fini(&m);
    cr_assert_eq(ctl_etcd_parse_watch(err, strlen(err), &m, &why), GW_OK);
    cr_assert_str_eq(m.error, "etcdserver: no leader");
    ctl_etcd_msg_fini(&m);
}

Test(ctl_etcd_json, refuses_malformed_answers)
{
    const char *bad[] = {
        "",
        "[]",
        "{\"kvs\":[]}",
        "{\"header\":{\"revision\":\"x\"}}",
        "{\"header\":{\"revision\":\"1\"},\"kvs\":{}}",
        "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"value\":\"eA==\"}]}",
        "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"!!!!\"}]}",
        "{\"header\":{\"revision\":\"1\"},\"kvs\":[{\"key\":\"AA==\"}]}",
    };
    ctl_etcd_msg m;
    char *why = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(ctl_etcd_parse_range(bad[i], strlen(bad[i]), &m, &why), GW_EINVAL,
                     "accepted %s", bad[i]);
        cr_assert_not_null(why);
        free(why);
        why = NULL;
    }
    cr_assert_eq(ctl_etcd_parse_watch("{\"x\":1}", 7, &m, &why), GW_EINVAL);
    free(why);
    why = NULL;
    const char *nope = "{\"result\":{\"events\":[{\"type\":\"NOPE\",\"kv\":{\"key\":\"YQ==\"}}]}}";
    cr_assert_eq(ctl_etcd_parse_watch(nope, strlen(nope), &m, &why), GW_EINVAL);
    free(why);
}

Test(ctl_etcd_json, reads_lease_fields)
{
    const char *grant = "{\"header\":{},\"ID\":\"7587869180413349893\",\"TTL\":\"10\"}";
    const char *ka = "{\"result\":{\"header\":{},\"ID\":\"5\",\"TTL\":\"9\"}}";
    const char *gone = "{\"result\":{\"header\":{},\"ID\":\"5\"}}";
    int64_t v = 0;
    char *tok;

    cr_assert_eq(ctl_etcd_get_int(grant, strlen(grant), "ID", &v), GW_OK);
    cr_assert_eq(v, 7587869180413349893LL);
    cr_assert_eq(ctl_etcd_get_int(ka, strlen(ka), "TTL", &v), GW_OK);
    cr_assert_eq(v, 9);
    cr_assert_eq(ctl_etcd_get_int(gone, strlen(gone), "TTL", &v), GW_ENOENT);
    cr_assert_eq(ctl_etcd_get_int("nope", 4, "TTL", &v), GW_EINVAL);
    tok = ctl_etcd_get_str("{\"token\":\"abc.1\"}", 17, "token");
    cr_assert_str_eq(tok, "abc.1");
    free(tok);
    cr_assert_null(ctl_etcd_get_str("{}", 2, "token"));
}

Test(ctl_etcd_json, endpoint_lists_become_base_urls)
{
    char **u = NULL, *why = NULL;
    size_t n = 0;

    cr_assert_eq(ctl_etcd_parse_endpoints(" etcd-0:2379,http://etcd-1:2380/ , https://e2,[::1]", &u,
                                          &n, &why),
                 GW_OK, "%s", why);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(u[0], "http://etcd-0:2379");
    cr_assert_str_eq(u[1], "http://etcd-1:2380");
    cr_assert_str_eq(u[2], "https://e2:2379");
    cr_assert_str_eq(u[3], "http://[::1]:2379");
    ctl_etcd_endpoints_free(u, n);
    cr_assert_eq(ctl_etcd_parse_endpoints("a,", &u, &n, &why), GW_EINVAL);
    cr_assert(strstr(why, "entry 2") != NULL, "%s", why);
    free(why);
    cr_assert_eq(ctl_etcd_parse_endpoints("a:99999", &u, &n, &why), GW_EINVAL);
    free(why);
    cr_assert_eq(ctl_etcd_parse_endpoints("", &u, &n, &why), GW_EINVAL);
    free(why);
}
