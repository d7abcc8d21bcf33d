/* gw_err: names for the error codes (see gw_err.h). */
#include "gw/gw_err.h"

#include <stdarg.h>
#include <stdio.h>

gw_err
gw_refuse(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return GW_EINVAL;
}

const char *
gw_strerror(gw_err err)
{
    switch (err) {
    case GW_OK:
        return "ok";
    case GW_EAGAIN:
        return "try again";
    case GW_ENOMEM:
        return "out of memory";
    case GW_EINVAL:
        return "invalid argument";
    case GW_ENOENT:
        return "not found";
    case GW_EPROTO:
        return "protocol error";
    case GW_ETIMEDOUT:
        return "timed out";
    case GW_ECLOSED:
        return "closed";
    case GW_EFULL:
        return "full";
    case GW_EIO:
        return "i/o error";
    case GW_ESYS:
        return "system error";
    case GW_EEXIST:
        return "already exists";
    case GW_EVERSION:
        return "unsupported version";
    }
    return "unknown error";
}
