/* ut_file: small file helpers for tests that watch files (mirror files,
 * configs): write a whole file at once, asserting it worked. */
#ifndef UT_FILE_H
#define UT_FILE_H

/* Writes <text> to <path> (created or truncated); a Criterion assertion
 * fails the test when the file cannot be opened. */
void ut_write_file(const char *path, const char *text);

#endif
