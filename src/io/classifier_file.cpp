// io/classifier_file.cpp — the fmnist-classifier GGUF (io/classifier_file.h).
#include "io/classifier_file.h"

#include <set>

#include "core/error.h"
#include "io/gguf.h"
#include "io/model_file.h"

namespace qtune {

void validate(const ClassifierConfig& c) {
  auto in_range = [](int v) { return v > 0 && v <= (1 << 16); };
  QT_CHECK(in_range(c.image), "{}: image size {} must be in 1..65536", kClassifierArch, c.image);
  QT_CHECK(in_range(c.hidden1), "{}: hidden1 {} must be in 1..65536", kClassifierArch, c.hidden1);
  QT_CHECK(in_range(c.hidden2), "{}: hidden2 {} must be in 1..65536", kClassifierArch, c.hidden2);
  QT_CHECK(c.num_classes >= 2 && c.num_classes <= (1 << 16), "{}: num_classes {} must be in 2..65536",
           kClassifierArch, c.num_classes);
}

std::vector<std::pair<std::string, Shape>> classifier_tensor_shapes(const ClassifierConfig& c) {
  return {{"fc1.weight", {c.hidden1, c.input()}}, {"fc1.bias", {c.hidden1}},
          {"fc2.weight", {c.hidden2, c.hidden1}}, {"fc2.bias", {c.hidden2}},
          {"fc3.weight", {c.num_classes, c.hidden2}}, {"fc3.bias", {c.num_classes}}};
}

void validate_classifier(const ClassifierFile& f) {
  validate(f.config);
  std::set<std::string> expected;
  for (const auto& [name, shape] : classifier_tensor_shapes(f.config)) {
    expected.insert(name);
    auto it = f.tensors.find(name);
    QT_CHECK(it != f.tensors.end(), "{}: tensor {} is missing", f.path, name);
    QT_CHECK(it->second.shape == shape, "{}: tensor {} has shape {}, expected {}", f.path, name,
             shape_str(it->second.shape), shape_str(shape));
    check_finite(f.path, name, it->second);
  }
  for (const auto& [name, t] : f.tensors)
    QT_CHECK(expected.count(name), "{}: tensor {} is not part of an fmnist-classifier", f.path, excerpt(name));
}

namespace {

constexpr const char* kActivation = "gelu_tanh";

// The GGUF keys of the config, in one list so reader and writer cannot disagree.
template <class V>
void for_each_key(ClassifierConfig& c, V&& v) {
  v("fmnist-classifier.image_size", c.image);
  v("fmnist-classifier.hidden1_length", c.hidden1);
  v("fmnist-classifier.hidden2_length", c.hidden2);
  v("fmnist-classifier.num_classes", c.num_classes);
}

}  // namespace

ClassifierFile load_classifier(const std::string& path) {
  GgufFile g(path);  // throws for a truncated or corrupt file
  const std::string arch = g.has("general.architecture") ? g.get_str("general.architecture") : "";
  QT_CHECK(arch == kClassifierArch, "{}: general.architecture is '{}', expected '{}' (train one with `qtune "
           "classifier-train`)", path, excerpt(arch), kClassifierArch);
  ClassifierFile f;
  f.path = path;
  for_each_key(f.config, [&](const char* key, int& v) {
    const uint32_t u = g.get_u32(key);
    QT_CHECK(u <= (1u << 30), "{}: key '{}' = {} is out of range", path, key, u);
    v = int(u);
  });
  const std::string act = g.get_str("fmnist-classifier.activation");
  QT_CHECK(act == kActivation, "{}: activation '{}' is not supported (only {})", path, excerpt(act), kActivation);
  try {
    validate(f.config);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  if (g.has("fmnist-classifier.test_accuracy")) f.test_accuracy = g.get_f32("fmnist-classifier.test_accuracy");
  if (g.has("fmnist-classifier.train_steps")) f.train_steps = g.get_u64("fmnist-classifier.train_steps");
  for (const GgufTensorInfo& t : g.tensors()) f.tensors[t.name] = g.to_float(t);
  validate_classifier(f);
  return f;
}

void save_classifier(const std::string& path, const ClassifierFile& f) {
  validate_classifier(f);
  GgufWriter w;
  w.set_str("general.architecture", kClassifierArch);
  ClassifierConfig c = f.config;
  for_each_key(c, [&](const char* key, int& v) { w.set_u32(key, uint32_t(v)); });
  w.set_str("fmnist-classifier.activation", kActivation);
  if (f.test_accuracy) w.set_f32("fmnist-classifier.test_accuracy", *f.test_accuracy);
  if (f.train_steps) w.set_u32("fmnist-classifier.train_steps", uint32_t(*f.train_steps));
  for (const auto& [name, shape] : classifier_tensor_shapes(c)) w.add_tensor(name, f.tensors.at(name), GgmlType::F32);
  w.write(path);
}

}  // namespace qtune
