// qtune info — describe a model file: architecture, shapes, parameter count, tensor types,
// integer weights (type, bits, groups, planes) and the activation setting.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/classifier_file.h"
#include "io/dit_file.h"
#include "io/gguf.h"
#include "io/hf_model.h"
#include "io/model_file.h"

namespace qtune::cli {

namespace {

std::string stored_type(const ModelFile& mf, const std::string& name) {
  auto it = mf.stored_types.find(name);
  return it == mf.stored_types.end() ? "F32" : it->second;
}

nlohmann::json config_json(const LlamaConfig& c) {
  return {{"dim", c.dim},           {"hidden_dim", c.hidden_dim},   {"n_layers", c.n_layers},
          {"n_heads", c.n_heads},   {"n_kv_heads", c.n_kv_heads},   {"head_dim", c.head_dim()},
          {"vocab_size", c.vocab_size}, {"seq_len", c.seq_len},     {"norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta}, {"tied_classifier", c.tied_classifier}};
}

// One integer weight: stored type, code width, grid, groups and planes (io/gguf_int.h).
nlohmann::json int_weight_json(const std::map<std::string, std::string>& stored_types, const std::string& name,
                               const std::vector<QuantMatrix>& planes) {
  const QuantMatrix& p = planes.front();
  const std::string type = stored_types.count(name) ? stored_types.at(name) : fmt::format("int{}", p.spec.bits);
  return {{"name", name},
          {"shape", Shape{p.rows, p.cols}},
          {"type", type},
          {"bits", p.spec.bits},
          {"symmetric", p.spec.symmetric},
          {"group", p.spec.group},  // 0 = one scale per row
          {"planes", planes.size()}};
}

nlohmann::json info_json(const ModelFile& mf) {
  std::map<std::string, nlohmann::json> by_name;  // float and integer tensors, in name order
  std::map<std::string, int64_t> per_type;
  int64_t params = 0;
  auto add_float = [&](const std::string& name, const Shape& shape) {
    std::string type = stored_type(mf, name);
    by_name[name] = {{"name", name}, {"shape", shape}, {"type", type}};
    per_type[type] += numel(shape);
    params += numel(shape);
  };
  for (const auto& [name, t] : mf.tensors) add_float(name, t.shape);
  for (const auto& [name, t] : mf.lazy) add_float(name, t.shape);
  for (const auto& [name, planes] : mf.quantized) {
    nlohmann::json j = int_weight_json(mf.stored_types, name, planes);
    const int64_t n = planes.front().rows * planes.front().cols;
    per_type[j["type"].get<std::string>()] += n;
    params += n;
    by_name[name] = std::move(j);
  }
  nlohmann::json tensors = nlohmann::json::array();
  for (auto& [name, j] : by_name) tensors.push_back(std::move(j));
  nlohmann::json act = {{"bits", mf.act_bits}, {"static_scales", mf.act_scales.size()}};
  nlohmann::json j = {{"file", mf.path},       {"format", mf.format},     {"architecture", "llama"},
                      {"config", config_json(mf.config)}, {"parameters", params}, {"params_by_type", per_type},
                      {"integer_weights", mf.quantized.size()}, {"activations", act}, {"tensors", tensors}};
  if (!mf.weight_files.empty()) {  // a Hugging Face checkpoint folder: its shards and tokenizer
    j["weight_files"] = mf.weight_files;
    j["tokenizer"] = hf_tokenizer_path(mf.path);
  }
  return j;
}

// "4-bit asym, per row" / "8-bit sym, group 32, 2 planes"
std::string int_detail(const nlohmann::json& t) {
  std::string s = fmt::format("{}-bit {}", t["bits"].get<int>(), t["symmetric"].get<bool>() ? "sym" : "asym");
  const int group = t["group"].get<int>();
  s += group ? fmt::format(", group {}", group) : std::string(", per row");
  if (t["planes"].get<int>() > 1) s += fmt::format(", {} planes", t["planes"].get<int>());
  return s;
}

void print_human(const nlohmann::json& j) {
  const auto& c = j["config"];
  std::printf("file:          %s\n", j["file"].get<std::string>().c_str());
  std::printf("format:        %s\n", j["format"].get<std::string>().c_str());
  if (j.contains("weight_files")) {
    std::string names;
    for (const auto& f : j["weight_files"]) names += (names.empty() ? "" : ", ") + f.get<std::string>();
    std::printf("weight files:  %zu (%s)\n", j["weight_files"].size(), names.c_str());
    const std::string tok = j["tokenizer"].get<std::string>();
    std::printf("tokenizer:     %s\n", tok.empty() ? "none in the folder (pass --tokenizer)" : tok.c_str());
  }
  std::printf("architecture:  llama\n");
  std::printf("dim %d, hidden %d, layers %d, heads %d (kv %d, head_dim %d), vocab %d, seq_len %d\n",
              c["dim"].get<int>(), c["hidden_dim"].get<int>(), c["n_layers"].get<int>(), c["n_heads"].get<int>(),
              c["n_kv_heads"].get<int>(), c["head_dim"].get<int>(), c["vocab_size"].get<int>(),
              c["seq_len"].get<int>());
  std::printf("classifier:    %s\n", c["tied_classifier"].get<bool>() ? "tied to token_embd" : "separate (output.weight)");
  std::printf("parameters:    %lld (%s)\n", static_cast<long long>(j["parameters"].get<int64_t>()),
              human_count(j["parameters"].get<int64_t>()).c_str());
  for (const auto& [type, n] : j["params_by_type"].items())
    std::printf("  %-6s       %lld\n", type.c_str(), static_cast<long long>(n.get<int64_t>()));
  const auto& act = j["activations"];
  const int act_bits = act["bits"].get<int>();
  if (act_bits == 0)
    std::printf("activations:   float\n");
  else {
    const int n_static = act["static_scales"].get<int>(), n_proj = kNumProjections * j["config"]["n_layers"].get<int>();
    std::printf("activations:   int%d (%s)\n", act_bits,
                n_static == 0        ? "per-token scales"
                : n_static == n_proj ? fmt::format("static scales for all {} projections", n_proj).c_str()
                                     : fmt::format("static scales for {} of {} projections, per-token for the rest",
                                                   n_static, n_proj).c_str());
  }
  std::printf("integer weights: %d\n", j["integer_weights"].get<int>());
  std::printf("tensors (%zu):\n", j["tensors"].size());
  for (const auto& t : j["tensors"]) {
    std::string shape;
    for (const auto& d : t["shape"]) shape += (shape.empty() ? "" : " x ") + std::to_string(d.get<int64_t>());
    const std::string detail = t.contains("bits") ? "  " + int_detail(t) : "";
    std::printf("  %-28s %-6s [%s]%s\n", t["name"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(),
                shape.c_str(), detail.c_str());
  }
}

// "adapter" | "checkpoint" for a GGUF adapter or training checkpoint, "" for anything else.
std::string adapter_kind(const std::string& path) {
  if (!is_gguf_file(path)) return "";
  GgufFile g(path);
  const std::string type = g.has("general.type") ? g.get_str("general.type") : "";
  if (type == "adapter") return "adapter";
  if (type == "qtune.checkpoint") return "checkpoint";
  return "";
}

// What an adapter or checkpoint holds: the method and its options, the adapter's tensors, and
// for a checkpoint the step it was saved at.
nlohmann::json adapter_json(const std::string& path, const std::string& kind) {
  const TrainedAdapter a = read_trained_adapter(path);
  int64_t params = 0;
  for (const auto& [name, t] : a.adapters) params += t.numel();
  nlohmann::json j = {{"file", path},
                      {"kind", kind == "checkpoint" ? "checkpoint" : a.kind == "lora" ? "lora adapter" : "qtune adapter"},
                      {"method", options_json(a.method)},
                      {"settings", settings_of(a.method)},
                      {"seed", a.seed},
                      {"adapter_tensors", a.adapters.size()},
                      {"trainable_params", params},
                      {"state_tensors", a.state.size()},
                      {"architecture", a.architecture},
                      {"llama_cpp_applies", a.kind == "lora" && a.architecture == "llama"},
                      {"base", {{"file", a.base.file}, {"fingerprint", a.base.fingerprint},
                                {"needs", base_needed(a, path)}}}};
  if (kind == "checkpoint") j["step"] = GgufFile(path).get_u64("qtune.step");
  return j;
}

// A full fine-tuning checkpoint holds every weight, not an adapter: what run it continues.
std::optional<nlohmann::json> full_checkpoint_json(const std::string& path) {
  GgufFile g(path);
  const RunSettings run = get_run_settings(g);
  const std::string* method = find_setting(run, "method");
  if (!method || *method != "full") return std::nullopt;
  int64_t params = 0, tensors = 0;
  for (const auto& t : g.tensors())
    if (!t.name.starts_with("qtune.")) params += t.numel(), ++tensors;  // not the optimizer moments
  return nlohmann::json{{"file", path},       {"kind", "checkpoint"}, {"method", {{"method", "full"}}},
                        {"settings", run},    {"step", g.get_u64("qtune.step")},
                        {"tensors", tensors}, {"parameters", params}};
}

void print_full_checkpoint(const nlohmann::json& j) {
  std::printf("file:          %s\n", j["file"].get<std::string>().c_str());
  std::printf("kind:          checkpoint at step %lld (method full: every weight, no adapter)\n",
              static_cast<long long>(j["step"].get<int64_t>()));
  std::printf("tensors:       %lld (%s parameters) + optimizer state\n", static_cast<long long>(j["tensors"].get<int64_t>()),
              human_count(j["parameters"].get<int64_t>()).c_str());
  std::printf("use:           continue the run with --resume %s (the model is written to --out at its end)\n",
              j["file"].get<std::string>().c_str());
}

void print_adapter(const nlohmann::json& j) {
  std::printf("file:          %s\n", j["file"].get<std::string>().c_str());
  std::printf("kind:          %s%s\n", j["kind"].get<std::string>().c_str(),
              j.contains("step") ? fmt::format(" at step {}", j["step"].get<int64_t>()).c_str() : "");
  std::string opts;  // "--rank 8 --bits 4 ...", as the flags were given
  for (const auto& kv : j["settings"])
    if (kv[0] != "method") opts += fmt::format("{}--{} {}", opts.empty() ? "" : " ", kv[0].get<std::string>(), kv[1].get<std::string>());
  std::printf("adapts:        %s\n", j["architecture"].get<std::string>().c_str());
  std::printf("method:        %s  %s\n", j["method"]["method"].get<std::string>().c_str(), opts.c_str());
  std::printf("seed:          %llu\n", static_cast<unsigned long long>(j["seed"].get<uint64_t>()));
  std::printf("tensors:       %zu adapter (%s trainable parameters), %zu state\n",
              j["adapter_tensors"].get<size_t>(), human_count(j["trainable_params"].get<int64_t>()).c_str(),
              j["state_tensors"].get<size_t>());
  std::printf("llama.cpp:     %s\n", j["llama_cpp_applies"].get<bool>() ? "applies it (--lora)"
                                                                        : "cannot apply it: use `qtune merge`");
  std::printf("base:          %s\n", j["base"]["needs"].get<std::string>().c_str());
}

nlohmann::json dit_info_json(const DitFile& f) {
  const DitConfig& c = f.config;
  nlohmann::json tensors = nlohmann::json::array();
  int64_t params = 0;
  for (const auto& [name, shape] : dit_tensor_shapes(c)) {
    if (auto q = f.quantized.find(name); q != f.quantized.end())
      tensors.push_back(int_weight_json(f.stored_types, name, q->second));
    else
      tensors.push_back({{"name", name}, {"shape", shape}, {"type", "F32"}});
    params += numel(shape);
  }
  nlohmann::json tables = nlohmann::json::object();  // per-step activation quantizers (TALSQ), by slot
  for (const auto& [stem, t] : f.act.tables)
    tables[stem] = {{"bits", t.bits}, {"steps", t.steps()}, {"stride", t.stride}};
  const std::string tables_summary = describe_step_tables(f.act.tables);
  return {{"file", f.path},
          {"format", "gguf"},
          {"architecture", "dit"},
          {"config",
           {{"image", c.image}, {"channels", c.channels}, {"patch", c.patch}, {"dim", c.dim}, {"depth", c.depth},
            {"heads", c.heads}, {"mlp_ratio", c.mlp_ratio}, {"num_classes", c.num_classes},
            {"freq_dim", c.freq_dim}, {"norm_eps", c.norm_eps}, {"tokens", c.tokens()}}},
          {"parameters", params},
          {"integer_slots", f.quantized.size()},
          {"slots", dit_slot_stems(c).size()},
          {"activations", {{"bits", f.act.bits}, {"static_scales", f.act.scales.size()}, {"step_tables", tables}, {"step_tables_summary", tables_summary}}},
          {"tensors", tensors}};
}

void print_dit(const nlohmann::json& j) {
  const auto& c = j["config"];
  std::printf("file:          %s\n", j["file"].get<std::string>().c_str());
  std::printf("architecture:  dit (class-conditional diffusion transformer, ε-prediction)\n");
  std::printf("image %dx%dx%d, patch %d (%d tokens), dim %d, depth %d, heads %d, mlp_ratio %d, classes %d (+ null), "
              "freq_dim %d\n",
              c["channels"].get<int>(), c["image"].get<int>(), c["image"].get<int>(), c["patch"].get<int>(),
              c["tokens"].get<int>(), c["dim"].get<int>(), c["depth"].get<int>(), c["heads"].get<int>(),
              c["mlp_ratio"].get<int>(), c["num_classes"].get<int>(), c["freq_dim"].get<int>());
  std::printf("parameters:    %lld (%s)\n", static_cast<long long>(j["parameters"].get<int64_t>()),
              human_count(j["parameters"].get<int64_t>()).c_str());
  std::printf("weights:       %s\n", j["integer_slots"].get<int>() == 0
                                        ? "all F32"
                                        : fmt::format("{} of {} slots integer (a deployed model), the rest F32",
                                                      j["integer_slots"].get<int>(), j["slots"].get<int>()).c_str());
  const auto& act = j["activations"];
  if (act["bits"].get<int>() != 0)
    std::printf("activations:   int%d (%s)\n", act["bits"].get<int>(),
                act["static_scales"].get<int>() ? "static scales" : "per-token scales");
  if (!act["step_tables"].empty())
    std::printf("activations:   asymmetric integers, one (scale, zero point) per sampling step (EfficientDM's TALSQ): "
                "%s\n", act["step_tables_summary"].get<std::string>().c_str());
  std::printf("tensors (%zu):\n", j["tensors"].size());
  for (const auto& t : j["tensors"]) {
    std::string shape;
    for (const auto& d : t["shape"]) shape += (shape.empty() ? "" : " x ") + std::to_string(d.get<int64_t>());
    std::printf("  %-28s %-6s [%s]\n", t["name"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(),
                shape.c_str());
  }
}

nlohmann::json classifier_info_json(const ClassifierFile& f) {
  const ClassifierConfig& c = f.config;
  nlohmann::json tensors = nlohmann::json::array();
  int64_t params = 0;
  for (const auto& [name, shape] : classifier_tensor_shapes(c)) {
    tensors.push_back({{"name", name}, {"shape", shape}, {"type", "F32"}});
    params += f.tensors.at(name).numel();
  }
  return {{"file", f.path},
          {"format", "gguf"},
          {"architecture", kClassifierArch},
          {"config",
           {{"image", c.image}, {"hidden1", c.hidden1}, {"hidden2", c.hidden2}, {"num_classes", c.num_classes},
            {"activation", "gelu_tanh"}}},
          {"test_accuracy", f.test_accuracy ? nlohmann::json(*f.test_accuracy) : nlohmann::json()},
          {"train_steps", f.train_steps ? nlohmann::json(*f.train_steps) : nlohmann::json()},
          {"parameters", params},
          {"tensors", tensors}};
}

void print_classifier(const nlohmann::json& j) {
  const auto& c = j["config"];
  std::printf("file:          %s\n", j["file"].get<std::string>().c_str());
  std::printf("architecture:  fmnist-classifier (MLP image classifier; features for `qtune fid`)\n");
  std::printf("MLP %d -> %d -> %d -> %d, GELU (tanh); features: the %d-d second hidden layer\n",
              c["image"].get<int>() * c["image"].get<int>(), c["hidden1"].get<int>(), c["hidden2"].get<int>(),
              c["num_classes"].get<int>(), c["hidden2"].get<int>());
  if (!j["test_accuracy"].is_null())
    std::printf("test accuracy: %.2f%% (t10k, as measured by classifier-train after %lld steps)\n",
                100.0 * j["test_accuracy"].get<double>(),
                static_cast<long long>(j["train_steps"].is_null() ? 0 : j["train_steps"].get<int64_t>()));
  std::printf("parameters:    %lld (%s), all F32\n", static_cast<long long>(j["parameters"].get<int64_t>()),
              human_count(j["parameters"].get<int64_t>()).c_str());
}

}  // namespace

int cmd_info(int argc, char** argv) {
  CLI::App app{"Describe a model file (architecture, shapes, parameter count, tensor types), or an adapter or training checkpoint (method, options, tensors, step).", "qtune info"};
  std::string model;
  bool json = false;
  app.add_option("model", model, "model file (llama2.c checkpoint v0/v1, or GGUF), or a Hugging Face LLaMA checkpoint "
                                  "folder (config.json + *.safetensors)")->required();
  app.add_flag("--json", json, "print JSON instead of text");
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> in;
  for (const std::string& p : model_paths(model)) in.push_back({"FILE", p});
  check_paths(in, {});
  auto emit = [&](const nlohmann::json& j, void (*print)(const nlohmann::json&)) {
    if (json)
      std::printf("%s\n", j.dump(2).c_str());
    else
      print(j);
    return 0;
  };
  if (const std::string kind = adapter_kind(model); !kind.empty()) {
    if (kind == "checkpoint")
      if (const auto j = full_checkpoint_json(model)) return emit(*j, print_full_checkpoint);
    return emit(adapter_json(model, kind), print_adapter);
  }
  const std::string arch = gguf_architecture(model);
  if (arch == kClassifierArch) return emit(classifier_info_json(load_classifier(model)), print_classifier);
  if (arch == "dit") return emit(dit_info_json(load_dit(model)), print_dit);
  // Streamed: every weight is still read and checked finite, one tensor at a time.
  const ModelFile mf = open_model(model);
  check_model_finite(mf);
  return emit(info_json(mf), print_human);
}

}  // namespace qtune::cli
