/* session-affinity: requests of one session go to one endpoint.
 *
 * In order:
 * 1. `x-session-id`: an id this gateway issued, the standard base64 of the
 *    endpoint's "ip:port" ("[ip]:port" for IPv6), as AIBrix issues it. If it
 *    decodes to the address of a candidate, that candidate.
 * 2. `x-aibrix-session-key` (1..256 bytes; longer keys are ignored):
 *    rendezvous hashing. For each candidate,
 *        h(e) = fmix64(FNV-1a-64(key "|" addr(e)))
 *    (fmix64: MurmurHash3's 64-bit finaliser; FNV-1a alone spread keys
 *    unevenly, about +-40% per endpoint over 40 endpoints); the highest h
 *    wins, ties by the smallest addr (strcmp). When an endpoint leaves, only
 *    its sessions move; the others keep their endpoint on every worker.
 * 3. Otherwise least-request decides (fallback reason no_session).
 * Whichever decided, the response carries `x-session-id` for the chosen
 * endpoint, so the client can pin the next request.
 *
 * As a scorer: 1 for the session's endpoint, 0 for the others (higher is
 * better); no score at all without a usable id or key. */
#include "dp_strategy.h"

#include <math.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
dp_session_id_encode(const char *addr, char *out, size_t n)
{
    size_t len = strlen(addr), o = 0;

    if (n < (len + 2) / 3 * 4 + 1) {
        if (n > 0)
            out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)addr[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)(unsigned char)addr[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)addr[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

static int
b64_val(char c)
{
    const char *p = c != '\0' ? strchr(b64, c) : NULL;
    return p != NULL ? (int)(p - b64) : -1;
}

bool
dp_session_id_decode(const char *id, char *out, size_t n)
{
    size_t len = strlen(id), o = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (len > 0 && id[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(id[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= n)
                return false;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    if (n == 0)
        return false;
    out[o] = '\0';
    return o > 0 && memchr(out, '\0', o) == NULL;
}

static uint64_t
fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static void
one_hot(const dp_pick *pick, double *scores, uint32_t pos)
{
    for (uint32_t i = 0; i < pick->n_cands; i++)
        scores[i] = i == pos ? 1 : 0;
}

uint32_t
dp_strat_session_affinity(const dp_pick *pick, double *scores, const char **why)
{
    const dp_pick_req *r = pick->req;
    char addr[PM_MAX_STR + 16];

    if (r != NULL && r->session_id != NULL && r->session_id[0] != '\0' &&
        dp_session_id_decode(r->session_id, addr, sizeof(addr))) {
        for (uint32_t i = 0; i < pick->n_cands; i++) {
            if (strcmp(dp_snap_addr(pick->snap, pick->cands[i]), addr) == 0) {
                one_hot(pick, scores, i);
                return pick->n_cands;
            }
        }
    }
    if (r != NULL && r->session_key != NULL && r->session_key[0] != '\0') {
        /* FNV-1a is sequential: hash "key|" once, continue per address. */
        uint64_t base = 1469598103934665603ull, best_h = 0;
        uint32_t best = 0;
        for (const char *p = r->session_key; *p != '\0'; p++) {
            base ^= (unsigned char)*p;
            base *= 1099511628211ull;
        }
        base ^= '|';
        base *= 1099511628211ull;
        for (uint32_t i = 0; i < pick->n_cands; i++) {
            const char *a = dp_snap_addr(pick->snap, pick->cands[i]);
            uint64_t h = base;
            for (const char *p = a; *p != '\0'; p++) {
                h ^= (unsigned char)*p;
                h *= 1099511628211ull;
            }
            h = fmix64(h);
            if (i == 0 || h > best_h ||
                (h == best_h && strcmp(a, dp_snap_addr(pick->snap, pick->cands[best])) < 0)) {
                best_h = h;
                best = i;
            }
        }
        one_hot(pick, scores, best);
        return pick->n_cands;
    }
    for (uint32_t i = 0; i < pick->n_cands; i++)
        scores[i] = NAN;
    *why = DP_WHY_NO_SESSION;
    return 0;
}
