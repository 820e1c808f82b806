/*
 * testutil — small helpers shared by the unit tests (linked into every one).
 */
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H

#include <stddef.h>

/* Remove path and everything below it, making directories searchable
 * first (a test may leave one mode 000); errors are ignored. */
void test_rm_rf(const char *path);

/* The whole file at path, NUL-terminated (malloc'd; its length in *len);
 * the calling test fails when it cannot be read. */
char *test_slurp(const char *path, size_t *len);

/* A queue-file stand-in in dir: prefix, then len bytes of content, in an
 * unlinked file; returns its open descriptor (the test fails otherwise). */
int test_message_fd(const char *dir, const char *prefix, const char *content, size_t len);

#endif
