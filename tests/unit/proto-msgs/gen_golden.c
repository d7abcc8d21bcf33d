/* gen_golden: writes the golden v1 blobs of proto-msgs/testdata/. Run by hand
 * only, when the schema gains a version or a golden case (never by ctest):
 *
 *     pm_gen_golden proto-msgs/testdata
 *
 * The blobs are the contract: once checked in they never change for v1, and
 * test_pm_codec.c checks them field by field against values written out in
 * the test itself, not against this program. Changing a value here without
 * changing the test makes the test fail, which is the point.
 *
 * The *_unknown_keys blobs are the canonical ones re-packed with extra keys
 * in every map (before and after the known ones, with values of every msgpack
 * type), standing in for a newer minor version of the schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "pm/pm_msgs.h"

#define GOLDEN_EPOCH   UINT64_C(0x5eed00000000cafe)
#define GOLDEN_SENT_MS UINT64_C(1763745600123)
#define WORKER_A       UINT64_C(0xdeadbeefcafef00d)
#define WORKER_B       UINT64_C(0x0123456789abcdef)

static void
write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "gen_golden: cannot write %s\n", path);
        exit(1);
    }
    printf("%s: %zu bytes\n", path, n);
}

static void
check(gw_err rc, const char *what)
{
    if (rc != GW_OK) {
        fprintf(stderr, "gen_golden: %s: %s\n", what, gw_strerror(rc));
        exit(1);
    }
}

/* ---- unknown keys -------------------------------------------------------- */

static int
on_sbuf(void *data, const char *p, size_t n)
{
    return msgpack_sbuffer_write(data, p, n);
}

static void
pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* Values of every msgpack family, and keys that are prefixes or extensions of
 * real ones, so only exact key matches may count. */
static void
pack_extra_front(msgpack_packer *pk, unsigned which)
{
    static const unsigned char bin[] = {0x00, 0xff, 0x10};

    pack_key(pk, which % 2 ? "i" : "names");
    msgpack_pack_map(pk, 2);
    pack_key(pk, "nested");
    msgpack_pack_array(pk, 3);
    msgpack_pack_nil(pk);
    msgpack_pack_float(pk, 1.5f);
    msgpack_pack_bin_with_body(pk, bin, sizeof(bin));
    pack_key(pk, "neg");
    msgpack_pack_int64(pk, -123456789012);
}

static void
pack_extra_back(msgpack_packer *pk, unsigned which)
{
    pack_key(pk, which % 2 ? "id2" : "future_field");
    msgpack_pack_ext_with_body(pk, "\x01\x02\x03\x04", 4, 7);
}

/* <nmap> counts the maps written so far; alternating on it puts both sets of
 * extra keys into sibling maps (two endpoints, two profiles). */
static void
pack_with_extras(msgpack_packer *pk, const msgpack_object *o, unsigned *nmap)
{
    if (o->type == MSGPACK_OBJECT_MAP) {
        unsigned which = (*nmap)++;
        msgpack_pack_map(pk, o->via.map.size + 2);
        pack_extra_front(pk, which);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            msgpack_pack_object(pk, o->via.map.ptr[i].key);
            pack_with_extras(pk, &o->via.map.ptr[i].val, nmap);
        }
        pack_extra_back(pk, which);
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            pack_with_extras(pk, &o->via.array.ptr[i], nmap);
    } else {
        msgpack_pack_object(pk, *o);
    }
}

static void
write_with_extras(const char *dir, const char *name, const gw_buf *canon)
{
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t off = 0;
    unsigned nmap = 0;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, canon->data, canon->len, &off) != MSGPACK_UNPACK_SUCCESS) {
        fprintf(stderr, "gen_golden: cannot re-read %s\n", name);
        exit(1);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, on_sbuf);
    pack_with_extras(&pk, &u.data, &nmap);
    write_file(dir, name, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
}

/* ---- the golden messages ------------------------------------------------ */

static void
gen_snapshot(const char *dir)
{
    pm_profile llama_profiles[] = {
        {.name = "default", .routing_strategy = "least-request"},
        {.name = "pd",
         .routing_strategy = "pd",
         .requests_per_second = 50,
         .routing_config_json = "{\"promptLenBucketMaxLength\":[1024,4096]}"},
    };
    pm_model models[] = {
        {.name = "llama3-8b",
         .default_profile = "default",
         .n_profiles = 2,
         .profiles = llama_profiles},
        {.name = "qwen2-72b", .locked_strategy = "prefix-cache"},
    };
    char *adapters[] = {"sql-lora", "chat-lora"};
    char *labels[] = {"model.aibrix.ai/name=llama3-8b", "zone=us-east-1a"};
    pm_endpoint eps[] = {
        {.id = 1,
         .model = "llama3-8b",
         .pod = "llama3-8b-7c9f6d-abcde",
         .ns = "default",
         .ip = "10.0.3.7",
         .port = 8000,
         .engine = "vllm",
         .n_adapters = 2,
         .adapters = adapters,
         .n_labels = 2,
         .labels = labels,
         .ready = true},
        {.id = 2,
         .model = "llama3-8b",
         .pod = "llama3-pd-0-prefill-0",
         .ns = "default",
         .ip = "10.0.3.8",
         .port = 8000,
         .metric_port = 8080,
         .engine = "vllm",
         .roleset = "llama3-pd-0",
         .role = "prefill",
         .ready = true},
        {.id = 3,
         .model = "llama3-8b",
         .pod = "llama3-pd-0-decode-0",
         .ns = "default",
         .ip = "fd00::3",
         .port = 8001,
         .engine = "vllm",
         .roleset = "llama3-pd-0",
         .role = "decode",
         .ready = true},
        {.id = 7,
         .model = "qwen2-72b",
         .pod = "qwen2-72b-0",
         .ns = "ml",
         .ip = "10.0.4.2",
         .port = 30000,
         .engine = "sglang",
         .ready = false,
         .draining = true},
    };
    /* Two well-formed digests (any 64 lower-case hex digits). */
    char *alice_keys[] = {"5d6c0d0e2f0d54e6a4a3b3c0b0ad5b2c36bdbb6d0c0b9d3a7e1f2a3b4c5d6e7f",
                          "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"};
    pm_user users[] = {
        {.name = "alice", .rpm = 60, .tpm = 100000, .n_keys = 2, .key_hashes = alice_keys},
        {.name = "bob", .rpm = 0, .tpm = 5000},
    };
    pm_snapshot s = {
        .env = {.gen = 42, .epoch = GOLDEN_EPOCH, .sent_ms = GOLDEN_SENT_MS},
        .n_models = 2,
        .models = models,
        .n_endpoints = 4,
        .endpoints = eps,
        .settings = {.routing_strategy = "random"},
        .n_users = 2,
        .users = users,
        .traffic = {.policy = "weight",
                    .config_json = "[{\"base_url\":\"local\",\"weight\":70},"
                                   "{\"base_url\":\"https://api.example.com/v1\","
                                   "\"api_key\":\"sk-golden\",\"weight\":30,\"fallback\":true}]"},
        .mirror = {.config_json =
                       "{\"Enable\":true,\"Target\":\"http://mirror:8000\",\"Ratio\":10}"},
    };
    gw_buf b;

    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    check(pm_snapshot_encode(&s, &b), "snapshot");
    write_file(dir, "snapshot_v1.msgpack", b.data, b.len);
    write_with_extras(dir, "snapshot_v1_unknown_keys.msgpack", &b);
    gw_buf_fini(&b);
}

static void
gen_load(const char *dir)
{
    pm_ep_load eps[] = {
        {.id = 1,
         .inflight = 3,
         .inflight_tokens = 4096,
         .running = 2,
         .waiting = 0,
         .kv_usage = 0.25,
         .latency_ms = 1234.5,
         .ttft_ms = 87.25,
         .tokens_per_s = 512,
         .gpu_usage = 0.25,
         .tpot_ms = 12.5,
         .metrics_age_ms = 120,
         .kv_capacity = 40960},
        {.id = 2,
         .running = -1,
         .waiting = -1,
         .kv_usage = -1,
         .latency_ms = -1,
         .ttft_ms = -1,
         .tokens_per_s = -1,
         .gpu_usage = -1,
         .tpot_ms = -1,
         .metrics_age_ms = -1,
         .kv_capacity = -1},
        {.id = 3,
         .inflight = 1,
         .inflight_tokens = 300,
         .running = 1,
         .waiting = 4,
         .kv_usage = 0.875,
         .latency_ms = -1,
         .ttft_ms = 45.5,
         .tokens_per_s = -1},
        {.id = 7},
    };
    pm_worker_seq workers[] = {{.worker_id = WORKER_A, .seq = 17},
                               {.worker_id = WORKER_B, .seq = 5}};
    pm_load l = {
        .env = {.gen = 42, .epoch = GOLDEN_EPOCH, .sent_ms = GOLDEN_SENT_MS + 50},
        .n_eps = 4,
        .eps = eps,
        .n_workers = 2,
        .workers = workers,
    };
    gw_buf b;

    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    check(pm_load_encode(&l, &b), "load");
    write_file(dir, "load_v1.msgpack", b.data, b.len);
    write_with_extras(dir, "load_v1_unknown_keys.msgpack", &b);
    gw_buf_fini(&b);
}

static void
gen_report(const char *dir)
{
    pm_ep_report eps[] = {
        {.id = 1,
         .inflight = 2,
         .inflight_tokens = 2048,
         .completed = 5,
         .errors = 1,
         .prompt_tokens = 1500,
         .completion_tokens = 900,
         .latency_ms_sum = 6200,
         .ttft_ms_sum = 410},
        {.id = 3},
    };
    pm_report r = {
        .env = {.gen = 42, .epoch = GOLDEN_EPOCH, .sent_ms = GOLDEN_SENT_MS + 70},
        .worker_id = WORKER_A,
        .seq = 18,
        .n_eps = 2,
        .eps = eps,
    };
    gw_buf b;

    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    check(pm_report_encode(&r, &b), "report");
    write_file(dir, "report_v1.msgpack", b.data, b.len);
    write_with_extras(dir, "report_v1_unknown_keys.msgpack", &b);
    gw_buf_fini(&b);
}

static void
gen_snapshot_req(const char *dir)
{
    pm_envelope env = {.gen = 41, .epoch = GOLDEN_EPOCH, .sent_ms = GOLDEN_SENT_MS + 90};
    gw_buf b;

    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    check(pm_snapshot_req_encode(&env, &b), "snapshot_req");
    write_file(dir, "snapshot_req_v1.msgpack", b.data, b.len);
    gw_buf_fini(&b);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <testdata dir>\n", argv[0]);
        return 2;
    }
    gen_snapshot(argv[1]);
    gen_load(argv[1]);
    gen_report(argv[1]);
    gen_snapshot_req(argv[1]);
    return 0;
}
