/*
 * cidr — matching client addresses against network lists (mynetworks).
 *
 * A list is whitespace/comma separated entries: "127.0.0.0/8", "10.1.2.3",
 * "[::1]/128", "::1/128", "2001:db8::/32".  Host bits set in an entry are an
 * error (as in Postfix: 10.1.2.3/8 is almost certainly a typo).  IPv4-mapped
 * IPv6 client addresses (::ffff:1.2.3.4) match IPv4 entries.
 */
#ifndef TERN_CIDR_H
#define TERN_CIDR_H

#include <stddef.h>

struct cidr_list;

/* Parse list; NULL on error with the bad entry described in err. */
struct cidr_list *cidr_list_parse(const char *list, char *err, size_t errsize);
void cidr_list_free(struct cidr_list *l);
/* 1 if the textual address ip ("1.2.3.4", "::1", "::ffff:1.2.3.4") is in the list. */
int cidr_list_match(const struct cidr_list *l, const char *ip);

#endif
