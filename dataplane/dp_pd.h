/* dp_pd: choosing the prefill and the decode endpoint of a disaggregated
 * request (the `pd` strategy; aibrix.md §9.1-9.2, with its defaults).
 *
 * Roles come from the endpoints' `role` (pod label role-name): "prefill",
 * "decode", anything else is combined. Endpoints group by `roleset`
 * (roleset-name; none = one shared group, as Llumnix pools have no
 * rolesets). Only a roleset with at least one ready prefill and one ready
 * decode candidate is eligible; pods of an incomplete roleset are skipped
 * (a rolling update). The pair is always taken from one roleset.
 *
 * Loads are the gateway's fleet-wide in-flight counts (dp_ep_load), fresh on
 * every worker; a decode's is the engine's running + waiting when that is
 * higher (scraped). In order:
 *  1. prefill imbalance: when prefill loads differ by more than
 *     prefill_spread (AIBRIX_PREFILL_LOAD_IMBALANCE_MIN_SPREAD, 16), the
 *     least loaded prefill wins and the decode follows its roleset;
 *  2. decode imbalance: when decode loads differ by at least decode_spread
 *     (AIBRIX_DECODE_LOAD_IMBALANCE_MIN_SPREAD, 16), the least loaded decode
 *     wins and the prefill follows its roleset;
 *  3. otherwise each roleset's best prefill by
 *       (100 - prefix match %) * 0.1 + load / max prefill load
 *     and best decode by
 *       (1 + load / max decode load + (1 - tok/s / max tok/s)) / (free KV / max free KV)
 *     (maxima over every decode taking part; free KV = 100 - KV usage %, at
 *     least 0.1; an unknown signal drops its term; the 1 lets free KV decide
 *     between idle decodes), and the roleset minimising prefill / max +
 *     decode / max wins.
 * Ties go uniformly at random. Pure; O(candidates x rolesets). */
#ifndef DP_PD_H
#define DP_PD_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_strategy.h"

typedef enum dp_pd_role {
    DP_PD_COMBINED = 0,
    DP_PD_PREFILL,
    DP_PD_DECODE,
} dp_pd_role;

/* The role of endpoint <e> (its `role` label). */
dp_pd_role dp_pd_role_of(const pm_endpoint *e);

typedef struct dp_pd_cfg {
    uint32_t prefill_spread;
    uint32_t decode_spread;
} dp_pd_cfg;

typedef struct dp_pd_choice {
    uint32_t prefill; /* position in pick->cands */
    uint32_t decode;  /* position in pick->cands; valid if has_decode */
    bool has_decode;  /* false when the decode is chosen later (staged) */
    const char *how;  /* "prefill_imbalance", "decode_imbalance" or "score" */
} dp_pd_choice;

/* Chooses a prefill (and, with <with_decode>, a decode of the same roleset)
 * among pick->cands. <match> holds each candidate's matched prefix blocks out
 * of <n_blocks> (NULL or 0 blocks: no prefix information). <scratch> has
 * pick->n_cands entries (the caller's, so nothing is allocated per pick).
 * False when no roleset is eligible. */
bool dp_pd_choose(const dp_pick *pick, const dp_pd_cfg *cfg, bool with_decode,
                  const uint32_t *match, uint32_t n_blocks, int32_t *scratch, dp_pd_choice *out);

/* Whether dp_pd_choose would find a roleset with a prefill and a decode
 * among pick->cands (<scratch> as there). */
bool dp_pd_has_roleset(const dp_pick *pick, int32_t *scratch);

/* Staged scheduling: the best decode (by the decode score of step 3) among
 * pick->cands in roleset <roleset> (NULL = no roleset). False if none. */
bool dp_pd_choose_decode(const dp_pick *pick, const char *roleset, uint32_t *decode);

#endif
