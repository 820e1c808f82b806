/*
 * local — the local delivery agent (see local.h for its structure).
 *
 * Started by the master with the listening socket on MASTER_LISTEN_FD.  In
 * production it runs as root so it can become each recipient; the root part
 * only resolves the recipient and forks (local_deliver.c).  Without root
 * (development) it delivers to local_mailbox_base or its own user only.
 */
#include <unistd.h>

#include "conf.h"
#include "local.h"
#include "localrcpt.h"
#include "log.h"
#include "server.h"

int main(int argc, char **argv)
{
	/* The one daemon that keeps root: it becomes each recipient itself. */
	daemon_init_privileged(argc, argv, "local");
	char err[256];
	if (localrcpt_init(err, sizeof(err)) < 0) /* aliases and virtual mailbox tables */
		log_fatal("%s", err);
	if (geteuid() != 0 && (cf.local_mailbox_base == NULL || cf.local_mailbox_base[0] == '\0'))
		log_info("not running as root: only mail for uid %ld can be delivered", (long)geteuid());
	server_prefork(local_serve);
}
