/*
 * proto_trigger — the queue manager's wake-up datagrams.
 *
 * The queue manager owns a Unix datagram socket at
 * QUEUE_DIR/private/qmgr.  Any process that puts a message into the queue
 * sends one byte there; a lost or dropped trigger is harmless because the
 * queue manager also scans the queue periodically.  The socket file is mode
 * 0600 inside the 0700 private/ directory: only mail_owner can trigger.
 */
#ifndef TERN_PROTO_TRIGGER_H
#define TERN_PROTO_TRIGGER_H

#define TRIGGER_SOCKET "private/qmgr"

enum trigger {
	TRIGGER_INCOMING = 'I', /* new message(s) in incoming/ */
	TRIGGER_FLUSH = 'F',    /* retry deferred mail now (sendmail -q, ternctl flush) */
	TRIGGER_REVIVE = 'R'    /* forget dead destinations, scan incoming/ (ternctl flush DOMAIN) */
};

/* Send a trigger to the queue manager of queue_dir; errors are ignored (the
 * periodic scan is the safety net), but logged at debug level. */
void trigger_send(const char *queue_dir, enum trigger t);

#endif
