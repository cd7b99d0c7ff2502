#include "train/checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "io/gguf.h"

namespace qtune {

namespace {

constexpr const char* kType = "qtune.checkpoint";
constexpr uint32_t kVersion = 1;

// GGUF wants ne innermost first; a Param's shape is outermost first.
std::vector<int64_t> ne_of(const Shape& shape) { return std::vector<int64_t>(shape.rbegin(), shape.rend()); }

void add_f32(GgufWriter& w, const std::string& name, const Shape& shape, const float* data, int64_t n) {
  std::vector<uint8_t> bytes(static_cast<size_t>(n) * sizeof(float));
  if (n) std::memcpy(bytes.data(), data, bytes.size());
  w.add_raw_tensor(name, ne_of(shape), GgmlType::F32, std::move(bytes));
}

GgufValue u64_array(const uint64_t* v, size_t n) {
  std::vector<GgufValue> elems;
  for (size_t i = 0; i < n; ++i) elems.push_back(GgufValue::scalar_u(GgufType::UINT64, v[i]));
  return GgufValue::array(GgufType::UINT64, std::move(elems));
}

std::vector<uint64_t> get_u64_array(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  QT_CHECK(v, "{}: key '{}' is missing (not a complete qtune checkpoint)", f.path(), key);
  QT_CHECK(v->type == GgufType::ARRAY && v->elem_type == GgufType::UINT64, "{}: key '{}' must be an array of uint64",
           f.path(), key);
  std::vector<uint64_t> out;
  for (const auto& e : v->arr) out.push_back(e.u);
  return out;
}

// Copies one F32 tensor of the checkpoint into dst after checking its name, type and shape.
void restore(const GgufFile& f, const std::string& name, const Shape& shape, float* dst, int64_t n) {
  const GgufTensorInfo* t = f.find_tensor(name);
  QT_CHECK(t, "{}: tensor {} is missing (the checkpoint is of a different model, --method or --target)", f.path(),
           name);
  QT_CHECK(t->type == GgmlType::F32, "{}: tensor {} must be F32", f.path(), name);
  QT_CHECK(t->shape() == shape, "{}: tensor {} has shape {} but the model's is {}", f.path(), name,
           shape_str(t->shape()), shape_str(shape));
  QT_ASSERT(t->nbytes == static_cast<size_t>(n) * sizeof(float));
  if (n) std::memcpy(dst, t->data, t->nbytes);
}

// The number of MPI ranks (train/trainer.h run_keys): recorded only when > 1, so an absent key
// on either side means 1.
void check_ranks(const GgufFile& f, const RunKeys& keys) {
  const std::string* w = find_setting(keys, "ranks");
  const std::string want = w ? *w : "1", key = "qtune.run.ranks";
  const std::string got = f.has(key) ? f.get_str(key) : "1";
  QT_CHECK(got == want, "{}: was written by a run of {} MPI rank(s) and this run has {}; resume with the same "
           "number ({})", f.path(), got, want, got == "1" ? "a plain launch, without mpirun" : "mpirun -np " + got);
}

void check_run_keys(const GgufFile& f, const RunKeys& keys) {
  check_ranks(f, keys);  // first: with another N the batch and the data state differ too
  for (const auto& [flag, want] : keys) {
    if (flag == "ranks") continue;
    const std::string key = "qtune.run." + flag;
    QT_CHECK(f.has(key), "{}: has no setting for --{} (made by a different kind of run)", f.path(), flag);
    const std::string got = f.get_str(key);
    if (flag.ends_with("-fingerprint")) {  // model-fingerprint, data-fingerprint
      const std::string what = flag.substr(0, flag.size() - 12);
      QT_CHECK(got == want, "{}: was trained on another --{} (fingerprint {}, this one {}); resume with the same {}",
               f.path(), what == "model" ? "model" : "data (or tokenizer, --seq, --val-every)", got, want, what);
      continue;
    }
    QT_CHECK(got == want, "{}: {} {} does not match --{} {}", f.path(), flag, got, flag, want);
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const std::vector<Param<float>>& params, const AdamW& opt,
                     const TrainState& st, const RunKeys& keys, const std::vector<Param<float>>& state) {
  QT_ASSERT(opt.params().size() == params.size());
  QT_ASSERT(st.loss_curve.size() == static_cast<size_t>(st.step));
  GgufWriter w;
  w.set_str("general.type", kType);
  w.set_u32("qtune.checkpoint.version", kVersion);
  w.set_u64("qtune.step", static_cast<uint64_t>(st.step));
  w.set_u64("qtune.adam.t", static_cast<uint64_t>(opt.t()));
  w.set("qtune.rng", u64_array(st.rng.data(), st.rng.size()));
  w.set("qtune.data_state", u64_array(st.data_state.data(), st.data_state.size()));
  put_run_settings(w, keys);

  std::vector<float> loss, lr, vloss;
  std::vector<int32_t> vstep, vwindows;
  for (const auto& p : st.loss_curve) loss.push_back(p.loss), lr.push_back(p.lr);
  for (const auto& p : st.val_curve) {
    vstep.push_back(static_cast<int32_t>(p.step));
    vloss.push_back(p.loss);
    vwindows.push_back(static_cast<int32_t>(p.windows));
  }
  w.set_arr_f32("qtune.loss_curve.loss", loss);
  w.set_arr_f32("qtune.loss_curve.lr", lr);
  w.set_arr_i32("qtune.val_curve.step", vstep);
  w.set_arr_f32("qtune.val_curve.loss", vloss);
  w.set_arr_i32("qtune.val_curve.windows", vwindows);

  for (size_t i = 0; i < params.size(); ++i) {
    const Param<float>& p = params[i];
    add_f32(w, p.name, p.shape, p.value, p.numel);
    add_f32(w, "qtune.adam_m." + p.name, p.shape, opt.m() + opt.offset(i), p.numel);
    add_f32(w, "qtune.adam_v." + p.name, p.shape, opt.v() + opt.offset(i), p.numel);
  }
  TensorMap state_values;
  for (const auto& p : state) {
    Tensor t(p.shape);
    std::copy(p.value, p.value + p.numel, t.ptr());
    state_values.emplace(p.name, std::move(t));
  }
  put_state(w, state_values);
  w.write(path);  // temp file + rename: never a half-written checkpoint at `path`
}

void load_checkpoint(const std::string& path, const std::vector<Param<float>>& params, AdamW& opt,
                     TrainState& st, const RunKeys& keys, const std::vector<Param<float>>& state) {
  GgufFile f(path);
  const std::string type = f.has("general.type") ? f.get_str("general.type") : "";
  QT_CHECK(type == kType, "{}: not a qtune training checkpoint (general.type is '{}')", path, type);
  const uint32_t version = f.get_u32("qtune.checkpoint.version");
  QT_CHECK(version == kVersion, "{}: checkpoint version {} is not supported (expected {})", path, version, kVersion);
  check_run_keys(f, keys);  // first: a wrong --rank should say so, not report a shape mismatch

  // Every tensor of the checkpoint must belong to a param of this model, and vice versa.
  QT_CHECK(f.tensors().size() == 3 * params.size(),
           "{}: holds {} tensors but this model has {} trainable params (x3 with AdamW m and v); different --method "
           "or --target?",
           path, f.tensors().size(), params.size());
  const TensorMap saved_state = get_state(f);
  QT_CHECK(saved_state.size() == state.size(), "{}: holds {} state tensors but this model has {}; different --act-bits?",
           path, saved_state.size(), state.size());
  QT_ASSERT(opt.params().size() == params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Param<float>& p = params[i];
    restore(f, p.name, p.shape, p.value, p.numel);
    restore(f, "qtune.adam_m." + p.name, p.shape, opt.m() + opt.offset(i), p.numel);
    restore(f, "qtune.adam_v." + p.name, p.shape, opt.v() + opt.offset(i), p.numel);
  }
  for (const auto& p : state) {
    auto it = saved_state.find(p.name);
    QT_CHECK(it != saved_state.end() && it->second.numel() == p.numel,
             "{}: state {} is missing or of another size (the checkpoint is of a different --method or --act-bits)",
             path, p.name);
    std::copy(it->second.data.begin(), it->second.data.end(), p.value);
  }
  opt.set_t(static_cast<int64_t>(f.get_u64("qtune.adam.t")));

  st.step = static_cast<int64_t>(f.get_u64("qtune.step"));
  const std::vector<uint64_t> rng = get_u64_array(f, "qtune.rng");
  QT_CHECK(rng.size() == 4, "{}: qtune.rng must hold 4 words, found {}", path, rng.size());
  std::copy(rng.begin(), rng.end(), st.rng.begin());
  st.data_state = get_u64_array(f, "qtune.data_state");

  const std::vector<float> loss = f.get_arr_f32("qtune.loss_curve.loss"), lr = f.get_arr_f32("qtune.loss_curve.lr");
  QT_CHECK(loss.size() == static_cast<size_t>(st.step) && lr.size() == loss.size(),
           "{}: the loss curve has {} points for {} steps", path, loss.size(), st.step);
  st.loss_curve.clear();
  for (size_t i = 0; i < loss.size(); ++i) st.loss_curve.push_back({static_cast<int64_t>(i) + 1, loss[i], lr[i]});
  const std::vector<int32_t> vstep = f.get_arr_i32("qtune.val_curve.step");
  const std::vector<float> vloss = f.get_arr_f32("qtune.val_curve.loss");
  const std::vector<int32_t> vwindows = f.get_arr_i32("qtune.val_curve.windows");
  QT_CHECK(vstep.size() == vloss.size() && vwindows.size() == vloss.size(),
           "{}: qtune.val_curve.step, .loss and .windows differ in length", path);
  st.val_curve.clear();
  for (size_t i = 0; i < vstep.size(); ++i) st.val_curve.push_back({vstep[i], vloss[i], vwindows[i]});
}

}  // namespace qtune
