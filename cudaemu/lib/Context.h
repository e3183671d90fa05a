//===- Context.h - fiber context switch of the CUDA emulator ----*- C++ -*-===//
//
// A minimal cooperative context switch: x86-64 SysV gets a hand-written
// switch that saves only the callee-saved registers (no signal-mask system
// call, unlike swapcontext); other targets fall back to ucontext.
//
//===----------------------------------------------------------------------===//

#ifndef MIXQ_CUDA_EMU_CONTEXT_H
#define MIXQ_CUDA_EMU_CONTEXT_H

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace mixq_emu {
namespace detail {

struct Context {
#if defined(__x86_64__)
  void *sp = nullptr;
#else
  ucontext_t uc;
#endif
};

/// Prepares `ctx` to start `entry()` on the stack [stack, stack + size).
/// `entry` must never return.
void makeContext(Context &ctx, void *stack, size_t size, void (*entry)());
/// Saves the current context in `from` and resumes `to`.
void switchContext(Context &from, Context &to);

} // namespace detail
} // namespace mixq_emu

#endif // MIXQ_CUDA_EMU_CONTEXT_H
