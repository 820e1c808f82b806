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
	/* The TLS key is read while still root (smtpd_tls.c), then root goes. */
	daemon_init_privileged(argc, argv, "smtpd");
	smtpd_tls_init();
	daemon_drop_privileges();
	smtpd_init();
	smtpd_auth_init();
	server_prefork_flags(smtpd_serve, SOCK_NONBLOCK);
}
