/* test_pm_codec: the wire contract of proto-msgs. The golden v1 blobs in
 * proto-msgs/testdata are decoded and checked field by field against the
 * values written out below (not against gen_golden.c, so an accidental change
 * to a blob fails here), then re-encoded and compared byte for byte. Malformed
 * input is made by editing a golden blob's msgpack object tree (edit()) or by
 * packing raw msgpack by hand, and every failure asserts the exact error code
 * and that the out-param was not touched. Leaks fail the suite through
 * ut_leak_check() in ASan builds. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "pm/pm_msgs.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

#define GOLDEN_EPOCH   UINT64_C(0x5eed00000000cafe)
#define GOLDEN_SENT_MS UINT64_C(1763745600123)
#define WORKER_A       UINT64_C(0xdeadbeefcafef00d)
#define WORKER_B       UINT64_C(0x0123456789abcdef)

static void
fini(void)
{
    ut_leak_check();
}

TestSuite(pm_codec, .fini = fini, .timeout = 60);

/* ---- helpers ------------------------------------------------------------ */

/* Out-params start here so a test can tell "untouched" from "written". */
static pm_snapshot snap_sentinel;
static pm_load load_sentinel;
static pm_report report_sentinel;

typedef struct golden {
    const char *file;
    pm_kind kind;
} golden;

static const golden goldens[] = {
    {"snapshot_v1.msgpack", PM_KIND_SNAPSHOT},
    {"snapshot_v1_unknown_keys.msgpack", PM_KIND_SNAPSHOT},
    {"load_v1.msgpack", PM_KIND_LOAD},
    {"load_v1_unknown_keys.msgpack", PM_KIND_LOAD},
    {"report_v1.msgpack", PM_KIND_REPORT},
    {"report_v1_unknown_keys.msgpack", PM_KIND_REPORT},
    {"snapshot_req_v1.msgpack", PM_KIND_SNAPSHOT_REQ},
};

static char *
slurp(const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/%s", PM_TESTDATA_DIR, name);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    cr_assert_gt(n, 0);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    buf = gw_xmalloc((size_t)n);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Decodes <p>/<n> as <kind> and frees the result: the rc is all the caller
 * wants. Checks the out-param contract on both outcomes. The snapshot request
 * has no decoder of its own; pm_peek_envelope plus a kind check is it. */
static gw_err
decode_as(pm_kind kind, const void *p, size_t n)
{
    gw_err rc = GW_EINVAL;

    switch (kind) {
    case PM_KIND_SNAPSHOT: {
        pm_snapshot *s = &snap_sentinel;
        rc = pm_snapshot_decode(p, n, &s);
        cr_assert((rc == GW_OK) == (s != &snap_sentinel), "out-param contract");
        if (rc == GW_OK)
            pm_snapshot_free(s);
        break;
    }
    case PM_KIND_LOAD: {
        pm_load *l = &load_sentinel;
        rc = pm_load_decode(p, n, &l);
        cr_assert((rc == GW_OK) == (l != &load_sentinel), "out-param contract");
        if (rc == GW_OK)
            pm_load_free(l);
        break;
    }
    case PM_KIND_REPORT: {
        pm_report *r = &report_sentinel;
        rc = pm_report_decode(p, n, &r);
        cr_assert((rc == GW_OK) == (r != &report_sentinel), "out-param contract");
        if (rc == GW_OK)
            pm_report_free(r);
        break;
    }
    case PM_KIND_SNAPSHOT_REQ: {
        pm_envelope env = {.gen = 777};
        rc = pm_peek_envelope(p, n, &env);
        if (rc != GW_OK)
            cr_assert_eq(env.gen, 777, "out-param contract");
        else if (env.kind != PM_KIND_SNAPSHOT_REQ)
            rc = GW_EPROTO;
        break;
    }
    }
    return rc;
}

static void
expect_str(const char *got, const char *want)
{
    if (want == NULL) {
        cr_assert_null(got, "expected NULL, got \"%s\"", got);
        return;
    }
    cr_assert_not_null(got, "expected \"%s\", got NULL", want);
    cr_assert_str_eq(got, want);
}

/* msgpack_object values for edit() */
static msgpack_object
o_uint(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = v};
    return o;
}

static msgpack_object
o_neg(int64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = v};
    return o;
}

static msgpack_object
o_f64(double v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = v};
    return o;
}

static msgpack_object
o_f32(float v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT32, .via.f64 = v};
    return o;
}

static msgpack_object
o_strn(const char *s, size_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.size = (uint32_t)n;
    o.via.str.ptr = s;
    return o;
}

static msgpack_object
o_str(const char *s)
{
    return o_strn(s, strlen(s));
}

static msgpack_object
o_bin(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.size = (uint32_t)strlen(s);
    o.via.bin.ptr = s;
    return o;
}

static msgpack_object
o_nil(void)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    return o;
}

static msgpack_object
o_bool(bool b)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = b};
    return o;
}

static msgpack_object
o_empty(msgpack_object_type t)
{
    msgpack_object o = {.type = t};
    return o;
}

/* Walks "endpoints.0.port"-style paths; numbers index arrays. */
static msgpack_object *
at(msgpack_object *o, const char *path, msgpack_object **key)
{
    char buf[256];
    char *save = NULL;

    gw_strlcpy(buf, path, sizeof(buf));
    for (char *tok = strtok_r(buf, ".", &save); tok != NULL; tok = strtok_r(NULL, ".", &save)) {
        if (o->type == MSGPACK_OBJECT_ARRAY) {
            unsigned long i = strtoul(tok, NULL, 10);
            cr_assert_lt(i, o->via.array.size, "%s: index %lu out of range", path, i);
            o = &o->via.array.ptr[i];
            *key = NULL;
            continue;
        }
        cr_assert_eq(o->type, MSGPACK_OBJECT_MAP, "%s: %s is not in a map", path, tok);
        msgpack_object *next = NULL;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(tok) &&
                memcmp(kv->key.via.str.ptr, tok, strlen(tok)) == 0) {
                next = &kv->val;
                *key = &kv->key;
                break;
            }
        }
        cr_assert_not_null(next, "%s: no key %s", path, tok);
        o = next;
    }
    return o;
}

/* Re-packs golden <file> with the value at <path> replaced by <val> and/or
 * its key replaced by <key> (renaming a key removes it and adds an unknown
 * one; renaming it to a sibling's name duplicates that). */
static void
edit(const char *file, const char *path, const msgpack_object *val, const msgpack_object *key,
     msgpack_sbuffer *out)
{
    size_t n, off = 0;
    char *in = slurp(file, &n);
    msgpack_unpacked u;
    msgpack_packer pk;
    msgpack_object *k = NULL, *o;

    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, in, n, &off), MSGPACK_UNPACK_SUCCESS);
    o = at(&u.data, path, &k);
    if (val != NULL)
        *o = *val;
    if (key != NULL) {
        cr_assert_not_null(k, "%s: not a map value", path);
        *k = *key;
    }
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, u.data);
    msgpack_unpacked_destroy(&u);
    free(in);
}

static gw_err
decode_edited(pm_kind kind, const char *file, const char *path, msgpack_object val)
{
    msgpack_sbuffer sb;
    gw_err rc;

    edit(file, path, &val, NULL, &sb);
    rc = decode_as(kind, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static gw_err
decode_renamed(pm_kind kind, const char *file, const char *path, msgpack_object key)
{
    msgpack_sbuffer sb;
    gw_err rc;

    edit(file, path, NULL, &key, &sb);
    rc = decode_as(kind, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Starts a message map of <extra> body keys after a v1-style envelope. */
static void
pack_env(msgpack_packer *pk, size_t extra, uint64_t v, const char *kind)
{
    msgpack_pack_map(pk, 5 + extra);
    msgpack_pack_str_with_body(pk, "v", 1);
    msgpack_pack_uint64(pk, v);
    msgpack_pack_str_with_body(pk, "kind", 4);
    msgpack_pack_str_with_body(pk, kind, strlen(kind));
    msgpack_pack_str_with_body(pk, "gen", 3);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_str_with_body(pk, "epoch", 5);
    msgpack_pack_uint64(pk, 2);
    msgpack_pack_str_with_body(pk, "sent_ms", 7);
    msgpack_pack_uint64(pk, 3);
}

static void
pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* ---- golden field values ------------------------------------------------ */

static void
check_golden_snapshot(const pm_snapshot *s)
{
    const pm_model *m;
    const pm_endpoint *ep;

    cr_assert_eq(s->env.v, PM_SCHEMA_MAJOR);
    cr_assert_eq(s->env.kind, PM_KIND_SNAPSHOT);
    cr_assert_eq(s->env.gen, 42);
    cr_assert_eq(s->env.epoch, GOLDEN_EPOCH);
    cr_assert_eq(s->env.sent_ms, GOLDEN_SENT_MS);

    cr_assert_eq(s->n_models, 2);
    m = &s->models[0];
    expect_str(m->name, "llama3-8b");
    expect_str(m->locked_strategy, NULL);
    expect_str(m->default_profile, "default");
    cr_assert_eq(m->n_profiles, 2);
    expect_str(m->profiles[0].name, "default");
    expect_str(m->profiles[0].routing_strategy, "least-request");
    cr_assert_eq(m->profiles[0].requests_per_second, 0);
    expect_str(m->profiles[0].routing_config_json, NULL);
    expect_str(m->profiles[1].name, "pd");
    expect_str(m->profiles[1].routing_strategy, "pd");
    cr_assert_eq(m->profiles[1].requests_per_second, 50);
    expect_str(m->profiles[1].routing_config_json, "{\"promptLenBucketMaxLength\":[1024,4096]}");
    m = &s->models[1];
    expect_str(m->name, "qwen2-72b");
    expect_str(m->locked_strategy, "prefix-cache");
    expect_str(m->default_profile, NULL);
    cr_assert_eq(m->n_profiles, 0);
    cr_assert_null(m->profiles);

    cr_assert_eq(s->n_endpoints, 4);
    ep = &s->endpoints[0];
    cr_assert_eq(ep->id, 1);
    expect_str(ep->model, "llama3-8b");
    expect_str(ep->pod, "llama3-8b-7c9f6d-abcde");
    expect_str(ep->ns, "default");
    expect_str(ep->ip, "10.0.3.7");
    cr_assert_eq(ep->port, 8000);
    cr_assert_eq(ep->metric_port, 0);
    expect_str(ep->engine, "vllm");
    expect_str(ep->roleset, NULL);
    expect_str(ep->role, NULL);
    cr_assert_eq(ep->n_adapters, 2);
    expect_str(ep->adapters[0], "sql-lora");
    expect_str(ep->adapters[1], "chat-lora");
    cr_assert(ep->ready);
    cr_assert_not(ep->draining);

    ep = &s->endpoints[1];
    cr_assert_eq(ep->id, 2);
    expect_str(ep->model, "llama3-8b");
    expect_str(ep->pod, "llama3-pd-0-prefill-0");
    expect_str(ep->ns, "default");
    expect_str(ep->ip, "10.0.3.8");
    cr_assert_eq(ep->port, 8000);
    cr_assert_eq(ep->metric_port, 8080);
    expect_str(ep->engine, "vllm");
    expect_str(ep->roleset, "llama3-pd-0");
    expect_str(ep->role, "prefill");
    cr_assert_eq(ep->n_adapters, 0);
    cr_assert(ep->ready);
    cr_assert_not(ep->draining);

    ep = &s->endpoints[2];
    cr_assert_eq(ep->id, 3);
    expect_str(ep->model, "llama3-8b");
    expect_str(ep->pod, "llama3-pd-0-decode-0");
    expect_str(ep->ns, "default");
    expect_str(ep->ip, "fd00::3");
    cr_assert_eq(ep->port, 8001);
    cr_assert_eq(ep->metric_port, 0);
    expect_str(ep->engine, "vllm");
    expect_str(ep->roleset, "llama3-pd-0");
    expect_str(ep->role, "decode");
    cr_assert_eq(ep->n_adapters, 0);
    cr_assert(ep->ready);
    cr_assert_not(ep->draining);

    ep = &s->endpoints[3];
    cr_assert_eq(ep->id, 7);
    expect_str(ep->model, "qwen2-72b");
    expect_str(ep->pod, "qwen2-72b-0");
    expect_str(ep->ns, "ml");
    expect_str(ep->ip, "10.0.4.2");
    cr_assert_eq(ep->port, 30000);
    cr_assert_eq(ep->metric_port, 0);
    expect_str(ep->engine, "sglang");
    expect_str(ep->roleset, NULL);
    expect_str(ep->role, NULL);
    cr_assert_eq(ep->n_adapters, 0);
    cr_assert_not(ep->ready);
    cr_assert(ep->draining);

    expect_str(s->settings.routing_strategy, "random");
    expect_str(s->traffic.policy, "weight");
    expect_str(s->traffic.config_json,
               "[{\"base_url\":\"local\",\"weight\":70},{\"base_url\":\"https://api.example.com/"
               "v1\",\"api_key\":\"sk-golden\",\"weight\":30,\"fallback\":true}]");
    expect_str(s->mirror.config_json,
               "{\"Enable\":true,\"Target\":\"http://mirror:8000\",\"Ratio\":10}");

    cr_assert_eq(s->n_users, 2);
    expect_str(s->users[0].name, "alice");
    cr_assert_eq(s->users[0].rpm, 60);
    cr_assert_eq(s->users[0].tpm, 100000);
    cr_assert_eq(s->users[0].n_keys, 2);
    expect_str(s->users[0].key_hashes[1],
               "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0");
    expect_str(s->users[1].name, "bob");
    cr_assert_eq(s->users[1].rpm, 0);
    cr_assert_eq(s->users[1].tpm, 5000);
    cr_assert_eq(s->users[1].n_keys, 0);
}

static void
check_ep_load(const pm_ep_load *e, uint32_t id, uint32_t inf, uint64_t tok, double run, double wait,
              double kv, double lat, double ttft, double tps)
{
    cr_assert_eq(e->id, id);
    cr_assert_eq(e->inflight, inf, "ep %u", id);
    cr_assert_eq(e->inflight_tokens, tok, "ep %u", id);
    cr_assert(e->running == run, "ep %u running %g", id, e->running);
    cr_assert(e->waiting == wait, "ep %u waiting %g", id, e->waiting);
    cr_assert(e->kv_usage == kv, "ep %u kv %g", id, e->kv_usage);
    cr_assert(e->latency_ms == lat, "ep %u lat %g", id, e->latency_ms);
    cr_assert(e->ttft_ms == ttft, "ep %u ttft %g", id, e->ttft_ms);
    cr_assert(e->tokens_per_s == tps, "ep %u tps %g", id, e->tokens_per_s);
}

static void
check_golden_load(const pm_load *l)
{
    cr_assert_eq(l->env.v, PM_SCHEMA_MAJOR);
    cr_assert_eq(l->env.kind, PM_KIND_LOAD);
    cr_assert_eq(l->env.gen, 42);
    cr_assert_eq(l->env.epoch, GOLDEN_EPOCH);
    cr_assert_eq(l->env.sent_ms, GOLDEN_SENT_MS + 50);
    cr_assert_eq(l->n_eps, 4);
    check_ep_load(&l->eps[0], 1, 3, 4096, 2, 0, 0.25, 1234.5, 87.25, 512);
    check_ep_load(&l->eps[1], 2, 0, 0, -1, -1, -1, -1, -1, -1);
    check_ep_load(&l->eps[2], 3, 1, 300, 1, 4, 0.875, -1, 45.5, -1);
    check_ep_load(&l->eps[3], 7, 0, 0, 0, 0, 0, 0, 0, 0);
    cr_assert(l->eps[0].kv_capacity == 40960, "kv_cap %g", l->eps[0].kv_capacity);
    cr_assert(l->eps[1].kv_capacity == -1);
    cr_assert_eq(l->n_workers, 2);
    cr_assert_eq(l->workers[0].worker_id, WORKER_A);
    cr_assert_eq(l->workers[0].seq, 17);
    cr_assert_eq(l->workers[1].worker_id, WORKER_B);
    cr_assert_eq(l->workers[1].seq, 5);
}

static void
check_golden_report(const pm_report *r)
{
    const pm_ep_report *e;

    cr_assert_eq(r->env.v, PM_SCHEMA_MAJOR);
    cr_assert_eq(r->env.kind, PM_KIND_REPORT);
    cr_assert_eq(r->env.gen, 42);
    cr_assert_eq(r->env.epoch, GOLDEN_EPOCH);
    cr_assert_eq(r->env.sent_ms, GOLDEN_SENT_MS + 70);
    cr_assert_eq(r->worker_id, WORKER_A);
    cr_assert_eq(r->seq, 18);
    cr_assert_eq(r->n_eps, 2);
    e = &r->eps[0];
    cr_assert_eq(e->id, 1);
    cr_assert_eq(e->inflight, 2);
    cr_assert_eq(e->inflight_tokens, 2048);
    cr_assert_eq(e->completed, 5);
    cr_assert_eq(e->errors, 1);
    cr_assert_eq(e->prompt_tokens, 1500);
    cr_assert_eq(e->completion_tokens, 900);
    cr_assert_eq(e->latency_ms_sum, 6200);
    cr_assert_eq(e->ttft_ms_sum, 410);
    e = &r->eps[1];
    cr_assert_eq(e->id, 3);
    cr_assert_eq(e->inflight, 0);
    cr_assert_eq(e->inflight_tokens, 0);
    cr_assert_eq(e->completed, 0);
    cr_assert_eq(e->errors, 0);
    cr_assert_eq(e->prompt_tokens, 0);
    cr_assert_eq(e->completion_tokens, 0);
    cr_assert_eq(e->latency_ms_sum, 0);
    cr_assert_eq(e->ttft_ms_sum, 0);
}

static void
expect_bytes(const gw_buf *b, const char *canon_file)
{
    size_t n;
    char *want = slurp(canon_file, &n);

    cr_assert_eq(b->len, n, "re-encoded %zu bytes, %s has %zu", b->len, canon_file, n);
    cr_assert_eq(memcmp(b->data, want, n), 0, "re-encoding differs from %s", canon_file);
    free(want);
}

/* ---- golden blobs ------------------------------------------------------- */

static void
golden_snapshot(const char *file)
{
    size_t n;
    char *p = slurp(file, &n);
    pm_snapshot *s = NULL;
    gw_buf b;

    cr_assert_eq(pm_snapshot_decode(p, n, &s), GW_OK);
    check_golden_snapshot(s);
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    cr_assert_eq(pm_snapshot_encode(s, &b), GW_OK);
    expect_bytes(&b, "snapshot_v1.msgpack");
    gw_buf_fini(&b);
    pm_snapshot_free(s);
    free(p);
}

static void
golden_load(const char *file)
{
    size_t n;
    char *p = slurp(file, &n);
    pm_load *l = NULL;
    gw_buf b;

    cr_assert_eq(pm_load_decode(p, n, &l), GW_OK);
    check_golden_load(l);
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    cr_assert_eq(pm_load_encode(l, &b), GW_OK);
    expect_bytes(&b, "load_v1.msgpack");
    gw_buf_fini(&b);
    pm_load_free(l);
    free(p);
}

static void
golden_report(const char *file)
{
    size_t n;
    char *p = slurp(file, &n);
    pm_report *r = NULL;
    gw_buf b;

    cr_assert_eq(pm_report_decode(p, n, &r), GW_OK);
    check_golden_report(r);
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    cr_assert_eq(pm_report_encode(r, &b), GW_OK);
    expect_bytes(&b, "report_v1.msgpack");
    gw_buf_fini(&b);
    pm_report_free(r);
    free(p);
}

Test(pm_codec, golden_snapshot_decodes_every_field_and_reencodes_identically)
{
    golden_snapshot("snapshot_v1.msgpack");
}

Test(pm_codec, golden_load_decodes_every_field_and_reencodes_identically)
{
    golden_load("load_v1.msgpack");
}

Test(pm_codec, golden_report_decodes_every_field_and_reencodes_identically)
{
    golden_report("report_v1.msgpack");
}

Test(pm_codec, golden_snapshot_req_peeks_and_reencodes_identically)
{
    size_t n;
    char *p = slurp("snapshot_req_v1.msgpack", &n);
    pm_envelope env;
    gw_buf b;

    cr_assert_eq(pm_peek_envelope(p, n, &env), GW_OK);
    cr_assert_eq(env.v, PM_SCHEMA_MAJOR);
    cr_assert_eq(env.kind, PM_KIND_SNAPSHOT_REQ);
    cr_assert_eq(env.gen, 41);
    cr_assert_eq(env.epoch, GOLDEN_EPOCH);
    cr_assert_eq(env.sent_ms, GOLDEN_SENT_MS + 90);
    gw_buf_init(&b, 1024);
    cr_assert_eq(pm_snapshot_req_encode(&env, &b), GW_OK);
    expect_bytes(&b, "snapshot_req_v1.msgpack");
    gw_buf_fini(&b);
    free(p);
}

Test(pm_codec, unknown_keys_at_every_level_are_skipped)
{
    /* Same content as the canonical blobs plus extra keys in every map, so
     * re-encoding must give the canonical bytes. */
    golden_snapshot("snapshot_v1_unknown_keys.msgpack");
    golden_load("load_v1_unknown_keys.msgpack");
    golden_report("report_v1_unknown_keys.msgpack");
}

Test(pm_codec, peek_envelope_reads_every_golden_kind)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(goldens); i++) {
        size_t n;
        char *p = slurp(goldens[i].file, &n);
        pm_envelope env;

        cr_assert_eq(pm_peek_envelope(p, n, &env), GW_OK, "%s", goldens[i].file);
        cr_assert_eq(env.kind, goldens[i].kind, "%s", goldens[i].file);
        cr_assert_eq(env.v, PM_SCHEMA_MAJOR);
        cr_assert_eq(env.epoch, GOLDEN_EPOCH);
        free(p);
    }
}

/* ---- version and kind --------------------------------------------------- */

Test(pm_codec, rejects_unknown_major_version)
{
    const pm_kind kinds[] = {PM_KIND_SNAPSHOT, PM_KIND_LOAD, PM_KIND_REPORT, PM_KIND_SNAPSHOT_REQ};
    const char *files[] = {"snapshot_v1.msgpack", "load_v1.msgpack", "report_v1.msgpack",
                           "snapshot_req_v1.msgpack"};

    for (size_t i = 0; i < GW_ARRAY_LEN(kinds); i++) {
        cr_assert_eq(decode_edited(kinds[i], files[i], "v", o_uint(2)), GW_EVERSION, "%s",
                     files[i]);
        cr_assert_eq(decode_edited(kinds[i], files[i], "v", o_uint(0)), GW_EVERSION, "%s",
                     files[i]);
    }
}

Test(pm_codec, unknown_major_wins_over_a_body_it_cannot_read)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    pm_snapshot *s = &snap_sentinel;
    pm_envelope env = {.gen = 9};

    /* A v2 snapshot whose kind and body mean nothing to v1. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_key(&pk, "models");
    msgpack_pack_true(&pk);
    pack_key(&pk, "v");
    msgpack_pack_uint64(&pk, 2);
    pack_key(&pk, "kind");
    msgpack_pack_uint64(&pk, 77);
    cr_assert_eq(pm_snapshot_decode(sb.data, sb.size, &s), GW_EVERSION);
    cr_assert_eq(s, &snap_sentinel);
    cr_assert_eq(pm_peek_envelope(sb.data, sb.size, &env), GW_EVERSION);
    cr_assert_eq(env.gen, 9);
    msgpack_sbuffer_destroy(&sb);
}

Test(pm_codec, rejects_a_message_of_another_kind)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(goldens); i++) {
        size_t n;
        char *p = slurp(goldens[i].file, &n);

        for (pm_kind k = PM_KIND_SNAPSHOT; k <= PM_KIND_SNAPSHOT_REQ; k++) {
            gw_err want = k == goldens[i].kind ? GW_OK : GW_EPROTO;
            cr_assert_eq(decode_as(k, p, n), want, "%s as kind %d", goldens[i].file, (int)k);
        }
        free(p);
    }
}

Test(pm_codec, rejects_an_unknown_or_mistyped_kind)
{
    cr_assert_eq(
        decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "kind", o_str("snapshot_v2")),
        GW_EPROTO);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "kind", o_uint(1)),
                 GW_EPROTO);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT_REQ, "snapshot_req_v1.msgpack", "kind", o_str("")),
                 GW_EPROTO);
}

/* ---- framing ------------------------------------------------------------ */

Test(pm_codec, empty_input_is_rejected)
{
    pm_envelope env = {.gen = 5};

    for (pm_kind k = PM_KIND_SNAPSHOT; k <= PM_KIND_SNAPSHOT_REQ; k++) {
        cr_assert_eq(decode_as(k, NULL, 0), GW_EPROTO);
        cr_assert_eq(decode_as(k, "", 0), GW_EPROTO);
    }
    cr_assert_eq(pm_peek_envelope(NULL, 0, &env), GW_EPROTO);
    cr_assert_eq(env.gen, 5);
}

Test(pm_codec, truncated_input_at_every_length_is_rejected)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(goldens); i++) {
        size_t n;
        char *p = slurp(goldens[i].file, &n);

        for (size_t len = 0; len < n; len++) {
            /* a fresh copy of exactly <len> bytes, so ASan sees any over-read */
            char *q = gw_xmalloc(len + 1);
            pm_envelope env;

            memcpy(q, p, len);
            cr_assert_eq(decode_as(goldens[i].kind, q, len), GW_EPROTO, "%s cut at %zu",
                         goldens[i].file, len);
            cr_assert_eq(pm_peek_envelope(q, len, &env), GW_EPROTO);
            free(q);
        }
        free(p);
    }
}

Test(pm_codec, trailing_bytes_are_rejected)
{
    size_t n;
    char *p = slurp("snapshot_v1.msgpack", &n);
    char *q = gw_xmalloc(n + 1);

    memcpy(q, p, n);
    q[n] = (char)0xc0; /* a second object: nil */
    cr_assert_eq(decode_as(PM_KIND_SNAPSHOT, q, n + 1), GW_EPROTO);
    free(q);
    free(p);
}

Test(pm_codec, non_map_messages_are_rejected)
{
    static const unsigned char inputs[][3] = {
        {0x90},             /* [] */
        {0x01},             /* 1 */
        {0xc0},             /* nil */
        {0xa1, 'v'},        /* "v" */
        {0xc1},             /* reserved byte */
        {0x81, 0x01, 0x01}, /* {1: 1}: non-string key */
    };
    static const size_t lens[] = {1, 1, 1, 2, 1, 3};

    for (size_t i = 0; i < GW_ARRAY_LEN(inputs); i++) {
        for (pm_kind k = PM_KIND_SNAPSHOT; k <= PM_KIND_SNAPSHOT_REQ; k++)
            cr_assert_eq(decode_as(k, inputs[i], lens[i]), GW_EPROTO, "input %zu", i);
    }
}

Test(pm_codec, messages_over_the_size_limit_are_rejected_unread)
{
    /* calloc'd pages are not touched unless read, and the limit is checked first */
    char *p = calloc(1, (size_t)PM_MAX_MSG_BYTES + 1);

    cr_assert_not_null(p);
    p[0] = (char)0x80;
    cr_assert_eq(decode_as(PM_KIND_SNAPSHOT, p, (size_t)PM_MAX_MSG_BYTES + 1), GW_EPROTO);
    free(p);
}

Test(pm_codec, nesting_deeper_than_the_limit_is_rejected)
{
    /* root map (depth 1) + an unknown key holding <d> nested arrays */
    for (unsigned d = 14; d <= 40; d++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        pm_envelope env;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_env(&pk, 1, 1, "snapshot_req");
        pack_key(&pk, "deep");
        for (unsigned i = 0; i < d; i++)
            msgpack_pack_array(&pk, 1);
        msgpack_pack_nil(&pk);
        cr_assert_eq(pm_peek_envelope(sb.data, sb.size, &env), d <= 15 ? GW_OK : GW_EPROTO,
                     "depth %u", d + 1);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- counts and sizes --------------------------------------------------- */

Test(pm_codec, a_count_of_two_to_the_31_is_rejected_without_allocating)
{
    static const unsigned char tail[] = {0xdd, 0x80, 0x00, 0x00, 0x00, 0x80, 0x80, 0x80};
    msgpack_sbuffer sb;
    msgpack_packer pk;

    /* {envelope, "models": [], "endpoints": array32(2^31) {} {} {}}: msgpack-c
     * alone would reserve 48 GiB for it; under ASan that aborts the test. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_env(&pk, 2, 1, "snapshot");
    pack_key(&pk, "models");
    msgpack_pack_array(&pk, 0);
    pack_key(&pk, "endpoints");
    msgpack_sbuffer_write(&sb, (const char *)tail, sizeof(tail));
    cr_assert_eq(decode_as(PM_KIND_SNAPSHOT, sb.data, sb.size), GW_EPROTO);
    msgpack_sbuffer_destroy(&sb);

    /* a root map32 claiming 2^31 pairs */
    static const unsigned char root[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0xa1, 'v', 0x01};
    cr_assert_eq(decode_as(PM_KIND_LOAD, root, sizeof(root)), GW_EPROTO);
    /* a str32 claiming 4 GiB */
    static const unsigned char str[] = {0x81, 0xa1, 'v', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    cr_assert_eq(decode_as(PM_KIND_REPORT, str, sizeof(str)), GW_EPROTO);
}

/* One valid-shaped snapshot with <n_models> models, the first with
 * <n_profiles> profiles, and one endpoint with <n_adapters> adapters. */
static gw_err
decode_counts(uint32_t n_models, uint32_t n_profiles, uint32_t n_adapters)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char name[32];
    gw_err rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_env(&pk, 2, 1, "snapshot");
    pack_key(&pk, "models");
    msgpack_pack_array(&pk, n_models);
    for (uint32_t i = 0; i < n_models; i++) {
        msgpack_pack_map(&pk, i == 0 ? 2 : 1);
        pack_key(&pk, "name");
        snprintf(name, sizeof(name), "m%u", i);
        pack_key(&pk, name);
        if (i == 0) {
            pack_key(&pk, "profiles");
            msgpack_pack_array(&pk, n_profiles);
            for (uint32_t j = 0; j < n_profiles; j++) {
                msgpack_pack_map(&pk, 1);
                pack_key(&pk, "name");
                snprintf(name, sizeof(name), "p%u", j);
                pack_key(&pk, name);
            }
        }
    }
    pack_key(&pk, "endpoints");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 6);
    pack_key(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_key(&pk, "model");
    pack_key(&pk, "m0");
    pack_key(&pk, "pod");
    pack_key(&pk, "pod-0");
    pack_key(&pk, "ip");
    pack_key(&pk, "10.0.0.1");
    pack_key(&pk, "port");
    msgpack_pack_uint64(&pk, 8000);
    pack_key(&pk, "adapters");
    msgpack_pack_array(&pk, n_adapters);
    for (uint32_t j = 0; j < n_adapters; j++) {
        snprintf(name, sizeof(name), "a%u", j);
        pack_key(&pk, name);
    }
    rc = decode_as(PM_KIND_SNAPSHOT, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

Test(pm_codec, counts_at_the_limits_pass_and_one_over_is_rejected)
{
    cr_assert_eq(decode_counts(PM_MAX_MODELS, PM_MAX_PROFILES, PM_MAX_ADAPTERS), GW_OK);
    cr_assert_eq(decode_counts(PM_MAX_MODELS + 1, 1, 1), GW_EPROTO);
    cr_assert_eq(decode_counts(1, PM_MAX_PROFILES + 1, 1), GW_EPROTO);
    cr_assert_eq(decode_counts(1, 1, PM_MAX_ADAPTERS + 1), GW_EPROTO);
}

static gw_err
decode_load_rows(uint32_t n_eps, uint32_t n_workers)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    gw_err rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_env(&pk, 2, 1, "load");
    pack_key(&pk, "eps");
    msgpack_pack_array(&pk, n_eps);
    for (uint32_t i = 0; i < n_eps; i++) {
        msgpack_pack_map(&pk, 1);
        pack_key(&pk, "id");
        msgpack_pack_uint64(&pk, i);
    }
    pack_key(&pk, "workers");
    msgpack_pack_array(&pk, n_workers);
    for (uint32_t i = 0; i < n_workers; i++) {
        msgpack_pack_map(&pk, 2);
        pack_key(&pk, "wid");
        msgpack_pack_uint64(&pk, i);
        pack_key(&pk, "seq");
        msgpack_pack_uint64(&pk, 1);
    }
    rc = decode_as(PM_KIND_LOAD, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

Test(pm_codec, load_row_counts_at_the_limits_pass_and_one_over_is_rejected)
{
    cr_assert_eq(decode_load_rows(PM_MAX_ENDPOINTS, PM_MAX_WORKERS), GW_OK);
    cr_assert_eq(decode_load_rows(PM_MAX_ENDPOINTS + 1, 1), GW_EPROTO);
    cr_assert_eq(decode_load_rows(1, PM_MAX_WORKERS + 1), GW_EPROTO);
}

Test(pm_codec, strings_over_their_limit_are_rejected)
{
    char *s = gw_xmalloc(PM_MAX_JSON + 2);

    memset(s, 'x', PM_MAX_JSON + 1);
    s[PM_MAX_JSON + 1] = '\0';
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.pod",
                               o_strn(s, PM_MAX_STR)),
                 GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.pod",
                               o_strn(s, PM_MAX_STR + 1)),
                 GW_EPROTO);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.adapters.1",
                               o_strn(s, PM_MAX_STR + 1)),
                 GW_EPROTO);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack",
                               "models.0.profiles.1.routing_config_json", o_strn(s, PM_MAX_JSON)),
                 GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack",
                               "models.0.profiles.1.routing_config_json",
                               o_strn(s, PM_MAX_JSON + 1)),
                 GW_EPROTO);
    /* PM_MAX_JSON is for routing_config_json only */
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack",
                               "models.0.profiles.1.routing_strategy", o_strn(s, PM_MAX_STR + 1)),
                 GW_EPROTO);
    free(s);

    /* the route config and the mirror text have their own, larger caps */
    s = gw_xmalloc(PM_MAX_ROUTE_JSON + 2);
    memset(s, 'x', PM_MAX_ROUTE_JSON + 1);
    s[PM_MAX_ROUTE_JSON + 1] = '\0';
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "traffic.config",
                               o_strn(s, PM_MAX_ROUTE_JSON)),
                 GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "traffic.config",
                               o_strn(s, PM_MAX_ROUTE_JSON + 1)),
                 GW_EPROTO);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "traffic.policy",
                               o_strn(s, PM_MAX_STR + 1)),
                 GW_EPROTO);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "mirror.config",
                               o_strn(s, PM_MAX_MIRROR_JSON)),
                 GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "mirror.config",
                               o_strn(s, PM_MAX_MIRROR_JSON + 1)),
                 GW_EPROTO);
    free(s);
}

/* ---- types and ranges --------------------------------------------------- */

typedef struct bad_case {
    pm_kind kind;
    const char *file;
    const char *path;
    msgpack_object val;
    gw_err want;
} bad_case;

Test(pm_codec, wrong_types_and_out_of_range_values_are_rejected)
{
    const char *S = "snapshot_v1.msgpack", *L = "load_v1.msgpack", *R = "report_v1.msgpack";
    const pm_kind SK = PM_KIND_SNAPSHOT, LK = PM_KIND_LOAD, RK = PM_KIND_REPORT;
    const bad_case cases[] = {
        {SK, S, "v", o_str("1"), GW_EPROTO},
        {SK, S, "v", o_neg(-1), GW_EPROTO},
        {SK, S, "gen", o_neg(-1), GW_EPROTO},
        {SK, S, "epoch", o_f64(1.0), GW_EPROTO},
        {SK, S, "sent_ms", o_str("now"), GW_EPROTO},
        {SK, S, "models", o_empty(MSGPACK_OBJECT_MAP), GW_EPROTO},
        {SK, S, "models", o_nil(), GW_EPROTO},
        {SK, S, "endpoints", o_str("x"), GW_EPROTO},
        {SK, S, "endpoints.0", o_empty(MSGPACK_OBJECT_ARRAY), GW_EPROTO},
        {SK, S, "settings", o_str("x"), GW_EPROTO},
        {SK, S, "settings.routing_strategy", o_uint(3), GW_EPROTO},
        {SK, S, "traffic", o_str("x"), GW_EPROTO},
        {SK, S, "traffic.policy", o_uint(1), GW_EPROTO},
        {SK, S, "traffic.policy", o_nil(), GW_EPROTO}, /* a config without its policy */
        {SK, S, "traffic.policy", o_str(""), GW_EPROTO},
        {SK, S, "traffic.config", o_nil(), GW_EPROTO}, /* a policy without its config */
        {SK, S, "traffic.config", o_bin("[]"), GW_EPROTO},
        {SK, S, "mirror", o_empty(MSGPACK_OBJECT_ARRAY), GW_EPROTO},
        {SK, S, "mirror.config", o_uint(7), GW_EPROTO},
        {SK, S, "models.0.name", o_str(""), GW_EPROTO},
        {SK, S, "models.0.name", o_bin("llama3-8b"), GW_EPROTO},
        {SK, S, "models.0.profiles", o_empty(MSGPACK_OBJECT_MAP), GW_EPROTO},
        {SK, S, "models.0.profiles.1.rps", o_neg(-5), GW_EPROTO},
        {SK, S, "models.0.profiles.1.rps", o_uint((uint64_t)INT64_MAX + 1), GW_EPROTO},
        {SK, S, "models.0.profiles.1.name", o_nil(), GW_EPROTO},
        {SK, S, "endpoints.0.id", o_neg(-1), GW_EPROTO},
        {SK, S, "endpoints.0.id", o_uint((uint64_t)UINT32_MAX + 1), GW_EPROTO},
        {SK, S, "endpoints.0.id", o_f64(1.0), GW_EPROTO},
        {SK, S, "endpoints.0.port", o_str("8000"), GW_EPROTO},
        {SK, S, "endpoints.0.port", o_uint(65536), GW_EPROTO},
        {SK, S, "endpoints.0.port", o_uint(0), GW_EPROTO},
        {SK, S, "endpoints.0.metric_port", o_uint(65536), GW_EPROTO},
        {SK, S, "endpoints.0.metric_port", o_neg(-1), GW_EPROTO},
        {SK, S, "endpoints.0.ready", o_uint(1), GW_EPROTO},
        {SK, S, "endpoints.0.draining", o_str("true"), GW_EPROTO},
        {SK, S, "endpoints.0.pod", o_str(""), GW_EPROTO},
        {SK, S, "endpoints.0.pod", o_strn("a\0b", 3), GW_EPROTO},
        {SK, S, "endpoints.0.pod", o_bin("pod"), GW_EPROTO},
        {SK, S, "endpoints.0.ip", o_nil(), GW_EPROTO},
        {SK, S, "endpoints.0.adapters", o_str("sql-lora"), GW_EPROTO},
        {SK, S, "endpoints.0.adapters.0", o_uint(5), GW_EPROTO},
        {SK, S, "endpoints.0.adapters.0", o_str(""), GW_EPROTO},
        {SK, S, "endpoints.1.id", o_uint(1), GW_EPROTO},         /* duplicate id */
        {SK, S, "models.1.name", o_str("llama3-8b"), GW_EPROTO}, /* duplicate name */
        {SK, S, "users.1.name", o_str("alice"), GW_EPROTO},      /* duplicate user */
        {SK, S, "users.0.name", o_str(""), GW_EPROTO},
        {SK, S, "users.0.rpm", o_neg(-1), GW_EPROTO},
        {SK, S, "users.0.tpm", o_str("5"), GW_EPROTO},
        {SK, S, "users.0.keys", o_str("x"), GW_EPROTO},
        {SK, S, "users.0.keys.0", o_str("sk-plain-key"), GW_EPROTO}, /* not a digest */
        {SK, S, "users.0.keys.0",
         o_str("5D6C0D0E2F0D54E6A4A3B3C0B0AD5B2C36BDBB6D0C0B9D3A7E1F2A3B4C5D6E7F"),
         GW_EPROTO}, /* upper-case hex */
        {LK, L, "eps.0.run", o_str("2"), GW_EPROTO},
        {LK, L, "eps.0.kv", o_f64(NAN), GW_EPROTO},
        {LK, L, "eps.0.lat_ms", o_f64(INFINITY), GW_EPROTO},
        {LK, L, "eps.0.ttft_ms", o_f64(-INFINITY), GW_EPROTO},
        {LK, L, "eps.0.inf", o_neg(-1), GW_EPROTO},
        {LK, L, "eps.0.inf", o_uint((uint64_t)UINT32_MAX + 1), GW_EPROTO},
        {LK, L, "eps.0.inf_tok", o_f64(3.0), GW_EPROTO},
        {LK, L, "eps.1.id", o_uint(1), GW_EPROTO}, /* duplicate id */
        {LK, L, "workers", o_uint(0), GW_EPROTO},
        {LK, L, "workers.0.seq", o_nil(), GW_EPROTO},
        {LK, L, "workers.1.wid", o_uint(WORKER_A), GW_EPROTO}, /* duplicate worker */
        {RK, R, "wid", o_str("a"), GW_EPROTO},
        {RK, R, "seq", o_neg(-1), GW_EPROTO},
        {RK, R, "eps.0.done", o_neg(-1), GW_EPROTO},
        {RK, R, "eps.0.err", o_bool(true), GW_EPROTO},
        {RK, R, "eps.0.lat_ms_sum", o_f64(1.5), GW_EPROTO},
        {RK, R, "eps.1.id", o_uint(1), GW_EPROTO}, /* duplicate id */
    };

    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        const bad_case *c = &cases[i];
        cr_assert_eq(decode_edited(c->kind, c->file, c->path, c->val), c->want, "%s %s: want %s",
                     c->file, c->path, gw_strerror(c->want));
    }
}

Test(pm_codec, missing_required_keys_are_rejected_and_duplicates_too)
{
    static const struct {
        pm_kind kind;
        const char *file, *path, *rename;
    } cases[] = {
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "v", "version"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "kind", "kindx"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "gen", "generation"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "epoch", "sent_ms"}, /* duplicate */
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "models", "model"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints", "endpoint"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "models.0.name", "nam"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "models.0.profiles.0.name", "Name"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.id", "idx"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.ip", "address"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.port", "ports"},
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.pod", "model"}, /* duplicate */
        {PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.ns", "ip"},     /* duplicate */
        {PM_KIND_LOAD, "load_v1.msgpack", "eps", "endpoints"},
        {PM_KIND_LOAD, "load_v1.msgpack", "eps.0.id", "i"},
        {PM_KIND_LOAD, "load_v1.msgpack", "eps.0.run", "wait"}, /* duplicate */
        {PM_KIND_LOAD, "load_v1.msgpack", "workers.0.wid", "worker_id"},
        {PM_KIND_REPORT, "report_v1.msgpack", "wid", "worker"},
        {PM_KIND_REPORT, "report_v1.msgpack", "seq", "sequence"},
        {PM_KIND_REPORT, "report_v1.msgpack", "eps", "e"},
        {PM_KIND_REPORT, "report_v1.msgpack", "eps.1.id", "ID"},
        {PM_KIND_SNAPSHOT_REQ, "snapshot_req_v1.msgpack", "sent_ms", "sent"},
    };

    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        cr_assert_eq(
            decode_renamed(cases[i].kind, cases[i].file, cases[i].path, o_str(cases[i].rename)),
            GW_EPROTO, "%s %s -> %s", cases[i].file, cases[i].path, cases[i].rename);
    }
    /* a non-string key anywhere */
    cr_assert_eq(
        decode_renamed(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.2.role", o_uint(1)),
        GW_EPROTO);
}

Test(pm_codec, missing_or_nil_optional_keys_take_their_defaults)
{
    msgpack_sbuffer sb;
    pm_snapshot *s = NULL;
    pm_load *l = NULL;

    /* engine renamed away: the label default */
    {
        msgpack_object k = o_str("engine_old");
        edit("snapshot_v1.msgpack", "endpoints.3.engine", NULL, &k, &sb);
    }
    cr_assert_eq(pm_snapshot_decode(sb.data, sb.size, &s), GW_OK);
    expect_str(s->endpoints[3].engine, "vllm");
    pm_snapshot_free(s);
    msgpack_sbuffer_destroy(&sb);

    /* nil optional values */
    {
        msgpack_object nil = o_nil();
        edit("snapshot_v1.msgpack", "endpoints.0.ns", &nil, NULL, &sb);
    }
    cr_assert_eq(pm_snapshot_decode(sb.data, sb.size, &s), GW_OK);
    cr_assert_null(s->endpoints[0].ns);
    pm_snapshot_free(s);
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(
        decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "endpoints.0.adapters", o_nil()),
        GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "settings", o_nil()),
                 GW_OK);
    /* a controller without traffic/mirror (nil maps, absent keys: below) */
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "traffic", o_nil()), GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "mirror", o_nil()), GW_OK);
    cr_assert_eq(decode_edited(PM_KIND_SNAPSHOT, "snapshot_v1.msgpack", "mirror.config", o_nil()),
                 GW_OK);

    /* load values absent or nil are unknown (-1), not 0 */
    {
        msgpack_object k = o_str("kv_usage");
        edit("load_v1.msgpack", "eps.0.kv", NULL, &k, &sb);
    }
    cr_assert_eq(pm_load_decode(sb.data, sb.size, &l), GW_OK);
    cr_assert(l->eps[0].kv_usage == -1.0);
    cr_assert(l->eps[0].running == 2.0);
    pm_load_free(l);
    msgpack_sbuffer_destroy(&sb);
    /* a controller from before kv_cap */
    {
        msgpack_object k = o_str("kv_capacity");
        edit("load_v1.msgpack", "eps.0.kv_cap", NULL, &k, &sb);
    }
    cr_assert_eq(pm_load_decode(sb.data, sb.size, &l), GW_OK);
    cr_assert(l->eps[0].kv_capacity == -1.0);
    pm_load_free(l);
    msgpack_sbuffer_destroy(&sb);
    {
        msgpack_object nil = o_nil();
        edit("load_v1.msgpack", "eps.0.tok_s", &nil, NULL, &sb);
    }
    cr_assert_eq(pm_load_decode(sb.data, sb.size, &l), GW_OK);
    cr_assert(l->eps[0].tokens_per_s == -1.0);
    pm_load_free(l);
    msgpack_sbuffer_destroy(&sb);
}

Test(pm_codec, integers_and_float32_are_accepted_for_doubles)
{
    static const struct {
        const char *path;
        double want;
    } cases[] = {{"eps.0.run", 3.0}, {"eps.0.wait", -1.0}, {"eps.0.kv", 0.5}};
    msgpack_object vals[] = {o_uint(3), o_neg(-1), o_f32(0.5f)};

    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        msgpack_sbuffer sb;
        pm_load *l = NULL;
        double got;

        edit("load_v1.msgpack", cases[i].path, &vals[i], NULL, &sb);
        cr_assert_eq(pm_load_decode(sb.data, sb.size, &l), GW_OK, "%s", cases[i].path);
        got = i == 0 ? l->eps[0].running : i == 1 ? l->eps[0].waiting : l->eps[0].kv_usage;
        cr_assert(got == cases[i].want, "%s: got %g", cases[i].path, got);
        pm_load_free(l);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- round trips -------------------------------------------------------- */

Test(pm_codec, minimal_snapshot_round_trips_with_defaults)
{
    pm_endpoint ep = {
        .id = 9, .model = "m", .pod = "10.1.1.1:8000", .ip = "10.1.1.1", .port = 8000};
    pm_model m = {.name = "m"};
    pm_snapshot in = {.env = {.gen = UINT64_MAX, .epoch = 0, .sent_ms = 1},
                      .n_models = 1,
                      .models = &m,
                      .n_endpoints = 1,
                      .endpoints = &ep};
    pm_snapshot *out = NULL;
    gw_buf b;

    gw_buf_init(&b, 4096);
    cr_assert_eq(pm_snapshot_encode(&in, &b), GW_OK);
    cr_assert_eq(pm_snapshot_decode(b.data, b.len, &out), GW_OK);
    cr_assert_eq(out->env.gen, UINT64_MAX);
    cr_assert_eq(out->env.epoch, 0);
    cr_assert_eq(out->env.sent_ms, 1);
    cr_assert_eq(out->env.kind, PM_KIND_SNAPSHOT);
    cr_assert_eq(out->n_models, 1);
    expect_str(out->models[0].name, "m");
    expect_str(out->models[0].locked_strategy, NULL);
    expect_str(out->models[0].default_profile, NULL);
    cr_assert_eq(out->models[0].n_profiles, 0);
    cr_assert_eq(out->n_endpoints, 1);
    cr_assert_eq(out->endpoints[0].id, 9);
    expect_str(out->endpoints[0].ns, NULL);
    expect_str(out->endpoints[0].engine, "vllm");
    expect_str(out->endpoints[0].roleset, NULL);
    expect_str(out->endpoints[0].role, NULL);
    cr_assert_eq(out->endpoints[0].n_adapters, 0);
    cr_assert_null(out->endpoints[0].adapters);
    cr_assert_not(out->endpoints[0].ready);
    expect_str(out->settings.routing_strategy, NULL);
    expect_str(out->traffic.policy, NULL);
    expect_str(out->traffic.config_json, NULL);
    expect_str(out->mirror.config_json, NULL);
    pm_snapshot_free(out);
    gw_buf_fini(&b);
}

Test(pm_codec, empty_snapshot_load_and_report_round_trip)
{
    pm_snapshot s = {.env = {.gen = 1}};
    pm_load l = {.env = {.gen = 2}};
    pm_report r = {.env = {.gen = 3}, .worker_id = 4, .seq = 5};
    pm_snapshot *s2 = NULL;
    pm_load *l2 = NULL;
    pm_report *r2 = NULL;
    gw_buf b;

    gw_buf_init(&b, 4096);
    cr_assert_eq(pm_snapshot_encode(&s, &b), GW_OK);
    cr_assert_eq(pm_snapshot_decode(b.data, b.len, &s2), GW_OK);
    cr_assert_eq(s2->env.gen, 1);
    cr_assert_eq(s2->n_models + s2->n_endpoints, 0);
    gw_buf_reset(&b);
    cr_assert_eq(pm_load_encode(&l, &b), GW_OK);
    cr_assert_eq(pm_load_decode(b.data, b.len, &l2), GW_OK);
    cr_assert_eq(l2->env.gen, 2);
    cr_assert_eq(l2->n_eps + l2->n_workers, 0);
    gw_buf_reset(&b);
    cr_assert_eq(pm_report_encode(&r, &b), GW_OK);
    cr_assert_eq(pm_report_decode(b.data, b.len, &r2), GW_OK);
    cr_assert_eq(r2->env.gen, 3);
    cr_assert_eq(r2->worker_id, 4);
    cr_assert_eq(r2->seq, 5);
    cr_assert_eq(r2->n_eps, 0);
    pm_snapshot_free(s2);
    pm_load_free(l2);
    pm_report_free(r2);
    gw_buf_fini(&b);
}

Test(pm_codec, many_endpoints_round_trip_in_order)
{
    enum { N = 5000 };
    pm_endpoint *eps = gw_xcalloc(N, sizeof(*eps));
    pm_load l = {.n_eps = N, .eps = gw_xcalloc(N, sizeof(pm_ep_load))};
    pm_snapshot s = {.n_endpoints = N, .endpoints = eps};
    pm_snapshot *s2 = NULL;
    pm_load *l2 = NULL;
    gw_buf b;

    for (uint32_t i = 0; i < N; i++) {
        /* ids deliberately not sorted: the decoder keeps wire order */
        eps[i] = (pm_endpoint){.id = (i * 7919u) % 100003u,
                               .model = "m",
                               .pod = "p",
                               .ip = "i",
                               .port = (uint16_t)(1 + i),
                               .ready = i % 2};
        l.eps[i] = (pm_ep_load){.id = eps[i].id,
                                .inflight = i,
                                .running = i * 0.5,
                                .waiting = -1,
                                .kv_usage = -1,
                                .latency_ms = -1,
                                .ttft_ms = -1,
                                .tokens_per_s = -1};
    }
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    cr_assert_eq(pm_snapshot_encode(&s, &b), GW_OK);
    cr_assert_eq(pm_snapshot_decode(b.data, b.len, &s2), GW_OK);
    gw_buf_reset(&b);
    cr_assert_eq(pm_load_encode(&l, &b), GW_OK);
    cr_assert_eq(pm_load_decode(b.data, b.len, &l2), GW_OK);
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(s2->endpoints[i].id, eps[i].id);
        cr_assert_eq(s2->endpoints[i].port, eps[i].port);
        cr_assert_eq(s2->endpoints[i].ready, eps[i].ready);
        cr_assert_eq(l2->eps[i].id, eps[i].id);
        cr_assert_eq(l2->eps[i].inflight, i);
        cr_assert(l2->eps[i].running == i * 0.5);
    }
    pm_snapshot_free(s2);
    pm_load_free(l2);
    free(eps);
    free(l.eps);
    gw_buf_fini(&b);
}

Test(pm_codec, encoder_ignores_v_and_kind_in_the_struct)
{
    pm_report r = {.env = {.v = 99, .kind = PM_KIND_SNAPSHOT, .gen = 1}, .worker_id = 1};
    pm_report *r2 = NULL;
    gw_buf b;

    gw_buf_init(&b, 4096);
    cr_assert_eq(pm_report_encode(&r, &b), GW_OK);
    cr_assert_eq(pm_report_decode(b.data, b.len, &r2), GW_OK);
    cr_assert_eq(r2->env.v, PM_SCHEMA_MAJOR);
    cr_assert_eq(r2->env.kind, PM_KIND_REPORT);
    pm_report_free(r2);
    gw_buf_fini(&b);
}

/* ---- encoder errors ----------------------------------------------------- */

Test(pm_codec, encoding_into_a_too_small_buffer_is_efull_and_leaves_it_unchanged)
{
    size_t n;
    char *p = slurp("snapshot_v1.msgpack", &n);
    pm_snapshot *s = NULL;
    gw_buf b;

    cr_assert_eq(pm_snapshot_decode(p, n, &s), GW_OK);
    for (size_t cap = 3; cap < n + 3; cap++) {
        gw_buf_init(&b, cap);
        cr_assert_eq(gw_buf_append(&b, "abc", 3), GW_OK);
        cr_assert_eq(pm_snapshot_encode(s, &b), GW_EFULL, "cap %zu", cap);
        cr_assert_eq(b.len, 3);
        cr_assert_str_eq(b.data, "abc");
        gw_buf_fini(&b);
    }
    gw_buf_init(&b, n + 3);
    cr_assert_eq(gw_buf_append(&b, "abc", 3), GW_OK);
    cr_assert_eq(pm_snapshot_encode(s, &b), GW_OK);
    cr_assert_eq(b.len, n + 3);
    cr_assert_eq(memcmp(b.data + 3, p, n), 0);
    gw_buf_fini(&b);
    gw_buf_init(&b, 0);
    cr_assert_eq(pm_snapshot_req_encode(&s->env, &b), GW_EFULL);
    cr_assert_eq(b.len, 0);
    gw_buf_fini(&b);
    pm_snapshot_free(s);
    free(p);
}

static gw_err
encode_snapshot_len(const pm_snapshot *s, size_t *len)
{
    gw_buf b;
    gw_err rc;

    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    rc = pm_snapshot_encode(s, &b);
    *len = b.len;
    gw_buf_fini(&b);
    return rc;
}

Test(pm_codec, encoder_refuses_what_the_decoder_would_refuse)
{
    char *adapters[] = {"a", NULL};
    char *longs = gw_xmalloc(PM_MAX_STR + 2);
    pm_profile prof = {.name = "p"};
    pm_model models[2] = {{.name = "m", .n_profiles = 1, .profiles = &prof}, {.name = "n"}};
    pm_endpoint eps[2] = {
        {.id = 1, .model = "m", .pod = "p", .ip = "i", .port = 1, .engine = "vllm"},
        {.id = 2, .model = "m", .pod = "q", .ip = "j", .port = 2},
    };
    pm_snapshot s = {.n_models = 2, .models = models, .n_endpoints = 2, .endpoints = eps};
    size_t len;

    memset(longs, 'x', PM_MAX_STR + 1);
    longs[PM_MAX_STR + 1] = '\0';
    cr_assert_eq(encode_snapshot_len(&s, &len), GW_OK);

#define EXPECT_EINVAL(stmt_break, stmt_fix)                                                        \
    do {                                                                                           \
        stmt_break;                                                                                \
        cr_assert_eq(encode_snapshot_len(&s, &len), GW_EINVAL, "%s", #stmt_break);                 \
        cr_assert_eq(len, 0, "%s: buffer not restored", #stmt_break);                              \
        stmt_fix;                                                                                  \
        cr_assert_eq(encode_snapshot_len(&s, &len), GW_OK, "%s", #stmt_fix);                       \
    } while (0)

    EXPECT_EINVAL(models[1].name = NULL, models[1].name = "n");
    EXPECT_EINVAL(models[1].name = "", models[1].name = "n");
    EXPECT_EINVAL(models[1].name = "m", models[1].name = "n");
    EXPECT_EINVAL(prof.name = NULL, prof.name = "p");
    EXPECT_EINVAL(prof.requests_per_second = -1, prof.requests_per_second = 0);
    EXPECT_EINVAL(models[0].n_profiles = PM_MAX_PROFILES + 1, models[0].n_profiles = 1);
    EXPECT_EINVAL(models[1].profiles = NULL; models[1].n_profiles = 1, models[1].n_profiles = 0);
    EXPECT_EINVAL(eps[0].pod = NULL, eps[0].pod = "p");
    EXPECT_EINVAL(eps[0].ip = "", eps[0].ip = "i");
    EXPECT_EINVAL(eps[0].ns = longs, eps[0].ns = NULL);
    EXPECT_EINVAL(eps[0].port = 0, eps[0].port = 1);
    EXPECT_EINVAL(eps[1].id = 1, eps[1].id = 2);
    EXPECT_EINVAL(eps[0].n_adapters = 2; eps[0].adapters = adapters, adapters[1] = "b");
    EXPECT_EINVAL(adapters[1] = "", adapters[1] = "b");
    EXPECT_EINVAL(eps[0].n_adapters = PM_MAX_ADAPTERS + 1, eps[0].n_adapters = 2);
    EXPECT_EINVAL(s.n_endpoints = 3; s.endpoints = NULL, s.n_endpoints = 2; s.endpoints = eps);
    EXPECT_EINVAL(s.n_models = PM_MAX_MODELS + 1, s.n_models = 2);
    EXPECT_EINVAL(s.traffic.policy = "weight", s.traffic.config_json = "[]");
    EXPECT_EINVAL(s.traffic.policy = NULL, s.traffic.config_json = NULL);
    EXPECT_EINVAL(s.traffic.config_json = "[]"; s.traffic.policy = "", s.traffic.policy = "weight");
#undef EXPECT_EINVAL

    cr_assert_eq(pm_snapshot_encode(NULL, &(gw_buf){0}), GW_EINVAL);
    cr_assert_eq(pm_snapshot_encode(&s, NULL), GW_EINVAL);
    cr_assert_eq(pm_snapshot_req_encode(NULL, &(gw_buf){0}), GW_EINVAL);
    free(longs);
}

Test(pm_codec, encoder_refuses_non_finite_load_values_and_duplicate_rows)
{
    pm_ep_load eps[2] = {{.id = 1}, {.id = 2}};
    pm_worker_seq ws[2] = {{.worker_id = 1}, {.worker_id = 2}};
    pm_load l = {.n_eps = 2, .eps = eps, .n_workers = 2, .workers = ws};
    pm_ep_report reps[2] = {{.id = 1}, {.id = 1}};
    pm_report r = {.n_eps = 2, .eps = reps};
    gw_buf b;

    gw_buf_init(&b, 1 << 16);
    cr_assert_eq(pm_load_encode(&l, &b), GW_OK);
    gw_buf_reset(&b);
    eps[1].kv_usage = NAN;
    cr_assert_eq(pm_load_encode(&l, &b), GW_EINVAL);
    eps[1].kv_usage = INFINITY;
    cr_assert_eq(pm_load_encode(&l, &b), GW_EINVAL);
    eps[1].kv_usage = 0.5;
    ws[1].worker_id = 1;
    cr_assert_eq(pm_load_encode(&l, &b), GW_EINVAL);
    ws[1].worker_id = 2;
    l.n_workers = PM_MAX_WORKERS + 1;
    cr_assert_eq(pm_load_encode(&l, &b), GW_EINVAL);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(pm_report_encode(&r, &b), GW_EINVAL);
    reps[1].id = 2;
    cr_assert_eq(pm_report_encode(&r, &b), GW_OK);
    gw_buf_fini(&b);
}

/* ---- misc --------------------------------------------------------------- */

Test(pm_codec, free_functions_accept_null_and_hand_built_messages)
{
    pm_snapshot *s = gw_xcalloc(1, sizeof(*s));
    pm_load *l = gw_xcalloc(1, sizeof(*l));
    pm_report *r = gw_xcalloc(1, sizeof(*r));

    pm_snapshot_free(NULL);
    pm_load_free(NULL);
    pm_report_free(NULL);

    s->n_models = 1;
    s->models = gw_xcalloc(1, sizeof(pm_model));
    s->models[0].name = gw_xstrdup("m");
    s->models[0].n_profiles = 1;
    s->models[0].profiles = gw_xcalloc(1, sizeof(pm_profile));
    s->models[0].profiles[0].routing_config_json = gw_xstrdup("{}");
    s->n_endpoints = 2; /* a count without its array is tolerated */
    s->settings.routing_strategy = gw_xstrdup("random");
    s->traffic.policy = gw_xstrdup("weight");
    s->traffic.config_json = gw_xstrdup("[]");
    s->mirror.config_json = gw_xstrdup("{}");
    l->n_eps = 1;
    l->eps = gw_xcalloc(1, sizeof(pm_ep_load));
    r->n_eps = 1;
    r->eps = gw_xcalloc(1, sizeof(pm_ep_report));
    pm_snapshot_free(s);
    pm_load_free(l);
    pm_report_free(r);
}

Test(pm_codec, find_model_looks_up_by_exact_name)
{
    size_t n;
    char *p = slurp("snapshot_v1.msgpack", &n);
    pm_snapshot *s = NULL;
    const pm_model *m;

    cr_assert_eq(pm_snapshot_decode(p, n, &s), GW_OK);
    m = pm_snapshot_find_model(s, "qwen2-72b");
    cr_assert_not_null(m);
    cr_assert_eq(m, &s->models[1]);
    cr_assert_null(pm_snapshot_find_model(s, "qwen2"));
    cr_assert_null(pm_snapshot_find_model(s, ""));
    cr_assert_null(pm_snapshot_find_model(s, NULL));
    cr_assert_null(pm_snapshot_find_model(NULL, "qwen2-72b"));
    pm_snapshot_free(s);
    free(p);
}

Test(pm_codec, single_byte_corruptions_never_crash_or_leak)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(goldens); i++) {
        size_t n;
        char *p = slurp(goldens[i].file, &n);
        char *q = gw_xmalloc(n);

        for (size_t pos = 0; pos < n; pos++) {
            static const unsigned char flips[] = {0x01, 0x80, 0xff};
            for (size_t f = 0; f < GW_ARRAY_LEN(flips); f++) {
                memcpy(q, p, n);
                q[pos] = (char)(q[pos] ^ flips[f]);
                (void)decode_as(goldens[i].kind, q, n);
            }
        }
        free(q);
        free(p);
    }
}
