// OpenBLAS' CBLAS. Debian installs <cblas.h> under /usr/include/x86_64-linux-gnu (alternatives link to
// the pthread variant), which clang searches by default. openblas_set_num_threads & co. come with it.
#include <cblas.h>
