#!/bin/sh
# install-users.sh DESTDIR QUEUEDIR — create tern's system user and group.
#
# tern's daemons run as the `tern` user (mail_owner); the `ternpost` group
# will own the maildrop directory for local submission.  Both are created
# only when missing, only on a real installation (empty DESTDIR) and only as
# root: a staged installation (DESTDIR set, packaging) leaves that to the
# package's own scripts and says so.
destdir=$1
queuedir=$2

if [ -n "$destdir" ]; then
	echo "install-users: DESTDIR set: create the 'tern' user and 'ternpost' group on the target system" >&2
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-users: not root: create the 'tern' user and 'ternpost' group yourself (see INSTALL)" >&2
	exit 0
fi
if ! getent group ternpost >/dev/null; then
	groupadd --system ternpost || exit 1
fi
if ! getent passwd tern >/dev/null; then
	useradd --system --user-group --home-dir "$queuedir" --no-create-home \
		--shell /usr/sbin/nologin --comment "tern mail system" tern || exit 1
fi
