//===- Context.cpp - fiber context switch of the CUDA emulator ------------===//

#include "Context.h"

#include <cstdint>

#if defined(__x86_64__)
// void mixq_emu_switch(void **saveSp, void *newSp): pushes the callee-saved
// registers on the current stack, stores the stack pointer in *saveSp, loads
// newSp and pops the same frame from there. The SSE/x87 control words are
// not switched: every fiber runs on the launching thread and kernels do not
// change the rounding mode (saving them doubled the cost of a switch).
asm(R"(
  .text
  .globl mixq_emu_switch
  .hidden mixq_emu_switch
  .type mixq_emu_switch, @function
mixq_emu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size mixq_emu_switch, .-mixq_emu_switch
)");

extern "C" void mixq_emu_switch(void **saveSp, void *newSp);

namespace mixq_emu {
namespace detail {

void makeContext(Context &ctx, void *stack, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  uint64_t *sp = reinterpret_cast<uint64_t *>(top);
  *--sp = 0; // entry's (never used) return address: rsp % 16 == 8 at entry
  *--sp = reinterpret_cast<uint64_t>(entry);
  for (int i = 0; i < 6; ++i) // rbp rbx r12 r13 r14 r15
    *--sp = 0;
  ctx.sp = sp;
}

void switchContext(Context &from, Context &to) {
  mixq_emu_switch(&from.sp, to.sp);
}

} // namespace detail
} // namespace mixq_emu

#else

namespace mixq_emu {
namespace detail {

void makeContext(Context &ctx, void *stack, size_t size, void (*entry)()) {
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = stack;
  ctx.uc.uc_stack.ss_size = size;
  ctx.uc.uc_link = nullptr;
  makecontext(&ctx.uc, entry, 0);
}

void switchContext(Context &from, Context &to) {
  swapcontext(&from.uc, &to.uc);
}

} // namespace detail
} // namespace mixq_emu

#endif
