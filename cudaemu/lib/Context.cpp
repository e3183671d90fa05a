//===- Context.cpp - fiber context switch of the CUDA emulator ------------===//

#include "Context.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
// void mixq_emu_switch(void **saveSp, void *newSp): pushes the callee-saved
// registers and the SSE/x87 control words on the current stack, stores the
// stack pointer in *saveSp, loads newSp and pops the same frame from there.
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
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
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
  // MXCSR and the x87 control word of the creating thread.
  uint32_t mxcsr;
  uint16_t fcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fcw));
  --sp;
  std::memcpy(reinterpret_cast<char *>(sp), &mxcsr, 4);
  std::memcpy(reinterpret_cast<char *>(sp) + 4, &fcw, 2);
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
