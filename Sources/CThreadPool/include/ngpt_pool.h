// The program's one pool of worker threads (ngpt's thread budget): persistent pthreads that spin about 2 ms for
// the next job and then sleep, so back-to-back kernels start in microseconds and idle threads cost nothing.
#ifndef NGPT_POOL_H
#define NGPT_POOL_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*ngpt_task)(void *context, int worker);

// Runs task(context, w) for every w in 0..<workers: w = 0 on the calling thread, the others on the pool's threads
// (started on first use and kept). Returns when all have finished. One job runs at a time: a call made while
// another thread's job runs, or from inside a task, runs every share on the calling thread instead.
void ngpt_pool_run(int workers, ngpt_task task, void *context);

// Profiling (ngpt-bench train): while on, every parallel job adds to `wait` the time-stamp-counter ticks its
// threads spent idle inside it (before their share starts and after it ends, until the job's end), to `busy` their
// ticks in their shares and to `span` the job's own duration (publication to end, on the caller). Off by default;
// the counters cost two time stamps per share when on.
typedef struct {
  unsigned long long busy, wait, span, jobs;
} ngpt_pool_profile;
void ngpt_pool_profile_enable(int on);
// The counters since the last reset; `reset` zeroes them.
ngpt_pool_profile ngpt_pool_profile_read(int reset);
// The time-stamp counter (the profiles' unit).
unsigned long long ngpt_ticks(void);

// Whether the calling thread is running a share of a job (nested parallel work then stays on this thread).
int ngpt_pool_in_job(void);

#ifdef __cplusplus
}
#endif

#endif
