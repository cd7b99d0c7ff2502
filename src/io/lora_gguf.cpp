#include "io/lora_gguf.h"

#include <map>

#include "io/gguf.h"
#include "io/gguf_rules.h"

namespace qtune {

namespace {

const std::string kA = ".lora_a", kB = ".lora_b";

std::string strip(const std::string& s, const std::string& suffix) { return s.substr(0, s.size() - suffix.size()); }

// The A/B tensors of one target weight (pointers into the file or map; null when absent).
template <class T>
struct Pair {
  const T* a = nullptr;
  const T* b = nullptr;
};

void check_metadata(const GgufFile& f, std::vector<std::string>& v) {
  auto str_is = [&](const std::string& key, const std::string& want) {
    const GgufValue* x = f.find(key);
    if (!x)
      v.push_back(fmt::format("key '{}' is missing (must be '{}')", key, want));
    else if (x->type != GgufType::STRING || x->str != want)
      v.push_back(fmt::format("key '{}' must be the string '{}'", key, want));
  };
  str_is("general.type", "adapter");
  str_is("adapter.type", "lora");
  const GgufValue* alpha = f.find("adapter.lora.alpha");
  if (!alpha)
    v.push_back("key 'adapter.lora.alpha' is missing");
  else if (alpha->type != GgufType::FLOAT32)
    v.push_back(fmt::format("key 'adapter.lora.alpha' must be float32, found {}", gguf_type_name(alpha->type)));
}

void check_pair(const std::string& target, const Pair<GgufTensorInfo>& p, const ModelFile* base,
                std::vector<std::string>& v) {
  if (!p.a || !p.b) {
    v.push_back(fmt::format("'{}': LoRA pair is missing its {} tensor", target, p.a ? "lora_b" : "lora_a"));
    return;
  }
  if (p.a->ne.size() != 2 || p.b->ne.size() != 2) {
    v.push_back(fmt::format("'{}': lora_a and lora_b must be 2-D", target));
    return;
  }
  if (p.a->ne[1] != p.b->ne[0])
    v.push_back(fmt::format("'{}': rank mismatch: lora_a ne[1] = {} but lora_b ne[0] = {}", target, p.a->ne[1],
                            p.b->ne[0]));
  if (!base) return;
  Shape w;  // [out, in]: ne = {in, out}
  if (auto it = base->tensors.find(target); it != base->tensors.end())
    w = it->second.shape;
  else if (auto q = base->quantized.find(target); q != base->quantized.end() && !q->second.empty())
    w = {q->second[0].rows, q->second[0].cols};  // an integer base weight
  else {
    v.push_back(fmt::format("'{}': no such tensor in the base model", target));
    return;
  }
  if (w.size() != 2 || p.a->ne[0] != w[1] || p.b->ne[1] != w[0])
    v.push_back(fmt::format("'{}': shape mismatch: lora_a ne = [{}], lora_b ne = [{}], base weight is {}", target,
                            fmt::join(p.a->ne, ", "), fmt::join(p.b->ne, ", "), shape_str(w)));
}

}  // namespace

std::vector<std::string> check_llamacpp_lora_rules(const GgufFile& f, const ModelFile* base) {
  std::vector<std::string> v;
  const GgufValue* arch = f.find("general.architecture");
  if (!arch || arch->type != GgufType::STRING)
    v.push_back("key 'general.architecture' is missing or not a string");
  else if (base && arch->str != "llama")
    v.push_back(fmt::format("key 'general.architecture': '{}' does not match the base model ('llama')", arch->str));
  check_metadata(f, v);
  std::map<std::string, Pair<GgufTensorInfo>> pairs;
  for (const auto& t : f.tensors()) {
    if (t.name.ends_with(kA))
      pairs[strip(t.name, kA)].a = &t;
    else if (t.name.ends_with(kB))
      pairs[strip(t.name, kB)].b = &t;
    else
      v.push_back(fmt::format("tensor '{}': name does not end in .lora_a or .lora_b", t.name));
  }
  for (const auto& [target, p] : pairs) check_pair(target, p, base, v);
  check_llamacpp_layout(f, v);
  return v;
}

void save_lora_gguf(const std::string& path, const TensorMap& adapters, float alpha, const std::string& arch) {
  std::map<std::string, Pair<Tensor>> pairs;
  for (const auto& [name, t] : adapters) {
    if (name.ends_with(kA))
      pairs[strip(name, kA)].a = &t;
    else if (name.ends_with(kB))
      pairs[strip(name, kB)].b = &t;
    else
      fail("{}: adapter tensor '{}': name must end in .lora_a or .lora_b", path, name);
  }
  GgufWriter w;
  w.set_str("general.architecture", arch);
  w.set_str("general.type", "adapter");
  w.set_str("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", alpha);
  for (const auto& [target, p] : pairs) {
    QT_CHECK(p.a && p.b, "{}: adapter '{}' has no {}", path, target, p.a ? "lora_b" : "lora_a");
    const Shape &a = p.a->shape, &b = p.b->shape;  // A [r, in], B [out, r]
    QT_CHECK(a.size() == 2 && b.size() == 2 && a[0] == b[1],
             "{}: adapter '{}': lora_a {} and lora_b {} are not [r, in] and [out, r]", path, target, shape_str(a),
             shape_str(b));
    w.add_tensor(target + ".weight" + kA, *p.a, GgmlType::F32);
    w.add_tensor(target + ".weight" + kB, *p.b, GgmlType::F32);
  }
  w.write(path);
}

LoraGguf load_lora_gguf(const std::string& path) {
  GgufFile f(path);
  auto v = check_llamacpp_lora_rules(f, nullptr);
  QT_CHECK(v.empty(), "{}: not a valid LoRA adapter: {}", path, v[0]);
  LoraGguf out;
  out.arch = f.get_str("general.architecture");
  out.alpha = f.get_f32("adapter.lora.alpha");
  const std::string weight = ".weight";
  for (const auto& t : f.tensors()) {
    bool is_a = t.name.ends_with(kA);
    std::string target = strip(t.name, is_a ? kA : kB);
    QT_CHECK(target.ends_with(weight), "{}: tensor '{}': expected a name like blk.N.attn_q.weight{}", path, t.name,
             is_a ? kA : kB);
    out.adapters.emplace(strip(target, weight) + (is_a ? kA : kB), f.to_float(t));
  }
  return out;
}

}  // namespace qtune
