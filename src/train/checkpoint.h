// train/checkpoint.h — training checkpoints for exact resume, as GGUF (the one container).
//
// A checkpoint holds everything that makes "k steps, save, resume, N−k steps" produce the
// same bits as "N steps": the trainable params (by name), AdamW m, v and its step count, the
// batch stream's state, the trainer's RNG state, the loss/val curves so far, and the run
// settings that must match on resume. Layout:
//   metadata  general.type = "qtune.checkpoint", qtune.checkpoint.version = 1,
//             qtune.step (u64), qtune.rng (u64[4]), qtune.data_state (u64[]),
//             qtune.run.<name> = value (string; e.g. qtune.run.rank = "8") and
//             qtune.state.<name> (f32[]: the model's non-trained state, e.g. activation ranges) —
//             the encoding adapter files share (io/adapter_file.h),
//             qtune.loss_curve.loss / .lr (f32[], step i+1 at index i),
//             qtune.val_curve.step (i32[]) / .loss (f32[]) / .windows (i32[])
//   tensors   <param name> (F32, the param's shape), qtune.adam_m.<name>, qtune.adam_v.<name>
// Written atomically (GgufWriter writes a temp file and renames it), so a crash or SIGKILL
// during a save leaves the previous checkpoint intact.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "adapters/linear.h"
#include "io/adapter_file.h"
#include "train/optimizer.h"

namespace qtune {

struct LossPoint {
  int64_t step;
  float loss, lr;
};
struct ValPoint {
  int64_t step;
  float loss;
  int64_t windows = 0;  // validation windows the loss is the mean over
};

// Settings that must be equal on resume, as (flag name, value) pairs, e.g. {"rank", "8"}.
using RunKeys = RunSettings;

// The trainer's progress besides params and optimizer state.
struct TrainState {
  int64_t step = 0;                   // optimizer updates done
  std::array<uint64_t, 4> rng{};      // the trainer's Rng
  std::vector<uint64_t> data_state;   // the batch stream's state (BatchSource::state)
  std::vector<LossPoint> loss_curve;  // one per step 1..step
  std::vector<ValPoint> val_curve;
};

// Writes params, opt's m/v/t and st under `keys` to path atomically. opt must have been
// built over exactly `params` (same order).
void save_checkpoint(const std::string& path, const std::vector<Param<float>>& params, const AdamW& opt,
                     const TrainState& st, const RunKeys& keys, const std::vector<Param<float>>& state = {});

// Validates path against `keys` (Error: "ckpt.gguf: rank 8 does not match --rank 4") and
// against the params' names and shapes, then restores params, opt (m, v, t) and st.
void load_checkpoint(const std::string& path, const std::vector<Param<float>>& params, AdamW& opt,
                     TrainState& st, const RunKeys& keys, const std::vector<Param<float>>& state = {});

}  // namespace qtune
