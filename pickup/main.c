/*
 * pickup — main: the daemon skeleton (config, log, drop to mail_owner),
 * then the loop on the inherited public/pickup datagram socket.
 */
#include "pickup.h"
#include "proto_master.h"
#include "server.h"

int main(int argc, char **argv)
{
	daemon_init(argc, argv, "pickup");
	pickup_run(MASTER_LISTEN_FD);
}
