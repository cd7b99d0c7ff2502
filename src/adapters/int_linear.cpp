// adapters/int_linear.cpp — a deployed integer weight (a merged model's projection), frozen.
//
//   W = Σ_p plane_p                                   (QuantMatrix planes; usually one)
//   act_bits 8: xq, s = quantize_activations(x)       static scale (calibrated in training and
//               y = Σ_p igemm(xq, s, plane_p)         recorded by merge) or per token (dynamic);
//                                                     decode (as below): qgemv_blocks_int8, the
//                                                     same integers combined in float
//   act_bits 0: y = Σ_p x·deq(plane_p)ᵀ               float activations, weights dequantized tile
//                                                     by tile (never held in float)
//               decode (n ≤ kDecodeRows, one plane    x quantized to int8 per block of 32 as
//               of 2..8 bits, groups of 32k):         llama.cpp does, exact integer block dots
//               y = qgemv_blocks(x, plane)            (kernels/qdot_blocks.h)
//               Q8_0 / Q4_0 planes are repacked at load (kernels/qblocks_packed.h: 16 rows
//               interleaved per block, scales beside codes) and that copy replaces the loaded
//               one: decode is qgemv_packed, the rest dequantizes or unpacks from it (same values).
//               Generation's prompt (Context::prefill) runs qgemv_packed too where its many-token
//               VNNI loop beats the float GEMM; the prompt's rows then equal decoding's.
// The int8 path is real integer arithmetic (kernels/igemm.h: int32 accumulation, exact); its
// integers equal those of the training fake-quant forward, which used the same rounding rule.
// Backward passes dx through the dequantized weight (no adapter to train on a deployed model).
#include <optional>
#include <type_traits>

#include "adapters/methods.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/igemm.h"
#include "kernels/qblocks_packed.h"
#include "kernels/qdot_blocks.h"
#include "quant/int_planes.h"

namespace qtune {

namespace {

// Up to this many rows (generation: one token, a few beams) the act_bits 0 product reads the
// blocks directly; more rows (prefill, training) amortise a dequantized tile over a float GEMM.
constexpr int64_t kDecodeRows = 4;

template <class T>
class IntLinear final : public Linear<T> {
 public:
  IntLinear(std::vector<QuantMatrix> planes, int act_bits, float act_scale)
      : Linear<T>(planes.at(0).cols, planes.at(0).rows), planes_(std::move(planes)), act_bits_(act_bits),
        act_scale_(act_scale), blocks_(planes_.size() == 1 && kernels::qblocks_supported(planes_[0])) {
    if (std::is_same_v<T, float> && act_bits_ == 0 && planes_.size() == 1 && kernels::packable(planes_[0])) {
      packed_.emplace(kernels::pack_blocks(std::move(planes_[0])));
      planes_.clear();
    }
  }

  void forward(const T* x, T* y, int64_t n, Context& ctx) override {
    if constexpr (std::is_same_v<T, float>) {
      if (packed_) {
        if (n <= kDecodeRows || (ctx.prefill && kernels::cpu_isa() >= kernels::Isa::avx512vnni))
          return kernels::qgemv_packed(x, *packed_, y, n, false);
        return kernels::qmatmul_nt(x, *packed_, y, n, false);
      }
      if (act_bits_ == 8) {
        const int64_t m = n * this->in_;
        if (xq_.size() < static_cast<size_t>(m)) xq_.resize(static_cast<size_t>(m));
        if (xs_.size() < static_cast<size_t>(n)) xs_.resize(static_cast<size_t>(n));
        kernels::quantize_activations(x, n, this->in_, act_scale_, xq_.data(), xs_.data());
        if (n <= kDecodeRows && blocks_)
          return kernels::qgemv_blocks_int8(xq_.data(), xs_.data(), planes_[0], y, n, false);
        for (size_t p = 0; p < planes_.size(); ++p) kernels::igemm(xq_.data(), xs_.data(), planes_[p], y, n, p > 0);
        return;
      }
    }
    QT_CHECK(act_bits_ == 0, "int8 activations run in float only");
    if constexpr (std::is_same_v<T, float>)
      if (n <= kDecodeRows && blocks_) return kernels::qgemv_blocks(x, planes_[0], y, n, false);
    for (size_t p = 0; p < planes_.size(); ++p) kernels::qmatmul_nt(x, planes_[p], y, n, p > 0);
  }

  void backward(const T*, const T* dy, T* dx, int64_t n, Context&) override {
    if (!dx) return;
    for (const auto& p : planes()) kernels::qmatmul_nn(dy, p, dx, n, true);  // dx[n, in] += dy·deq(W)
  }

  std::vector<Param<T>> trainable() override { return {}; }
  Deployed merge() const override {
    Deployed d;
    d.planes = planes();
    return d;
  }
  const std::vector<QuantMatrix>* integer_planes() const override { return &planes(); }
  const kernels::PackedBlocks* packed_weight() const override { return packed_ ? &*packed_ : nullptr; }
  float input_scale() const override { return act_bits_ == 8 ? act_scale_ : 0.0f; }
  Tensor base_weight() const override {
    Tensor t({this->out_, this->in_});
    Tensor tmp(planes_.size() > 1 ? Shape{this->out_, this->in_} : Shape{0});
    sum_planes(planes(), 0, this->out_, t.ptr(), tmp.ptr());
    return t;
  }
  const char* method() const override { return act_bits_ == 8 ? "int-w-a8" : "int-w"; }
  int64_t weight_bytes() const override {
    int64_t b = packed_ ? packed_->bytes() : 0;
    for (const auto& p : planes_) b += p.bytes();
    return b;
  }

 private:
  // The planes as loaded: planes_, or unpacked from the packed copy on first use (merge, backward,
  // export: none of them on the decoding path, which never pays for this copy).
  const std::vector<QuantMatrix>& planes() const {
    if (packed_ && planes_.empty()) planes_.push_back(kernels::unpack_blocks(*packed_));
    return planes_;
  }

  mutable std::vector<QuantMatrix> planes_;  // empty while packed_ holds the weight (see planes())
  std::optional<kernels::PackedBlocks> packed_;  // Q8_0 / Q4_0 with float activations
  int act_bits_;
  float act_scale_;  // static int8 scale of the input; 0 = per token
  bool blocks_;      // decode may run qgemv_blocks / qgemv_blocks_int8
  Buffer<int8_t> xq_;
  Buffer<float> xs_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_int_linear(const std::string& name, std::vector<QuantMatrix> planes, int act_bits,
                                           float act_scale) {
  QT_CHECK(!planes.empty(), "{}: an integer weight needs at least one plane", name);
  for (const auto& p : planes)
    QT_CHECK(p.rows == planes[0].rows && p.cols == planes[0].cols && p.rows > 0 && p.cols > 0,
             "{}: integer planes of different shapes", name);
  QT_CHECK(act_bits == 0 || act_bits == 8, "{}: --act-bits {} is not supported (0 or 8)", name, act_bits);
  QT_CHECK(std::isfinite(act_scale) && act_scale >= 0, "{}: activation scale {} is invalid", name, act_scale);
  return std::make_unique<IntLinear<T>>(std::move(planes), act_bits, act_scale);
}

template std::unique_ptr<Linear<float>> make_int_linear<float>(const std::string&, std::vector<QuantMatrix>, int,
                                                               float);
template std::unique_ptr<Linear<double>> make_int_linear<double>(const std::string&, std::vector<QuantMatrix>, int,
                                                                 float);

}  // namespace qtune
