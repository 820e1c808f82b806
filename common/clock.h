/*
 * clock — the monotonic clock every deadline and timeout in tern uses.
 *
 * Deadlines are absolute times on CLOCK_MONOTONIC, so a wall-clock jump
 * (NTP, an admin's `date`) can neither expire a timeout at once nor stretch
 * it.
 */
#ifndef TERN_CLOCK_H
#define TERN_CLOCK_H

/* Milliseconds on the monotonic clock (an arbitrary origin). */
long long clock_ms(void);

#endif
