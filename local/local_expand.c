/*
 * local_expand — aliases, .forward and :include: expansion of one recipient.
 *
 * For a local address (user[+ext][@domain]), in this order:
 *   1. a "\user" target, or a name expanding to itself, is the user's own
 *      mailbox: no more aliasing, no .forward;
 *   2. the aliases table (the whole local part, then without extension):
 *      each target is expanded in turn; when "owner-NAME" exists too, mail
 *      expanded from NAME gets owner-NAME@DOMAIN as its envelope sender;
 *   3. the user's .forward (forward_path, read as the user, ignored with a
 *      log line when unsafe), whose targets are expanded the same way;
 *   4. the user's mailbox (local_resolve).
 * Targets: addresses (remote ones are collected and queued anew by
 * local_requeue), |command and /file (run as default_privs for the aliases
 * file, as the user for a .forward, as the includer for :include:; allowed
 * by allow_mail_to_commands / allow_mail_to_files), :include:/path (read
 * with the same identity).
 *
 * Loops: a name met again on the current expansion path is an alias cycle
 * (5.4.6); nesting deeper than LOCAL_EXPAND_DEPTH is one too; a leaf reached
 * twice is delivered once; a Delivered-To: header naming the recipient or
 * a leaf is a loop (5.4.6).  At most LOCAL_EXPAND_MAX leaves.
 *
 * The original recipient's result is the worst of its leaves' (temp over
 * perm over ok), so a retry re-delivers every leaf (as Postfix does); each
 * leaf logs its own line with orig_to=.
 *
 * Public: local_expand_deliver.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "conf.h"
#include "local.h"
#include "localrcpt.h"
#include "log.h"
#include "queueid.h"
#include "resolve.h"
#include "strutil.h"

enum origin { ORIG_ALIAS, ORIG_FORWARD, ORIG_INCLUDE };
static const char *const origin_name[] = { "alias", "forward", "include" };

struct xctx {
	const struct deliver_request *r;
	struct local_msg *msg;
	struct deliver_rcpt *rc; /* the original recipient: gets the overall result */
	char domain[ADDR_SIZE];  /* for unqualified targets */
	char chain[LOCAL_EXPAND_DEPTH + 1][ALIAS_NAME_MAX];
	int depth;
	struct buf done;   /* NUL-separated keys of leaves already delivered */
	struct buf remote; /* "sender\0address\0" pairs */
	size_t nleaves;
	int have;          /* a result was aggregated */
};

/* Fold a leaf's result into the original recipient's. */
static void aggregate(struct xctx *x, const struct deliver_rcpt *leaf)
{
	static const int rank[] = { [DELIVER_OK] = 0, [DELIVER_RELAYED] = 0, [DELIVER_PERM] = 1, [DELIVER_TEMP] = 2 };
	if (!x->have || rank[leaf->status] > rank[x->rc->status])
		deliver_set_result(x->rc, leaf->status, leaf->dsn, "%s", leaf->text);
	x->have = 1;
}

static void fail(struct xctx *x, enum deliver_status st, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void fail(struct xctx *x, enum deliver_status st, const char *dsn, const char *fmt, ...)
{
	struct deliver_rcpt leaf = *x->rc;
	char text[DELIVER_MAX_TEXT];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	deliver_set_result(&leaf, st, dsn, "%s", text);
	local_log_result(x->r, x->rc->address, NULL, &leaf);
	aggregate(x, &leaf);
}

/* 1 when word is in the comma/blank separated list. */
static int list_has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; *p;) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == wl && strncasecmp(p, word, n) == 0)
			return 1;
		p += n;
	}
	return 0;
}

/* Deliver one leaf unless already done. */
static void deliver_leaf(struct xctx *x, struct local_dest *d, const char *leaf_addr, const char *sender)
{
	char key[PATH_MAX + 4];
	int n = snprintf(key, sizeof(key), "%d:%s", (int)d->kind, d->kind == LOCAL_DEST_MAILDIR ||
						      d->kind == LOCAL_DEST_MBOX ? d->path : d->path);
	if (n > 0 && (size_t)n < sizeof(key)) {
		for (const char *p = x->done.data; p < x->done.data + x->done.len; p += strlen(p) + 1)
			if (strcmp(p, key) == 0)
				return; /* the same mailbox, file or command: once */
		(void)buf_append(&x->done, key, (size_t)n + 1);
	}
	if (++x->nleaves > LOCAL_EXPAND_MAX) {
		fail(x, DELIVER_PERM, "5.4.6", "too many destinations for %s", x->rc->address);
		return;
	}
	struct deliver_rcpt leaf = *x->rc;
	str_copy(leaf.address, sizeof(leaf.address), leaf_addr);
	d->orcpt = x->rc->orcpt;
	local_deliver_dest(d, x->msg, sender, &leaf);
	local_log_result(x->r, leaf_addr, x->rc->address, &leaf);
	aggregate(x, &leaf);
}

static void expand_address(struct xctx *x, const char *addr, const char *sender, const char *self);

/* Deliver a |command or /file target as id. */
static void command_or_file(struct xctx *x, const char *t, enum origin o, const struct local_ident *id,
			    const char *sender, const char *self)
{
	int pipe = t[0] == '|';
	const char *allow = pipe ? cf.allow_mail_to_commands : cf.allow_mail_to_files;
	if (!list_has_word(allow, origin_name[o])) {
		log_warning("%s: %s target in %s refused (%s)", x->r->queue_id, pipe ? "command" : "file",
			    origin_name[o], pipe ? "allow_mail_to_commands" : "allow_mail_to_files");
		fail(x, DELIVER_PERM, "5.7.1", "mail to %s is restricted: %s", pipe ? "command" : "file", t);
		return;
	}
	struct local_dest d;
	memset(&d, 0, sizeof(d));
	d.kind = pipe ? LOCAL_DEST_PIPE : LOCAL_DEST_FILE;
	if (str_copy(d.path, sizeof(d.path), pipe ? t + 1 : t) < 0) {
		fail(x, DELIVER_PERM, "5.3.0", "target too long: %s", t);
		return;
	}
	local_dest_set_ident(&d, id);
	str_copy(d.user, sizeof(d.user), self ? self : "");
	/* EXTENSION is the original recipient's, as Postfix passes it. */
	char local[ADDR_SIZE], u[ADDR_SIZE];
	const char *at = strrchr(x->rc->address, '@');
	size_t ln = at ? (size_t)(at - x->rc->address) : strlen(x->rc->address);
	if (ln < sizeof(local) && *cf.recipient_delimiter) {
		memcpy(local, x->rc->address, ln);
		local[ln] = '\0';
		if (!addr_split_extension(local, cf.recipient_delimiter, u, d.ext))
			d.ext[0] = '\0';
	}
	str_copy(d.domain, sizeof(d.domain), x->domain);
	char leaf[ADDR_SIZE];
	if (snprintf(leaf, sizeof(leaf), "%s@%s", self ? self : "", x->domain) >= (int)sizeof(leaf))
		str_copy(leaf, sizeof(leaf), x->rc->address);
	deliver_leaf(x, &d, *x->domain ? leaf : x->rc->address, sender);
}

/* Expand a '\n'-terminated target list. */
static void expand_list(struct xctx *x, const char *list, enum origin o, const struct local_ident *id,
			const char *sender, const char *self);

static void include_file(struct xctx *x, const char *t, const struct local_ident *id, const char *sender,
			 const char *self)
{
	const char *path = t + sizeof(":include:") - 1;
	struct buf text, list;
	char why[300], err[300];
	struct deliver_rcpt tmp = *x->rc;

	buf_init(&text, ALIAS_LIST_FILE_MAX);
	buf_init(&list, ALIAS_LIST_FILE_MAX);
	int r = local_read_file_as(id, path, &text, why, sizeof(why), &tmp);
	if (r < 0) {
		local_log_result(x->r, x->rc->address, NULL, &tmp);
		aggregate(x, &tmp);
	} else if (r == 0) {
		fail(x, DELIVER_TEMP, "4.3.0", "cannot use include file %s", path);
	} else if (alias_parse_list(text.data, text.len, &list, err, sizeof(err)) < 0) {
		log_warning("%s: %s", path, err);
		fail(x, DELIVER_TEMP, "4.3.0", "syntax error in include file %s", path);
	} else {
		expand_list(x, list.data, ORIG_INCLUDE, id, sender, self);
	}
	buf_free(&text);
	buf_free(&list);
}

static void expand_list(struct xctx *x, const char *list, enum origin o, const struct local_ident *id,
			const char *sender, const char *self)
{
	char t[ALIAS_TARGET_MAX + 1];
	for (const char *p = list; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		p += n + (nl != NULL);
		if (n == 0 || n >= sizeof(t))
			continue;
		memcpy(t, p - n - (nl != NULL), n);
		t[n] = '\0';
		switch (alias_kind(t)) {
		case ALIAS_ADDR:
			expand_address(x, t, sender, self);
			break;
		case ALIAS_PIPE:
		case ALIAS_FILE:
			command_or_file(x, t, o, id, sender, self);
			break;
		case ALIAS_INCLUDE:
			if (x->depth >= LOCAL_EXPAND_DEPTH)
				fail(x, DELIVER_PERM, "5.4.6", "include nesting too deep at %s", t);
			else {
				x->depth++;
				x->chain[x->depth][0] = '\0';
				include_file(x, t, id, sender, self);
				x->depth--;
			}
			break;
		}
	}
}

static void add_remote(struct xctx *x, const char *sender, const char *addr)
{
	if (buf_append(&x->remote, sender, strlen(sender) + 1) < 0 ||
	    buf_append(&x->remote, addr, strlen(addr) + 1) < 0)
		fail(x, DELIVER_PERM, "5.4.6", "too many forwarding addresses (at %s)", addr);
}

/* 1 when name is on the current expansion path. */
static int on_chain(const struct xctx *x, const char *name)
{
	for (int i = 1; i <= x->depth; i++)
		if (strcmp(x->chain[i], name) == 0)
			return 1;
	return 0;
}

/* Aliases table: expand name's entry.  1 done, 0 not an alias. */
static int expand_alias(struct xctx *x, const char *name, const char *sender)
{
	struct buf val;
	int r;
	buf_init(&val, ALIAS_VALUE_MAX);
	r = localrcpt_alias_lookup(name, &val);
	if (r == 0) {
		buf_free(&val);
		return 0;
	}
	if (r < 0) {
		buf_free(&val);
		fail(x, DELIVER_TEMP, "4.3.0", "aliases table unavailable (%s)", cf.alias_maps);
		return 1;
	}
	/* owner-NAME takes the bounces of NAME's members. */
	char owner[ALIAS_NAME_MAX + 8], owner_addr[ADDR_SIZE];
	const char *s = sender;
	struct buf ov;
	buf_init(&ov, ALIAS_VALUE_MAX);
	if (strncmp(name, "owner-", 6) != 0 && snprintf(owner, sizeof(owner), "owner-%s", name) < (int)sizeof(owner) &&
	    localrcpt_alias_lookup(owner, &ov) > 0 &&
	    snprintf(owner_addr, sizeof(owner_addr), "%s@%s", owner, x->domain) < (int)sizeof(owner_addr))
		s = owner_addr;
	buf_free(&ov);

	struct local_ident id;
	struct deliver_rcpt tmp = *x->rc;
	int have_id = local_ident_user(NULL, &id, &tmp) == 0;
	if (!have_id) /* targets that need default_privs will fail below */
		memset(&id, 0, sizeof(id));
	x->depth++;
	str_copy(x->chain[x->depth], sizeof(x->chain[0]), name);
	if (!have_id && (strchr(val.data, '|') || strchr(val.data, '/'))) {
		local_log_result(x->r, x->rc->address, NULL, &tmp);
		aggregate(x, &tmp);
	} else {
		expand_list(x, val.data, ORIG_ALIAS, &id, s, name);
	}
	x->depth--;
	buf_free(&val);
	return 1;
}

/* The user's .forward.  1 done (expanded or failed), 0 none: use the mailbox. */
static int expand_forward(struct xctx *x, const struct local_pw *pw, const char *name, const char *sender)
{
	struct local_ident id;
	struct deliver_rcpt tmp = *x->rc;
	char path[PATH_MAX], why[300], err[300];
	struct buf text, list;

	if (!*cf.forward_path || pw->uid == 0 || *cf.local_mailbox_base)
		return 0; /* root's .forward is never read: nothing runs as root */
	if (local_ident_user(pw->name, &id, &tmp) < 0)
		return 0; /* the mailbox resolution reports the same problem */
	int n = snprintf(path, sizeof(path), "%s/%s", strcmp(id.home, "/") ? id.home : "", cf.forward_path);
	if (n < 0 || (size_t)n >= sizeof(path))
		return 0;
	buf_init(&text, ALIAS_LIST_FILE_MAX);
	buf_init(&list, ALIAS_LIST_FILE_MAX);
	int r = local_read_file_as(&id, path, &text, why, sizeof(why), &tmp), done = 1;
	if (r < 0) {
		local_log_result(x->r, x->rc->address, NULL, &tmp);
		aggregate(x, &tmp);
	} else if (r == 0) {
		if (*why)
			log_warning("%s: %s: ignored %s (%s)", x->r->queue_id, x->rc->address, path, why);
		done = 0;
	} else if (alias_parse_list(text.data, text.len, &list, err, sizeof(err)) < 0) {
		log_warning("%s: %s: ignored %s (%s)", x->r->queue_id, x->rc->address, path, err);
		done = 0;
	} else if (list.len == 0) {
		done = 0;
	} else {
		x->depth++;
		str_copy(x->chain[x->depth], sizeof(x->chain[0]), name);
		expand_list(x, list.data, ORIG_FORWARD, &id, sender, name);
		x->depth--;
	}
	buf_free(&text);
	buf_free(&list);
	return done;
}

static void mailbox(struct xctx *x, const char *full, const char *user, const char *sender, const char *name,
		    int noforward)
{
	struct local_dest d;
	struct deliver_rcpt tmp = *x->rc;

	if (*cf.local_mailbox_base || (strchr(full, '@') && *cf.virtual_mailbox_domains &&
				       list_has_domain(cf.virtual_mailbox_domains, strrchr(full, '@') + 1))) {
		if (local_resolve(full, &d, &tmp) == 0)
			deliver_leaf(x, &d, full, sender);
		else {
			local_log_result(x->r, full, x->rc->address, &tmp);
			aggregate(x, &tmp);
		}
		return;
	}
	const char *lookup = user;
	struct local_pw pw;
	if (strcmp(user, "postmaster") == 0 || strcmp(user, "mailer-daemon") == 0)
		lookup = local_pw_lookup(user, &pw) == 1 ? user : "root"; /* RFC 5321 4.5.1: they must resolve */
	if (local_pw_lookup(lookup, &pw) != 1) {
		if (local_resolve(full, &d, &tmp) < 0) { /* sets unknown/temp the usual way */
			local_log_result(x->r, full, x->rc->address, &tmp);
			aggregate(x, &tmp);
		}
		return;
	}
	if (!noforward && expand_forward(x, &pw, name, sender))
		return;
	memset(&d, 0, sizeof(d));
	str_copy(d.user, sizeof(d.user), user);
	str_copy(d.domain, sizeof(d.domain), x->domain);
	if (local_resolve_user(full, &pw, &d, &tmp) == 0)
		deliver_leaf(x, &d, full, sender);
	else {
		local_log_result(x->r, full, x->rc->address, &tmp);
		aggregate(x, &tmp);
	}
}

static void expand_address(struct xctx *x, const char *addr, const char *sender, const char *self)
{
	int noalias = addr[0] == '\\';
	char full[ADDR_SIZE], local[ADDR_SIZE], user[ADDR_SIZE], ext[ADDR_SIZE];
	const char *a = addr + noalias;
	const char *at = strrchr(a, '@');

	/* The queue manager already routed the recipient itself here; only
	 * targets found by the expansion may lead elsewhere. */
	if (at && x->depth > 0) {
		struct route rt;
		if (resolve_address(a, &rt) < 0) {
			fail(x, DELIVER_TEMP, "4.3.0", "cannot route %s", a);
			return;
		}
		if (rt.transport != TR_LOCAL) {
			add_remote(x, sender, a);
			return;
		}
	}
	size_t ln = at ? (size_t)(at - a) : strlen(a);
	if (ln >= sizeof(local) ||
	    snprintf(full, sizeof(full), "%.*s@%s", (int)ln, a, at ? at + 1 : x->domain) >= (int)sizeof(full)) {
		fail(x, DELIVER_PERM, "5.1.3", "bad address %s", a);
		return;
	}
	if (!at && !*x->domain)
		full[ln] = '\0';
	memcpy(local, a, ln);
	local[ln] = '\0';
	str_lower(local);
	if (!*cf.recipient_delimiter || !addr_split_extension(local, cf.recipient_delimiter, user, ext))
		str_copy(user, sizeof(user), local);
	str_lower(user);
	if (self && (strcmp(local, self) == 0 || strcmp(user, self) == 0))
		noalias = 1; /* "bob: bob, x" and "\bob" in bob's .forward: bob's mailbox */
	if (at && *cf.virtual_mailbox_domains && list_has_domain(cf.virtual_mailbox_domains, at + 1)) {
		mailbox(x, full, user, sender, local, 1); /* virtual mailboxes have no aliases */
		return;
	}
	if (!noalias) {
		if (x->depth >= LOCAL_EXPAND_DEPTH) {
			fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop: alias nesting too deep at %s", local);
			return;
		}
		if (on_chain(x, local) || on_chain(x, user)) {
			log_warning("%s: alias cycle through %s for %s", x->r->queue_id, local, x->rc->address);
			fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop: alias cycle through %s", local);
			return;
		}
		if (expand_alias(x, local, sender))
			return;
		if (strcmp(user, local) != 0 && expand_alias(x, user, sender))
			return;
	}
	mailbox(x, full, user, sender, user, noalias);
}

void local_expand_deliver(const struct deliver_request *r, struct local_msg *msg, struct deliver_rcpt *rc)
{
	struct xctx *x = calloc(1, sizeof(*x));
	if (x == NULL)
		log_fatal("out of memory");
	x->r = r;
	x->msg = msg;
	x->rc = rc;
	const char *at = strrchr(rc->address, '@');
	str_copy(x->domain, sizeof(x->domain), at ? at + 1 : (cf.myhostname ? cf.myhostname : ""));
	buf_init(&x->done, (size_t)LOCAL_EXPAND_MAX * (PATH_MAX / 8));
	buf_init(&x->remote, (size_t)LOCAL_EXPAND_MAX * 2 * ADDR_SIZE);

	if (msg->too_many_delivered_to || local_msg_has_delivered_to(msg, rc->address)) {
		fail(x, DELIVER_PERM, "5.4.6", "mail forwarding loop for %s", rc->address);
	} else {
		expand_address(x, rc->address, r->sender, NULL);
	}

	/* Queue the remote addresses, one message per envelope sender. */
	const char *pair[LOCAL_EXPAND_MAX * 2];
	size_t npair = 0;
	for (const char *p = x->remote.data; p < x->remote.data + x->remote.len && npair < LOCAL_EXPAND_MAX;) {
		pair[2 * npair] = p;
		p += strlen(p) + 1;
		pair[2 * npair + 1] = p;
		p += strlen(p) + 1;
		npair++;
	}
	char used[LOCAL_EXPAND_MAX];
	memset(used, 0, sizeof(used));
	for (size_t i = 0; i < npair; i++) {
		if (used[i])
			continue;
		struct buf list;
		buf_init(&list, x->remote.len + 2);
		for (size_t j = i; j < npair; j++) {
			if (used[j] || strcmp(pair[2 * j], pair[2 * i]) != 0)
				continue;
			used[j] = 1;
			(void)buf_puts(&list, pair[2 * j + 1]);
			(void)buf_putc(&list, '\n');
		}
		char qid[QUEUEID_SIZE], why[300];
		struct deliver_rcpt leaf = *rc;
		if (local_requeue(r, msg, pair[2 * i], rc->address, list.data, qid, why, sizeof(why)) == 0)
			deliver_set_result(&leaf, DELIVER_OK, "2.0.0", "forwarded as %s", qid);
		else
			deliver_set_result(&leaf, DELIVER_TEMP, "4.3.0", "%s", why);
		for (const char *q = list.data; *q;) {
			const char *nl = strchr(q, '\n');
			char one[ADDR_SIZE];
			snprintf(one, sizeof(one), "%.*s", (int)(nl - q), q);
			local_log_result(r, one, rc->address, &leaf);
			q = nl + 1;
		}
		aggregate(x, &leaf);
		buf_free(&list);
	}
	if (!x->have)
		deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered (every destination was already served)");
	buf_free(&x->done);
	buf_free(&x->remote);
	free(x);
}
