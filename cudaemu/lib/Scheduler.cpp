//===- Scheduler.cpp - blocks, fibers, barriers and warp operations -------===//
//
// A launch runs its blocks one after another (x fastest, then y, then z).
// The threads of a block are fibers, started lazily in scheduling order, that
// run until they reach __syncthreads, a warp-collective operation or their
// end; a fiber that ends without blocking gives its stack to the next one.
//
// Barrier rule (documented in docs/cuda.md): __syncthreads completes when
// every thread of the block waits at it. A barrier that some threads wait at
// while others of the block have exited (or are blocked in a warp operation,
// or at nothing they could leave) is reported as a launch failure
// (cudaErrorLaunchFailure, message on stderr) instead of hanging: CUDA calls
// a barrier that not all threads reach undefined.
//
//===----------------------------------------------------------------------===//

#include "Context.h"
#include "Internal.h"

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace mixq_emu {
namespace detail {

uint3 gThreadIdx;
uint3 gBlockIdx;
dim3 gBlockDim;
dim3 gGridDim;

namespace {

enum class State : unsigned char { NotStarted, Ready, Barrier, Warp, Done };

struct Fiber {
  Context ctx;
  char *stack = nullptr;
  uint3 tid{0, 0, 0};
  State state = State::NotStarted;
  int arg = 0;
  int width = 32;
  uint64_t value = 0;
  uint64_t result = 0;
  unsigned mmaCount = 0;
  std::vector<float> privateMma;
};

/// Lanes of a warp waiting in one warp operation.
struct Group {
  unsigned mask;
  unsigned arrived;
  int op;
};

struct Warp {
  std::vector<Group> groups;
  /// mma_sync results of the lanes' calls since the last barrier; entries
  /// beyond `used` are kept for reuse.
  std::deque<std::array<float, 256>> log;
  size_t used = 0;
  /// Lanes that have exited.
  unsigned exited = 0;
};

struct BlockState {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  unsigned threads = 0;
  unsigned live = 0;
  unsigned exited = 0;
  unsigned atBarrier = 0;
  Fiber *cur = nullptr;
  Context main;
  KernelThunk thunk = nullptr;
  void *closure = nullptr;
  bool failed = false;
  /// Threads whose __syncthreads_count predicate was true at the last
  /// barrier.
  unsigned barrierCount = 0;
  std::string error;
  std::vector<unsigned char> dynamicShared;
};

BlockState gB;
std::mutex gLaunchMutex;
Stats gStats;
Schedule gSchedule = Schedule::Forward;
unsigned gSeed = 0;
bool gScheduleFromEnv = false;

size_t stackBytes() {
  static const size_t bytes = [] {
    size_t kb = 256;
    if (const char *s = std::getenv("MIXQ_EMU_STACK_KB"))
      kb = std::max<size_t>(64, std::strtoul(s, nullptr, 10));
    return kb * 1024;
  }();
  return bytes;
}

size_t pageBytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

/// Stacks: mmap'ed with a PROT_NONE guard page below, reused across
/// launches.
std::vector<char *> gFreeStacks;
std::vector<char *> gAllStacks;

char *acquireStack() {
  if (!gFreeStacks.empty()) {
    char *s = gFreeStacks.back();
    gFreeStacks.pop_back();
    return s;
  }
  const size_t total = stackBytes() + pageBytes();
  void *p = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "mixq cuda emulator: cannot map a fiber stack\n");
    std::abort();
  }
  mprotect(p, pageBytes(), PROT_NONE);
  char *base = static_cast<char *>(p) + pageBytes();
  gAllStacks.push_back(base);
  return base;
}

void releaseStack(Fiber &f) {
  if (f.stack) {
    gFreeStacks.push_back(f.stack);
    f.stack = nullptr;
  }
}

// A fiber that overflows its stack faults in the guard page: say so instead
// of a bare segmentation fault.
struct sigaction gOldSegv;
thread_local bool tAltStack = false;

void onSegv(int sig, siginfo_t *info, void *uctx) {
  const char *addr = static_cast<const char *>(info->si_addr);
  for (char *base : gAllStacks)
    if (addr >= base - pageBytes() && addr < base) {
      static const char msg[] =
          "mixq cuda emulator: a GPU thread overflowed its fiber stack "
          "(MIXQ_EMU_STACK_KB raises it)\n";
      ssize_t ignored = write(2, msg, sizeof msg - 1);
      (void)ignored;
      _exit(134);
    }
  // Not ours: the previous handler, or the default action on return.
  if (gOldSegv.sa_flags & SA_SIGINFO) {
    if (gOldSegv.sa_sigaction) {
      gOldSegv.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (gOldSegv.sa_handler != SIG_DFL && gOldSegv.sa_handler != SIG_IGN) {
    gOldSegv.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

void installOverflowReport() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onSegv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &gOldSegv);
  });
  if (!tAltStack) {
    tAltStack = true;
    static thread_local std::vector<char> alt(64 * 1024);
    stack_t ss;
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    ss.ss_flags = 0;
    sigaltstack(&ss, nullptr);
  }
}

void readScheduleFromEnv() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char *s = std::getenv("MIXQ_EMU_SCHEDULE");
    if (!s || gScheduleFromEnv)
      return;
    std::string v(s);
    if (v == "reverse")
      gSchedule = Schedule::Reverse;
    else if (v.rfind("shuffle", 0) == 0) {
      gSchedule = Schedule::Shuffle;
      gSeed =
          v.size() > 8
              ? static_cast<unsigned>(std::strtoul(v.c_str() + 8, nullptr, 10))
              : 0;
    }
  });
}

int wmmaModeFromEnv() {
  const char *s = std::getenv("MIXQ_EMU_WMMA");
  if (!s)
    return 0;
  std::string v(s);
  if (v == "private")
    return 1;
  if (v == "verify")
    return 2;
  return 0;
}

unsigned fiberIndex(const Fiber *f) {
  return static_cast<unsigned>(f - gB.fibers.data());
}

std::string describe(const Fiber &f) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u)",
                gBlockIdx.x, gBlockIdx.y, gBlockIdx.z, f.tid.x, f.tid.y,
                f.tid.z);
  return buf;
}

/// Switches from the running fiber back to the scheduler.
void yieldToScheduler() {
  Fiber *f = gB.cur;
  switchContext(f->ctx, gB.main);
}

[[noreturn]] void fiberMain() {
  gB.thunk(gB.closure);
  Fiber *f = gB.cur;
  f->state = State::Done;
  switchContext(f->ctx, gB.main);
  __builtin_unreachable();
}

void resume(Fiber &f) {
  if (f.state == State::NotStarted) {
    f.stack = acquireStack();
    makeContext(f.ctx, f.stack, stackBytes(), fiberMain);
    f.state = State::Ready;
  }
  gB.cur = &f;
  gThreadIdx = f.tid;
  ++gStats.switches;
  switchContext(gB.main, f.ctx);
  gB.cur = nullptr;
}

bool failFromScheduler(const std::string &msg) {
  gB.failed = true;
  gB.error = msg;
  return false;
}

void releaseBarrier() {
  unsigned count = 0;
  for (unsigned i = 0; i < gB.threads; ++i) {
    Fiber &f = gB.fibers[i];
    if (f.state == State::Barrier) {
      f.state = State::Ready;
      f.mmaCount = 0;
      count += f.value != 0;
    }
  }
  // Read by every thread when it resumes; the next barrier cannot complete
  // before all of them have.
  gB.barrierCount = count;
  for (Warp &w : gB.warps)
    w.used = 0;
  gB.atBarrier = 0;
}

/// A lane that exits while lanes of its warp wait in an operation that
/// names it can never complete that operation.
/// An __activemask rendezvous waiting for it stops counting it and may be
/// complete now.
bool checkExitedLane(const Fiber &f) {
  const unsigned idx = fiberIndex(&f);
  const unsigned lane = idx % 32;
  const unsigned base = idx - lane;
  std::vector<Group> &groups = gB.warps[idx / 32].groups;
  for (size_t i = 0; i < groups.size();) {
    Group &g = groups[i];
    if (!(g.mask >> lane & 1u)) {
      ++i;
      continue;
    }
    if (g.op != kActiveMask)
      return failFromScheduler(
          describe(f) + " exited while lanes of its warp wait for it in a "
                        "warp operation (mask names it)");
    g.mask &= ~(1u << lane);
    if (g.arrived != g.mask) {
      ++i;
      continue;
    }
    for (unsigned l = 0; l < 32; ++l)
      if (g.arrived >> l & 1u) {
        gB.fibers[base + l].result = g.arrived;
        gB.fibers[base + l].state = State::Ready;
      }
    groups.erase(groups.begin() + i);
  }
  return true;
}

const char *stateName(State s) {
  switch (s) {
  case State::Barrier:
    return "__syncthreads";
  case State::Warp:
    return "a warp operation";
  case State::Done:
    return "exited";
  default:
    return "running";
  }
}

bool runBlock(unsigned blockSeed) {
  const unsigned n = gB.threads;
  for (unsigned i = 0; i < n; ++i) {
    Fiber &f = gB.fibers[i];
    f.state = State::NotStarted;
    f.mmaCount = 0;
    f.tid = uint3{i % gBlockDim.x, (i / gBlockDim.x) % gBlockDim.y,
                  i / (gBlockDim.x * gBlockDim.y)};
  }
  for (Warp &w : gB.warps) {
    w.groups.clear();
    w.used = 0;
    w.exited = 0;
  }
  // Shared memory starts undefined on a GPU; the dynamic part can be made
  // so here (static __shared__ variables keep the previous block's values).
  if (!gB.dynamicShared.empty())
    std::memset(gB.dynamicShared.data(), poisonAllocations() ? 0xff : 0,
                gB.dynamicShared.size());
  gB.live = n;
  gB.exited = 0;
  gB.atBarrier = 0;
  std::vector<unsigned> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (gSchedule == Schedule::Reverse)
    std::reverse(order.begin(), order.end());
  std::mt19937 rng(gSeed * 2654435761u + blockSeed);
  while (gB.live > 0) {
    if (gSchedule == Schedule::Shuffle)
      std::shuffle(order.begin(), order.end(), rng);
    bool ran = false;
    for (unsigned idx : order) {
      Fiber &f = gB.fibers[idx];
      if (f.state != State::NotStarted && f.state != State::Ready)
        continue;
      resume(f);
      ran = true;
      if (gB.failed)
        return false;
      if (f.state == State::Done) {
        releaseStack(f);
        --gB.live;
        ++gB.exited;
        gB.warps[idx / 32].exited |= 1u << (idx % 32);
        if (!checkExitedLane(f))
          return false;
      }
    }
    if (gB.live > 0 && gB.atBarrier == gB.live) {
      if (gB.exited > 0) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "block (%u,%u,%u): __syncthreads reached by %u "
                      "threads while %u threads of the block exited before "
                      "it (undefined in CUDA)",
                      gBlockIdx.x, gBlockIdx.y, gBlockIdx.z, gB.atBarrier,
                      gB.exited);
        return failFromScheduler(buf);
      }
      releaseBarrier();
      continue;
    }
    if (!ran && gB.live > 0) {
      // Nobody can move: say where the first few threads wait.
      std::string msg = "block deadlock:";
      int shown = 0;
      for (unsigned i = 0; i < gB.threads; ++i) {
        const Fiber &f = gB.fibers[i];
        if (f.state == State::Done && gB.exited == 0)
          continue;
        if (shown++ == 6) {
          msg += " ...";
          break;
        }
        msg += " " + describe(f) + " " + stateName(f.state) + ";";
      }
      msg += " (a barrier or warp operation not reached by every thread "
             "it waits for)";
      return failFromScheduler(msg);
    }
  }
  return true;
}

/// MIXQ_EMU_STATS=1: the statistics on stderr at exit.
struct StatsAtExit {
  ~StatsAtExit() {
    const char *s = std::getenv("MIXQ_EMU_STATS");
    if (!s || std::string(s) != "1")
      return;
    std::fprintf(
        stderr,
        "mixq cuda emulator: %llu launches, %llu blocks, %llu "
        "threads, %llu fiber switches, mma_sync %llu computed / "
        "%llu shared\n",
        (unsigned long long)gStats.launches, (unsigned long long)gStats.blocks,
        (unsigned long long)gStats.threads, (unsigned long long)gStats.switches,
        (unsigned long long)gStats.mmaComputed,
        (unsigned long long)gStats.mmaShared);
  }
} gStatsAtExit;

} // namespace

[[noreturn]] void failLaunch(const char *message) {
  Fiber *f = gB.cur;
  if (!f) {
    std::fprintf(stderr, "mixq cuda emulator: %s (outside a kernel)\n",
                 message);
    std::abort();
  }
  gB.failed = true;
  gB.error = describe(*f) + ": " + message;
  f->state = State::Done;
  switchContext(f->ctx, gB.main);
  __builtin_unreachable();
}

int syncthreadsCount(int predicate) {
  Fiber *f = gB.cur;
  if (!f) {
    std::fprintf(stderr,
                 "mixq cuda emulator: __syncthreads called outside a kernel\n");
    std::abort();
  }
  f->value = predicate != 0;
  f->state = State::Barrier;
  ++gB.atBarrier;
  yieldToScheduler();
  return static_cast<int>(gB.barrierCount);
}

void syncthreads() { syncthreadsCount(0); }

unsigned activeMask() {
  return static_cast<unsigned>(warpCollective(kActiveMask, 0, 0, 0, 32));
}

uint64_t warpCollective(int op, unsigned mask, uint64_t value, int arg,
                        int width) {
  Fiber *f = gB.cur;
  if (!f) {
    std::fprintf(stderr, "mixq cuda emulator: a warp operation called "
                         "outside a kernel\n");
    std::abort();
  }
  const unsigned idx = fiberIndex(f);
  const unsigned lane = idx % 32;
  const unsigned base = idx - lane;
  Warp &w = gB.warps[idx / 32];
  const unsigned lanesHere = std::min(32u, gB.threads - base);
  const unsigned existing =
      lanesHere == 32 ? 0xffffffffu : ((1u << lanesHere) - 1u);
  // __activemask waits for every lane of the warp that has not exited.
  if (op == kActiveMask)
    mask = existing & ~w.exited;
  if (!(mask >> lane & 1u))
    failLaunch("warp operation: the mask does not name the calling lane");
  if (mask & ~existing)
    failLaunch("warp operation: the mask names lanes beyond the block");
  if (op >= kShflIdx && op <= kShflXor &&
      (width < 1 || width > 32 || (width & (width - 1))))
    failLaunch("shuffle: width must be a power of two in 1..32");
  if (mask & w.exited)
    failLaunch("warp operation: the mask names a lane that has exited");
  Group *g = nullptr;
  for (Group &cand : w.groups) {
    if (cand.mask == mask) {
      g = &cand;
      break;
    }
    if (cand.mask & mask)
      failLaunch("warp operation: lanes wait with different masks");
  }
  if (!g) {
    w.groups.push_back(Group{mask, 0u, op});
    g = &w.groups.back();
  }
  if (g->op != op)
    failLaunch("warp operation: the lanes of a mask called different "
               "operations");
  f->value = value;
  f->arg = arg;
  f->width = width;
  g->arrived |= 1u << lane;
  if (g->arrived != mask) {
    f->state = State::Warp;
    yieldToScheduler();
    return f->result;
  }
  // The last lane to arrive computes every lane's result.
  uint64_t ballot = 0;
  for (unsigned l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && gB.fibers[base + l].value)
      ballot |= uint64_t(1) << l;
  for (unsigned l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u))
      continue;
    Fiber &t = gB.fibers[base + l];
    switch (op) {
    case kWarpSync:
      t.result = 0;
      break;
    case kVoteBallot:
      t.result = ballot;
      break;
    case kVoteAny:
      t.result = ballot != 0;
      break;
    case kVoteAll:
      t.result = ballot == mask;
      break;
    case kActiveMask:
      t.result = mask;
      break;
    default: {
      const unsigned wd = static_cast<unsigned>(t.width);
      const unsigned seg = l / wd * wd;
      const unsigned local = l % wd;
      unsigned src = l;
      if (op == kShflIdx) {
        src = seg + (static_cast<unsigned>(t.arg) & (wd - 1));
      } else if (op == kShflUp) {
        const unsigned d = static_cast<unsigned>(t.arg);
        src = local >= d ? l - d : l;
      } else if (op == kShflDown) {
        const unsigned d = static_cast<unsigned>(t.arg);
        src = local + d < wd ? l + d : l;
      } else {
        src = l ^ static_cast<unsigned>(t.arg);
        if (src >= seg + wd) // a later group: the lane's own value
          src = l;
      }
      if (!(mask >> src & 1u))
        failLaunch("shuffle: reads a lane that does not take part (not in "
                   "the mask)");
      t.result = gB.fibers[base + src].value;
      break;
    }
    }
    if (&t != f)
      t.state = State::Ready;
  }
  w.groups.erase(w.groups.begin() + (g - w.groups.data()));
  return f->result;
}

float *wmmaSlot(bool *compute) {
  Fiber *f = gB.cur;
  static thread_local std::array<float, 256> hostSlot;
  if (!f) {
    *compute = true;
    return hostSlot.data();
  }
  if (wmmaMode() == 1) {
    f->privateMma.resize(256);
    *compute = true;
    ++gStats.mmaComputed;
    return f->privateMma.data();
  }
  Warp &w = gB.warps[fiberIndex(f) / 32];
  const unsigned call = f->mmaCount++;
  if (call < w.used) {
    *compute = false;
    ++gStats.mmaShared;
    return w.log[call].data();
  }
  if (w.used == w.log.size())
    w.log.emplace_back();
  *compute = true;
  ++gStats.mmaComputed;
  return w.log[w.used++].data();
}

int gWmmaMode = wmmaModeFromEnv();

int wmmaMode() { return gWmmaMode; }

cudaError_t checkLaunch(dim3 grid, dim3 block, size_t shmem,
                        cudaStream_t stream) {
  if (cudaError_t e = stickyError())
    return setLastError(e);
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 ||
      block.y > 1024 || block.z > 64 || threads > 1024 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535u ||
      grid.z > 65535u)
    return setLastError(cudaErrorInvalidConfiguration);
  if (shmem > 48 * 1024)
    return setLastError(cudaErrorInvalidValue);
  if (!validStream(stream))
    return setLastError(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

cudaError_t runGrid(dim3 grid, dim3 block, size_t shmem, KernelThunk thunk,
                    void *closure) {
  // A launch from inside a kernel would wait for its own lock.
  static thread_local bool tLaunching = false;
  if (tLaunching) {
    std::fprintf(stderr, "mixq cuda emulator: a kernel launched from device "
                         "code (dynamic parallelism) is not supported\n");
    std::abort();
  }
  std::lock_guard<std::mutex> lock(gLaunchMutex);
  tLaunching = true;
  readScheduleFromEnv();
  installOverflowReport();
  const unsigned threads = block.x * block.y * block.z;
  gB.threads = threads;
  if (gB.fibers.size() < threads)
    gB.fibers.resize(threads);
  if (gB.warps.size() < (threads + 31) / 32)
    gB.warps.resize((threads + 31) / 32);
  gB.thunk = thunk;
  gB.closure = closure;
  gB.failed = false;
  gB.error.clear();
  gB.dynamicShared.assign(shmem, 0);
  gBlockDim = block;
  gGridDim = grid;
  ++gStats.launches;
  bool ok = true;
  for (unsigned z = 0; ok && z < grid.z; ++z)
    for (unsigned y = 0; ok && y < grid.y; ++y)
      for (unsigned x = 0; ok && x < grid.x; ++x) {
        gBlockIdx = uint3{x, y, z};
        ++gStats.blocks;
        gStats.threads += threads;
        ok = runBlock((z * grid.y + y) * grid.x + x);
      }
  gB.thunk = nullptr;
  gB.closure = nullptr;
  tLaunching = false;
  if (!ok) {
    for (unsigned i = 0; i < threads; ++i)
      releaseStack(gB.fibers[i]);
    std::fprintf(stderr, "mixq cuda emulator: kernel launch failed: %s\n",
                 gB.error.c_str());
    setStickyError(cudaErrorLaunchFailure);
    return setLastError(cudaErrorLaunchFailure);
  }
  return cudaSuccess;
}

} // namespace detail

void *dynamicShared() {
  return detail::gB.dynamicShared.empty() ? nullptr
                                          : detail::gB.dynamicShared.data();
}

void setSchedule(Schedule s, unsigned seed) {
  std::lock_guard<std::mutex> lock(detail::gLaunchMutex);
  detail::gScheduleFromEnv = true;
  detail::gSchedule = s;
  detail::gSeed = seed;
}

void setWmmaMode(WmmaMode mode) {
  std::lock_guard<std::mutex> lock(detail::gLaunchMutex);
  detail::gWmmaMode = static_cast<int>(mode);
}

Stats stats() { return detail::gStats; }
void resetStats() { detail::gStats = Stats(); }

} // namespace mixq_emu
