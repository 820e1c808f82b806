/*
 * qmgr — the queue manager (see qmgr.h).  Started by the master with its
 * trigger socket as fd 3; runs as mail_owner.
 */
#include "qmgr.h"
#include "server.h"


int main(int argc, char **argv)
{
	daemon_init(argc, argv, "qmgr");
	qmgr_run();
	return 0;
}
