// The few MPI calls ngpt's data-parallel training makes, as plain C functions: MPI's handles (MPI_COMM_WORLD,
// MPI_FLOAT, MPI_SUM, ...) are macros over implementation-specific objects that Swift cannot import directly.
// Errors abort the job (MPI's default MPI_ERRORS_ARE_FATAL): a failed collective never returns to a hung caller.
#ifndef NGPT_MPI_SHIM_H
#define NGPT_MPI_SHIM_H

#include <limits.h>
#include <mpi.h>
#include <stdint.h>

// Counts per call stay below 2^30 elements (MPI counts are int).
#define NGPT_MPI_CHUNK (1L << 30)

static inline int ngpt_mpi_init(void) {
  int provided = 0;
  return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int ngpt_mpi_finalize(void) { return MPI_Finalize(); }
static inline void ngpt_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static inline int ngpt_mpi_rank(void) {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
static inline int ngpt_mpi_size(void) {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
// Processes of this job on the calling process's host (shared-memory neighbours).
static inline int ngpt_mpi_local_size(void) {
  MPI_Comm local;
  int n = 1;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &n);
  MPI_Comm_free(&local);
  return n;
}
static inline void ngpt_mpi_host(char *name, int capacity) {
  char buffer[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  MPI_Get_processor_name(buffer, &length);
  int n = length < capacity - 1 ? length : capacity - 1;
  for (int i = 0; i < n; ++i) name[i] = buffer[i];
  name[n] = 0;
}

static inline int ngpt_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

// In-place sum over all processes, in chunks of at most 2^30 elements.
static inline int ngpt_mpi_allreduce_sum_float(float *data, long count) {
  for (long at = 0; at < count; at += NGPT_MPI_CHUNK) {
    long n = count - at < NGPT_MPI_CHUNK ? count - at : NGPT_MPI_CHUNK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, data + at, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}
static inline int ngpt_mpi_allreduce_sum_double(double *data, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static inline int ngpt_mpi_allreduce_max_double(double *data, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}
static inline int ngpt_mpi_allreduce_min_double(double *data, int count) {
  return MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
}

// Rank `root`'s bytes to every process, in chunks of at most 2^30 bytes.
static inline int ngpt_mpi_broadcast(void *data, long bytes, int root) {
  for (long at = 0; at < bytes; at += NGPT_MPI_CHUNK) {
    long n = bytes - at < NGPT_MPI_CHUNK ? bytes - at : NGPT_MPI_CHUNK;
    int rc = MPI_Bcast((char *)data + at, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return rc;
  }
  return MPI_SUCCESS;
}

#endif
