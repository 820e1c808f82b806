/*
 * local_resolve — from a local recipient address to a mailbox destination.
 *
 * Two modes:
 *   - virtual/dev mode (local_mailbox_base set): USER of "user+ext@domain"
 *     (lower-cased, recipient_delimiter splits the extension) is delivered
 *     to BASE/USER/Maildir/ without any Unix account, as the daemon's own
 *     uid; when the daemon runs as root the delivery runs as mail_owner
 *     instead, unless mail_owner itself is root (the master's development
 *     mode started as root, where every process runs as root).
 *   - system mode: USER's passwd entry (local_pw_lookup: getpwnam through
 *     a cache of a few seconds); the mailbox is HOME/home_mailbox
 *     (Maildir when it ends in '/', else an mbox file there) or, with an
 *     empty home_mailbox, the mbox mail_spool_directory/USER.  The delivery
 *     runs as the user (with the spool's group when the spool directory is
 *     group-writable, as Debian's root:mail 2775 /var/mail is); root's own
 *     mailbox is refused (temp 4.7.0): alias root to a person.  A non-root
 *     agent (development) can only deliver to its own user.
 *   - virtual mailbox domains: virtual_mailbox_maps gives a path below
 *     virtual_mailbox_base, written as virtual_uid_maps/virtual_gid_maps.
 *
 * Aliases and .forward are expanded before (local_expand.c).
 *
 * Public: local_resolve, local_resolve_user, local_resolve_virtual_mailbox,
 * local_ident_user, local_dest_set_ident.  Results go into the recipient
 * (deliver_set_result); nothing here is fatal.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>
#include <sys/stat.h>

#include "conf.h"
#include "localrcpt.h"
#include "local.h"
#include "log.h"
#include "strutil.h"

/* Split address into lower-cased user and extension.  0 or -1 (result set). */
static int split_recipient(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	char local[ADDR_SIZE];
	const char *at = strrchr(address, '@');
	size_t n = at ? (size_t)(at - address) : strlen(address);

	if (n >= sizeof(local)) {
		deliver_set_result(rc, DELIVER_PERM, "5.1.1", "bad local part: too long");
		return -1;
	}
	memcpy(local, address, n);
	local[n] = '\0';
	const char *delims = cf.recipient_delimiter ? cf.recipient_delimiter : "";
	if (*delims == '\0' || !addr_split_extension(local, delims, d->user, d->ext)) {
		memcpy(d->user, local, n + 1);
		d->ext[0] = '\0';
	}
	str_lower(d->user);
	if (!localrcpt_name_ok(d->user)) {
		deliver_set_result(rc, DELIVER_PERM, "5.1.1", "bad local part in <%s>", address);
		return -1;
	}
	return 0;
}

/* Trailing slashes of a directory name do not count. */
static size_t dir_len(const char *dir)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return n;
}

static int resolve_virtual(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	const char *base = cf.local_mailbox_base;
	size_t blen = dir_len(base);
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s/Maildir/", (int)blen, base, d->user);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox path too long for <%s>", address);
		return -1;
	}
	d->kind = LOCAL_DEST_MAILDIR;
	d->root_len = blen;
	d->create_root = 1;
	if (geteuid() != 0)
		return 0; /* deliver as ourselves */

	/* A root agent writes virtual mailboxes as mail_owner.  Only when the
	 * master itself runs everything as root (development mode started as
	 * root: mail_owner is root) does the agent write as itself, into the
	 * configured base that no user controls. */
	const char *owner = cf.mail_owner ? cf.mail_owner : "";
	struct local_pw pw;
	int found = *owner ? local_pw_lookup(owner, &pw) : 0;
	if (found < 0) {
		int e = errno;
		log_warning("virtual mailbox owner \"%s\": lookup failed: %s", owner, strerror(e));
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox owner lookup failed: %s", strerror(e));
		return -1;
	}
	if (found == 0) {
		log_warning("virtual mailbox owner \"%s\" is unknown", owner);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox owner unknown (mail_owner = %s)", owner);
		return -1;
	}
	if (pw.uid == 0) {
		static int warned;
		if (!warned++)
			log_warning("mail_owner %s is root: development mailboxes under %s are written as root",
				    owner, base);
		return 0;
	}
	d->switch_user = 1;
	d->uid = pw.uid;
	d->gid = pw.gid;
	d->pw_name[0] = '\0'; /* no supplementary groups */
	return 0;
}

/* The passwd entry of user (through the cache), with the "unknown" vs
 * "lookup failed" distinction.  0, or -1 with rc set. */
static int lookup_user(const char *user, const char *address, struct local_pw *pw, struct deliver_rcpt *rc)
{
	int r = local_pw_lookup(user, pw);
	if (r < 0) {
		int e = errno;
		log_warning("getpwnam(%s): %s", user, strerror(e));
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "user lookup failed: %s", strerror(e));
	} else if (r == 0) {
		deliver_set_result(rc, DELIVER_PERM, "5.1.1", "<%s>: user unknown", address);
	}
	return r == 1 ? 0 : -1;
}

/* Fill id from pw (already looked up); is_default: pw is default_privs.
 * 0 or -1 with rc set. */
static int ident_from_pw(const struct local_pw *pw, int is_default, struct local_ident *id,
			 struct deliver_rcpt *rc)
{
	memset(id, 0, sizeof(*id));
	if (pw->uid == 0) {
		log_warning("refusing to run a delivery as root (user %s)", pw->name);
		deliver_set_result(rc, DELIVER_TEMP, "4.7.0", "deliveries never run as root");
		return -1;
	}
	if (geteuid() != 0) {
		/* Development: everything runs as ourselves; another user's
		 * commands or files would run with our rights, so refuse. */
		if (pw->uid != geteuid() && !is_default) {
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot deliver as another user when not root");
			return -1;
		}
		id->uid = geteuid();
		id->gid = getegid();
	} else {
		id->switch_user = 1;
		id->uid = pw->uid;
		id->gid = pw->gid;
		if (str_copy(id->pw_name, sizeof(id->pw_name), pw->name) < 0)
			id->pw_name[0] = '\0';
	}
	const char *home = pw->dir[0] == '/' ? pw->dir : "/";
	const char *shell = pw->shell[0] == '/' ? pw->shell : "/bin/sh";
	if (str_copy(id->home, sizeof(id->home), home) < 0 || str_copy(id->shell, sizeof(id->shell), shell) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "home directory path too long");
		return -1;
	}
	return 0;
}

int local_ident_user(const char *name, struct local_ident *id, struct deliver_rcpt *rc)
{
	const char *user = name ? name : cf.default_privs;
	struct local_pw pw;
	memset(id, 0, sizeof(*id));
	if (lookup_user(user, user, &pw, rc) < 0) {
		if (name == NULL) /* a configuration problem, not the recipient's */
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "default_privs user %s is unknown", user);
		return -1;
	}
	return ident_from_pw(&pw, name == NULL, id, rc);
}

void local_dest_set_ident(struct local_dest *d, const struct local_ident *id)
{
	d->switch_user = id->switch_user;
	d->uid = id->uid;
	d->gid = id->gid;
	memcpy(d->pw_name, id->pw_name, sizeof(d->pw_name));
	memcpy(d->home, id->home, sizeof(d->home));
	memcpy(d->shell, id->shell, sizeof(d->shell));
}

/* mbox in mail_spool_directory/USER: the user's uid, and the spool's group
 * when the spool is group-writable (so the user may create the mailbox and
 * its dotlock without any root write). */
static int resolve_spool(const char *address, const struct local_pw *pw, struct local_dest *d,
			 struct deliver_rcpt *rc)
{
	const char *spool = cf.mail_spool_directory;
	struct stat st;
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s", (int)dir_len(spool), spool, pw->name);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox path too long for <%s>", address);
		return -1;
	}
	if (stat(spool, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_warning("mail_spool_directory %s is not a directory", spool);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "mail spool directory unavailable");
		return -1;
	}
	if ((st.st_mode & S_IWGRP) && !(st.st_mode & S_IWOTH) && st.st_uid == 0 && geteuid() == 0)
		d->gid = st.st_gid;
	d->kind = LOCAL_DEST_MBOX;
	return 0;
}

int local_resolve_user(const char *address, const struct local_pw *pw, struct local_dest *d,
		       struct deliver_rcpt *rc)
{
	struct local_ident id;
	if (pw->uid == 0) {
		log_warning("refusing to deliver <%s> as root: alias root to a person", address);
		deliver_set_result(rc, DELIVER_TEMP, "4.7.0", "delivery to root's mailbox is refused");
		return -1;
	}
	if (ident_from_pw(pw, 0, &id, rc) < 0)
		return -1;
	local_dest_set_ident(d, &id);
	const char *hm = cf.home_mailbox ? cf.home_mailbox : "";
	size_t hlen = strlen(hm);
	if (hlen == 0)
		return resolve_spool(address, pw, d, rc);
	if (hm[0] == '/' || pw->dir[0] != '/') {
		log_warning("cannot deliver to <%s>: home_mailbox must be relative and the home absolute",
			    address);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "mailbox location misconfigured");
		return -1;
	}
	size_t blen = dir_len(pw->dir);
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s", (int)blen, pw->dir, hm);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox path too long for <%s>", address);
		return -1;
	}
	d->kind = hm[hlen - 1] == '/' ? LOCAL_DEST_MAILDIR : LOCAL_DEST_MBOX;
	d->root_len = blen;
	d->create_root = 0;
	return 0;
}

static int resolve_system(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	struct local_pw pw;
	if (lookup_user(d->user, address, &pw, rc) < 0)
		return -1;
	return local_resolve_user(address, &pw, d, rc);
}

/* "static:N" → N (not 0).  -1 when malformed. */
static long long static_id(const char *v)
{
	if (v == NULL || strncmp(v, "static:", 7) != 0 || v[7] < '1' || v[7] > '9')
		return -1;
	char *end;
	errno = 0;
	long long n = strtoll(v + 7, &end, 10);
	if (errno || *end || n <= 0 || n > 0x7fffffffLL)
		return -1;
	return n;
}

int local_resolve_virtual_mailbox(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	struct buf val;
	long long uid = static_id(cf.virtual_uid_maps), gid = static_id(cf.virtual_gid_maps);
	const char *base = cf.virtual_mailbox_base;

	if (uid < 0 || gid < 0 || *base != '/') {
		log_warning("virtual mailboxes need virtual_mailbox_base and virtual_uid_maps/virtual_gid_maps = static:N");
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "virtual mailboxes misconfigured");
		return -1;
	}
	buf_init(&val, PATH_MAX);
	int r = localrcpt_virtual_lookup(address, &val);
	if (r <= 0) {
		buf_free(&val);
		if (r < 0)
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "virtual mailbox table unavailable");
		else
			deliver_set_result(rc, DELIVER_PERM, "5.1.1", "<%s>: user unknown in virtual mailbox table",
					   address);
		return -1;
	}
	if (val.len == 0 || val.data[0] == '/' || strstr(val.data, "..") || memchr(val.data, '\0', val.len)) {
		log_warning("virtual_mailbox_maps: bad path for %s: %s", address, val.data);
		buf_free(&val);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "bad virtual mailbox path");
		return -1;
	}
	size_t blen = dir_len(base);
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s", (int)blen, base, val.data);
	int maildir = val.data[val.len - 1] == '/';
	buf_free(&val);
	if (n < 0 || (size_t)n >= sizeof(d->path)) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox path too long for <%s>", address);
		return -1;
	}
	d->kind = maildir ? LOCAL_DEST_MAILDIR : LOCAL_DEST_MBOX;
	d->root_len = blen;
	d->create_root = 0;
	d->uid = (uid_t)uid;
	d->gid = (gid_t)gid;
	d->pw_name[0] = '\0';
	d->switch_user = geteuid() == 0;
	if (!d->switch_user && (d->uid != geteuid())) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot deliver as another user when not root");
		return -1;
	}
	str_copy(d->home, sizeof(d->home), "/");
	str_copy(d->shell, sizeof(d->shell), "/bin/sh");
	return 0;
}

int local_resolve(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	memset(d, 0, sizeof(*d));
	str_copy(d->home, sizeof(d->home), "/");
	str_copy(d->shell, sizeof(d->shell), "/bin/sh");
	d->orcpt = "";
	if (split_recipient(address, d, rc) < 0)
		return -1;
	const char *at = strrchr(address, '@');
	if (at && str_copy(d->domain, sizeof(d->domain), at + 1) < 0)
		d->domain[0] = '\0';
	if (at && *cf.virtual_mailbox_domains && list_has_domain(cf.virtual_mailbox_domains, at + 1))
		return local_resolve_virtual_mailbox(address, d, rc);
	if (cf.local_mailbox_base && cf.local_mailbox_base[0] != '\0')
		return resolve_virtual(address, d, rc);
	return resolve_system(address, d, rc);
}
