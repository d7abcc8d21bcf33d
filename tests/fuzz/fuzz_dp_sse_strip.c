/* Fuzz target: the SSE usage-event stripper over engine bytes. Checks that
 * the output is the input with zero or more whole events removed (events cut
 * here by an independent reading of the WHATWG line rules), that only events
 * containing "usage" are removed, and that feeding the bytes whole, in three
 * data-dependent pieces or in small chunks gives the same output; once with
 * the real cap and once with a small one, so over-long events are reached. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_sse_strip.h"
#include "gw/gw_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct run {
    gw_buf out;
    uint64_t dropped;
} run;

/* Feeds <p>/<n> in pieces ending at cuts[0..ncuts) (ascending), then the rest. */
static void
strip(run *r, const char *p, size_t n, const size_t *cuts, size_t ncuts, size_t cap)
{
    dp_sse_strip s;
    size_t off = 0;

    dp_sse_strip_init(&s);
    s.held.max = cap;
    gw_buf_init(&r->out, 2 * n + 16);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        if (dp_sse_strip_feed(&s, p + off, end - off, &r->out) != GW_OK)
            abort();
        off = end;
    }
    if (dp_sse_strip_finish(&s, &r->out) != GW_OK)
        abort();
    r->dropped = s.dropped;
    dp_sse_strip_fini(&s);
}

static bool
same(const run *a, const run *b)
{
    return a->out.len == b->out.len && a->dropped == b->dropped &&
           (a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

/* Length of the event starting at <p>/<n>: through its first empty line,
 * with the LF of a final CRLF; or everything left if it never ends, with
 * *ended false. */
static size_t
event_len(const char *p, size_t n, bool *ended)
{
    bool line_empty = true;

    *ended = true;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && p[i] != '\r') {
            line_empty = false;
            continue;
        }
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            i++;
        if (line_empty)
            return i + 1;
        line_empty = true;
    }
    *ended = false;
    return n;
}

/* True if <o>/<olen> is the concatenation of the events of <p>/<n> with some
 * of them left out, only events containing "usage" left out, and never an
 * unterminated last event. reach[k]: o[0..k) is such a concatenation of the
 * events seen so far. */
static bool
whole_events_removed(const char *p, size_t n, const char *o, size_t olen)
{
    unsigned char *reach = calloc(olen + 1, 1);
    size_t off = 0, top = 0;
    bool ok = true;

    reach[0] = 1;
    while (off < n && ok) {
        bool ended;
        size_t len = event_len(p + off, n - off, &ended);
        bool removable = ended && memmem(p + off, len, "\"usage\"", 7) != NULL;

        if (len > olen) {
            ok = removable;
        } else if (!removable) {
            /* Must be kept: every reachable end moves on by this event. */
            size_t ntop = 0;
            for (size_t k = top + 1; k-- > 0;) {
                bool hit = reach[k] && k + len <= olen && memcmp(o + k, p + off, len) == 0;
                reach[k] = 0;
                if (hit) {
                    reach[k + len] = 1;
                    ntop = ntop > k + len ? ntop : k + len;
                }
            }
            top = ntop;
            ok = ntop > 0; /* events are never empty: 0 means no end was reachable */
        } else {
            /* May be kept or not: downwards, so it is used at most once. */
            for (size_t k = (top < olen - len ? top : olen - len) + 1; k-- > 0;) {
                if (reach[k] && memcmp(o + k, p + off, len) == 0) {
                    reach[k + len] = 1;
                    top = top > k + len ? top : k + len;
                }
            }
        }
        off += len;
    }
    ok = ok && reach[olen];
    free(reach);
    return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t c1 = size ? (data[0] * 7u + data[size - 1]) % (size + 1) : 0;
    size_t c2 = size ? (data[size / 2] * 13u + size) % (size + 1) : 0;
    size_t cuts[2] = {c1 < c2 ? c1 : c2, c1 < c2 ? c2 : c1};
    size_t small[512], nsmall = 0, off = 0;
    size_t caps[2] = {DP_SSE_STRIP_MAX_EVENT, 8 + (size ? data[size / 3] % 64 : 0)};

    /* Small chunks of 1..8 bytes, sizes taken from the data itself. */
    while (nsmall < GW_ARRAY_LEN(small) && off < size) {
        off += 1 + data[off] % 8;
        if (off < size)
            small[nsmall++] = off;
    }
    for (int c = 0; c < 2; c++) {
        run whole, three, chunks;
        strip(&whole, p, size, NULL, 0, caps[c]);
        strip(&three, p, size, cuts, 2, caps[c]);
        strip(&chunks, p, size, small, nsmall, caps[c]);
        if (!same(&whole, &three) || !same(&whole, &chunks))
            abort();
        if (whole.out.len > size || (whole.out.len < size) != (whole.dropped > 0))
            abort();
        if (!whole_events_removed(p, size, whole.out.data, whole.out.len))
            abort();
        gw_buf_fini(&whole.out);
        gw_buf_fini(&three.out);
        gw_buf_fini(&chunks.out);
    }
    return 0;
}
