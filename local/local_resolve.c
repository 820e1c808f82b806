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
 *     (Maildir when it ends in '/'; mbox is issue 5).  The delivery runs as
 *     the user; root's own mailbox is refused (temp 4.7.0) until aliases
 *     exist to send root's mail to a person.  A non-root agent (development)
 *     can only deliver to its own user.
 *
 * Public: local_resolve, local_user_name_ok.  Results go into the
 * recipient (deliver_set_result); nothing here is fatal.
 *
 * Issue 5: alias and .forward expansion run before the passwd lookup.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "local.h"
#include "log.h"
#include "strutil.h"

int local_user_name_ok(const char *user)
{
	if (user[0] == '\0' || user[0] == '.')
		return 0;
	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		if (*p == '/' || *p <= 32 || *p == 127 || *p == '"' || *p == '\\')
			return 0;
	return 1;
}

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
	if (!local_user_name_ok(d->user)) {
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

static int resolve_system(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	errno = 0;
	struct passwd *pw = getpwnam(d->user);
	if (pw == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM) {
			log_warning("getpwnam(%s): %s", d->user, strerror(errno));
			deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "user lookup failed: %s", strerror(errno));
		} else {
			deliver_set_result(rc, DELIVER_PERM, "5.1.1", "<%s>: user unknown", address);
		}
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warning("refusing to deliver <%s> as root: alias root to a person", address);
		deliver_set_result(rc, DELIVER_TEMP, "4.7.0", "delivery to root's mailbox is refused");
		return -1;
	}
	if (geteuid() != 0 && pw->pw_uid != geteuid()) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot deliver as another user when not root");
		return -1;
	}
	const char *hm = cf.home_mailbox ? cf.home_mailbox : "";
	size_t hlen = strlen(hm);
	if (hlen == 0 || hm[hlen - 1] != '/') {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "mbox delivery not available");
		return -1;
	}
	if (hm[0] == '/' || pw->pw_dir == NULL || pw->pw_dir[0] != '/') {
		log_warning("cannot deliver to <%s>: home_mailbox must be relative and the home absolute",
			    address);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.5", "mailbox location misconfigured");
		return -1;
	}
	size_t blen = dir_len(pw->pw_dir);
	int n = snprintf(d->path, sizeof(d->path), "%.*s/%s", (int)blen, pw->pw_dir, hm);
	if (n < 0 || (size_t)n >= sizeof(d->path) || str_copy(d->pw_name, sizeof(d->pw_name), pw->pw_name) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "mailbox path too long for <%s>", address);
		return -1;
	}
	d->kind = LOCAL_DEST_MAILDIR;
	d->root_len = blen;
	d->create_root = 0;
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
	d->switch_user = geteuid() == 0;
	return 0;
}

int local_resolve(const char *address, struct local_dest *d, struct deliver_rcpt *rc)
{
	memset(d, 0, sizeof(*d));
	if (split_recipient(address, d, rc) < 0)
		return -1;
	if (cf.local_mailbox_base && cf.local_mailbox_base[0] != '\0')
		return resolve_virtual(address, d, rc);
	return resolve_system(address, d, rc);
}
