/*
 * selfpid — the kept process id (see selfpid.h).
 */
#include <pthread.h>
#include <unistd.h>

#include "selfpid.h"

static pid_t kept;
static int atfork_registered;

static void forget(void)
{
	kept = 0;
}

pid_t self_pid(void)
{
	if (kept != 0)
		return kept;
	if (!atfork_registered && pthread_atfork(NULL, NULL, forget) == 0)
		atfork_registered = 1;
	if (!atfork_registered)
		return getpid(); /* could not hear of a fork: never keep it */
	kept = getpid();
	return kept;
}
