/*
 * send — the remote SMTP delivery agent (see send.h for its structure).
 *
 * Started by the master as the unprivileged mail_owner with the listening
 * socket on MASTER_LISTEN_FD; it needs no file system access besides the
 * message descriptor passed with each request.
 */
#include "send.h"
#include "server.h"

int main(int argc, char **argv)
{
	daemon_init(argc, argv, "send");
	server_prefork(send_serve);
}
