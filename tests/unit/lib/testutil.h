/*
 * testutil — small helpers shared by the unit tests (linked into every one).
 */
#ifndef TERN_TESTUTIL_H
#define TERN_TESTUTIL_H

/* Remove path and everything below it, making directories searchable
 * first (a test may leave one mode 000); errors are ignored. */
void test_rm_rf(const char *path);

#endif
