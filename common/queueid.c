/*
 * queueid — unique, time-sortable queue IDs without shared state.
 *
 * Public: queueid_new, queueid_valid.
 *
 * An ID is seconds (8 hex), microseconds (5 hex) and pid (7 hex).  Within
 * one process uniqueness comes from never reusing a (second, microsecond)
 * pair: we wait for the clock to tick, and if the clock steps backwards we
 * keep counting from the last value handed out instead of repeating one.
 * Never fails.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "queueid.h"
#include "selfpid.h"

static uint64_t queueid_last; /* last (seconds * 1000000 + usec) handed out */

static uint64_t queueid_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void queueid_new(char out[QUEUEID_SIZE])
{
	uint64_t now = queueid_now();

	while (now == queueid_last) {
		struct timespec ts = { 0, 1000 };

		nanosleep(&ts, NULL);
		now = queueid_now();
	}
	if (now < queueid_last)
		now = queueid_last + 1; /* clock stepped back: stay unique and ordered */
	queueid_last = now;
	snprintf(out, QUEUEID_SIZE, "%08X%05X%07X", (unsigned)(uint32_t)(now / 1000000u),
		 (unsigned)(now % 1000000u), (unsigned)((uint32_t)self_pid() & 0xFFFFFFFu));
}

int queueid_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < QUEUEID_LEN; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[i] == '\0';
}
