// `qtune train --nproc N`: runs N local ranks of this same command (torchrun's job, without Python):
// each child gets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, then
// re-executes this program with the same arguments (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS default to
// cores / N, as torchrun limits threads).
#pragma once

namespace qtune {

// True when this process is already a rank (WORLD_SIZE is set), so it must not spawn again.
bool launched_as_rank();

// A loopback TCP port free right now (bound to 0 and released; 29500, torchrun's default, if that fails).
int free_loopback_port();

// Spawns `ranks` children and waits. Ctrl-C / SIGTERM are passed on to every rank (they checkpoint and
// stop together). When a rank fails, the others are killed at once and its status is returned with a
// line naming it; 0 when all succeed.
int run_local_ranks(int ranks);

}  // namespace qtune
