/* Unit tests for gw_digest: FIPS 180-2 test vectors and the constant-time
 * comparison. */
#include "gw/gw_digest.h"

#include <criterion/criterion.h>
#include <string.h>

#include "ut_leak.h"

static void
teardown(void)
{
    ut_leak_check();
}

TestSuite(gw_digest, .fini = teardown, .timeout = 10);

Test(gw_digest, matches_the_published_test_vectors)
{
    char out[GW_SHA256_HEX_LEN + 1];

    gw_sha256_hex("", 0, out);
    cr_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    gw_sha256_hex("abc", 3, out);
    cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    gw_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, out);
    cr_assert_str_eq(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(gw_digest, sha1_matches_the_published_test_vector)
{
    char out[GW_SHA1_HEX_LEN + 1];

    gw_sha1_hex("abc", 3, out);
    cr_assert_str_eq(out, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

Test(gw_digest, binary_input_with_nul_bytes_is_hashed_whole)
{
    char a[GW_SHA256_HEX_LEN + 1], b[GW_SHA256_HEX_LEN + 1];

    gw_sha256_hex("a\0b", 3, a);
    gw_sha256_hex("a", 1, b);
    cr_assert_str_neq(a, b);
    cr_assert_eq(strlen(a), GW_SHA256_HEX_LEN);
}

Test(gw_digest, equal_ct_compares_every_byte)
{
    cr_assert(gw_equal_ct("abcdef", "abcdef", 6));
    cr_assert_not(gw_equal_ct("abcdef", "abcdeg", 6));
    cr_assert_not(gw_equal_ct("xbcdef", "abcdef", 6));
    cr_assert(gw_equal_ct("", "", 0));
}
