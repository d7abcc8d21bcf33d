/* ctl_disc_rec: the instance registration record of the redis and etcd
 * discovery sources (docs/discovery.md), shared by the controller (parser)
 * and llmgw-register (encoder), so both sides agree byte for byte.
 *
 * One engine = one key whose value is a JSON object:
 *   {"id":"vllm-0","model":"llama3","ip":"10.0.3.7","port":8000,
 *    "metric_port":8000,"role":"both","engine":"vllm","roleset":"rs-1",
 *    "draining":false,"timestamp_ms":1732222222000}
 * Keys follow Llumnix's layout: Redis `llumnix:discovery:<id>`, etcd
 * `llumnix/discovery/<id>`. Llumnix stores a protobuf there; we store JSON
 * (readable with redis-cli/etcdctl, no schema compiler), so a Llumnix sidecar
 * record is refused as "not JSON" and skipped, never fatal.
 *
 * Required: model (1..PM_MAX_STR bytes), ip (an address or host name), port
 * (1..65535), timestamp_ms (wall clock of the last refresh, >= 0). Optional:
 * id (defaults to the key's last part), metric_port (0/absent = port), role
 * ("prefill" | "decode" | "both", absent = both), engine (default "vllm"),
 * roleset, draining (the registrar is stopping: no new requests). Unknown
 * keys are ignored, so a newer registrar can add fields. Pure; any thread. */
#ifndef CTL_DISC_REC_H
#define CTL_DISC_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

/* Key prefixes (Llumnix's). */
#define CTL_DISC_REDIS_PREFIX "llumnix:discovery:"
#define CTL_DISC_ETCD_PREFIX  "llumnix/discovery/"

/* Largest value accepted from a store. */
#define CTL_DISC_REC_MAX_BYTES 16384

typedef struct ctl_disc_rec {
    char *id;
    char *model;
    char *ip;
    uint16_t port;
    uint16_t metric_port; /* 0 = port */
    char *role;           /* "prefill", "decode" or NULL (both) */
    char *engine;
    char *roleset; /* NULL = none */
    bool draining;
    int64_t timestamp_ms;
} ctl_disc_rec;

/* Parses <len> bytes at <buf> (not NUL-terminated) into zeroed <out>.
 * <key_id> (may be NULL) is the id used when the record has none. On
 * GW_EINVAL *why is a heap message naming the field and <out> is untouched. */
GW_MUST_CHECK gw_err ctl_disc_rec_parse(const char *buf, size_t len, const char *key_id,
                                        ctl_disc_rec *out, char **why);

/* Encodes <rec> as the JSON value above (a heap string). */
char *ctl_disc_rec_encode(const ctl_disc_rec *rec);

/* Deep copy into zeroed <dst>. */
void ctl_disc_rec_copy(ctl_disc_rec *dst, const ctl_disc_rec *src);

/* Frees what <rec> owns and zeroes it. NULL ok. */
void ctl_disc_rec_fini(ctl_disc_rec *rec);

/* True when the two records describe the same endpoint state (everything
 * but timestamp_ms). */
bool ctl_disc_rec_same(const ctl_disc_rec *a, const ctl_disc_rec *b);

/* Fills zeroed <ep> from <rec>: ready unless draining. */
void ctl_disc_rec_endpoint(const ctl_disc_rec *rec, pm_endpoint *ep);

#endif
