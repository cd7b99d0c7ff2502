// cli/export_peft.h — `qtune export-lora --format peft`: a qtune lora/qlora adapter as a Hugging
// Face PEFT folder (io/peft_adapter.h), which PeftModel.from_pretrained loads onto the base
// converted to transformers' LLaMA.
#pragma once
#include <string>

namespace qtune::cli {

// adapter: a qtune adapter or training checkpoint; base: the model it was trained on (its head
// count orders the q/k rows for Hugging Face; adapter_config.json names it). Refuses, in one
// line naming the file, adapters that are not PEFT's W + (lora_alpha/r)·B·A (the integer and
// LoLDU methods), ranks that differ between modules (--rank full), and bases of another shape.
void export_peft(const std::string& adapter, const std::string& out_dir, const std::string& base);

}  // namespace qtune::cli
