/* me_reqlog: ring buffer of request records (see me_reqlog.h). */
#include "me_reqlog.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

struct me_reqlog {
    me_reqrec *recs; /* owned, <max> slots */
    size_t max;
    size_t head; /* index of the oldest record */
    size_t len;  /* records in use */
};

static void
rec_fini(me_reqrec *r)
{
    GW_FREE(r->method);
    GW_FREE(r->path);
    GW_FREE(r->body);
    json_decref(r->headers);
    r->headers = NULL;
}

me_reqlog *
me_reqlog_new(size_t max)
{
    me_reqlog *log = gw_xcalloc(1, sizeof(*log));

    log->max = max;
    log->recs = gw_xcalloc(max, sizeof(*log->recs));
    return log;
}

void
me_reqlog_free(me_reqlog *log)
{
    if (log == NULL)
        return;
    me_reqlog_clear(log);
    free(log->recs);
    free(log);
}

void
me_reqlog_add(me_reqlog *log, const me_reqrec *rec)
{
    if (log->len == log->max) {
        rec_fini(&log->recs[log->head]);
        log->head = (log->head + 1) % log->max;
        log->len--;
    }
    log->recs[(log->head + log->len) % log->max] = *rec;
    log->len++;
}

size_t
me_reqlog_clear(me_reqlog *log)
{
    size_t n = log->len;

    for (size_t i = 0; i < log->len; i++)
        rec_fini(&log->recs[(log->head + i) % log->max]);
    log->head = 0;
    log->len = 0;
    return n;
}

char *
me_reqlog_dump(const me_reqlog *log)
{
    json_t *arr = json_array();
    char *s;

    for (size_t i = 0; i < log->len; i++) {
        const me_reqrec *r = &log->recs[(log->head + i) % log->max];
        json_t *body = NULL;

        if (r->body != NULL)
            body = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
        /* The headers object is shared with the record, never modified. */
        json_array_append_new(arr, json_pack("{s:s, s:s, s:O, s:o, s:I}", "method", r->method,
                                             "path", r->path, "headers", r->headers, "body",
                                             body != NULL ? body : json_null(), "ts_ms",
                                             (json_int_t)r->ts_ms));
    }
    s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}
