/* dp_sse_strip: drops the injected usage event from a relayed SSE stream
 * (see dp_sse_strip.h).
 *
 * Each call scans its bytes once for line ends. An event that starts and ends
 * inside one call is judged where it lies and copied once; only the bytes of
 * an event still open at the end of a call are copied into <held>.
 *
 * An event ending in a CR-terminated empty line is complete at that CR: the
 * stream is live, and waiting for the next byte to see whether it is the LF
 * of a CRLF would delay the event by a whole upstream write. The LF, if it
 * comes, follows its event: it is copied when the event was kept, dropped
 * when the event was dropped, and never starts the next event (which would
 * read as an empty line of its own). */
#include "dp_sse_strip.h"

#include <jansson.h>
#include <string.h>

/* After an event, a held buffer that grew past this is released, so one big
 * event does not pin its allocation for the rest of the stream. */
#define STRIP_KEEP_ALLOC (64u << 10)

void
dp_sse_strip_init(dp_sse_strip *s)
{
    memset(s, 0, sizeof(*s));
    gw_buf_init(&s->held, DP_SSE_STRIP_MAX_EVENT);
    s->line_empty = true;
}

void
dp_sse_strip_fini(dp_sse_strip *s)
{
    gw_buf_fini(&s->held);
}

static void
release_held(dp_sse_strip *s)
{
    size_t max = s->held.max;

    if (s->held.cap > STRIP_KEEP_ALLOC) {
        gw_buf_fini(&s->held);
        gw_buf_init(&s->held, max);
    } else {
        gw_buf_reset(&s->held);
    }
}

/* True if <out> can take <a> + <b> more bytes. */
static bool
has_room(const gw_buf *out, size_t a, size_t b)
{
    size_t room = out->len < out->max ? out->max - out->len : 0;

    return a <= room && b <= room - a;
}

static gw_err
emit(gw_buf *out, const char *p, size_t n)
{
    return n > 0 ? gw_buf_append(out, p, n) : GW_OK;
}

/* Reads the line of <ev>/<n> starting at *pos into <line>/<len> (terminator
 * excluded) and moves *pos past its CRLF, LF or CR. */
static void
next_line(const char *ev, size_t n, size_t *pos, const char **line, size_t *len)
{
    size_t i = *pos;

    while (i < n && ev[i] != '\n' && ev[i] != '\r')
        i++;
    *line = ev + *pos;
    *len = i - *pos;
    if (i + 1 < n && ev[i] == '\r' && ev[i + 1] == '\n')
        i++;
    *pos = i < n ? i + 1 : n;
}

/* <ev>/<n> is one complete event. True if it is the usage-only event: one
 * data field (comments aside) holding {"choices": [], "usage": {...}}. The
 * field rules are WHATWG SSE's: the name runs to the first colon, and one
 * space after the colon is not part of the value. */
static bool
is_usage_only(const char *ev, size_t n)
{
    const char *line, *val = NULL;
    size_t len, vlen = 0, pos = 0;
    unsigned ndata = 0;
    json_t *root, *choices, *usage;
    bool drop;

    /* Almost every event of a stream carries no usage and is never parsed. */
    if (memmem(ev, n, "\"usage\"", 7) == NULL)
        return false;
    while (pos < n) {
        next_line(ev, n, &pos, &line, &len);
        if (len == 0)
            break; /* the empty line that ends the event */
        if (line[0] == ':')
            continue;
        if (len < 4 || memcmp(line, "data", 4) != 0 || (len > 4 && line[4] != ':'))
            return false; /* id, event, retry or unknown: keep what the client would see */
        if (++ndata > 1)
            return false;
        val = line + (len > 4 ? 5 : 4);
        vlen = len > 4 ? len - 5 : 0;
        if (vlen > 0 && val[0] == ' ') {
            val++;
            vlen--;
        }
    }
    if (ndata != 1)
        return false;
    root = json_loadb(val, vlen, 0, NULL);
    choices = json_object_get(root, "choices"); /* NULL unless root is an object */
    usage = json_object_get(root, "usage");
    drop = json_is_array(choices) && json_array_size(choices) == 0 && json_is_object(usage);
    json_decref(root);
    return drop;
}

/* The current event ends with <p>/<n> (the held bytes come first). Copies it
 * to <out> or drops it; *dropped says which. An event longer than the cap
 * goes out unfiltered, however it was split across calls. */
static gw_err
end_event(dp_sse_strip *s, const char *p, size_t n, gw_buf *out, bool *dropped)
{
    const char *ev = p;
    size_t len = n;
    gw_err rc;

    *dropped = false;
    if (s->passthrough) {
        s->passthrough = false;
        return emit(out, p, n);
    }
    if (s->held.len > 0 || n > s->held.max) {
        if (gw_buf_append(&s->held, p, n) != GW_OK) {
            rc = emit(out, s->held.data, s->held.len);
            release_held(s);
            return rc != GW_OK ? rc : emit(out, p, n);
        }
        ev = s->held.data;
        len = s->held.len;
    }
    if (is_usage_only(ev, len)) {
        *dropped = true;
        s->dropped++;
        rc = GW_OK;
    } else {
        rc = emit(out, ev, len);
    }
    release_held(s);
    return rc;
}

/* <p>/<n> is the start or middle of an event: hold it, or, once the event is
 * over the cap, flush what is held and let the rest through. */
static gw_err
hold(dp_sse_strip *s, const char *p, size_t n, gw_buf *out)
{
    gw_err rc;

    if (!s->passthrough) {
        if (gw_buf_append(&s->held, p, n) == GW_OK)
            return GW_OK;
        s->passthrough = true;
        rc = emit(out, s->held.data, s->held.len);
        release_held(s);
        if (rc != GW_OK)
            return rc;
    }
    return emit(out, p, n);
}

gw_err
dp_sse_strip_feed(dp_sse_strip *s, const char *p, size_t n, gw_buf *out)
{
    size_t seg = 0; /* where the current event's bytes start in <p> */
    size_t i = 0;
    bool dropped;
    gw_err rc;

    /* Every byte written comes from <held> or <p>: checking the room once
     * makes the call all-or-nothing (gw_buf_append cannot fail below). */
    if (!has_room(out, s->held.len, n))
        return GW_EFULL;
    while (i < n) {
        dp_sse_strip_cr cr = s->cr;
        char c = p[i];

        s->cr = DP_SSE_STRIP_CR_NONE;
        if (c == '\n' && cr != DP_SSE_STRIP_CR_NONE) {
            /* The LF of a CRLF whose CR was already taken as the line end. */
            if (cr == DP_SSE_STRIP_CR_KEPT) {
                rc = emit(out, p + i, 1);
                if (rc != GW_OK)
                    return rc;
            }
            if (cr != DP_SSE_STRIP_CR_LINE)
                seg = i + 1;
            i++;
            continue;
        }
        if (c != '\n' && c != '\r') {
            s->line_empty = false;
            while (i < n && p[i] != '\n' && p[i] != '\r')
                i++;
            continue;
        }
        if (!s->line_empty) {
            s->line_empty = true;
            if (c == '\r')
                s->cr = DP_SSE_STRIP_CR_LINE;
            i++;
            continue;
        }
        /* An empty line: the event ends with it. */
        rc = end_event(s, p + seg, i + 1 - seg, out, &dropped);
        if (rc != GW_OK)
            return rc;
        if (c == '\r')
            s->cr = dropped ? DP_SSE_STRIP_CR_DROPPED : DP_SSE_STRIP_CR_KEPT;
        seg = ++i;
    }
    return seg < n ? hold(s, p + seg, n - seg, out) : GW_OK;
}

gw_err
dp_sse_strip_finish(dp_sse_strip *s, gw_buf *out)
{
    gw_err rc;

    if (!has_room(out, s->held.len, 0))
        return GW_EFULL;
    rc = emit(out, s->held.data, s->held.len);
    release_held(s);
    s->line_empty = true;
    s->passthrough = false;
    s->cr = DP_SSE_STRIP_CR_NONE;
    return rc;
}
