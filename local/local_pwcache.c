/*
 * local_pwcache — passwd lookups of the local agent, remembered briefly.
 *
 * The agent looks a user up for every recipient (and mail_owner for every
 * virtual mailbox); each getpwnam() re-reads nsswitch.conf and /etc/passwd,
 * six system calls and a parse per message.  Found entries are kept here
 * for LOCAL_PW_TTL_MS on the monotonic clock, so an admin's new home
 * directory, shell or uid is seen within seconds, as with no cache at all
 * as far as a mail flow can tell.  The strings are copied out of
 * getpwnam's static result into bounded arrays; an entry that does not
 * fit is a lookup failure (ENAMETOOLONG), never truncated.
 *
 * Two answers are never kept:
 *   - a failed lookup (errno other than "no such user": NIS down, EMFILE):
 *     the next delivery must try again, not inherit a transient error;
 *   - "no such user": a user created a moment ago would get a permanent
 *     5.1.1 bounce from a negative entry, a far worse error than a stale
 *     positive one, and unknown users seldom reach this agent (smtpd
 *     refuses them at RCPT), so there is little to save.
 *
 * LOCAL_PW_CACHE entries; when full, the entry that expires first gives
 * way.  Each agent process has its own cache (no shared state, no locks).
 *
 * Public: local_pw_lookup, local_pw_cache_flush, local_pw_set_source
 * (tests: a fake getpwnam and clock).
 */
#include <errno.h>
#include <pwd.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "local.h"

struct pw_entry {
	int used;
	long long stored_ms;
	char key[ADDR_SIZE];
	struct local_pw pw;
};

static struct pw_entry cache[LOCAL_PW_CACHE];
static struct passwd *(*source_getpwnam)(const char *) = getpwnam;
static long long (*source_clock)(void) = clock_ms;

void local_pw_set_source(struct passwd *(*lookup)(const char *), long long (*now_ms)(void))
{
	source_getpwnam = lookup ? lookup : getpwnam;
	source_clock = now_ms ? now_ms : clock_ms;
	local_pw_cache_flush();
}

void local_pw_cache_flush(void)
{
	memset(cache, 0, sizeof(cache));
}

/* 1 while e may still be used at now; a clock seen going backwards (only a
 * test's can) expires it too. */
static int fresh(const struct pw_entry *e, long long now)
{
	return e->used && now >= e->stored_ms && now - e->stored_ms < LOCAL_PW_TTL_MS;
}

/* Copy getpwnam's static result; -1 (ENAMETOOLONG) when a field does not fit. */
static int copy_pw(const struct passwd *p, struct local_pw *out)
{
	memset(out, 0, sizeof(*out));
	out->uid = p->pw_uid;
	out->gid = p->pw_gid;
	if (str_copy(out->name, sizeof(out->name), p->pw_name ? p->pw_name : "") < 0 ||
	    str_copy(out->dir, sizeof(out->dir), p->pw_dir ? p->pw_dir : "") < 0 ||
	    str_copy(out->shell, sizeof(out->shell), p->pw_shell ? p->pw_shell : "") < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* The slot for a new entry: a free or expired one, else the oldest. */
static struct pw_entry *victim(long long now)
{
	struct pw_entry *v = &cache[0];
	for (size_t i = 0; i < LOCAL_PW_CACHE; i++) {
		if (!fresh(&cache[i], now))
			return &cache[i];
		if (cache[i].stored_ms < v->stored_ms)
			v = &cache[i];
	}
	return v;
}

/* getpwnam() without the cache.  1 found, 0 no such user, -1 failed. */
static int lookup_uncached(const char *user, struct local_pw *out)
{
	errno = 0;
	struct passwd *p = source_getpwnam(user);
	if (p == NULL) {
		/* getpwnam(3): "not found" may come as 0 or any of these. */
		if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
			return 0;
		return -1;
	}
	return copy_pw(p, out) < 0 ? -1 : 1;
}

int local_pw_lookup(const char *user, struct local_pw *out)
{
	long long now = source_clock();
	struct pw_entry *e;

	for (size_t i = 0; i < LOCAL_PW_CACHE; i++) {
		e = &cache[i];
		if (fresh(e, now) && strcmp(e->key, user) == 0) {
			*out = e->pw;
			return 1;
		}
	}
	int r = lookup_uncached(user, out);
	if (r != 1)
		return r;
	/* A name too long to be a key is answered but not kept. */
	e = victim(now);
	if (str_copy(e->key, sizeof(e->key), user) == 0) {
		e->used = 1;
		e->stored_ms = now;
		e->pw = *out;
	} else {
		e->used = 0;
	}
	return 1;
}
