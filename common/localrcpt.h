/*
 * localrcpt — does a recipient at a local domain exist?
 *
 * The one answer shared by smtpd (RCPT TO at a local domain: 550 5.1.1 when
 * the user is unknown, so tern never accepts mail it would only bounce) and
 * the local delivery agent.  A local part exists when, after lower-casing
 * and removing an address extension (recipient_delimiter):
 *   - it is "postmaster" or "mailer-daemon" (RFC 5321 4.5.1: always), or
 *   - local_mailbox_base is set (virtual mailboxes: any well-formed name), or
 *   - it is a key of the aliases table (alias_maps), or
 *   - it is a Unix account (getpwnam).
 * A table that cannot be read is a temporary failure (smtpd answers 451).
 *
 * Addresses in virtual_mailbox_domains exist when virtual_mailbox_maps
 * has the address (or the address without its extension):
 * localrcpt_check_address answers for whole addresses.
 */
#ifndef TERN_LOCALRCPT_H
#define TERN_LOCALRCPT_H

#include <stddef.h>

#include "addr.h"
#include "buf.h"

enum localrcpt_result { LOCALRCPT_YES, LOCALRCPT_NO, LOCALRCPT_TEMP };

/* Open the aliases table named by cf.alias_maps (a missing table is not an
 * error: it has no entries, and a warning is logged once).  0 or -1. */
int localrcpt_init(char *err, size_t errsize);
/* Check a local part (no domain).  user[ADDR_SIZE], when non-NULL, receives
 * the lower-cased local part without its extension. */
enum localrcpt_result localrcpt_check(const char *local, char *user);
/* Check a whole address: a virtual mailbox domain's address in
 * virtual_mailbox_maps, otherwise its local part as localrcpt_check. */
enum localrcpt_result localrcpt_check_address(const char *address);
/* Look a name up in the aliases table (value format: aliases.h).
 * 1 found, 0 absent (or no table), -1 table error. */
int localrcpt_alias_lookup(const char *name, struct buf *value);
/* Look an address up in virtual_mailbox_maps (full address, then without
 * its extension).  1 found, 0 absent, -1 table error or no table. */
int localrcpt_virtual_lookup(const char *address, struct buf *value);
/* 1 when a user name can safely name a mailbox (no '/', no leading '.',
 * no control characters, quotes or backslashes, not empty). */
int localrcpt_name_ok(const char *user);

#endif
