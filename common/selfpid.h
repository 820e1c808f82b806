/*
 * selfpid — this process's id without a system call per use.
 *
 * getpid() is a real system call; a receiver asks for its pid in every log
 * line, every queue id and every idle/busy report.  The value is kept and
 * forgotten in a child of fork() (an atfork handler), which is how every
 * tern process forks.
 */
#ifndef TERN_SELFPID_H
#define TERN_SELFPID_H

#include <sys/types.h>

pid_t self_pid(void);

#endif
