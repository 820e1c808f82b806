/*
 * addr — RFC 5321 paths and mailboxes.
 *
 * addr_parse_path reads the path of a MAIL FROM/RCPT TO command:
 *   "<" [ A-d-l ":" ] Mailbox ">"   (RFC 5321 4.1.2), or "<>" when allowed.
 * Source routes (@a,@b:) are accepted and stripped.  The local part is a
 * Dot-string or a Quoted-string; the domain a dotted domain name or an
 * address literal ([1.2.3.4], [IPv6:...]).  Limits of RFC 5321 4.5.3.1:
 * local part 64 octets, domain 255, path 256.  UTF-8 (bytes >= 0x80) is
 * accepted in the local part and domain only with ADDR_UTF8 (SMTPUTF8).
 * Control characters, NUL, CR and LF are never accepted anywhere, so a
 * parsed address can be written into a queue file or a header as it is.
 *
 * The mailbox is returned in canonical form: quoted local parts that do not
 * need quotes are unquoted, needless backslashes removed, the domain kept as
 * given (callers compare domains case-insensitively).
 */
#ifndef TERN_ADDR_H
#define TERN_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256
/* Room for any canonical mailbox: quoting can add at most 2 + escapes. */
#define ADDR_SIZE 512

enum addr_flags {
	ADDR_ALLOW_NULL = 1,  /* "<>" accepted (MAIL FROM) */
	ADDR_UTF8 = 2,        /* UTF-8 allowed (SMTPUTF8 was given) */
	ADDR_NO_BRACKETS = 4, /* also accept a bare mailbox without < > (lenient clients, sendmail) */
	ADDR_ALLOW_NO_DOMAIN = 8 /* accept a bare local part ("postmaster", sendmail recipients) */
};

enum addr_error {
	ADDR_OK = 0,
	ADDR_ERR_SYNTAX,       /* malformed path */
	ADDR_ERR_LOCAL_TOO_LONG,
	ADDR_ERR_DOMAIN_TOO_LONG,
	ADDR_ERR_PATH_TOO_LONG,
	ADDR_ERR_NULL_NOT_ALLOWED,
	ADDR_ERR_EMPTY_DOMAIN, /* "u@" */
	ADDR_ERR_BAD_DOMAIN,   /* bad label or address literal */
	ADDR_ERR_UTF8,         /* 8-bit without ADDR_UTF8 */
	ADDR_ERR_CONTROL       /* NUL, CR, LF or other control character */
};

struct addr {
	char mailbox[ADDR_SIZE]; /* canonical "local@domain", "" for <> */
	char local[ADDR_SIZE];   /* canonical local part (quoted when it must be) */
	char domain[ADDR_DOMAIN_MAX + 1]; /* "" for <> or a bare local part */
	int is_null;
};

/*
 * Parse the path at s.  On success returns ADDR_OK, fills *a and sets *end
 * to the first character after the closing '>' (the ESMTP parameters follow
 * there).  On failure returns the error and *a is unspecified.
 */
enum addr_error addr_parse_path(const char *s, int flags, struct addr *a, const char **end);

/* Parse a whole string as a mailbox (no brackets expected, but tolerated). */
enum addr_error addr_parse_mailbox(const char *s, int flags, struct addr *a);

/* Human-readable reason for an error ("local part too long"). */
const char *addr_strerror(enum addr_error e);

/* Case-insensitive ASCII comparison of two domains ("Example.COM" == "example.com"),
 * ignoring one trailing dot on either. */
int addr_domain_eq(const char *a, const char *b);

/* Split a local part at the first recipient delimiter character (any char of
 * delims) into user and extension; returns 1 when split, 0 when there was no
 * extension (ext = "").  A quoted local part is split unquoted when its user
 * part needs no quotes ("joe+a b" → joe, a b), else not split.  user/ext
 * buffers must be ADDR_SIZE. */
int addr_split_extension(const char *local, const char *delims, char *user, char *ext);

#endif
