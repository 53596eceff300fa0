// OpenBLAS' CBLAS. Debian installs <cblas.h> under /usr/include/x86_64-linux-gnu (alternatives link to
// the pthread variant), which clang searches by default. openblas_set_num_threads & co. come with it.
#include <cblas.h>

// LAPACK's divide-and-conquer SVD (Fortran calling convention), exported by Debian's OpenBLAS. Used by
// ngpt-inspect for singular values (jobz = 'N').
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
             const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info);
