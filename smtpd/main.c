/*
 * smtpd — the SMTP receiver (main).  Started by the master with the
 * listening socket on MASTER_LISTEN_FD and privileges already dropped; the
 * prefork skeleton accepts connections and hands each to smtpd_serve.
 */
#include "server.h"
#include "smtpd.h"

int
main(int argc, char **argv)
{
	daemon_init(argc, argv, "smtpd");
	smtpd_init();
	server_prefork(smtpd_serve);
}
