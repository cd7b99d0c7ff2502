// models/classifier.h — the Fashion-MNIST MLP classifier (io/classifier_file.h) with explicit
// forward and backward in the style of llm.c: parameters in one Buffer, gradients in another,
// activations in one Buffer sized for the batch. Templated on the scalar so the backward is
// checked against finite differences in double (tests/models/classifier_test.cpp).
//
// Forward (B images; I = image², H1, H2 hidden, K classes):
//   x      [B, I]                                 the input, copied (backward needs it)
//   a1     [B, H1] = x·W1ᵀ + b1      h1 = GELU_tanh(a1)   [B, H1]
//   a2     [B, H2] = h1·W2ᵀ + b2     h2 = GELU_tanh(a2)   [B, H2]   features()
//   logits [B, K]  = h2·W3ᵀ + b3     probs = softmax(logits)         loss = mean CE
// Backward (grads accumulate; the loss is the mean over the batch):
//   dlogits = (probs − onehot)/B
//   dW3 += dlogitsᵀ·h2  db3 += Σ dlogits  dh2 = dlogits·W3   da2 = GELU'(a2)⊙dh2
//   dW2 += da2ᵀ·h1      db2 += Σ da2      dh1 = da2·W2        da1 = GELU'(a1)⊙dh1
//   dW1 += da1ᵀ·x       db1 += Σ da1
#pragma once
#include <cstdint>
#include <vector>

#include "adapters/linear.h"
#include "core/buffer.h"
#include "io/classifier_file.h"

namespace qtune {

template <class T>
class MlpClassifier {
 public:
  // Fresh weights as PyTorch's nn.Linear draws them: W, b ~ U(−1/√fan_in, 1/√fan_in).
  MlpClassifier(const ClassifierConfig& c, uint64_t seed);
  // The weights of a file (converted to T).
  explicit MlpClassifier(const ClassifierFile& f);

  const ClassifierConfig& config() const { return c_; }
  int64_t num_params() const { return int64_t(params_.size()); }

  // x: [B, I]; labels: [B] in 0..K−1, or nullptr (inference: no loss, no backward).
  // Returns the mean cross-entropy (0 without labels).
  double forward(const T* x, const int* labels, int B);
  void backward();  // after forward with labels
  void zero_grad();
  std::vector<Param<T>> trainable();

  // Of the last forward: [B, K] and [B, H2].
  const T* logits() const { return logits_; }
  const T* features() const { return h2_; }

  ClassifierFile to_file() const;  // float tensors, by GGUF name

 private:
  void layout();
  void allocate(int B);

  ClassifierConfig c_;
  Buffer<T> params_, grads_, acts_, dacts_;
  T *w1_ = nullptr, *b1_ = nullptr, *w2_ = nullptr, *b2_ = nullptr, *w3_ = nullptr, *b3_ = nullptr;
  int B_ = 0, batch_alloc_ = 0;
  T *x_ = nullptr, *a1_ = nullptr, *h1_ = nullptr, *a2_ = nullptr, *h2_ = nullptr, *logits_ = nullptr,
    *probs_ = nullptr;
  std::vector<int> labels_;
};

// Features (h2) [n, H2] and predicted classes (argmax of the logits, first on a tie) [n] of n
// images [n, I], in batches of 256. Either output may be null.
void classifier_features(MlpClassifier<float>& m, const float* images, int64_t n, float* features, int* predictions);

}  // namespace qtune
