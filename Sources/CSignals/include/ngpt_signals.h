// Stop requests by signal, handled in C so that the handler can see who sent a signal (siginfo) and do only
// async-signal-safe work: record the first signal, write a prepared line, and on a second signal exit at once.
#ifndef NGPT_SIGNALS_H
#define NGPT_SIGNALS_H

// Installs handlers for SIGINT, SIGTERM and SIGUSR1. The first of them is recorded (see ngpt_signals_received)
// and its line from `first_lines` (in that order) is written to stderr; a second one writes
// "\n<NAME> again: stopping now; the last checkpoint is intact\n" and exits 130.
void ngpt_signals_install(const char *first_lines[3]);

// The first signal received since install (SIGINT, SIGTERM or SIGUSR1), or 0.
int ngpt_signals_received(void);

// In an MPI job: a SIGTERM or SIGINT sent by this process's parent (the launcher, ending the job because another
// process died) writes `line` and exits 1 at once, since this process cannot finish its step.
void ngpt_signals_end_on_launcher_signal(const char *line);

#endif
