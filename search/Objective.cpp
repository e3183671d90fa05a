//===- Objective.cpp - metrics JSON and the external command objective -*- C++ -*-===//

#include "mixq/Search/Objective.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace mixq::search;
using llvm::json::Object;
using llvm::json::Value;

Objective::~Objective() = default;

//===----------------------------------------------------------------------===//
// Metrics JSON
//===----------------------------------------------------------------------===//

namespace {

llvm::Error metricsError(llvm::StringRef origin, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (origin + ": " + msg).str());
}

std::string quoteTail(llvm::StringRef text) {
  llvm::StringRef t = text.trim();
  if (t.empty())
    return "(empty output)";
  if (t.size() > 200)
    t = t.take_back(200);
  return "'" + t.str() + "'";
}

/// Mean accuracy over tasks, or the number itself.
llvm::Expected<double> readAccuracy(const Value &acc, llvm::StringRef origin) {
  if (std::optional<double> d = acc.getAsNumber())
    return *d;
  const Object *tasks = acc.getAsObject();
  if (!tasks || tasks->empty())
    return metricsError(origin, "'accuracy' must be a number or a non-empty "
                                "object of tasks");
  double sum = 0;
  for (const auto &kv : *tasks) {
    std::optional<double> v = kv.second.getAsNumber();
    if (const Object *t = kv.second.getAsObject())
      v = t->getNumber("acc");
    if (!v)
      return metricsError(origin, "task '" + kv.first.str() +
                                      "' has no numeric 'acc'");
    sum += *v;
  }
  return sum / double(tasks->size());
}

llvm::Expected<double> readPeakBytes(const Value &pb, llvm::StringRef origin) {
  std::optional<double> d = pb.getAsNumber();
  if (const Object *o = pb.getAsObject())
    d = o->getNumber("total");
  if (!d)
    return metricsError(origin, "'peak_bytes' must be a number or an object "
                                "with a numeric 'total'");
  return *d;
}

} // namespace

llvm::Expected<TrialMetrics> mixq::search::parseMetrics(llvm::StringRef text,
                                                        llvm::StringRef origin) {
  auto parsed = llvm::json::parse(text.trim());
  if (!parsed) {
    llvm::consumeError(parsed.takeError());
    // Tolerate log lines before the JSON: try the last non-empty line.
    llvm::StringRef last = text.rtrim();
    size_t nl = last.rfind('\n');
    if (nl != llvm::StringRef::npos)
      last = last.substr(nl + 1);
    parsed = llvm::json::parse(last.trim());
    if (!parsed) {
      llvm::consumeError(parsed.takeError());
      return metricsError(origin, "the output is not a metrics JSON object: " +
                                      quoteTail(text));
    }
  }
  const Object *o = parsed->getAsObject();
  if (!o)
    return metricsError(origin, "the metrics JSON must be an object, got " +
                                    quoteTail(text));
  TrialMetrics m;
  if (std::optional<bool> pruned = o->getBoolean("pruned"))
    m.pruned = *pruned;
  const Value *acc = o->get("accuracy");
  const Value *pb = o->get("peak_bytes");
  // A run on a device (mixq-run --device, the built-in trial's device): M is
  // the device's peak, the memory the configuration needs there.
  if (const Value *dev = o->get("device_peak_bytes"))
    pb = dev;
  if (!acc || !pb) {
    if (!m.pruned)
      return metricsError(origin, llvm::Twine("the metrics JSON has no '") +
                                      (acc ? "peak_bytes" : "accuracy") +
                                      "'");
  } else {
    auto p = readAccuracy(*acc, origin);
    if (!p)
      return p.takeError();
    auto mem = readPeakBytes(*pb, origin);
    if (!mem)
      return mem.takeError();
    if (!std::isfinite(*p) || !std::isfinite(*mem) || *mem < 0)
      return metricsError(origin, "accuracy and peak_bytes must be finite "
                                  "and peak_bytes non-negative");
    m.performance = *p;
    m.memory = *mem;
  }
  m.text = llvm::formatv("{0}", *parsed).str();
  return m;
}

TrialOutcome mixq::search::outcomeFromMetrics(llvm::StringRef text,
                                             llvm::StringRef origin) {
  TrialOutcome out;
  auto m = parseMetrics(text, origin);
  if (!m) {
    out.error = llvm::toString(m.takeError());
    return out;
  }
  out.state = m->pruned ? TrialState::Pruned : TrialState::Complete;
  out.metrics = std::move(*m);
  return out;
}

//===----------------------------------------------------------------------===//
// CommandObjective
//===----------------------------------------------------------------------===//

std::string mixq::search::shellQuote(llvm::StringRef s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

namespace {

std::string readTail(const std::string &path, size_t maxBytes) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return "";
  llvm::StringRef t = (*buf)->getBuffer();
  if (t.size() > maxBytes)
    t = t.take_back(maxBytes);
  return t.str();
}

std::string readAll(const std::string &path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  return buf ? (*buf)->getBuffer().str() : std::string();
}

/// The supervisor kills its whole process group when the worker dies.
void killOwnGroup(int) { kill(-getpgrp(), SIGKILL); }

/// Starts `sh -c script` with stdout/stderr to the given files, in a new
/// process group, under a supervisor process that takes the group down when
/// the worker dies (even by kill -9; /bin/sh does not exec the command, so
/// the parent-death signal alone would only reach the shell). The
/// supervisor ends as its shell did. Returns the supervisor's pid or -1.
pid_t spawnShell(const std::string &script, const std::string &outPath,
                 const std::string &errPath) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  // Supervisor (only async-signal-safe calls from here).
  setpgid(0, 0);
  signal(SIGTERM, killOwnGroup);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent)
    killOwnGroup(0);
  int out = open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err = open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int in = open("/dev/null", O_RDONLY);
  if (out < 0 || err < 0 || in < 0)
    _exit(127);
  pid_t shell = fork();
  if (shell == 0) {
    signal(SIGTERM, SIG_DFL);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execl("/bin/sh", "sh", "-c", script.c_str(), (char *)nullptr);
    _exit(127);
  }
  int status = 0;
  while (shell > 0 && waitpid(shell, &status, 0) < 0 && errno == EINTR) {
  }
  if (shell < 0)
    _exit(127);
  if (WIFSIGNALED(status)) {
    signal(WTERMSIG(status), SIG_DFL);
    kill(getpid(), WTERMSIG(status));
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

void killGroup(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

} // namespace

TrialOutcome CommandObjective::evaluate(const TrialRequest &req,
                                        KeepAlive keepAlive) {
  TrialOutcome out;
  std::string outPath = req.configPath + ".stdout";
  std::string errPath = req.configPath + ".stderr";
  std::string script = command + " " + shellQuote(req.configPath);
  pid_t pid = spawnShell(script, outPath, errPath);
  if (pid < 0) {
    out.error = std::string("cannot start the objective: ") +
                std::strerror(errno);
    return out;
  }
  double start = nowSeconds(), lastBeat = start;
  int status = 0;
  auto sleepFor = std::chrono::milliseconds(5);
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      break;
    double now = nowSeconds();
    if (timeout > 0 && now - start > timeout) {
      killGroup(pid);
      out.error = llvm::formatv("objective timed out after {0:f1}s (killed); "
                                "stderr: {1}",
                                timeout, readTail(errPath, 2000))
                      .str();
      return out;
    }
    if (now - lastBeat >= heartbeat) {
      lastBeat = now;
      if (!keepAlive()) {
        killGroup(pid);
        out.error = "abandoned: the trial was taken from this worker";
        return out;
      }
    }
    std::this_thread::sleep_for(sleepFor);
    if (sleepFor < std::chrono::milliseconds(100))
      sleepFor *= 2;
  }
  // The shell is gone; take down anything it left in its group.
  kill(-pid, SIGKILL);
  std::string stderrTail = readTail(errPath, 2000);
  if (WIFSIGNALED(status)) {
    out.error = llvm::formatv("objective killed by signal {0} ({1}); stderr: "
                              "{2}",
                              WTERMSIG(status), strsignal(WTERMSIG(status)),
                              stderrTail)
                    .str();
    return out;
  }
  if (int code = WEXITSTATUS(status); code != 0) {
    // The shell reports a command killed by signal s as status 128 + s.
    std::string how =
        code > 128 && code < 128 + 32
            ? llvm::formatv(" (the command was killed by signal {0}, {1})",
                            code - 128, strsignal(code - 128))
                  .str()
            : "";
    out.error = llvm::formatv("objective exited with status {0}{1}; stderr: "
                              "{2}",
                              code, how, stderrTail)
                    .str();
    return out;
  }
  return outcomeFromMetrics(readAll(outPath),
                            "metrics of trial " + std::to_string(req.number) +
                                " (stdout of '" + command + "')");
}
