// models/classifier.cpp — see models/classifier.h.
#include "models/classifier.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "nn/dit_ops.h"
#include "nn/ops.h"

namespace qtune {

namespace {
struct Slot {
  const char* name;
  int64_t rows, cols;  // cols = 0 for a bias
};
}  // namespace

template <class T>
void MlpClassifier<T>::layout() {
  validate(c_);
  const int64_t I = c_.input(), H1 = c_.hidden1, H2 = c_.hidden2, K = c_.num_classes;
  params_.resize(size_t(H1 * I + H1 + H2 * H1 + H2 + K * H2 + K));
  grads_.resize(params_.size());
  T* p = params_.data();
  w1_ = p, p += H1 * I;
  b1_ = p, p += H1;
  w2_ = p, p += H2 * H1;
  b2_ = p, p += H2;
  w3_ = p, p += K * H2;
  b3_ = p;
}

template <class T>
MlpClassifier<T>::MlpClassifier(const ClassifierConfig& c, uint64_t seed) : c_(c) {
  layout();
  Rng rng(seed);
  auto init = [&](T* w, int64_t n, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(double(fan_in));
    for (int64_t i = 0; i < n; ++i) w[i] = T((2.0 * rng.uniform_double() - 1.0) * bound);
  };
  const int64_t I = c_.input(), H1 = c_.hidden1, H2 = c_.hidden2, K = c_.num_classes;
  init(w1_, H1 * I, I), init(b1_, H1, I);
  init(w2_, H2 * H1, H1), init(b2_, H2, H1);
  init(w3_, K * H2, H2), init(b3_, K, H2);
}

template <class T>
MlpClassifier<T>::MlpClassifier(const ClassifierFile& f) : c_(f.config) {
  layout();
  T* p = params_.data();
  for (const auto& [name, shape] : classifier_tensor_shapes(c_)) {
    const Tensor& t = f.tensors.at(name);
    QT_CHECK(t.shape == shape, "{}: tensor {} has shape {}, expected {}", f.path, name, shape_str(t.shape),
             shape_str(shape));
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = T(t.ptr()[i]);
    p += t.numel();
  }
}

template <class T>
void MlpClassifier<T>::allocate(int B) {
  if (B <= batch_alloc_) return;
  const int64_t I = c_.input(), H1 = c_.hidden1, H2 = c_.hidden2, K = c_.num_classes;
  acts_.resize(size_t(B) * (I + 2 * H1 + 2 * H2 + 2 * K));
  T* p = acts_.data();
  x_ = p, p += B * I;
  a1_ = p, p += B * H1;
  h1_ = p, p += B * H1;
  a2_ = p, p += B * H2;
  h2_ = p, p += B * H2;
  logits_ = p, p += B * K;
  probs_ = p;
  dacts_.resize(size_t(B) * (2 * H1 + 2 * H2 + K));  // dlogits, dh2, da2, dh1, da1
  batch_alloc_ = B;
}

template <class T>
double MlpClassifier<T>::forward(const T* x, const int* labels, int B) {
  QT_CHECK(B > 0, "classifier: empty batch");
  allocate(B);
  B_ = B;
  const int64_t I = c_.input(), H1 = c_.hidden1, H2 = c_.hidden2, K = c_.num_classes;
  std::memcpy(x_, x, size_t(B) * I * sizeof(T));
  kernels::matmul_nt(x_, w1_, a1_, B, I, H1, false);  // a1 [B, H1]
  nn::add_bias_forward(a1_, b1_, B, H1);
  nn::gelu_tanh_forward(a1_, h1_, int64_t(B) * H1);
  kernels::matmul_nt(h1_, w2_, a2_, B, H1, H2, false);  // a2 [B, H2]
  nn::add_bias_forward(a2_, b2_, B, H2);
  nn::gelu_tanh_forward(a2_, h2_, int64_t(B) * H2);
  kernels::matmul_nt(h2_, w3_, logits_, B, H2, K, false);  // logits [B, K]
  nn::add_bias_forward(logits_, b3_, B, K);
  if (!labels) {
    labels_.clear();
    return 0.0;
  }
  labels_.assign(labels, labels + B);
  for (int b = 0; b < B; ++b)
    QT_CHECK(labels_[b] >= 0 && labels_[b] < K, "classifier: label {} is outside 0..{}", labels_[b], K - 1);
  return nn::cross_entropy_forward(logits_, labels_.data(), probs_, B, K);
}

template <class T>
void MlpClassifier<T>::backward() {
  QT_CHECK(int(labels_.size()) == B_ && B_ > 0, "classifier: backward without a forward with labels");
  const int B = B_;
  const int64_t I = c_.input(), H1 = c_.hidden1, H2 = c_.hidden2, K = c_.num_classes;
  T* g = grads_.data();
  T *gw1 = g, *gb1 = gw1 + H1 * I, *gw2 = gb1 + H1, *gb2 = gw2 + H2 * H1, *gw3 = gb2 + H2, *gb3 = gw3 + K * H2;
  T* d = dacts_.data();
  T *dlogits = d, *dh2 = dlogits + B * K, *da2 = dh2 + B * H2, *dh1 = da2 + B * H2, *da1 = dh1 + B * H1;
  std::fill(d, d + size_t(B) * (2 * H1 + 2 * H2 + K), T(0));
  nn::cross_entropy_backward(probs_, labels_.data(), dlogits, B, K);  // dlogits [B, K]
  kernels::matmul_tn(dlogits, h2_, gw3, B, H2, K, true);               // dW3 [K, H2]
  nn::add_bias_backward(dlogits, gb3, B, K);
  kernels::matmul_nn(dlogits, w3_, dh2, B, H2, K, false);  // dh2 [B, H2]
  nn::gelu_tanh_backward(dh2, a2_, da2, int64_t(B) * H2);  // da2 [B, H2]
  kernels::matmul_tn(da2, h1_, gw2, B, H1, H2, true);      // dW2 [H2, H1]
  nn::add_bias_backward(da2, gb2, B, H2);
  kernels::matmul_nn(da2, w2_, dh1, B, H1, H2, false);     // dh1 [B, H1]
  nn::gelu_tanh_backward(dh1, a1_, da1, int64_t(B) * H1);  // da1 [B, H1]
  kernels::matmul_tn(da1, x_, gw1, B, I, H1, true);        // dW1 [H1, I]
  nn::add_bias_backward(da1, gb1, B, H1);
}

template <class T>
void MlpClassifier<T>::zero_grad() {
  std::fill(grads_.data(), grads_.data() + grads_.size(), T(0));
}

template <class T>
std::vector<Param<T>> MlpClassifier<T>::trainable() {
  std::vector<Param<T>> out;
  int64_t off = 0;
  for (const auto& [name, shape] : classifier_tensor_shapes(c_)) {
    const int64_t n = qtune::numel(shape);
    Param<T> p{name, params_.data() + off, grads_.data() + off, n, shape};
    p.decay = shape.size() == 2;  // no weight decay on biases
    out.push_back(std::move(p));
    off += n;
  }
  return out;
}

template <class T>
ClassifierFile MlpClassifier<T>::to_file() const {
  ClassifierFile f;
  f.config = c_;
  const T* p = params_.data();
  for (const auto& [name, shape] : classifier_tensor_shapes(c_)) {
    Tensor t(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.ptr()[i] = float(p[i]);
    p += t.numel();
    f.tensors.emplace(name, std::move(t));
  }
  return f;
}

template class MlpClassifier<float>;
template class MlpClassifier<double>;

void classifier_features(MlpClassifier<float>& m, const float* images, int64_t n, float* features, int* predictions) {
  constexpr int kBatch = 256;
  const int64_t I = m.config().input(), H2 = m.config().hidden2, K = m.config().num_classes;
  for (int64_t s = 0; s < n; s += kBatch) {
    const int B = int(std::min<int64_t>(kBatch, n - s));
    m.forward(images + s * I, nullptr, B);
    if (features) std::memcpy(features + s * H2, m.features(), size_t(B) * H2 * sizeof(float));
    if (predictions)
      for (int b = 0; b < B; ++b) {
        const float* l = m.logits() + b * K;
        predictions[s + b] = int(std::max_element(l, l + K) - l);
      }
  }
}

}  // namespace qtune
