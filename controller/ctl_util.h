/* ctl_util: small helpers shared by the controller's parsers: heap-formatted
 * strings and an error collector that turns several problems into one
 * newline-separated message. Allocation aborts on out-of-memory (gw_mem).
 * No state beyond the objects passed in; safe from any thread on distinct
 * objects. */
#ifndef CTL_UTIL_H
#define CTL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"

/* Returns a heap string formatted like printf; never NULL. */
char *ctl_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *ctl_vstrf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Collects up to CTL_ERRS_MAX messages; later ones are counted, not kept. */
#define CTL_ERRS_MAX 16

typedef struct ctl_errs {
    char *text; /* owned; "msg\nmsg..." or NULL when empty */
    unsigned n; /* messages added, including dropped ones */
} ctl_errs;

/* Appends one message (formatted like printf). */
void ctl_errs_add(ctl_errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the collected text to the caller (who frees it), adding a
 * "(N more errors)" line when some were dropped, and empties <e>. NULL when
 * no error was added. */
char *ctl_errs_take(ctl_errs *e);

/* Frees whatever <e> still holds. */
void ctl_errs_fini(ctl_errs *e);

/* True if <s> is a usable host: 1..253 bytes, no whitespace, control bytes,
 * '/', '@', '?', '#' or quotes (an IPv4/IPv6 literal or a DNS name). */
bool ctl_host_is_valid(const char *s, size_t len);

/* Splits "host:port", "host", "[v6]:port" or "[v6]" (<len> bytes of <s>)
 * into a heap <*host> (brackets removed) and <*port> (0 when absent).
 * GW_EINVAL with a heap *why (no position; the caller adds context) for an
 * empty or invalid host, an IPv6 literal without brackets, or a port that is
 * not a decimal in 1..65535. Outputs are written only on GW_OK. */
GW_MUST_CHECK gw_err ctl_parse_hostport(const char *s, size_t len, char **host, uint16_t *port,
                                        char **why);

/* Formats <host>:<port> as an endpoint label, bracketing IPv6 literals. */
char *ctl_hostport_str(const char *host, uint16_t port);

/* Orders engine addresses by ip (bytewise), then port: <0, 0, >0. */
int ctl_addr_cmp(const char *ip_a, uint16_t port_a, const char *ip_b, uint16_t port_b);

#endif
