/*
 * cdbmap — read-only lookup tables compiled to cdb (tinycdb).
 *
 * Tables (transport, aliases, virtual, access, passwords) are text files of
 * "key value" lines compiled by cdbmap_compile into FILE.cdb with an atomic
 * rename, so a lookup never sees a half-written table.  Keys are stored and
 * looked up in lower case when the table is case-insensitive (the default
 * for mail tables).  A cdbmap re-opens its file when it changed on disk
 * (checked at most once a second), so rebuilding a table needs no restart.
 */
#ifndef TERN_CDBMAP_H
#define TERN_CDBMAP_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct cdbmap;

/* Open path (the .cdb file).  NULL with errno set on failure. */
struct cdbmap *cdbmap_open(const char *path);
void cdbmap_close(struct cdbmap *m);
/* Open a table named as in tern.conf: "FILE" and "FILE.cdb" both open
 * FILE.cdb (the admin names the source text; makemap/newaliases write
 * the .cdb beside it).  NULL with errno set on failure. */
struct cdbmap *cdbmap_open_table(const char *name);

/* Look key up (lower-cased first unless the key is used verbatim).
 * Returns 1 and the value in *value (replaced), 0 when absent, -1 on error
 * (I/O error, corrupt table, value longer than value->max). */
int cdbmap_lookup(struct cdbmap *m, const char *key, struct buf *value);

/*
 * Compile the text table at src into dst (normally src + ".cdb"): lines of
 * "key whitespace value", '#' comments, blank lines ignored; a line starting
 * with whitespace continues the previous value.  Keys are lower-cased.
 * Duplicate keys are an error.  Writes dst.tmp, fsyncs, renames.  On error
 * returns -1 and writes "src:line: reason" to err.
 */
int cdbmap_compile(const char *src, const char *dst, char *err, size_t errsize);

#endif
