// fuzz-sources: send/send_dns.c send/send_self.c
/*
 * libFuzzer target for send's DNS reply parsers: the same bytes as an MX
 * answer, an A and an AAAA answer, and for the CNAME finder.  Any input
 * must give a count or -1, never a crash, a hang or an out-of-bounds read
 * (run under ASan/UBSan by tests/fuzz/run.sh).  The results are checked
 * for the parsers' own promises: counts within max, MX sorted by
 * preference, host names NUL-terminated within their buffers.
 */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../send/send.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct send_mx mx[SEND_MAX_MX];
	struct sockaddr_storage sa[8];
	char cname[SEND_HOST_MAX];
	int null_mx = 0;

	int n = send_dns_parse_mx(data, size, mx, SEND_MAX_MX, &null_mx);
	if (n > SEND_MAX_MX)
		abort();
	for (int i = 1; i < n; i++)
		if (mx[i - 1].pref > mx[i].pref || memchr(mx[i].name, '\0', sizeof(mx[i].name)) == NULL)
			abort();
	if (n > 1)
		send_dns_shuffle(mx, (size_t)n);
	n = send_dns_parse_addrs(data, size, ns_t_a, 25, sa, 8, cname, sizeof(cname));
	if (n > 8 || memchr(cname, '\0', sizeof(cname)) == NULL)
		abort();
	n = send_dns_parse_addrs(data, size, ns_t_aaaa, 25, sa, 8, cname, sizeof(cname));
	if (n > 8)
		abort();
	(void)send_dns_parse_cname(data, size, cname, sizeof(cname));
	return 0;
}
