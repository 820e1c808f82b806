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
 *   - system mode: getpwnam(USER); the mailbox is HOME/home_mailbox
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
#include <pwd.h>
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
	struct passwd *pw = *owner ? getpwnam(owner) : NULL;
	if (pw == NULL) {
		log_warning("virtual mailbox owner \"%s\" is unknown", owner);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox owner unknown (mail_owner = %s)", owner);
		return -1;
	}
	if (pw->pw_uid == 0) {
		static int warned;
		if (!warned++)
			log_warning("mail_owner %s is root: development mailboxes under %s are written as root",
				    owner, base);
		return 0;
	}
	d->switch_user = 1;
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
	d->pw_name[0] = '\0'; /* no supplementary groups */
	return 0;
}

/* getpwnam with the "unknown" vs "lookup failed" distinction.  NULL with
 * rc set. */
static struct passwd *lookup_user(const char *user, const char *address, struct deliver_rcpt *rc)
{
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM) {
			log_warning("getpwnam(%s): %s", user, strerror(errno));
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "user lookup failed: %s", strerror(errno));
		} else {
			deliver_set_result(rc, DELIVER_PERM, "5.1.1", "<%s>: user unknown", address);
		}
	}
	return pw;
}

int local_ident_user(const char *name, struct local_ident *id, struct deliver_rcpt *rc)
{
	const char *user = name ? name : cf.default_privs;
	struct passwd *pw = lookup_user(user, user, rc);
	memset(id, 0, sizeof(*id));
	if (pw == NULL) {
		if (name == NULL) /* a configuration problem, not the recipient's */
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "default_privs user %s is unknown", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warning("refusing to run a delivery as root (user %s)", user);
		deliver_set_result(rc, DELIVER_TEMP, "4.7.0", "deliveries never run as root");
		return -1;
	}
	if (geteuid() != 0) {
		/* Development: everything runs as ourselves; another user's
		 * commands or files would run with our rights, so refuse. */
		if (pw->pw_uid != geteuid() && name != NULL) {
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot deliver as another user when not root");
			return -1;
		}
		id->uid = geteuid();
		id->gid = getegid();
	} else {
		id->switch_user = 1;
		id->uid = pw->pw_uid;
		id->gid = pw->pw_gid;
		if (str_copy(id->pw_name, sizeof(id->pw_name), pw->pw_name) < 0)
			id->pw_name[0] = '\0';
	}
	const char *home = pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : "/";
	const char *shell = pw->pw_shell && pw->pw_shell[0] == '/' ? pw->pw_shell : "/bin/sh";
	if (str_copy(id->home, sizeof(id->home), home) < 0 || str_copy(id->shell, sizeof(id->shell), shell) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "home directory path too long");
		return -1;
	}
	return 0;
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
static int resolve_spool(const char *address, const struct passwd *pw, struct local_dest *d,
			 struct deliver_rcpt *rc)
{
	const char *spool = cf.mail_spool_directory;
	struct stat st;
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s", (int)dir_len(spool), spool, pw->pw_name);
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

int local_resolve_user(const char *address, const void *vpw, struct local_dest *d, struct deliver_rcpt *rc)
{
	const struct passwd *pw = vpw;
	struct local_ident id;
	if (pw->pw_uid == 0) {
		log_warning("refusing to deliver <%s> as root: alias root to a person", address);
		deliver_set_result(rc, DELIVER_TEMP, "4.7.0", "delivery to root's mailbox is refused");
		return -1;
	}
	char name[ADDR_SIZE];
	if (str_copy(name, sizeof(name), pw->pw_name) < 0 || local_ident_user(name, &id, rc) < 0)
		return -1;
	local_dest_set_ident(d, &id);
	const char *hm = cf.home_mailbox ? cf.home_mailbox : "";
	size_t hlen = strlen(hm);
	if (hlen == 0)
		return resolve_spool(address, pw, d, rc);
	if (hm[0] == '/' || pw->pw_dir == NULL || pw->pw_dir[0] != '/') {
		log_warning("cannot deliver to <%s>: home_mailbox must be relative and the home absolute",
			    address);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "mailbox location misconfigured");
		return -1;
	}
	size_t blen = dir_len(pw->pw_dir);
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s", (int)blen, pw->pw_dir, hm);
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
	struct passwd *pw = lookup_user(d->user, address, rc);
	if (pw == NULL)
		return -1;
	/* Copy: local_resolve_user looks users up again (static results). */
	struct passwd pwc = *pw;
	char name[ADDR_SIZE], dir[PATH_MAX], shell[PATH_MAX];
	if (str_copy(name, sizeof(name), pw->pw_name) < 0 || str_copy(dir, sizeof(dir), pw->pw_dir ? pw->pw_dir : "") < 0 ||
	    str_copy(shell, sizeof(shell), pw->pw_shell ? pw->pw_shell : "") < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "passwd entry too long for <%s>", address);
		return -1;
	}
	pwc.pw_name = name;
	pwc.pw_dir = dir;
	pwc.pw_shell = shell;
	return local_resolve_user(address, &pwc, d, rc);
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
