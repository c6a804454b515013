// Open MPI's C API for gpt2kit-mpi (Debian: libopenmpi-dev, pkg-config ompi-c).
// MPI_COMM_WORLD, MPI_SUM, MPI_FLOAT, MPI_DOUBLE, MPI_IN_PLACE and MPI_SUCCESS are macros over Open MPI's
// predefined globals (OMPI_PREDEFINED_GLOBAL) or casts, which Swift cannot import: these inline functions
// return them.
#include <mpi.h>

static inline MPI_Comm gpt2kit_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Op gpt2kit_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Datatype gpt2kit_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype gpt2kit_mpi_double(void) { return MPI_DOUBLE; }
static inline void *gpt2kit_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int gpt2kit_mpi_success(void) { return MPI_SUCCESS; }
