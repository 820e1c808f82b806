/*
 * postdrop — the setgid (group setgid_group) helper that puts one local
 * submission into maildrop/.
 *
 * postdrop_run reads a maildrop stream (common/maildrop.h, MD_STREAM) from
 * fd 0, writes maildrop/tmp.ID (mode 0444, owned by the caller's uid: the
 * owner records the submitter), copies exactly LENGTH content bytes, fsyncs,
 * renames it to maildrop/ID and sends PICKUP_WAKEUP to public/pickup (best
 * effort).  postdrop_flush sends PICKUP_FLUSH (sendmail -q).
 *
 * Return values are sysexits codes; the reason is on stderr.  A failure
 * leaves nothing behind but, after a crash, a tmp.* file that pickup removes
 * when it is old.
 */
#ifndef TERN_POSTDROP_H
#define TERN_POSTDROP_H

int postdrop_run(void);
int postdrop_flush(void);
/* Signal handlers: remove the temp file being written, then _exit. */
void postdrop_signals(void);

#endif
