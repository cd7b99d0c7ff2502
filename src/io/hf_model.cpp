// io/hf_model.cpp — reads Hugging Face LLaMA checkpoint folders (see io/hf_model.h).
#include "io/hf_model.h"

#include <sys/stat.h>

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "io/hf_layout.h"
#include "io/llama2c.h"
#include "io/safetensors.h"

namespace qtune {
namespace {

using nlohmann::json;

constexpr const char* kConfig = "config.json";
constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join(const std::string& dir, const std::string& file) {
  return dir.empty() || dir.back() == '/' ? dir + file : dir + "/" + file;
}

json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

// A field that is present and not null, or nullptr.
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int int_field(const json& j, const char* key, const std::string& where, std::optional<int> fallback = std::nullopt) {
  const json* v = field(j, key);
  if (!v) {
    QT_CHECK(fallback.has_value(), "{}: \"{}\" is missing", where, key);
    return *fallback;
  }
  QT_CHECK(v->is_number_integer() && v->get<int64_t>() > 0 && v->get<int64_t>() <= std::numeric_limits<int>::max(),
           "{}: \"{}\" is {}, expected a positive integer", where, key, excerpt(v->dump()));
  return int(v->get<int64_t>());
}

float float_field(const json& j, const char* key, const std::string& where, float fallback) {
  const json* v = field(j, key);
  if (!v) return fallback;
  QT_CHECK(v->is_number(), "{}: \"{}\" is {}, expected a number", where, key, excerpt(v->dump()));
  return float(v->get<double>());
}

bool bool_field(const json& j, const char* key, const std::string& where, bool fallback) {
  const json* v = field(j, key);
  if (!v) return fallback;
  QT_CHECK(v->is_boolean(), "{}: \"{}\" is {}, expected true or false", where, key, excerpt(v->dump()));
  return v->get<bool>();
}

// model_type and architectures, whichever are given, must both say LLaMA.
void check_llama_kind(const json& j, const std::string& where) {
  const json* type = field(j, "model_type");
  const json* arch = field(j, "architectures");
  QT_CHECK(type || arch, "{}: neither \"model_type\" nor \"architectures\" is given (expected a llama model)", where);
  if (type)
    QT_CHECK(type->is_string() && type->get<std::string>() == "llama",
             "{}: model_type {} is not supported (only \"llama\")", where, excerpt(type->dump()));
  if (arch) {
    bool llama = arch->is_array() && !arch->empty();
    if (llama)
      for (const json& a : *arch) llama = llama && a.is_string() && a.get<std::string>() == "LlamaForCausalLM";
    QT_CHECK(llama, "{}: architectures {} is not supported (only [\"LlamaForCausalLM\"])", where, excerpt(arch->dump()));
  }
}

// The features of transformers' LLaMA that qtune's model does not have, refused by name.
void check_plain_llama(const json& j, const std::string& where, const LlamaConfig& c) {
  if (const json* v = field(j, "rope_scaling"))
    fail("{}: rope_scaling {} is not supported (qtune's RoPE has no scaling)", where, excerpt(v->dump()));
  if (const json* v = field(j, "head_dim"))
    QT_CHECK(v->is_number_integer() && v->get<int64_t>() == c.dim / c.n_heads,
             "{}: head_dim {} is not supported (qtune's head_dim is hidden_size / num_attention_heads = {})", where,
             excerpt(v->dump()), c.dim / c.n_heads);
  for (const char* bias : {"attention_bias", "mlp_bias"})
    QT_CHECK(!bool_field(j, bias, where, false), "{}: {} true is not supported (qtune's projections have no bias)",
             where, bias);
  if (const json* v = field(j, "hidden_act"))
    QT_CHECK(v->is_string() && v->get<std::string>() == "silu",
             "{}: hidden_act {} is not supported (only \"silu\", SwiGLU)", where, excerpt(v->dump()));
}

// Shard file names of an index, in order (each once), checked to be files of the same folder.
struct ShardIndex {
  std::vector<std::string> shards;             // file names, sorted
  std::map<std::string, std::string> listed;  // tensor → shard file name
};

ShardIndex read_index(const std::string& index_path) {
  const json j = parse_json_file(index_path);
  const json* map = j.is_object() ? field(j, "weight_map") : nullptr;
  QT_CHECK(map && map->is_object() && !map->empty(), "{}: no \"weight_map\" object of tensor → shard file",
           index_path);
  ShardIndex ix;
  std::set<std::string> files;
  for (const auto& [name, file] : map->items()) {
    QT_CHECK(file.is_string(), "{}: weight_map entry '{}' is {}, expected a file name", index_path, excerpt(name),
             excerpt(file.dump()));
    const std::string f = file.get<std::string>();
    QT_CHECK(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..",
             "{}: weight_map entry '{}': '{}' is not a file name in the checkpoint's folder", index_path,
             excerpt(name), excerpt(f));
    ix.listed[name] = f;
    files.insert(f);
  }
  ix.shards.assign(files.begin(), files.end());
  return ix;
}

// The weight files of the checkpoint in dir and the index they come from (nullopt: one file).
struct WeightFiles {
  std::vector<std::string> paths;
  std::optional<ShardIndex> index;
  std::string index_path;
};

WeightFiles weight_files(const std::string& dir) {
  WeightFiles w;
  if (file_exists(join(dir, kIndex))) {
    w.index_path = join(dir, kIndex);
    w.index = read_index(w.index_path);
    for (const std::string& f : w.index->shards) {
      const std::string p = join(dir, f);
      QT_CHECK(file_exists(p), "{}: shard '{}' listed in {} is missing", p, f, kIndex);
      w.paths.push_back(p);
    }
    return w;
  }
  const std::string single = join(dir, kSingle);
  if (!file_exists(single)) {
    const bool torch_bin = file_exists(join(dir, "pytorch_model.bin")) || file_exists(join(dir, "pytorch_model.bin.index.json"));
    fail("{}: no {} or {} in the checkpoint folder{}", dir, kSingle, kIndex,
         torch_bin ? " (only safetensors weights are read, not pytorch_model.bin: re-save with "
                     "save_pretrained(..., safe_serialization=True))"
                   : "");
  }
  w.paths.push_back(single);
  return w;
}

// dir/config.json, or an Error saying that dir is no checkpoint.
std::string config_path_of(const std::string& dir) {
  const std::string p = join(dir, kConfig);
  QT_CHECK(file_exists(p),
           "{}: not a regular file (a directory), and no config.json in it for a Hugging Face checkpoint folder",
           dir);
  return p;
}

GgmlType ggml_type_of(SafetensorsDtype t) {
  switch (t) {
    case SafetensorsDtype::F32: return GgmlType::F32;
    case SafetensorsDtype::F16: return GgmlType::F16;
    case SafetensorsDtype::BF16: return GgmlType::BF16;
    case SafetensorsDtype::Other: break;
  }
  QT_ASSERT(false);
  return GgmlType::F32;
}

// Where each tensor was found, for the checks across shards.
struct Found {
  int file = 0;
};

// One shard's tensors into m.lazy, checked against the config's list (`specs`).
void add_shard_tensors(ModelFile& m, const SafetensorsHeader& h, int file, const std::map<std::string, Shape>& specs,
                       std::map<std::string, Found>& found, const std::vector<std::string>& paths) {
  for (const SafetensorsTensor& t : h.tensors) {
    if (auto prev = found.find(t.name); prev != found.end())
      fail("{}: tensor '{}' is also in {} (each tensor must be in one shard)", h.path, excerpt(t.name),
           paths[size_t(prev->second.file)]);
    found[t.name] = {file};
    const std::optional<std::string> g = gguf_name_of_hf(t.name);
    if (!g) {
      if (t.name.ends_with(".rotary_emb.inv_freq")) continue;  // derived from rope_theta, not learned
      fail("{}: tensor '{}' is not part of a LLaMA model as qtune reads it (model.embed_tokens, model.layers.N.*, "
           "model.norm, lm_head)", h.path, excerpt(t.name));
    }
    if (*g == "output.weight" && m.config.tied_classifier) continue;  // tied: transformers uses the embedding
    auto spec = specs.find(*g);
    QT_CHECK(spec != specs.end(), "{}: tensor '{}' does not fit config.json (num_hidden_layers {})", h.path,
             excerpt(t.name), m.config.n_layers);
    QT_CHECK(t.dtype != SafetensorsDtype::Other, "{}: tensor '{}' has dtype {} (F32, F16 and BF16 are read)", h.path,
             excerpt(t.name), t.dtype_name);
    QT_CHECK(t.shape == spec->second, "{}: tensor '{}' has shape {}, config.json needs {}", h.path, excerpt(t.name),
             shape_str(t.shape), shape_str(spec->second));
    LazyTensor z{t.shape, ggml_type_of(t.dtype), t.offset, t.nbytes, file, 0};
    if (g->ends_with(".attn_q.weight") || g->ends_with(".attn_k.weight")) z.hf_head_dim = m.config.head_dim();
    if (t.dtype != SafetensorsDtype::F32) m.stored_types[*g] = t.dtype_name;
    m.lazy.emplace(*g, z);
  }
}

}  // namespace

std::optional<std::string> hf_checkpoint_dir(const std::string& path) {
  if (is_dir(path)) return path;
  if (!file_exists(path)) return std::nullopt;
  const std::string dir = folder_of(path), base = base_of(path);
  if (base == kConfig) return dir;
  if ((base.ends_with(".safetensors") || base == kIndex) && file_exists(join(dir, kConfig))) return dir;
  return std::nullopt;
}

LlamaConfig parse_hf_config(const std::string& json_text, const std::string& where) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", where, e.what());
  }
  QT_CHECK(j.is_object(), "{}: expected a JSON object, found {}", where, j.type_name());
  check_llama_kind(j, where);
  LlamaConfig c;
  c.dim = int_field(j, "hidden_size", where);
  c.hidden_dim = int_field(j, "intermediate_size", where);
  c.n_layers = int_field(j, "num_hidden_layers", where);
  c.n_heads = int_field(j, "num_attention_heads", where);
  c.n_kv_heads = int_field(j, "num_key_value_heads", where, c.n_heads);
  c.vocab_size = int_field(j, "vocab_size", where);
  c.seq_len = int_field(j, "max_position_embeddings", where);
  c.norm_eps = float_field(j, "rms_norm_eps", where, 1e-6f);
  c.rope_theta = float_field(j, "rope_theta", where, 10000.0f);
  c.tied_classifier = bool_field(j, "tie_word_embeddings", where, false);
  check_llama_config(c, where);
  check_plain_llama(j, where, c);
  return c;
}

std::vector<std::string> hf_checkpoint_files(const std::string& dir) {
  std::vector<std::string> files = {config_path_of(dir)};
  const WeightFiles w = weight_files(dir);
  if (w.index) files.push_back(w.index_path);
  files.insert(files.end(), w.paths.begin(), w.paths.end());
  return files;
}

std::string hf_tokenizer_path(const std::string& model_path) {
  const auto dir = hf_checkpoint_dir(model_path);
  if (!dir) return "";
  const std::string p = join(*dir, "tokenizer.model");
  return file_exists(p) ? p : "";
}

ModelFile open_hf_model(const std::string& dir) {
  const std::string config_path = config_path_of(dir);
  ModelFile m;
  m.path = dir;
  m.format = "hf-safetensors";
  m.config = parse_hf_config(read_text_file(config_path), config_path);
  const WeightFiles w = weight_files(dir);

  std::map<std::string, Shape> specs;
  for (const TensorSpec& s : model_tensor_specs(m.config)) specs[s.name] = s.shape;
  std::map<std::string, Found> found;  // every tensor of every shard, by HF name
  std::vector<LazySource::FileSize> sizes;
  for (size_t i = 0; i < w.paths.size(); ++i) {
    const SafetensorsHeader h = read_safetensors_header(w.paths[i]);
    add_shard_tensors(m, h, int(i), specs, found, w.paths);
    sizes.push_back({h.path, h.file_size});
  }
  if (w.index)
    for (const auto& [name, shard] : w.index->listed) {
      auto it = found.find(name);
      QT_CHECK(it != found.end(), "{}: tensor '{}' listed for it in {} is missing", join(dir, shard), excerpt(name),
               kIndex);
      QT_CHECK(base_of(w.paths[size_t(it->second.file)]) == shard, "{}: tensor '{}' is listed for {} in {}",
               w.paths[size_t(it->second.file)], excerpt(name), shard, kIndex);
    }
  const std::string where = w.index ? w.index_path : w.paths.front();
  for (const auto& [name, shape] : specs)
    if (!m.lazy.count(name)) {
      QT_CHECK(name != "output.weight", "{}: lm_head.weight is missing and config.json's tie_word_embeddings is false",
               where);
      fail("{}: tensor '{}' is missing", where, hf_name_of_gguf(name));
    }
  m.source = std::make_shared<LazySource>(sizes);
  m.weight_files = w.paths;
  validate_model(m);
  return m;
}

}  // namespace qtune
