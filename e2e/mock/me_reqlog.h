/* me_reqlog: the last N requests one engine received, for GET /_mock/requests.
 * A ring buffer of records; the oldest record is dropped when it is full.
 * Bodies are kept as raw bytes and parsed only when the log is dumped, so
 * recording costs one copy on the request path. Not thread-safe: the engine
 * calls everything under its own mutex. */
#ifndef ME_REQLOG_H
#define ME_REQLOG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct me_reqlog me_reqlog;

typedef struct me_reqrec {
    char *method;    /* owned */
    char *path;      /* owned, without the query string */
    json_t *headers; /* owned reference: {lowercased name: value} */
    char *body;      /* owned, may be NULL; raw request body */
    size_t body_len;
    uint64_t ts_ms; /* arrival, Unix epoch milliseconds */
} me_reqrec;

/* <max> records are kept; max must be >= 1. */
me_reqlog *me_reqlog_new(size_t max);
void me_reqlog_free(me_reqlog *log);

/* Takes ownership of everything <rec> points to (the struct itself is copied). */
void me_reqlog_add(me_reqlog *log, const me_reqrec *rec);

/* Drops every record; returns how many there were. */
size_t me_reqlog_clear(me_reqlog *log);

/* JSON array of the records, oldest first, each {"method","path","headers",
 * "body","ts_ms"} with "body" the parsed JSON or null. Caller frees. */
char *me_reqlog_dump(const me_reqlog *log);

#endif
