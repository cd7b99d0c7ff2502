// tests/ref_dump.h — reads the PyTorch reference dumps in tests/data: "QTREF001" (every array
// float32; tools/torch_reference.py) and "QTREF002" (a dtype per array, float32 or float64;
// tools/torch_reference_int.py). The formats are documented at the top of those scripts.
#pragma once
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/tensor.h"

namespace qtune::test {

struct RefArray {
  Shape shape;
  std::vector<double> data;  // float32 arrays widened exactly
};

class RefDump {
 public:
  RefDump() = default;
  explicit RefDump(const std::string& path) : path_(path) {
    MappedFile f(path);
    Reader r(f);
    const std::string magic = r.string(8, "magic");
    QT_CHECK(magic == "QTREF001" || magic == "QTREF002", "{}: not a qtune reference dump", path);
    const bool typed = magic == "QTREF002";
    const uint32_t count = r.get<uint32_t>("count");
    for (uint32_t i = 0; i < count; ++i) {
      std::string name = r.string(r.get<uint32_t>("name length"), "name");
      const uint32_t dtype = typed ? r.get<uint32_t>("dtype") : 0;
      QT_CHECK(dtype <= 1, "{}: array {} has unknown dtype {}", path, name, dtype);
      RefArray a;
      const uint32_t ndim = r.get<uint32_t>("ndim");
      for (uint32_t d = 0; d < ndim; ++d) a.shape.push_back(r.get<int64_t>("dim"));
      const size_t n = static_cast<size_t>(numel(a.shape));
      a.data.resize(n);
      if (dtype == 1) {
        std::memcpy(a.data.data(), r.bytes(n * 8, "data"), n * 8);
      } else {
        std::vector<float> f32(n);
        std::memcpy(f32.data(), r.bytes(n * 4, "data"), n * 4);
        for (size_t j = 0; j < n; ++j) a.data[j] = f32[j];
      }
      arrays_[name] = std::move(a);
    }
    QT_CHECK(r.left() == 0, "{}: {} trailing bytes", path, r.left());
  }

  // Throws (failing the test with the name) when the dump has no such array.
  const RefArray& at(const std::string& name) const {
    auto it = arrays_.find(name);
    if (it == arrays_.end()) throw Error(path_ + ": the reference dump has no array " + name);
    return it->second;
  }
  double scalar(const std::string& name) const { return at(name).data.at(0); }
  std::vector<int> ints(const std::string& name) const {
    const RefArray& a = at(name);
    return std::vector<int>(a.data.begin(), a.data.end());
  }
  const std::map<std::string, RefArray>& arrays() const { return arrays_; }

 private:
  std::string path_;
  std::map<std::string, RefArray> arrays_;
};

// The dumps' per-row checksum Σ_c v[c]·(c + 1), summed in column order in double (the scripts'
// row_check; the same operations, so a float row's checksum is bit-identical when the row is).
template <class F>
double row_checksum(int64_t n, F&& value_at) {
  double acc = 0;
  for (int64_t c = 0; c < n; ++c) acc += static_cast<double>(value_at(c)) * static_cast<double>(c + 1);
  return acc;
}

}  // namespace qtune::test
