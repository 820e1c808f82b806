# tests/static/sources.sh — sourced by cppcheck.sh and clang-tidy.sh: sets
# SOURCES to every C source of the programs (common/ and each program
# directory of the Makefile's DIRS; not tests/, bench/ or build output).
SOURCES=$(ls common/*.c smtpd/*.c queue/*.c local/*.c send/*.c master/*.c ctl/*.c \
	sendmail/*.c postdrop/*.c pickup/*.c 2>/dev/null)
