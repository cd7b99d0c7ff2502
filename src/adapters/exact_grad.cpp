// adapters/exact_grad.cpp — a slot's parameter gradients, independent of how the batch was split.
//
// A gradient is a sum over the batch's samples. Summed in float inside one GEMM over all the
// call's rows, it depends on which samples shared the GEMM: one process with batch 2b and two MPI
// ranks with b each round differently, and AdamW's first steps (lr·g/(|g|+ε)) turn the rounding
// of a nearly cancelling element into a visible share of a step — adapters 1e-5 apart after six
// steps, measured on stories260K before this wrapper.
//
// So the inner slot's backward runs one sample at a time — the samples a model declares with
// kernels::RowsPerSample (Llama: its sequences), which also makes every product compute a sample
// as if it were alone — and each sample's float gradient is added into a double sum, in order:
//   sum += g_s          (double)          grad = float(sum)   after every call
// A sample's float gradient is the same bits whatever else is in the batch (each sample's rows go
// through the same kernels with the same shapes), and a double sum of floats rounds to the same
// float whichever way the terms were grouped, up to a double-rounding tie. Several ranks reduce
// Param::sum in double (train/trainer.cpp), so the step's gradient is that of the global batch
// whoever computed which sample, and equal to one process's.
//
// Cost: the inner backward's products run with the rows of one sample (a sequence of T tokens:
// still GEMM-sized) and the factors' gradients once per sample; a double per trained element.
// A slot whose parameters' gradients are light (Linear::light_param_grads: lora, qlora) gets dx
// from one backward over all rows and only its low-rank gradients per sample, so its frozen
// base is dequantized and multiplied once.
#include <cstring>

#include "adapters/methods.h"
#include "adapters/wrapped_linear.h"
#include "core/buffer.h"
#include "kernels/sgemm_parallel.h"

namespace qtune {

namespace {

template <class T>
class ExactGrad final : public WrappedLinear<T> {
 public:
  explicit ExactGrad(std::unique_ptr<Linear<T>> inner) : WrappedLinear<T>(std::move(inner)) {
    params_ = inner_->trainable();
    int64_t n = 0;
    for (const auto& p : params_) n += p.numel;
    sum_.resize(static_cast<size_t>(n));
    std::fill(sum_.data(), sum_.data() + n, 0.0);
    int64_t off = 0;
    for (auto& p : params_) {
      p.sum = sum_.data() + off;
      off += p.numel;
    }
  }

  void forward(const T* x, T* y, int64_t n, Context& ctx) override { inner_->forward(x, y, n, ctx); }

  void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) override {
    const int64_t in = this->in_, out = this->out_;
    // A model that declares no samples (the DiT: its conditioning rows are not per token) gets one
    // double sum over calls: exact over micro-batches, not over ranks.
    const int64_t P = kernels::rows_per_sample();
    const int64_t samples = P > 0 && n % P == 0 && !ctx.timesteps ? n / P : 1;
    const int64_t rows = n / samples;
    if (dx && samples > 1 && inner_->light_param_grads()) {
      // dx from one pass over all rows (the base's product and its dequantization once, not per
      // sample); the parameters' gradients it also adds are recomputed per sample below
      inner_->backward(x, dy, dx, n, ctx);
      dx = nullptr;
    }
    for (int64_t s = 0; s < samples; ++s) {
      for (const auto& p : params_) std::memset(p.grad, 0, static_cast<size_t>(p.numel) * sizeof(T));
      const int64_t r0 = s * rows;
      inner_->backward(x + r0 * in, dy + r0 * out, dx ? dx + r0 * in : nullptr, rows, ctx);
      for (const auto& p : params_)
        for (int64_t j = 0; j < p.numel; ++j) p.sum[j] += static_cast<double>(p.grad[j]);
    }
    for (const auto& p : params_)
      for (int64_t j = 0; j < p.numel; ++j) p.grad[j] = static_cast<T>(p.sum[j]);
  }

  std::vector<Param<T>> trainable() override { return params_; }

 private:
  using WrappedLinear<T>::inner_;
  std::vector<Param<T>> params_;  // the inner slot's, with sum set
  Buffer<double> sum_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_exact_grad(std::unique_ptr<Linear<T>> inner) {
  return std::make_unique<ExactGrad<T>>(std::move(inner));
}

template std::unique_ptr<Linear<float>> make_exact_grad<float>(std::unique_ptr<Linear<float>>);
template std::unique_ptr<Linear<double>> make_exact_grad<double>(std::unique_ptr<Linear<double>>);

}  // namespace qtune
