/*
 * qmgr_expand — virtual alias expansion at delivery time.
 *
 * A pending original recipient that virtual_alias_maps expands is replaced
 * by its results: they are appended to the queue file as A records and
 * made durable first, and only then is the original marked X (expanded).
 * A crash in between leaves a pending original that already has children;
 * the next pass sees them (has_children) and only marks it, so nothing is
 * expanded twice.  Results are final addresses: they are routed, never
 * expanded again (an address that maps to itself stays as it is).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "qmgr.h"

/* RFC 3461 xtext of "rfc822;ADDRESS", for the children's ORCPT. */
static void orcpt_of(const char *address, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	const unsigned char *p;

	o = (size_t)snprintf(out, size, "rfc822;");
	for (p = (const unsigned char *)address; *p && o + 4 < size; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			out[o++] = '+';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = 0;
}

int expand_rcpt(struct qmsg *m, size_t i, const char *has_children)
{
	struct valias_list vl;
	char orcpt[QF_ORCPT_MAX];
	char *orig;
	enum valias_result vr;
	size_t k;
	int rc = 1;

	if (m->env.rcpt[i].parent >= 0)
		return 0;
	if (has_children && has_children[i]) {
		/* Expanded before a crash: the results are already queued. */
		if (qf_mark(m->fd, &m->env.rcpt[i], QF_EXPANDED) < 0)
			log_warning("%s: mark expanded: %s", m->qid, strerror(errno));
		return 1;
	}
	vr = resolve_virtual(m->env.rcpt[i].address, &vl);
	switch (vr) {
	case VALIAS_NONE:
		return 0;
	case VALIAS_TEMP:
		snprintf(m->last_reason, sizeof(m->last_reason), "virtual_alias_maps lookup failed");
		log_rcpt(m, i, "none", "4.3.0", "deferred", m->last_reason);
		return -1;
	case VALIAS_LOOP:
		log_rcpt(m, i, "none", "5.4.6", "bounced", "mail forwarding loop or limit in virtual_alias_maps");
		msg_record_failure(m, i, "5.4.6", "", "mail forwarding loop or limit in virtual_alias_maps");
		return 1;
	case VALIAS_EXPANDED:
		break;
	}
	if (m->env.rcpt[i].orcpt)
		snprintf(orcpt, sizeof(orcpt), "%s", m->env.rcpt[i].orcpt);
	else
		orcpt_of(m->env.rcpt[i].address, orcpt, sizeof(orcpt));
	if (qf_add_children(m->fd, &m->env, i, (const char *const *)vl.addr, vl.n, orcpt) < 0) {
		snprintf(m->last_reason, sizeof(m->last_reason), "cannot record the virtual alias expansion: %s",
			 strerror(errno));
		log_rcpt(m, i, "none", "4.3.0", "deferred", m->last_reason);
		valias_list_free(&vl);
		return -1;
	}
	/* m->env.rcpt may have moved: index only from here on. */
	orig = m->env.rcpt[i].address;
	for (k = 0; k < vl.n; k++)
		log_info("%s: to=<%s>, orig_to=<%s>, status=expanded (virtual_alias_maps)", m->qid, vl.addr[k], orig);
	if (qf_mark(m->fd, &m->env.rcpt[i], QF_EXPANDED) < 0 || fdatasync(m->fd) < 0)
		log_warning("%s: mark expanded: %s", m->qid, strerror(errno));
	valias_list_free(&vl);
	return rc;
}
