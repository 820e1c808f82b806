/*
 * scoreboard — which client each child of a prefork service is serving,
 * in memory shared by those children, so any of them can count how many
 * sessions one client address holds across the whole service (the per-client
 * connection cap, smtpd_client_connection_count_limit).
 *
 * The master owns it: sb_create makes one region per smtpd service
 * (memfd_create + ftruncate, sealed against resizing), hands every child the
 * descriptor (MASTER_SCOREBOARD_FD) and one slot of its own (sb_slot_take),
 * and clears the slot of every child it reaps (sb_slot_release), so a child
 * that crashed or was killed never keeps a count.  The master only ever
 * writes zeros there and never trusts what it could read back: its own
 * bookkeeping (which slots are handed out) lives in private memory.
 *
 * A child maps the region (sb_attach), writes its client's address into its
 * slot right after accept (sb_enter), counts the slots holding the same
 * address (sb_count) and empties its slot when the session ends (sb_leave).
 * Addresses are 16 bytes: IPv6 as it is, IPv4 as v4-mapped IPv6, so one
 * client arriving over IPv4 and over a dual-stack socket counts once.
 *
 * No lock: each slot has exactly one writer at a time (its child while the
 * child lives, the master after it died) and readers use a sequence counter
 * to skip a slot caught half-written.  Two children admitting the same client
 * at the same instant may therefore miscount by one or two; for a cap meant
 * to stop one address from taking the whole pool that slack is acceptable.
 *
 * Errors: sb_create and sb_attach return NULL with the reason in err; the
 * rest cannot fail (a bad slot number is a bug: log_panic).
 */
#ifndef TERN_SCOREBOARD_H
#define TERN_SCOREBOARD_H

#include <stddef.h>
#include <sys/socket.h>

#define SB_ADDR_LEN 16
#define SB_SLOTS_MAX 65536 /* any more is a corrupt header */

struct scoreboard;

/* ---- master side ---- */

/* A new zeroed, size-sealed region of nslots slots (1..SB_SLOTS_MAX). */
struct scoreboard *sb_create(unsigned nslots, char *err, size_t errsize);
/* The region's descriptor (close-on-exec; owned by the scoreboard). */
int sb_fd(const struct scoreboard *sb);
/* Hand out the lowest free slot, emptied; -1 when every slot is taken. */
int sb_slot_take(struct scoreboard *sb);
/* Empty slot (its child is gone) and make it free to hand out again. */
void sb_slot_release(struct scoreboard *sb, int slot);
/* Unmap, close and free (master or child); NULL is fine. */
void sb_free(struct scoreboard *sb);

/* ---- child side ---- */

/* Map the region behind fd (which the caller may close afterwards) for the
 * child that owns slot. */
struct scoreboard *sb_attach(int fd, unsigned slot, char *err, size_t errsize);
/* The 16-byte form of an IPv4 or IPv6 socket address; -1 for other families. */
int sb_addr(const struct sockaddr *sa, socklen_t len, unsigned char out[SB_ADDR_LEN]);
/* Put addr into our slot (marked in use) and make it visible to the others
 * before any count that follows. */
void sb_enter(struct scoreboard *sb, const unsigned char addr[SB_ADDR_LEN]);
/* Slots in use holding addr, ours included when we entered it. */
unsigned sb_count(const struct scoreboard *sb, const unsigned char addr[SB_ADDR_LEN]);
/* Our session ended: empty our slot. */
void sb_leave(struct scoreboard *sb);

#endif
