/*
 * pickup — moves local submissions from maildrop/ into the queue.
 *
 * pickup_run(sock) is the daemon's loop: it scans maildrop/ at start, on
 * every datagram on sock (proto_pickup.h) and every PICKUP_SCAN_SECONDS.
 * pickup_file() handles one file: it validates it strictly (regular file,
 * no symlink, one link, size bounds, the maildrop format, the U record equal
 * to the file's owner, an existing owner, parsable addresses), writes a
 * queue file with qfw_begin/qfw_write/qfw_commit, and only then unlinks the
 * maildrop file.  A malformed file is renamed into corrupt/ with a warning;
 * a queue write failure leaves the file for the next scan.
 */
#ifndef TERN_PICKUP_H
#define TERN_PICKUP_H

enum pickup_result {
	PICKUP_QUEUED,  /* in incoming/, maildrop file removed */
	PICKUP_CORRUPT, /* moved to corrupt/ */
	PICKUP_RETRY,   /* left in place (queue write failed, or it vanished) */
	PICKUP_IGNORED  /* not ours to handle (a temp file still being written) */
};

/* Handle maildrop/NAME; dirfd is maildrop/, corrupt_fd corrupt/. */
enum pickup_result pickup_file(int dirfd, int corrupt_fd, const char *name);
/* Scan maildrop/ once; returns the number of messages queued. */
int pickup_scan(int dirfd, int corrupt_fd);
__attribute__((noreturn)) void pickup_run(int sock);

#endif
