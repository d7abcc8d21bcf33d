/* Fuzz target: the external-filter label-selector parser (outside bytes: a
 * request header). Checks the contract: it never reads past the input
 * (ASan, with an unterminated copy), a parsed selector's spans lie inside
 * the input and its counts inside the limits, a failure always explains
 * itself, and matching a parsed selector against labels is safe. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_span(dp_sel_span s, size_t size)
{
    if ((size_t)s.off + s.len > size)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1); /* exactly <size> bytes, no NUL */
    char why[160];
    dp_selector sel;
    char *labels[] = {"app=web", "zone=b", "canary", "model.aibrix.ai/name=llama", "k="};

    memcpy(copy, data, size);
    why[0] = '\0';
    if (dp_selector_parse(copy, size, &sel, why, sizeof(why))) {
        if (sel.n > DP_SEL_MAX_REQS || sel.src != copy)
            abort();
        for (uint32_t i = 0; i < sel.n; i++) {
            const dp_sel_req *r = &sel.reqs[i];
            check_span(r->key, size);
            if (r->key.len == 0 || r->n_values > DP_SEL_MAX_VALUES)
                abort();
            for (uint32_t v = 0; v < r->n_values; v++)
                check_span(r->values[v], size);
        }
        (void)dp_selector_matches(&sel, labels, sizeof(labels) / sizeof(labels[0]));
        (void)dp_selector_matches(&sel, NULL, 0);
    } else if (why[0] == '\0') {
        abort();
    }
    free(copy);
    return 0;
}
