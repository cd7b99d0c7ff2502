// io/classifier_file.h — the Fashion-MNIST classifier that scores generated images (FID features
// and conditional accuracy, docs/DESIGN.md §11.1) as stored on disk: a GGUF with
// general.architecture = "fmnist-classifier".
//
// An MLP on flattened images (I = image², pixels in [−1, 1] as io/idx.h loads them):
//   fc1.weight [H1, I]   fc1.bias [H1]        h1 = GELU_tanh(x·W1ᵀ + b1)
//   fc2.weight [H2, H1]  fc2.bias [H2]        h2 = GELU_tanh(h1·W2ᵀ + b2)   ← the features
//   fc3.weight [K, H2]   fc3.bias [K]         logits = h2·W3ᵀ + b3
// Keys (u32): fmnist-classifier.image_size, .hidden1_length, .hidden2_length, .num_classes;
// fmnist-classifier.activation (string, "gelu_tanh"); optional, as measured by classifier-train:
// fmnist-classifier.test_accuracy (f32) and .train_steps (u32).
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace qtune {

constexpr const char* kClassifierArch = "fmnist-classifier";

struct ClassifierConfig {
  int image = 28;  // square, one channel
  int hidden1 = 256, hidden2 = 128;
  int num_classes = 10;
  int64_t input() const { return int64_t(image) * image; }
};

// Throws Error naming the field when a size is not positive (or absurdly large).
void validate(const ClassifierConfig& c);

// Every stored tensor's name and shape, in file order.
std::vector<std::pair<std::string, Shape>> classifier_tensor_shapes(const ClassifierConfig& c);

struct ClassifierFile {
  ClassifierConfig config;
  TensorMap tensors;
  std::optional<float> test_accuracy;  // as classifier-train measured it on the t10k set
  std::optional<int64_t> train_steps;
  std::string path;  // for messages
};

// Every tensor of classifier_tensor_shapes present with its shape and finite, no other; throws
// Error naming the file and tensor.
void validate_classifier(const ClassifierFile& f);

// Throws Error (one line naming the file) for anything but a valid fmnist-classifier GGUF: another
// architecture, a truncated or corrupt file, a missing key or tensor.
ClassifierFile load_classifier(const std::string& path);
// Writes atomically (GgufWriter::write).
void save_classifier(const std::string& path, const ClassifierFile& f);

}  // namespace qtune
