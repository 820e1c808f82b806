/*
 * strutil — small string helpers shared by config users and parsers.
 */
#ifndef TERN_STRUTIL_H
#define TERN_STRUTIL_H

#include <stddef.h>

/*
 * Next token of a comma/whitespace separated list.  *p is advanced past the
 * token.  Returns 1 with the token in tok[toksize], 0 at the end of the list,
 * -1 when a token does not fit (it is skipped; the caller reports the error).
 */
int list_next(const char **p, char *tok, size_t toksize);

/* 1 if domain equals (case-insensitively) an entry of the list; an entry
 * ".example.com" matches every subdomain of example.com. */
int list_has_domain(const char *list, const char *domain);

/* Lower-case ASCII in place; returns s. */
char *str_lower(char *s);

/* Parse a decimal unsigned number that must fill all of s; 0 or -1 (empty,
 * junk, overflow past max). */
int parse_ull(const char *s, unsigned long long max, unsigned long long *out);

#endif
