/* me_pd: prefill/decode roles of the mock engine (see me_pd.h; README.md
 * "Prefill/decode roles" is the contract).
 *
 * The checks are deliberately strict: the mock exists so that a gateway
 * sending the wrong shape to a prefill or a decode fails its e2e tests, so
 * every missing or mistyped field is a 400 that names the field, where vLLM
 * itself would often go on and fail later (or hang waiting for KV).
 *
 * The KV store is a chained hash table on the request id plus a FIFO in put
 * order. Every entry lives for the same TTL, so put order is expiry order
 * and a sweep only ever looks at the head of the FIFO: put, take, drop and
 * expire are all O(1) amortised, whatever the number of held entries (a
 * benchmark whose decodes never pull can hold tens of thousands). */
#include "me_pd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "gw/gw_buf.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define FETCH_BODY_MAX    (8u << 20) /* a pull answer: block ids of a very long prompt */
#define FETCH_CONNECT_MAX 3000       /* ms; a dead prefill is reported promptly */
#define STORE_MIN_BUCKETS 64

bool
me_pd_parse_role(const char *s, me_pd_role *out)
{
    static const char *const names[] = {
        [ME_PD_BOTH] = "both", [ME_PD_PREFILL] = "prefill", [ME_PD_DECODE] = "decode"};

    for (size_t i = 0; i < GW_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (me_pd_role)i;
            return true;
        }
    }
    return false;
}

const char *
me_pd_role_name(me_pd_role role)
{
    switch (role) {
    case ME_PD_PREFILL:
        return "prefill";
    case ME_PD_DECODE:
        return "decode";
    case ME_PD_BOTH:
        break;
    }
    return "both";
}

const char *
me_pd_proto_name(me_pd_proto proto)
{
    switch (proto) {
    case ME_PD_PULL_BLOCKS:
        return "blocks";
    case ME_PD_PULL_STAGED:
        return "staged";
    case ME_PD_COMPUTE:
        break;
    }
    return "compute";
}

size_t
me_pd_nblocks(unsigned prompt_tokens, unsigned block_size)
{
    size_t n = block_size > 0 ? ((size_t)prompt_tokens + block_size - 1) / block_size : 1;

    return n > 0 ? n : 1;
}

/* ---- protocol checks ---------------------------------------------------- */

/* A field of <obj> that is present and not null, else NULL: vLLM's
 * pydantic models treat an explicit null like an absent field, and the
 * vllm-mooncake prefill template sends remote_* as nulls. */
static const json_t *
field(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);

    return v != NULL && !json_is_null(v) ? v : NULL;
}

/* Reads an optional boolean flag of kv_transfer_params into *out (false
 * when absent). False when it is present but not a boolean. */
static bool
read_flag(const json_t *params, const char *name, bool *out, char *msg, size_t msgn)
{
    const json_t *v = field(params, name);

    *out = json_is_true(v);
    if (v != NULL && !json_is_boolean(v)) {
        snprintf(msg, msgn, "kv_transfer_params.%s must be a boolean", name);
        return false;
    }
    return true;
}

/* kv_transfer_params of a prefill or decode request: present, an object,
 * with boolean (or absent) do_remote_decode and do_remote_prefill. <missing>
 * says what the role needs when it is absent. False with <msg> set. */
static bool
read_role_flags(const json_t *params, const char *missing, bool *remote_decode,
                bool *remote_prefill, char *msg, size_t msgn)
{
    if (params == NULL) {
        snprintf(msg, msgn, "%s", missing);
        return false;
    }
    if (!json_is_object(params)) {
        snprintf(msg, msgn, "kv_transfer_params must be an object");
        return false;
    }
    return read_flag(params, "do_remote_decode", remote_decode, msg, msgn) &&
           read_flag(params, "do_remote_prefill", remote_prefill, msg, msgn);
}

gw_err
me_pd_request_id(const json_t *body, const char *xrid, char *out, char *msg, size_t msgn)
{
    const json_t *v;

    if (xrid != NULL && xrid[0] != '\0') {
        if (strlen(xrid) > ME_PD_ID_MAX) {
            snprintf(msg, msgn, "the X-Request-Id header is longer than %d bytes", ME_PD_ID_MAX);
            return GW_EINVAL;
        }
        gw_strlcpy(out, xrid, ME_PD_ID_MAX + 1);
        return GW_OK;
    }
    v = field(body, "request_id");
    if (v == NULL)
        return GW_ENOENT;
    if (!json_is_string(v)) {
        snprintf(msg, msgn, "'request_id' must be a string");
        return GW_EINVAL;
    }
    if (json_string_length(v) == 0)
        return GW_ENOENT;
    if (json_string_length(v) > ME_PD_ID_MAX) {
        snprintf(msg, msgn, "'request_id' is longer than %d bytes", ME_PD_ID_MAX);
        return GW_EINVAL;
    }
    gw_strlcpy(out, json_string_value(v), ME_PD_ID_MAX + 1);
    return GW_OK;
}

unsigned
me_pd_check_prefill(const json_t *body, long long max_tokens, char *msg, size_t msgn)
{
    const json_t *params = field(body, "kv_transfer_params");
    bool remote_decode;
    bool remote_prefill;

    if (!read_role_flags(params,
                         "this is a prefill instance: kv_transfer_params with "
                         "do_remote_decode=true is required",
                         &remote_decode, &remote_prefill, msg, msgn))
        return 400;
    if (remote_prefill) {
        snprintf(msg, msgn,
                 "kv_transfer_params.do_remote_prefill is true: that is a decode request, sent to "
                 "a prefill instance");
        return 400;
    }
    if (!remote_decode) {
        snprintf(msg, msgn,
                 "this is a prefill instance: kv_transfer_params.do_remote_decode must be true");
        return 400;
    }
    if (max_tokens != 1) {
        if (max_tokens == 0)
            snprintf(msg, msgn,
                     "a prefill generates exactly one token: max_tokens (max_completion_tokens "
                     "for chat) must be 1, and it is not set");
        else
            snprintf(msg, msgn,
                     "a prefill generates exactly one token: max_tokens (max_completion_tokens "
                     "for chat) must be 1, not %lld",
                     max_tokens);
        return 400;
    }
    return 0;
}

/* remote_host and remote_port, shared by the three decode protocols. */
static bool
read_remote(const json_t *params, me_pd_decode *d, char *msg, size_t msgn)
{
    const json_t *host = field(params, "remote_host");
    const json_t *port = field(params, "remote_port");

    if (host == NULL) {
        snprintf(msg, msgn, "kv_transfer_params.remote_host is required on a decode instance");
        return false;
    }
    if (!json_is_string(host) || json_string_length(host) == 0 ||
        json_string_length(host) > ME_PD_HOST_MAX) {
        snprintf(msg, msgn, "kv_transfer_params.remote_host must be a host name or address");
        return false;
    }
    if (port == NULL) {
        snprintf(msg, msgn, "kv_transfer_params.remote_port is required on a decode instance");
        return false;
    }
    if (!json_is_integer(port) || json_integer_value(port) < 1 ||
        json_integer_value(port) > 65535) {
        snprintf(msg, msgn, "kv_transfer_params.remote_port must be an integer in 1..65535");
        return false;
    }
    gw_strlcpy(d->host, json_string_value(host), sizeof(d->host));
    d->port = (unsigned)json_integer_value(port);
    return true;
}

/* Protocol (a): remote_engine_id + remote_block_ids, the KV id from
 * remote_request_id or else X-Request-Id. */
static bool
read_blocks(const json_t *params, const json_t *blocks, const char *xrid, me_pd_decode *d,
            char *msg, size_t msgn)
{
    const json_t *eng = field(params, "remote_engine_id");
    const json_t *rid = field(params, "remote_request_id");
    size_t i;
    json_t *v;

    if (!json_is_array(blocks)) {
        snprintf(msg, msgn, "kv_transfer_params.remote_block_ids must be an array of integers");
        return false;
    }
    json_array_foreach(blocks, i, v)
    {
        if (!json_is_integer(v)) {
            snprintf(msg, msgn, "kv_transfer_params.remote_block_ids must be an array of integers");
            return false;
        }
    }
    if (eng == NULL || !json_is_string(eng) || json_string_length(eng) == 0 ||
        json_string_length(eng) > ME_PD_ID_MAX) {
        snprintf(msg, msgn,
                 "kv_transfer_params.remote_engine_id (a non-empty string) is required with "
                 "remote_block_ids");
        return false;
    }
    if (rid != NULL && (!json_is_string(rid) || json_string_length(rid) == 0 ||
                        json_string_length(rid) > ME_PD_ID_MAX)) {
        snprintf(msg, msgn,
                 "kv_transfer_params.remote_request_id must be a non-empty string of at most %d "
                 "bytes",
                 ME_PD_ID_MAX);
        return false;
    }
    if (rid != NULL) {
        gw_strlcpy(d->request_id, json_string_value(rid), sizeof(d->request_id));
    } else if (xrid != NULL && xrid[0] != '\0' && strlen(xrid) <= ME_PD_ID_MAX) {
        gw_strlcpy(d->request_id, xrid, sizeof(d->request_id));
    } else {
        snprintf(msg, msgn,
                 "the prefill's request id is missing: kv_transfer_params.remote_request_id or "
                 "an X-Request-Id header (at most %d bytes) is required",
                 ME_PD_ID_MAX);
        return false;
    }
    gw_strlcpy(d->engine_id, json_string_value(eng), sizeof(d->engine_id));
    d->nblocks = json_array_size(blocks);
    d->block_ids = gw_xcalloc(d->nblocks > 0 ? d->nblocks : 1, sizeof(*d->block_ids));
    json_array_foreach(blocks, i, v)
    {
        d->block_ids[i] = json_integer_value(v);
    }
    d->proto = ME_PD_PULL_BLOCKS;
    return true;
}

unsigned
me_pd_check_decode(const json_t *body, const char *xrid, me_pd_decode *out, char *msg, size_t msgn)
{
    const json_t *params = field(body, "kv_transfer_params");
    const json_t *blocks;
    me_pd_decode d = {0};
    bool remote_decode;
    bool remote_prefill;
    gw_err rc;

    if (!read_role_flags(params,
                         "this is a decode instance: kv_transfer_params naming the prefill's "
                         "KV is required",
                         &remote_decode, &remote_prefill, msg, msgn))
        return 400;
    if (remote_decode) {
        snprintf(msg, msgn,
                 "kv_transfer_params.do_remote_decode is true: that is a prefill request, sent to "
                 "a decode instance");
        return 400;
    }
    if (!read_remote(params, &d, msg, msgn))
        return 400;
    blocks = field(params, "remote_block_ids");
    if (blocks != NULL) {
        if (!read_blocks(params, blocks, xrid, &d, msg, msgn))
            return 400;
        *out = d;
        return 0;
    }
    if (field(params, "remote_engine_id") != NULL) {
        snprintf(msg, msgn,
                 "kv_transfer_params.remote_engine_id is set but remote_block_ids is missing");
        return 400;
    }
    rc = me_pd_request_id(body, xrid, d.request_id, msg, msgn);
    if (rc == GW_EINVAL)
        return 400;
    if (remote_prefill) {
        /* vllm-kvt staged: the decode finds the prefill's KV by the request
         * id both requests carry. */
        if (rc == GW_ENOENT) {
            snprintf(msg, msgn,
                     "kv_transfer_params.do_remote_prefill needs the prefill's request id: an "
                     "X-Request-Id header or request_id");
            return 400;
        }
        d.proto = ME_PD_PULL_STAGED;
    } else {
        /* vllm-kvt batched: an empty id lets the caller pick one. */
        d.proto = ME_PD_COMPUTE;
    }
    *out = d;
    return 0;
}

void
me_pd_decode_fini(me_pd_decode *d)
{
    GW_FREE(d->block_ids);
    d->nblocks = 0;
}

static json_t *
block_ids_json(unsigned prompt_tokens, unsigned block_size)
{
    size_t n = me_pd_nblocks(prompt_tokens, block_size);
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((json_int_t)i));
    return a;
}

json_t *
me_pd_params_json(const char *engine_id, const char *host, unsigned port, const char *request_id,
                  unsigned prompt_tokens, unsigned block_size)
{
    return json_pack("{s:b, s:b, s:s, s:o, s:s, s:I, s:s}", "do_remote_prefill", 1,
                     "do_remote_decode", 0, "remote_engine_id", engine_id, "remote_block_ids",
                     block_ids_json(prompt_tokens, block_size), "remote_host", host, "remote_port",
                     (json_int_t)port, "remote_request_id", request_id);
}

json_t *
me_pd_kv_json(const char *engine_id, unsigned prompt_tokens, unsigned block_size)
{
    return json_pack("{s:s, s:o, s:I}", "engine_id", engine_id, "block_ids",
                     block_ids_json(prompt_tokens, block_size), "prompt_tokens",
                     (json_int_t)prompt_tokens);
}

/* ---- the KV store -------------------------------------------------------- */

typedef struct kv_ent kv_ent;
struct kv_ent {
    char *id; /* owned */
    unsigned prompt_tokens;
    uint64_t expires_ns;
    kv_ent *hnext; /* bucket chain */
    kv_ent *prev;  /* FIFO in put order, which is expiry order */
    kv_ent *next;
};

struct me_pd_store {
    const char *engine_id; /* borrowed */
    uint64_t ttl_ns;
    kv_ent **buckets; /* owned; nbuckets is a power of two */
    size_t nbuckets;
    size_t n;
    kv_ent fifo; /* sentinel */
    uint64_t expired;
};

static uint64_t
hash_id(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

me_pd_store *
me_pd_store_new(const char *engine_id, uint64_t ttl_ns)
{
    me_pd_store *st = gw_xcalloc(1, sizeof(*st));

    st->engine_id = engine_id;
    st->ttl_ns = ttl_ns;
    st->nbuckets = STORE_MIN_BUCKETS;
    st->buckets = gw_xcalloc(st->nbuckets, sizeof(*st->buckets));
    st->fifo.prev = st->fifo.next = &st->fifo;
    return st;
}

/* The slot pointing at the entry for <id> (or at the NULL ending its chain). */
static kv_ent **
find_slot(me_pd_store *st, const char *id)
{
    kv_ent **pp = &st->buckets[hash_id(id) & (st->nbuckets - 1)];

    while (*pp != NULL && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlinks the entry *pp points at from its chain and the FIFO, and frees it. */
static void
remove_at(me_pd_store *st, kv_ent **pp)
{
    kv_ent *e = *pp;

    *pp = e->hnext;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    st->n--;
    free(e->id);
    free(e);
}

static void
grow(me_pd_store *st)
{
    size_t nb = st->nbuckets * 2;
    kv_ent **b = gw_xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i < st->nbuckets; i++) {
        kv_ent *e = st->buckets[i];

        while (e != NULL) {
            kv_ent *next = e->hnext;
            size_t k = hash_id(e->id) & (nb - 1);

            e->hnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = nb;
}

size_t
me_pd_store_expire(me_pd_store *st, uint64_t now_ns)
{
    size_t n = 0;

    while (st->fifo.next != &st->fifo && st->fifo.next->expires_ns <= now_ns) {
        remove_at(st, find_slot(st, st->fifo.next->id));
        n++;
    }
    st->expired += n;
    return n;
}

uint64_t
me_pd_store_expired(const me_pd_store *st)
{
    return st->expired;
}

size_t
me_pd_store_held(const me_pd_store *st)
{
    return st->n;
}

bool
me_pd_store_put(me_pd_store *st, const char *id, unsigned prompt_tokens, uint64_t now_ns)
{
    kv_ent **pp;
    kv_ent *e;
    bool replaced = false;

    me_pd_store_expire(st, now_ns);
    pp = find_slot(st, id);
    if (*pp != NULL) {
        remove_at(st, pp);
        replaced = true;
    }
    if (st->n >= st->nbuckets)
        grow(st);
    e = gw_xcalloc(1, sizeof(*e));
    e->id = gw_xstrdup(id);
    e->prompt_tokens = prompt_tokens;
    e->expires_ns = now_ns + st->ttl_ns;
    pp = &st->buckets[hash_id(id) & (st->nbuckets - 1)];
    e->hnext = *pp;
    *pp = e;
    e->prev = st->fifo.prev;
    e->next = &st->fifo;
    st->fifo.prev->next = e;
    st->fifo.prev = e;
    st->n++;
    return replaced;
}

gw_err
me_pd_store_take(me_pd_store *st, const char *id, const char *engine_id, uint64_t now_ns,
                 me_pd_kv *out)
{
    kv_ent **pp;

    me_pd_store_expire(st, now_ns);
    pp = find_slot(st, id);
    if (*pp == NULL)
        return GW_ENOENT;
    if (engine_id != NULL && strcmp(engine_id, st->engine_id) != 0)
        return GW_EPROTO;
    out->engine_id = st->engine_id;
    out->prompt_tokens = (*pp)->prompt_tokens;
    remove_at(st, pp);
    return GW_OK;
}

gw_err
me_pd_store_drop(me_pd_store *st, const char *id, uint64_t now_ns)
{
    kv_ent **pp;

    me_pd_store_expire(st, now_ns);
    pp = find_slot(st, id);
    if (*pp == NULL)
        return GW_ENOENT;
    remove_at(st, pp);
    return GW_OK;
}

void
me_pd_store_clear(me_pd_store *st)
{
    while (st->fifo.next != &st->fifo)
        remove_at(st, find_slot(st, st->fifo.next->id));
    st->expired = 0;
}

void
me_pd_store_free(me_pd_store *st)
{
    if (st == NULL)
        return;
    me_pd_store_clear(st);
    free(st->buckets);
    free(st);
}

/* ---- the decode's fetch -------------------------------------------------- */

/* Idle easy handles, each with its own connection cache: a fetch borrows
 * one, so consecutive fetches reuse keep-alive connections to the same
 * prefill instead of leaving a TIME_WAIT socket per request behind (which
 * would cap a PD benchmark at a few hundred requests per second). */
struct me_pd_client {
    pthread_mutex_t mu; /* guards idle/nidle */
    CURL **idle;        /* owned handles */
    size_t nidle;
    size_t max_idle;
};

me_pd_client *
me_pd_client_new(size_t max_idle)
{
    me_pd_client *c = gw_xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->mu, NULL);
    c->max_idle = max_idle;
    c->idle = gw_xcalloc(max_idle > 0 ? max_idle : 1, sizeof(*c->idle));
    return c;
}

void
me_pd_client_free(me_pd_client *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nidle; i++)
        curl_easy_cleanup(c->idle[i]);
    free(c->idle);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* An idle handle (options reset, connections kept), or a new one; NULL
 * only if curl cannot allocate. */
static CURL *
client_get(me_pd_client *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->mu);
    if (c->nidle > 0)
        h = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->mu);
    if (h != NULL) {
        curl_easy_reset(h);
        return h;
    }
    return curl_easy_init();
}

/* Returns <h> (may be NULL) to the idle list, or closes it when the list
 * is full. */
static void
client_put(me_pd_client *c, CURL *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->nidle < c->max_idle) {
        c->idle[c->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

typedef struct fetch_ctx {
    gw_buf body;
    me_pd_cancel_fn cancel;
    void *arg;
    bool cancelled;
} fetch_ctx;

static size_t
on_fetch_write(char *p, size_t size, size_t n, void *arg)
{
    fetch_ctx *fc = arg;

    /* Returning less than given makes curl fail with CURLE_WRITE_ERROR. */
    return gw_buf_append(&fc->body, p, size * n) == GW_OK ? size * n : 0;
}

static int
on_fetch_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                  curl_off_t ulnow)
{
    fetch_ctx *fc = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (fc->cancel != NULL && fc->cancel(fc->arg))
        fc->cancelled = true;
    return fc->cancelled ? 1 : 0;
}

/* Builds the URL of the fetch into <url>; false if curl cannot escape. */
static bool
fetch_url(CURL *h, const me_pd_decode *d, gw_buf *url)
{
    bool v6 = strchr(d->host, ':') != NULL;
    char *id = NULL;
    char *eng = NULL;
    gw_err rc;

    rc = gw_buf_printf(url, "http://%s%s%s:%u/_mock/kv/", v6 ? "[" : "", d->host, v6 ? "]" : "",
                       d->port);
    if (rc == GW_OK && d->proto == ME_PD_COMPUTE)
        return gw_buf_append_str(url, "compute") == GW_OK;
    id = curl_easy_escape(h, d->request_id, 0);
    if (d->proto == ME_PD_PULL_BLOCKS)
        eng = curl_easy_escape(h, d->engine_id, 0);
    if (id == NULL || (d->proto == ME_PD_PULL_BLOCKS && eng == NULL))
        rc = GW_ENOMEM;
    if (rc == GW_OK)
        rc = gw_buf_append_str(url, id);
    if (rc == GW_OK && eng != NULL)
        rc = gw_buf_printf(url, "?engine_id=%s", eng);
    curl_free(id);
    curl_free(eng);
    return rc == GW_OK;
}

/* The prefill's reason for a non-200: "detail" of a mock admin error, else
 * the start of the body. */
static void
peer_reason(const gw_buf *body, char *out, size_t n)
{
    json_t *j = json_loadb(body->data != NULL ? body->data : "", body->len, 0, NULL);
    const char *detail = json_string_value(json_object_get(j, "detail"));

    if (detail != NULL)
        snprintf(out, n, "%s", detail);
    else
        snprintf(out, n, "%.120s", body->data != NULL ? body->data : "");
    json_decref(j);
}

/* Checks a 200 answer of the prefill against what the decode expects. */
static gw_err
check_answer(const me_pd_decode *d, unsigned prompt_tokens, const gw_buf *body, const char *what,
             char *msg, size_t msgn)
{
    json_t *j = json_loadb(body->data != NULL ? body->data : "", body->len, 0, NULL);
    const json_t *blocks = json_object_get(j, "block_ids");
    gw_err rc = GW_OK;
    size_t i;
    json_t *v;

    if (!json_is_object(j) || !json_is_string(json_object_get(j, "engine_id")) ||
        !json_is_array(blocks) || !json_is_integer(json_object_get(j, "prompt_tokens"))) {
        snprintf(msg, msgn, "%s: the answer is not {engine_id, block_ids, prompt_tokens}", what);
        rc = GW_EPROTO;
        goto out;
    }
    json_array_foreach(blocks, i, v)
    {
        if (!json_is_integer(v)) {
            snprintf(msg, msgn, "%s: block_ids holds a non-integer", what);
            rc = GW_EPROTO;
            goto out;
        }
    }
    if (d->proto == ME_PD_COMPUTE &&
        json_integer_value(json_object_get(j, "prompt_tokens")) != (json_int_t)prompt_tokens) {
        snprintf(msg, msgn, "%s: the prefill computed %lld prompt tokens, not %u", what,
                 (long long)json_integer_value(json_object_get(j, "prompt_tokens")), prompt_tokens);
        rc = GW_EPROTO;
        goto out;
    }
    if (d->proto != ME_PD_PULL_BLOCKS)
        goto out;
    if (json_array_size(blocks) != d->nblocks) {
        snprintf(msg, msgn, "%s: the prefill holds %zu blocks, remote_block_ids names %zu", what,
                 json_array_size(blocks), d->nblocks);
        rc = GW_EPROTO;
        goto out;
    }
    json_array_foreach(blocks, i, v)
    {
        if (json_integer_value(v) != d->block_ids[i]) {
            snprintf(msg, msgn, "%s: block %zu is %lld at the prefill, %lld in remote_block_ids",
                     what, i, (long long)json_integer_value(v), (long long)d->block_ids[i]);
            rc = GW_EPROTO;
            goto out;
        }
    }
out:
    json_decref(j);
    return rc;
}

gw_err
me_pd_fetch(me_pd_client *c, const me_pd_decode *d, unsigned prompt_tokens, unsigned timeout_ms,
            me_pd_cancel_fn cancel, void *cancel_arg, char *msg, size_t msgn)
{
    fetch_ctx fc = {.cancel = cancel, .arg = cancel_arg};
    struct curl_slist *hdrs = NULL;
    char *post = NULL;
    char what[ME_PD_HOST_MAX + ME_PD_ID_MAX + 64];
    char reason[160];
    gw_buf url;
    long status = 0;
    CURLcode cc;
    gw_err rc = GW_EIO;
    CURL *h;

    gw_buf_init(&url, 4 * ME_PD_ID_MAX + ME_PD_HOST_MAX + 64);
    gw_buf_init(&fc.body, FETCH_BODY_MAX);
    h = client_get(c);
    if (h == NULL || !fetch_url(h, d, &url)) {
        snprintf(msg, msgn, "cannot set up the request to %s:%u", d->host, d->port);
        goto out;
    }
    snprintf(what, sizeof(what), "%s %s", d->proto == ME_PD_COMPUTE ? "POST" : "GET", url.data);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    /* Several connection threads fetch at once: no signals (curl's DNS
     * timeout would use SIGALRM), and no proxy from the environment. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms < FETCH_CONNECT_MAX ? timeout_ms : FETCH_CONNECT_MAX));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_fetch_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &fc);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_fetch_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &fc);
    if (d->proto == ME_PD_COMPUTE) {
        json_t *j = json_pack("{s:s, s:I}", "request_id", d->request_id, "prompt_tokens",
                              (json_int_t)prompt_tokens);

        post = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (post == NULL) {
            snprintf(msg, msgn, "%s: cannot encode the body", what);
            goto out;
        }
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    }
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        /* The one place curl's codes are translated. */
        if (fc.cancelled)
            rc = GW_ECLOSED;
        snprintf(msg, msgn, "%s: %s", what,
                 fc.cancelled              ? "cancelled (client gone or shutting down)"
                 : cc == CURLE_WRITE_ERROR ? "answer too large"
                                           : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        peer_reason(&fc.body, reason, sizeof(reason));
        snprintf(msg, msgn, "%s answered %ld: %s", what, status, reason);
        rc = GW_EPROTO;
        goto out;
    }
    rc = check_answer(d, prompt_tokens, &fc.body, what, msg, msgn);
out:
    curl_slist_free_all(hdrs);
    free(post);
    client_put(c, h);
    gw_buf_fini(&url);
    gw_buf_fini(&fc.body);
    return rc;
}
