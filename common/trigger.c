/*
 * trigger — wake the queue manager (protocol in proto_trigger.h).
 */
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include "log.h"
#include "proto_trigger.h"
#include "sock.h"

void trigger_send(const char *queue_dir, enum trigger t)
{
	char path[4096];
	char c = (char)t;

	if (snprintf(path, sizeof(path), "%s/%s", queue_dir, TRIGGER_SOCKET) >= (int)sizeof(path))
		return;
	if (sock_unix_dgram_send(path, &c, 1) < 0)
		log_debug("trigger %s: %s (the periodic scan will find the mail)", path, strerror(errno));
}
