/* reg_etcd: blocking etcd v3 JSON gateway client (see reg_etcd.h). */
#include "reg_etcd.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_etcd_json.h"
#include "ctl_util.h"
#include "gw/gw_buf.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct reg_etcd {
    const reg_cfg *cfg;
    char **urls;
    size_t n_urls, cur;
    CURL *easy; /* reused: keeps the connection to the current member */
    char *token;
    int64_t lease; /* 0 = none */
};

reg_etcd *
reg_etcd_new(const reg_cfg *cfg)
{
    reg_etcd *e = gw_xcalloc(1, sizeof(*e));
    char *why = NULL;

    e->cfg = cfg;
    if (ctl_etcd_parse_endpoints(cfg->etcd_endpoints, &e->urls, &e->n_urls, &why) != GW_OK) {
        free(why);
        free(e);
        return NULL;
    }
    e->easy = curl_easy_init();
    if (e->easy == NULL) {
        reg_etcd_free(e);
        return NULL;
    }
    return e;
}

void
reg_etcd_free(reg_etcd *e)
{
    if (e == NULL)
        return;
    if (e->easy != NULL)
        curl_easy_cleanup(e->easy);
    ctl_etcd_endpoints_free(e->urls, e->n_urls);
    free(e->token);
    free(e);
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
    return gw_buf_append(arg, p, size * n) == GW_OK ? size * n : 0;
}

/* One POST to member <i>. Returns the HTTP status (0 = no answer); the body
 * is in <resp>. */
static long
post(reg_etcd *e, size_t i, const char *path, const char *body, bool with_token, gw_buf *resp)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char *url = ctl_strf("%s%s", e->urls[i], path), *auth = NULL;
    long dial = (long)(e->cfg->etcd_dial_timeout_s * 1000.0), status = 0;
    CURLcode rc;
    char q[256];

    if (with_token && e->token != NULL) {
        auth = ctl_strf("Authorization: %s", e->token);
        h = curl_slist_append(h, auth);
        free(auth);
    }
    gw_buf_reset(resp);
    curl_easy_reset(e->easy);
    curl_easy_setopt(e->easy, CURLOPT_URL, url);
    curl_easy_setopt(e->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e->easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->easy, CURLOPT_CONNECTTIMEOUT_MS, dial);
    curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, 2 * dial);
    curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e->easy, CURLOPT_WRITEDATA, resp);
    rc = curl_easy_perform(e->easy);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &status);
    else
        gw_log(GW_LOG_INFO, "REG-ETCD-IO", "member=%s path=%s msg=%s", e->urls[i], path,
               gw_log_q(q, sizeof(q), curl_easy_strerror(rc)));
    curl_slist_free_all(h);
    free(url);
    return status;
}

/* Authenticates against member <i> when a user is configured. */
static bool
authenticate(reg_etcd *e, size_t i, gw_buf *resp)
{
    char *body;
    long st;

    if (e->cfg->etcd_username[0] == '\0' || e->token != NULL)
        return true;
    body = ctl_etcd_auth_body(e->cfg->etcd_username,
                              e->cfg->etcd_password != NULL ? e->cfg->etcd_password : "");
    st = post(e, i, "/v3/auth/authenticate", body, false, resp);
    memset(body, 0, strlen(body));
    free(body);
    if (st == 200)
        e->token = ctl_etcd_get_str(resp->data, resp->len, "token");
    else if (st != 0 && resp->data != NULL && strstr(resp->data, "not enabled") != NULL)
        return true; /* a cluster without auth: go on without a token */
    if (e->token == NULL)
        gw_log(GW_LOG_WARN, "REG-ETCD-AUTH", "member=%s status=%ld", e->urls[i], st);
    return e->token != NULL;
}

/* POSTs to the members in order from the current one until one answers
 * (any HTTP status). A refused token is fetched again once. Returns the
 * status, 0 when no member answered. */
static long
call(reg_etcd *e, const char *path, const char *body, gw_buf *resp)
{
    for (size_t k = 0; k < e->n_urls; k++) {
        size_t i = (e->cur + k) % e->n_urls;
        long st;

        if (!authenticate(e, i, resp))
            continue;
        st = post(e, i, path, body, true, resp);
        if (st == 401 ||
            (st != 0 && st != 200 && resp->data != NULL && strstr(resp->data, "token") != NULL)) {
            GW_FREE(e->token);
            if (!authenticate(e, i, resp))
                continue;
            st = post(e, i, path, body, true, resp);
        }
        if (st != 0) {
            e->cur = i;
            return st;
        }
    }
    return 0;
}

static bool
grant(reg_etcd *e, gw_buf *resp)
{
    char body[64];

    snprintf(body, sizeof(body), "{\"TTL\":\"%lld\"}", (long long)e->cfg->etcd_lease_ttl_s);
    if (call(e, "/v3/lease/grant", body, resp) != 200 ||
        ctl_etcd_get_int(resp->data, resp->len, "ID", &e->lease) != GW_OK) {
        e->lease = 0;
        return false;
    }
    gw_log(GW_LOG_NOTICE, "REG-ETCD-LEASE", "member=%s lease=%llx ttl_s=%lld", e->urls[e->cur],
           (unsigned long long)e->lease, (long long)e->cfg->etcd_lease_ttl_s);
    return true;
}

/* What a keepalive said about the lease. */
typedef enum ka_result { KA_ALIVE, KA_GONE, KA_NO_ANSWER } ka_result;

static ka_result
keepalive(reg_etcd *e, gw_buf *resp)
{
    char body[64];
    int64_t ttl = 0;

    snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)e->lease);
    /* Anything but a 200 (no member, no leader) says nothing about the
     * lease: it may well be alive, and quorum loss never expires leases. */
    if (call(e, "/v3/lease/keepalive", body, resp) != 200)
        return KA_NO_ANSWER;
    /* An unknown lease answers without TTL (proto3 omits 0). */
    return ctl_etcd_get_int(resp->data, resp->len, "TTL", &ttl) == GW_OK && ttl > 0 ? KA_ALIVE
                                                                                    : KA_GONE;
}

static long
put(reg_etcd *e, const char *key, const char *value, gw_buf *resp)
{
    char *body = ctl_etcd_put_body(key, value, e->lease);
    long st = call(e, "/v3/kv/put", body, resp);

    free(body);
    return st;
}

gw_err
reg_etcd_refresh(reg_etcd *e, const char *key, const char *value)
{
    gw_buf resp;
    gw_err rc = GW_EIO;
    long st;

    gw_buf_init(&resp, 1 << 20);
    if (e->lease != 0 && keepalive(e, &resp) == KA_GONE) {
        gw_log(GW_LOG_NOTICE, "REG-ETCD-REGRANT", "msg=\"lease expired or lost; granting anew\"");
        e->lease = 0;
    }
    if (e->lease == 0 && !grant(e, &resp))
        goto out;
    st = put(e, key, value, &resp);
    if (st != 200 && resp.data != NULL && strstr(resp.data, "lease not found") != NULL) {
        gw_log(GW_LOG_NOTICE, "REG-ETCD-REGRANT",
               "msg=\"lease unknown to etcd; granting a new one\"");
        e->lease = 0;
        if (!grant(e, &resp))
            goto out;
        st = put(e, key, value, &resp);
    }
    if (st == 200)
        rc = GW_OK;
    else
        gw_log_ratelimited(GW_LOG_INFO, 1, "REG-ETCD-PUT", "status=%ld", st);
out:
    gw_buf_fini(&resp);
    return rc;
}

gw_err
reg_etcd_deregister(reg_etcd *e, const char *key)
{
    gw_buf resp;
    char body[64], *del;
    long st;

    gw_buf_init(&resp, 1 << 20);
    if (e->lease != 0) {
        snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)e->lease);
        st = call(e, "/v3/lease/revoke", body, &resp);
    } else {
        del = ctl_etcd_key_body(key); /* no range_end: exactly this key */
        st = call(e, "/v3/kv/deleterange", del, &resp);
        free(del);
    }
    gw_buf_fini(&resp);
    return st == 200 ? GW_OK : GW_EIO;
}
