#include "ngpt_signals.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static char first_line[3][512];
static char launcher_line[1024];
static atomic_int received = 0;
static atomic_int launcher_watch = 0;

static int slot(int sig) { return sig == SIGINT ? 0 : sig == SIGTERM ? 1 : 2; }
static const char *name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGUSR1"; }

static void say(const char *text) {
  ssize_t ignored = write(2, text, strlen(text));
  (void)ignored;
}

static void handle(int sig, siginfo_t *info, void *context) {
  (void)context;
  if (atomic_load(&launcher_watch) && sig != SIGUSR1 && info != NULL && info->si_code == SI_USER &&
      info->si_pid == getppid()) {
    say(launcher_line);
    _exit(1);
  }
  int expected = 0;
  if (atomic_compare_exchange_strong(&received, &expected, sig)) {
    say(first_line[slot(sig)]);
    return;
  }
  say("\n");
  say(name(sig));
  say(" again: stopping now; the last checkpoint is intact\n");
  _exit(130);
}

void ngpt_signals_install(const char *first_lines[3]) {
  for (int i = 0; i < 3; i++) {
    strncpy(first_line[i], first_lines[i], sizeof(first_line[i]) - 1);
  }
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_sigaction = handle;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGUSR1, &action, NULL);
  // A process inherits its parent's signal mask (a test runner, a job scheduler may block these): unblocked here,
  // in the thread that installs, so that they are delivered at all.
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &wanted, NULL);
}

int ngpt_signals_received(void) { return atomic_load(&received); }

void ngpt_signals_end_on_launcher_signal(const char *line) {
  strncpy(launcher_line, line, sizeof(launcher_line) - 1);
  atomic_store(&launcher_watch, 1);
}
