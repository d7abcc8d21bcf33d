/* gw_sha256: see gw_digest.h. */
#include "gw/gw_digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>

static void
digest_hex(const EVP_MD *type, unsigned want, const void *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    /* EVP_Digest fails only on allocation failure inside OpenSSL; the
     * project's allocators abort in that case, and so do we. */
    if (EVP_Digest(p, n, md, &len, type, NULL) != 1 || len != want)
        abort();
    for (unsigned i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[2 * len] = '\0';
    OPENSSL_cleanse(md, sizeof(md));
}

void
gw_sha256_hex(const void *p, size_t n, char out[GW_SHA256_HEX_LEN + 1])
{
    digest_hex(EVP_sha256(), 32, p, n, out);
}

void
gw_sha1_hex(const void *p, size_t n, char out[GW_SHA1_HEX_LEN + 1])
{
    digest_hex(EVP_sha1(), 20, p, n, out);
}

bool
gw_equal_ct(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

uint64_t
gw_fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
