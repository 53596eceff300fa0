// See include/ngpt_pool.h. A job is published by bumping `generation` (release) after its fields are written; a
// worker that sees a new generation (acquire) runs its share and decrements `remaining`; the caller runs share 0 and
// waits for `remaining` to reach 0. Workers spin for about 2 ms before sleeping on a condition variable.
#include "ngpt_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <x86intrin.h>

#define MAX_WORKERS 256
// Workers spin about 2 ms (a pause is ~65 cycles on Zen) before sleeping: between two parallel kernels the
// caller's serial work rarely takes longer, and a sleeping worker costs tens of microseconds to wake. Spinning
// only happens while the caller runs serial code, so it takes no core the program could use.
#define SPIN_ROUNDS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;  // held by the caller of the running job
static _Thread_local int in_job;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static _Atomic unsigned long generation;
static _Atomic int remaining;
static ngpt_task job_task;
static void *job_context;
static int job_workers;
static int started = 1;  // worker 0 is the caller

static _Atomic int profiling;
static _Atomic unsigned long long profile_busy, profile_wait, profile_span, profile_jobs;
static unsigned long long job_start;  // ticks when the job was published (profiling only)

unsigned long long ngpt_ticks(void) { return __rdtsc(); }

void ngpt_pool_profile_enable(int on) { atomic_store(&profiling, on != 0); }

ngpt_pool_profile ngpt_pool_profile_read(int reset) {
  ngpt_pool_profile p = {atomic_load(&profile_busy), atomic_load(&profile_wait), atomic_load(&profile_span),
                         atomic_load(&profile_jobs)};
  if (reset) {
    atomic_store(&profile_busy, 0);
    atomic_store(&profile_wait, 0);
    atomic_store(&profile_span, 0);
    atomic_store(&profile_jobs, 0);
  }
  return p;
}

// Runs share w, adding its ticks to the busy counter when profiling; returns the tick it ended at (0 when not
// profiling).
static unsigned long long run_share(int w) {
  if (!atomic_load_explicit(&profiling, memory_order_relaxed)) {
    job_task(job_context, w);
    return 0;
  }
  unsigned long long t0 = __rdtsc();
  job_task(job_context, w);
  unsigned long long t1 = __rdtsc();
  atomic_fetch_add_explicit(&profile_busy, t1 - t0, memory_order_relaxed);
  atomic_fetch_add_explicit(&profile_wait, t0 - job_start, memory_order_relaxed);  // waited to start
  return t1;
}

static _Atomic unsigned long long share_ends;  // sum of the shares' end ticks (profiling only)

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// A worker's index and the generation it was started at (read by the creator before the job that follows is
// published, so the worker cannot miss it).
struct start {
  int worker;
  unsigned long generation;
};

static void *worker_main(void *arg) {
  struct start s = *(struct start *)arg;
  free(arg);
  int w = s.worker;
  unsigned long seen = s.generation;
  for (;;) {
    unsigned long g;
    int spins = 0;
    while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen && ++spins < SPIN_ROUNDS) relax();
    if (g == seen) {
      pthread_mutex_lock(&lock);
      while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&wake, &lock);
      pthread_mutex_unlock(&lock);
    }
    seen = g;
    if (w < job_workers) {
      in_job = 1;
      unsigned long long end = run_share(w);
      in_job = 0;
      if (end) atomic_fetch_add_explicit(&share_ends, end, memory_order_relaxed);
      atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel);
    }
  }
  return NULL;
}

void ngpt_pool_run(int workers, ngpt_task task, void *context) {
  if (workers > MAX_WORKERS) workers = MAX_WORKERS;
  // One job at a time: a second caller (another thread's job, or a nested call) runs every share itself.
  if (workers <= 1 || in_job || pthread_mutex_trylock(&busy) != 0) {
    int outer = in_job;
    in_job = 1;
    for (int w = 0; w < workers; ++w) task(context, w);
    in_job = outer;
    return;
  }
  while (started < workers) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    struct start *s = malloc(sizeof *s);
    if (s == NULL) abort();
    s->worker = started;
    s->generation = atomic_load_explicit(&generation, memory_order_acquire);
    if (pthread_create(&t, &attr, worker_main, s) != 0) abort();
    pthread_attr_destroy(&attr);
    started += 1;
  }
  job_task = task;
  job_context = context;
  job_workers = workers;
  if (atomic_load_explicit(&profiling, memory_order_relaxed)) {
    job_start = __rdtsc();
    atomic_store_explicit(&share_ends, 0, memory_order_relaxed);
  }
  atomic_store_explicit(&remaining, workers - 1, memory_order_relaxed);
  pthread_mutex_lock(&lock);
  atomic_fetch_add_explicit(&generation, 1, memory_order_release);
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&lock);
  in_job = 1;
  unsigned long long end = run_share(0);
  in_job = 0;
  long spins = 0;
  while (atomic_load_explicit(&remaining, memory_order_acquire) > 0) {
    if (++spins < 10L * SPIN_ROUNDS)
      relax();
    else
      sched_yield();
  }
  if (end) {
    // each share waited from its end to the job's end
    unsigned long long done = __rdtsc();
    unsigned long long ends = end + atomic_load_explicit(&share_ends, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_wait, (unsigned long long)workers * done - ends, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_span, done - job_start, memory_order_relaxed);
    atomic_fetch_add_explicit(&profile_jobs, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&busy);
}

int ngpt_pool_in_job(void) { return in_job; }
