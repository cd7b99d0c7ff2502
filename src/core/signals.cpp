#include "core/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace qtune {

namespace {

// A fixed table, so the handler touches no allocator and no lock.
constexpr int kSlots = 16;
constexpr size_t kPathMax = 4096;
char g_paths[kSlots][kPathMax];
std::atomic<int> g_state[kSlots];  // 0 free, 1 being filled, 2 ready
std::atomic<bool> g_defer{false};
std::atomic<int> g_pending{0};
std::atomic<int> g_also{0};  // a second signal deferred like SIGINT (0: none)

void on_signal(int sig) {
  if ((sig == SIGINT || sig == g_also.load()) && g_defer.load() && g_pending.load() == 0) {
    g_pending.store(sig);
    return;
  }
  for (int i = 0; i < kSlots; ++i)
    if (g_state[i].load() == 2) ::unlink(g_paths[i]);
  ::_exit(128 + sig);
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void defer_like_sigint(int sig) {
  g_also.store(sig);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

int register_temp_file(const std::string& path) {
  if (path.size() >= kPathMax) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!g_state[i].compare_exchange_strong(expected, 1)) continue;
    std::memcpy(g_paths[i], path.c_str(), path.size() + 1);
    g_state[i].store(2);
    return i;
  }
  return -1;
}

void unregister_temp_file(int slot) {
  if (slot >= 0 && slot < kSlots) g_state[slot].store(0);
}

DeferInterrupt::DeferInterrupt() {
  g_pending.store(0);
  g_defer.store(true);
}
DeferInterrupt::~DeferInterrupt() { g_defer.store(false); }

int pending_interrupt() { return g_pending.load(); }

}  // namespace qtune
