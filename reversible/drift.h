#pragma once
// The drift monitor: how far the inverse's reconstruction of each column's states strays from the states the
// forward pass computed. Full mode reconstructs every column from the last one, dividing by alpha at every
// step, so error compounds from right to left; this measures it on real inputs, in a check run.
#include <vector>

#include "reversible/reversible_function.h"

namespace revkit::reversible {

// Runs x forward (no grad), then inverts column by column from the last, as Full mode's backward does, and
// returns for each column j = 0..N-2 the worst norm-wise relative error ||rebuilt - forward|| / ||forward||
// over its L states (NaN where a rebuild diverged). The states of kept levels (ColumnOptions::keep_levels) are
// not rebuilt, as in backward: the forward's are used, and count no error. The caller's RNG stream and the levels'
// buffers are left as they were.
std::vector<double> measure_drift(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options);

}  // namespace revkit::reversible
