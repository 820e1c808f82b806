# tern — one plain GNU Makefile.  `make help` lists the targets.
#
# Layout of the build (all under $(B), default build/):
#   $(B)/libcommon.a                 common/*.c
#   $(B)/lib<dir>.a                  every .c of a daemon directory except main.c
#   $(B)/libexec/tern/<prog>         smtpd, qmgr, local, send
#   $(B)/sbin/tern-master, ternctl   the supervisor and the admin tool
#   $(B)/tests/unit/<dir>/test_<m>   Check unit tests (tests/unit/<dir>/test_<m>.c)

PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/tern
SYSCONFDIR ?= /etc/tern
MANDIR     ?= $(PREFIX)/share/man
QUEUEDIR   ?= /var/spool/tern
UNITDIR    ?= /lib/systemd/system
DESTDIR    ?=
# yes: also install mailq and newaliases (and sendmail, once built) under
# their traditional names; no: tern sits beside another MTA.
SENDMAIL_LINKS ?= yes

B          ?= build
CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -std=c11 -Wall -Wextra -Wmissing-prototypes -Wformat=2 -Wshadow \
              -Wstrict-prototypes -Wno-unused-parameter -Werror
HARDEN     := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
HARDEN_LD  := -pie -Wl,-z,relro,-z,now
CPPFLAGS   += -D_GNU_SOURCE -Icommon \
              -DTERN_LIBEXECDIR='"$(LIBEXECDIR)"' -DTERN_SYSCONFDIR='"$(SYSCONFDIR)"' \
              -DTERN_QUEUEDIR='"$(QUEUEDIR)"'
LDLIBS     += -lcdb -lresolv
# TLS and AUTH (issue 9): OpenSSL 3 and libcrypt (crypt(3) hashes).
LDLIBS     += $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto) -lcrypt

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

ALL_CFLAGS = $(WARN) $(HARDEN) $(CFLAGS)

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)

# directory -> program name
PROG_smtpd  := libexec/tern/smtpd
PROG_queue  := libexec/tern/qmgr
PROG_local  := libexec/tern/local
PROG_send   := libexec/tern/send
PROG_master := sbin/tern-master
PROG_ctl    := sbin/ternctl
PROG_sendmail := sbin/tern-sendmail
PROG_postdrop := libexec/tern/postdrop
PROG_pickup   := libexec/tern/pickup
DIRS        := smtpd queue local send master ctl sendmail postdrop pickup

PROGS := $(foreach d,$(DIRS),$(B)/$(PROG_$(d)))

UNIT_SRC   := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS  := $(UNIT_SRC:%.c=$(B)/%)
TESTLIB_SRC := $(wildcard tests/unit/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(B)/%.o)

.PHONY: all check run install clean asan deps help unit blackbox bench
all: $(PROGS)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# Per daemon directory: lib<dir>.a from everything but main.c, and the program.
define daemon_rules
$(1)_SRC := $$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c))
$(1)_OBJ := $$($(1)_SRC:%.c=$$(B)/%.o)
$$(B)/lib$(1).a: $$($(1)_OBJ) | $$(B)/libcommon.a
	@rm -f $$@
	$$(AR) rcs $$@ $$($(1)_OBJ)
$$(B)/$$(PROG_$(1)): $$(B)/$(1)/main.o $$(B)/lib$(1).a $$(B)/libcommon.a
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) $$(HARDEN_LD) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach d,$(DIRS),$(eval $(call daemon_rules,$(d))))

# Unit tests link the module's directory library (lib<dir>.a) and libcommon.
$(B)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/unit/lib $(CHECK_CFLAGS) $(ALL_CFLAGS) -Wno-missing-prototypes -MMD -MP -c -o $@ $<
$(B)/tests/unit/common/test_%: $(B)/tests/unit/common/test_%.o $(TESTLIB_OBJ) $(B)/libcommon.a
	$(CC) $(ALL_CFLAGS) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)
# A directory's fixtures (tests/unit/<dir>/fix_*.c, shared by several of its
# test files) are linked into each of its runners.
define unit_rules
FIX_OBJ_$(1) := $$(patsubst %.c,$$(B)/%.o,$$(wildcard tests/unit/$(1)/fix_*.c))
$$(B)/tests/unit/$(1)/test_%: $$(B)/tests/unit/$(1)/test_%.o $$(FIX_OBJ_$(1)) $$(TESTLIB_OBJ) $$(B)/lib$(1).a $$(B)/libcommon.a
	$$(CC) $$(ALL_CFLAGS) $$(HARDEN_LD) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LDLIBS)
endef
$(foreach d,$(DIRS),$(eval $(call unit_rules,$(d))))

unit: $(UNIT_BINS) $(B)/tests/faults/librenamefail.so

# The rename/link fault shim of tests/blackbox/test_faults.py (LD_PRELOAD).
$(B)/tests/faults/librenamefail.so: tests/faults/renamefail.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

# Installs missing Debian packages (as root or through sudo) or prints the command.
deps:
	@sh scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory all unit
	@B=$(B) sh tests/run.sh

# The sanitizers need their own objects: a separate build directory.
asan: deps
	@$(MAKE) --no-print-directory B=build-asan \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" all unit
	@B=build-asan TERN_LDFLAGS="-fsanitize=address,undefined" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run.sh

# Development server: state under ./run/, SMTP on 127.0.0.1:2525, Ctrl-C stops it.
run:
	@sh scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	$(B)/sbin/tern-master -D $(CURDIR)/run

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SYSCONFDIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(B)/sbin/tern-master $(B)/sbin/ternctl $(B)/sbin/tern-sendmail $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(B)/libexec/tern/smtpd $(B)/libexec/tern/qmgr \
	  $(B)/libexec/tern/local $(B)/libexec/tern/send $(B)/libexec/tern/pickup $(DESTDIR)$(LIBEXECDIR)/
	# postdrop: setgid ternpost (local submission); the group only on a real
	# installation where it exists (install-users.sh creates it).
	install -m 0755 $(B)/libexec/tern/postdrop $(DESTDIR)$(LIBEXECDIR)/
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  getent group ternpost >/dev/null || sh scripts/install-users.sh "" "$(QUEUEDIR)"; \
	  chgrp ternpost $(LIBEXECDIR)/postdrop && chmod 2755 $(LIBEXECDIR)/postdrop; \
	else chmod 2755 $(DESTDIR)$(LIBEXECDIR)/postdrop; fi
	test -e $(DESTDIR)$(SYSCONFDIR)/tern.conf || install -m 0644 conf/tern.conf $(DESTDIR)$(SYSCONFDIR)/tern.conf
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' conf/tern.service.in \
	  > $(DESTDIR)$(UNITDIR)/tern.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tern.service
	install -m 0644 man/tern.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/ternctl.8 man/tern-master.8 $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 man/sendmail.1 $(DESTDIR)$(MANDIR)/man1/tern-sendmail.1
	install -d -m 0755 $(DESTDIR)$(QUEUEDIR)
	if [ "$(SENDMAIL_LINKS)" = yes ]; then \
	  ln -sf $(SBINDIR)/ternctl $(DESTDIR)$(BINDIR)/mailq; \
	  ln -sf $(SBINDIR)/ternctl $(DESTDIR)$(BINDIR)/newaliases; \
	  ln -sf $(SBINDIR)/tern-sendmail $(DESTDIR)$(SBINDIR)/sendmail; \
	fi
	@sh scripts/install-users.sh "$(DESTDIR)" "$(QUEUEDIR)"

# Benchmarks against Postfix (never part of check): see docs/benchmarks.md.
bench: all
	@sh bench/run.sh

clean:
	rm -rf build build-asan

help:
	@echo "make [all]    build everything into $(B)/"
	@echo "make check    install missing packages, build, run every test"
	@echo "make run      development server on 127.0.0.1:2525, state in ./run/"
	@echo "make asan     the test suite under AddressSanitizer + UBSan"
	@echo "make valgrind the black-box suite with the daemons under valgrind memcheck"
	@echo "make install  install under DESTDIR/PREFIX (see INSTALL)"

# Reliability (issue 11, docs/reliability.md): the long kill -9 storm and
# fault runs (STORM_MESSAGES, default 3000), and every libFuzzer target for
# FUZZ_SECONDS each (default 60).
FUZZ_SECONDS ?= 60
.PHONY: stress fuzz
stress: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) sh tests/stress/run.sh
fuzz: deps
	@B=$(B) FUZZ_TIME=$(FUZZ_SECONDS) sh tests/fuzz/run.sh

# The black-box suite with every daemon under valgrind memcheck (slow, not in
# check): VALGRIND_TESTS="blackbox/test_flow blackbox/test_queue" for a subset;
# logs in $(B)/valgrind/, read by tests/valgrind/report.sh.
.PHONY: valgrind
valgrind: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) sh tests/valgrind/run.sh

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# Static analysis (issue 11): cppcheck and clang-tidy with the checked-in
# settings (tests/static/cppcheck.sh, .clang-tidy); zero findings expected.
.PHONY: analyze
analyze:
	@sh tests/static/cppcheck.sh
	@B=$(B) sh tests/static/clang-tidy.sh
