/*
 * ctl_queue — queue administration for ternctl and mailq (ctl_queue.c).
 *
 *   ternctl list [--json]          the queue in the Postfix mailq layout, or
 *                                  one JSON object per line (postqueue -j)
 *   ternctl show ID                envelope, per-recipient state, content
 *   ternctl flush [DOMAIN]         retry deferred mail now (all, or the
 *                                  messages with a pending recipient at DOMAIN)
 *   ternctl delete ID|ALL          remove messages (any queue but tmp/)
 *   ternctl hold ID|ALL            move to hold/ (the queue manager skips it)
 *   ternctl release ID|ALL         hold/ → incoming/ (delivered at once)
 *   ternctl requeue ID|ALL         deferred/ or hold/ → incoming/
 *   mailq [--json]                 = ternctl list (argv[0] dispatch)
 *
 * The configuration must be loaded first.  Exit codes: 0 done, 1 an ID was
 * not found or an operation failed (reason on stderr), 64 usage.
 */
#ifndef TERN_CTL_QUEUE_H
#define TERN_CTL_QUEUE_H

/* 1 when cmd is one of the queue commands above. */
int ctl_queue_is_command(const char *cmd);
/* Run argv[0] (a queue command) with its arguments. */
int ctl_queue(int argc, char **argv);

#endif
