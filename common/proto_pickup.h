/*
 * proto_pickup — the pickup daemon's wake-up datagrams.
 *
 * pickup owns a Unix datagram socket at QUEUE_DIR/public/pickup, mode 0620,
 * owner mail_owner, group setgid_group, inside public/ (0710, the same
 * owner and group): only mail_owner and the setgid postdrop can write to it.
 * A datagram is one byte; anything else is ignored.  A lost datagram is
 * harmless: pickup also scans maildrop/ every PICKUP_SCAN_SECONDS.
 */
#ifndef TERN_PROTO_PICKUP_H
#define TERN_PROTO_PICKUP_H

#define PICKUP_SOCKET "public/pickup"
#define PICKUP_SCAN_SECONDS 5

enum pickup_trigger {
	PICKUP_WAKEUP = 'W', /* a new file is in maildrop/ */
	PICKUP_FLUSH = 'F'   /* sendmail -q: pass TRIGGER_FLUSH to the queue manager */
};

#endif
