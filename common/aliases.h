/*
 * aliases — the aliases(5) file: parser, compiler to cdb, and value format.
 *
 * Source syntax (sendmail/Postfix compatible):
 *
 *   # comment                       a line whose first byte is '#'
 *   name: target, target, ...       one entry; name is a local part (no '@')
 *       target, target              a line starting with blanks continues it
 *                                   (the line break separates like a comma)
 *
 * A target is one of
 *   user, user@domain, \user        an address (\user: no further aliasing)
 *   /path/file                      append to a file (mbox format)
 *   |command                        pipe to /bin/sh -c command
 *   :include:/path                  more targets, read from a file
 * and may be written in double quotes ("|cmd arg, more") so that commas and
 * blanks are part of it; inside quotes a backslash escapes the next byte.
 * Outside quotes a target ends at a comma; blanks around it are dropped.
 * An address with an inner blank or any control byte is an error.
 *
 * Errors (syntax, empty target list, duplicate name, overlong line or
 * entry) are reported as "FILE:LINE: reason" and the whole file is refused.
 *
 * The compiled value (the cdb value of key "name", lower-cased): the
 * entry's targets in order, each in its canonical form (quotes removed)
 * followed by one '\n'.  A target never contains '\n' or NUL.  :include:
 * files and .forward files use the same target syntax, with newlines
 * separating targets like commas (alias_parse_list).
 *
 * Public: aliases_parse, alias_parse_list, aliases_compile, alias_kind.
 * Nothing here is fatal; nothing here logs.
 */
#ifndef TERN_ALIASES_H
#define TERN_ALIASES_H

#include <stddef.h>

#include "buf.h"

#define ALIAS_NAME_MAX 256      /* longest alias name */
#define ALIAS_TARGET_MAX 1024   /* longest single target */
#define ALIAS_VALUE_MAX 65536   /* longest compiled entry (cdbmap's value limit) */
#define ALIAS_FILE_MAX (64L << 20) /* largest aliases source file */
#define ALIAS_LIST_FILE_MAX (1L << 20) /* largest :include: or .forward file */

enum alias_kind { ALIAS_ADDR, ALIAS_FILE, ALIAS_PIPE, ALIAS_INCLUDE };

/* Called once per entry: name lower-cased, value in the compiled format.
 * Return 0 to go on, -1 to stop (the callback then writes err itself). */
typedef int (*alias_entry_fn)(void *ctx, const char *name, const char *value, size_t vlen, int line);

/*
 * Parse the aliases text [text, text+len) named fname (for messages).
 * Calls fn for each entry.  0, or -1 with "fname:line: reason" in err.
 * Duplicate names are not detected here (aliases_compile does).
 */
int aliases_parse(const char *text, size_t len, const char *fname, alias_entry_fn fn, void *ctx, char *err,
		  size_t errsize);

/*
 * Parse a target list: targets separated by commas or newlines, '#'
 * comment lines allowed when newlines separate (include/.forward files).
 * Appends each canonical target plus '\n' to out.  0, or -1 with a reason
 * in err (out may hold a prefix then).  An empty list is not an error.
 */
int alias_parse_list(const char *s, size_t n, struct buf *out, char *err, size_t errsize);

/* Kind of a canonical target. */
enum alias_kind alias_kind(const char *target);

/*
 * Compile the aliases file src into dst (normally src + ".cdb"): writes
 * dst.tmp, fsyncs it, renames it over dst and fsyncs the directory, so a
 * reader sees the old table or the new one, never a mix.  0, or -1 with
 * "src:line: reason" (or "src: reason") in err and dst untouched.  *count,
 * when non-NULL, receives the number of entries.
 */
int aliases_compile(const char *src, const char *dst, size_t *count, char *err, size_t errsize);

#endif
