/* dp_front: the worker's HTTP surface: dispatches MHD requests to the
 * proxy (POST /v1/chat/completions, /v1/completions, /v1/embeddings) and
 * answers the gateway's own endpoints (GET /v1/models from the snapshot,
 * /metrics, /healthz, /readyz). Loop thread only. */
#ifndef DP_FRONT_H
#define DP_FRONT_H

#include <microhttpd.h>

#include "dp_ctx.h"

/* MHD access handler and completion callback; <cls> is the dp_ctx. */
enum MHD_Result dp_front_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls);
/* The --admin-port listener: /metrics, /healthz and /readyz as on the
 * client port, 404 for everything else. That port is this process's own
 * (no SO_REUSEPORT), so a scrape or probe of it reaches this process, not
 * whichever worker the kernel picks on the shared client port. */
enum MHD_Result dp_front_admin_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version, const char *upload,
                                       size_t *upload_size, void **con_cls);
void dp_front_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe);

#endif
