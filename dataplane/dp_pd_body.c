/* dp_pd_body: see dp_pd_body.h. */
#include "dp_pd_body.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

bool
dp_pd_proto_parse(const char *s, dp_pd_proto *out)
{
    if (s == NULL || s[0] == '\0')
        *out = DP_PD_AIBRIX;
    else if (strcmp(s, "vllm-kvt") == 0)
        *out = DP_PD_KVT;
    else if (strcmp(s, "vllm-mooncake") == 0)
        *out = DP_PD_MOONCAKE;
    else
        return false;
    return true;
}

const char *
dp_pd_proto_name(dp_pd_proto p)
{
    return p == DP_PD_KVT ? "vllm-kvt" : p == DP_PD_MOONCAKE ? "vllm-mooncake" : "aibrix";
}

bool
dp_pd_has_prefill_call(dp_pd_proto p, bool staged)
{
    return p != DP_PD_KVT || staged;
}

static json_t *
load_object(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);

    if (o != NULL && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static gw_err
dump_to(json_t *o, gw_buf *out)
{
    char *text = json_dumps(o, JSON_COMPACT);
    gw_err rc;

    if (text == NULL)
        return GW_ENOMEM;
    rc = gw_buf_append_str(out, text);
    free(text);
    return rc;
}

/* The request's kv_transfer_params as an object it owns (created, or
 * replacing a non-object). */
static json_t *
kv_params(json_t *req)
{
    json_t *kv = json_object_get(req, "kv_transfer_params");

    if (!json_is_object(kv)) {
        kv = json_object();
        json_object_set_new(req, "kv_transfer_params", kv);
    }
    return kv;
}

/* {do_remote_decode: true, do_remote_prefill: false, remote_*: null}: what
 * vLLM's connectors expect of a producer request. */
static json_t *
producer_params(void)
{
    return json_pack("{s:b, s:b, s:n, s:n, s:n, s:n}", "do_remote_decode", 1, "do_remote_prefill",
                     0, "remote_engine_id", "remote_block_ids", "remote_host", "remote_port");
}

gw_err
dp_pd_prefill_body(dp_pd_proto p, const char *body, size_t len, gw_buf *out)
{
    json_t *req = load_object(body, len);
    gw_err rc;

    if (req == NULL)
        return GW_EINVAL;
    json_object_set_new(req, "max_tokens", json_integer(1));
    if (p == DP_PD_KVT) {
        if (json_object_get(req, "max_completion_tokens") != NULL)
            json_object_set_new(req, "max_completion_tokens", json_integer(1));
        json_object_set_new(kv_params(req), "do_remote_decode", json_true());
    } else {
        if (p == DP_PD_AIBRIX || json_object_get(req, "max_completion_tokens") != NULL)
            json_object_set_new(req, "max_completion_tokens", json_integer(1));
        if (p == DP_PD_AIBRIX)
            json_object_del(req, "min_tokens");
        json_object_set_new(req, "stream", json_false());
        json_object_del(req, "stream_options");
        json_object_set_new(req, "kv_transfer_params", producer_params());
    }
    rc = dump_to(req, out);
    json_decref(req);
    return rc;
}

gw_err
dp_pd_decode_body(dp_pd_proto p, bool staged, const char *body, size_t len, const char *resp,
                  size_t resp_len, const char *host, uint16_t port, gw_buf *out, const char **why)
{
    json_t *req = load_object(body, len), *kv;
    gw_err rc;

    if (req == NULL) {
        *why = "the request body is not a JSON object";
        return GW_EINVAL;
    }
    if (p == DP_PD_KVT) {
        kv = kv_params(req);
        json_object_set_new(kv, "remote_host", json_string(host));
        json_object_set_new(kv, "remote_port", json_integer(port));
        if (staged)
            json_object_set_new(kv, "do_remote_prefill", json_true());
    } else {
        json_t *r = resp ? load_object(resp, resp_len) : NULL;
        json_t *params = r ? json_object_get(r, "kv_transfer_params") : NULL;
        if (!json_is_object(params)) {
            json_decref(r);
            json_decref(req);
            *why = "the prefill's response carries no kv_transfer_params object";
            return GW_EINVAL;
        }
        kv = json_deep_copy(params);
        if (p == DP_PD_AIBRIX)
            json_object_set_new(kv, "remote_host", json_string(host));
        json_object_set_new(req, "kv_transfer_params", kv);
        json_decref(r);
    }
    rc = dump_to(req, out);
    json_decref(req);
    return rc;
}
