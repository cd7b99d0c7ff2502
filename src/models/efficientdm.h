// models/efficientdm.h — the quantized DiT of EfficientDM (docs/METHODS.md §10; arXiv 2310.03270):
// which slot is what, and the per-layer learning rates.
//
//   block slots (attn q k v o, ffn up down, adaLN):  QALoRA W-b (rank r, learned weight scale)
//                                                    behind a b-bit per-step activation quantizer
//   first and last layers (patch_embd, t_embd.fc1/fc2, output_adaln, output): the frozen 8-bit base
//                                                    behind an 8-bit per-step activation quantizer
// Both quantizers are TALSQ (adapters/talsq.h): one (scale, zero point) per sampling step of a
// K-step DDIM schedule; K = 1 is the "one scale for all steps" ablation. The class embedding
// and the biases stay float, frozen.
//
// Scale-aware LoRA learning rates (EfficientDM): a QALoRA update moves an integer weight only
// once |ΔW| > s_w/2, so the LoRA factors of slot ℓ train at lr·m_ℓ/m̄, m_ℓ = the mean weight
// scale of slot ℓ and m̄ = the mean of m_ℓ over the QALoRA slots (the paper fixes lr_ℓ =
// m_ℓ/2500; normalising by m̄ keeps --lr the average rate).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/dit.h"

namespace qtune {

struct EfficientDmOptions {
  int bits = 4;          // block slots' weights
  int act_bits = 4;      // block slots' inputs
  int edge_bits = 8;     // first and last layers: weights and inputs
  int rank = 32;         // QALoRA rank
  int steps = 25;        // K: entries of every activation table
  int stride = 40;       // timesteps per entry (1000 / K for the K-step DDIM schedule)
  float scale_lr = 0.1f; // learned weight scales: lr multiplier (Param::lr_scale; qalora.h)
  float act_lr = 1.0f;   // activation step sizes and zero points: lr multiplier
  bool qat = false;      // the QAT baseline: block weights trained whole (make_qat) instead of QALoRA
};

// True for the first and last layers, which stay 8-bit without an adapter.
bool is_efficientdm_edge_slot(const std::string& stem);

// The slot maker of the student, and the mean weight scale of every block slot it made (filled
// as the Dit is built, by stem).
template <class T>
typename Dit<T>::SlotMaker efficientdm_slots(const EfficientDmOptions& o,
                                             std::shared_ptr<std::map<std::string, double>> mean_scales);

// Sets lr_scale of every "<stem>.lora_a" / "<stem>.lora_b" in params to m_stem / m̄. Returns
// {min, max} of the factors.
template <class T>
std::pair<double, double> apply_scale_aware_lr(std::vector<Param<T>>& params,
                                               const std::map<std::string, double>& mean_scales);

// The MethodOptions a student records (method qalora at o.bits / o.rank; act_bits 0: its
// activations are quantized by the tables).
MethodOptions efficientdm_method(const EfficientDmOptions& o);

}  // namespace qtune
