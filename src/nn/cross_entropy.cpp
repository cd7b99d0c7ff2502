// nn/cross_entropy.cpp — softmax + mean negative log-likelihood over counted targets.
#include <cmath>

#include "core/error.h"
#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn {

int64_t count_targets(const int* targets, int64_t N) {
  int64_t n = 0;
  for (int64_t i = 0; i < N; ++i) n += targets[i] >= 0;
  return n;
}

// logits, probs: [N, V]   targets: [N] (< 0: ignored)
template <class T>
double cross_entropy_forward(const T* logits, const int* targets, T* probs, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i)
    QT_CHECK(targets[i] < V, "cross-entropy: target {} at row {} is outside the vocabulary ({} tokens)", targets[i],
             i, V);
  double total = 0;  // the sum of many small losses: accumulate in double
#pragma omp parallel for schedule(static) reduction(+ : total) if (N * V >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) {
    const T* z = logits + i * V;
    T* p = probs + i * V;
    T mx = z[0];
    for (int64_t j = 1; j < V; ++j) mx = z[j] > mx ? z[j] : mx;
    T sum = 0;
    for (int64_t j = 0; j < V; ++j) {
      p[j] = std::exp(z[j] - mx);
      sum += p[j];
    }
    for (int64_t j = 0; j < V; ++j) p[j] /= sum;
    // −log p[y] = log(sum) − (z[y] − mx): exact even when p[y] underflows
    if (targets[i] >= 0) total += std::log(double(sum)) - double(z[targets[i]] - mx);
  }
  int64_t n = count_targets(targets, N);
  return n ? total / double(n) : 0.0;
}

template <class T>
void cross_entropy_backward(const T* probs, const int* targets, T* dlogits, int64_t N, int64_t V) {
  int64_t n = count_targets(targets, N);
  if (n == 0) return;
  const T inv = T(1) / T(n);
#pragma omp parallel for schedule(static) if (N * V >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) continue;
    const T* p = probs + i * V;
    T* d = dlogits + i * V;
    for (int64_t j = 0; j < V; ++j) d[j] += p[j] * inv;
    d[targets[i]] -= inv;
  }
}

template double cross_entropy_forward<float>(const float*, const int*, float*, int64_t, int64_t);
template double cross_entropy_forward<double>(const double*, const int*, double*, int64_t, int64_t);
template void cross_entropy_backward<float>(const float*, const int*, float*, int64_t, int64_t);
template void cross_entropy_backward<double>(const double*, const int*, double*, int64_t, int64_t);

}  // namespace qtune::nn
