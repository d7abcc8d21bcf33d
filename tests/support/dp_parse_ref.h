/* dp_parse_ref: jansson-based reference for dp_parse (test-only oracle). */
#ifndef DP_PARSE_REF_H
#define DP_PARSE_REF_H

#include "dp_parse.h"

/* As dp_parse_request_text; free info->model with dp_reqinfo_fini. */
dp_parse_status dp_parse_ref_request_text(dp_api api, const char *body, size_t len,
                                          dp_reqinfo *info, gw_buf *text);

#endif
