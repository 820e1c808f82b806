/*
 * queueid — unique queue IDs.
 *
 * A queue ID names a message's file in the queue and keys every log line
 * about it.  IDs are 20 upper-case hex digits: seconds (8), microseconds (5)
 * and the process ID (7).  Two processes cannot collide (distinct pids at any
 * one time) and one process never hands out the same microsecond twice (it
 * waits for the clock to move), so IDs are unique on one host without any
 * shared state.  They sort by creation time.
 */
#ifndef TERN_QUEUEID_H
#define TERN_QUEUEID_H

#include <stddef.h>

#define QUEUEID_LEN 20
#define QUEUEID_SIZE (QUEUEID_LEN + 1)

/* Write a fresh ID into out[QUEUEID_SIZE]. */
void queueid_new(char out[QUEUEID_SIZE]);
/* 1 if s is a well-formed queue ID (exact length, only 0-9A-F), else 0. */
int queueid_valid(const char *s);

#endif
