// core/signals.h — SIGINT and SIGTERM end a command cleanly: the temporary files of writes in
// flight (core/file.h AtomicFile) are removed and the exit code is 128 + signal (130, 143), so no
// "*.tmp.<pid>" is left behind. Work that can save its progress (the trainer) defers SIGINT:
// the signal only raises a flag that the work polls, saves, and ends with Interrupted; a second
// SIGINT ends the process at once.
#pragma once
#include <string>

#include "core/error.h"

namespace qtune {

// Installs the handlers (main, once).
void install_signal_handlers();

// Makes `sig` behave as SIGINT does (deferred while a DeferInterrupt lives, else it ends the
// process cleanly). Under mpirun: SIGUSR1, which mpirun forwards to every rank, while its own
// SIGINT ends the job at once.
void defer_like_sigint(int sig);

// A temporary file the handler removes; returns a slot for unregister (-1: table full, the file
// is then not removed on a signal). Async-signal-safe on the handler's side.
int register_temp_file(const std::string& path);
void unregister_temp_file(int slot);

// While one lives, SIGINT is deferred: pending_interrupt() returns it instead of the process
// ending. Not nested.
class DeferInterrupt {
 public:
  DeferInterrupt();
  ~DeferInterrupt();
  DeferInterrupt(const DeferInterrupt&) = delete;
  DeferInterrupt& operator=(const DeferInterrupt&) = delete;
};
int pending_interrupt();  // 0, or the signal number

// Thrown by deferring work once it has saved what it could; main exits with 128 + signal.
struct Interrupted : Error {
  Interrupted(int sig, const std::string& what) : Error(what), signal(sig) {}
  int signal;
};

}  // namespace qtune
