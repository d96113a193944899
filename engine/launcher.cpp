#include "engine/launcher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace revkit {
namespace {

// The descriptor on which a rank started by launch_local_workers hands its error line to the launcher.
constexpr const char* kRankErrorFd = "REVKIT_RANK_ERROR_FD";
// The name every rank's error channel carries (memfd_create): how a rank tells its channel from any other
// descriptor a stray REVKIT_RANK_ERROR_FD might name.
constexpr const char* kChannelName = "revkit-rank-error";

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw RunStoppedError("cannot find a free local port for the rendezvous");
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// One in-memory file per rank for its error line (memfd_create): nothing on disk, so nothing is left behind
// however the launcher ends, and no temp folder to fail. Empty when the kernel offers none (then each rank
// prints its own error).
class ErrorChannels {
 public:
  explicit ErrorChannels(int nproc) {
    for (int rank = 0; rank < nproc; ++rank) {
      const int fd = make_rank_error_channel();
      if (fd < 0) {
        close_all();
        return;
      }
      fds_.push_back(fd);
    }
  }
  ~ErrorChannels() { close_all(); }
  ErrorChannels(const ErrorChannels&) = delete;
  ErrorChannels& operator=(const ErrorChannels&) = delete;
  bool empty() const { return fds_.empty(); }
  int fd(int rank) const { return fds_[rank]; }

 private:
  void close_all() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }
  std::vector<int> fds_;
};

// The ranks, for the launcher's signal handler, and the signal that stopped the launcher.
const std::vector<pid_t>* g_ranks = nullptr;
volatile sig_atomic_t g_launcher_stopped_by = 0;

extern "C" void forward_to_ranks(int received) {
  g_launcher_stopped_by = received;
  if (g_ranks)
    for (pid_t rank : *g_ranks) ::kill(rank, received);
}

// While alive, a Ctrl-C or a kill of the launcher goes on to the ranks, and the launcher still waits for them and
// cleans up; the previous handlers come back with the scope.
class ForwardStopSignals {
 public:
  explicit ForwardStopSignals(const std::vector<pid_t>& ranks) {
    g_launcher_stopped_by = 0;
    g_ranks = &ranks;
    struct sigaction forward {};
    forward.sa_handler = forward_to_ranks;
    forward.sa_flags = SA_RESTART;
    sigemptyset(&forward.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &forward, &previous_[i]);
  }
  ~ForwardStopSignals() {
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
    g_ranks = nullptr;
  }
  ForwardStopSignals(const ForwardStopSignals&) = delete;
  ForwardStopSignals& operator=(const ForwardStopSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
};

}  // namespace

int make_rank_error_channel() { return ::memfd_create(kChannelName, MFD_CLOEXEC); }

std::string read_rank_error_channel(int fd) {
  std::string text;
  std::array<char, 4096> chunk;
  for (off_t offset = 0;;) {
    const ssize_t n = ::pread(fd, chunk.data(), chunk.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(chunk.data(), static_cast<size_t>(n));
    offset += n;
  }
}

namespace {

// The rank's error channel, or -1 outside a rank of launch_local_workers.
int rank_error_channel() {
  const char* value = std::getenv(kRankErrorFd);
  if (!value) return -1;
  char* end = nullptr;
  const long fd = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || fd < 0 || fd > INT_MAX) return -1;
  std::array<char, 64> target{};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), target.data(), target.size() - 1);
  if (n <= 0 || std::string(target.data(), n).rfind(std::string("/memfd:") + kChannelName, 0) != 0) return -1;
  return static_cast<int>(fd);
}

bool write_all(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

void print_error_line(const std::string& text) {
  if (text.empty()) return;
  const int fd = rank_error_channel();
  if (fd >= 0) {
    if (write_all(fd, text)) return;
    const int ignored = ::ftruncate(fd, 0);  // a part of the line would be printed again beside the whole
    (void)ignored;
  }
  std::cerr << text << std::flush;
}

std::vector<std::string> distinct_error_lines(const std::vector<std::string>& texts) {
  std::vector<std::string> lines;
  for (const auto& text : texts) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
  }
  return lines;
}

int launch_local_workers(int nproc, const std::vector<std::string>& args) {
  if (nproc < 1) throw InputError(fmt::format("--nproc must be at least 1, got {}", nproc));
  const int port = free_local_port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const ErrorChannels errors(nproc);
  const pid_t launcher = ::getpid();
  std::vector<pid_t> children;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) throw RunStoppedError("cannot start a worker process");
    if (pid == 0) {
      // A launcher killed outright (SIGKILL, which it cannot forward) takes its ranks with it.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != launcher) std::_Exit(128 + SIGTERM);
      // Its own channel stays open across exec; the other ranks' close there (MFD_CLOEXEC).
      if (!errors.empty() && ::fcntl(errors.fd(rank), F_SETFD, 0) == 0)
        ::setenv(kRankErrorFd, std::to_string(errors.fd(rank)).c_str(), 1);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      // The cores shared out between the workers, unless the user chose.
      ::setenv("OMP_NUM_THREADS", std::to_string(std::max(1u, cores / nproc)).c_str(), 0);
      std::vector<std::string> argv_strings = {"revkit"};
      argv_strings.insert(argv_strings.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& s : argv_strings) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::_Exit(127);
    }
    children.push_back(pid);
  }
  int result = 0, first_failed = -1, stopped_by = 0;
  size_t running = children.size();
  const ForwardStopSignals forward(children);
  while (running > 0) {
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, 0);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) break;
    --running;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && result == 0) {
      result = code;
      first_failed = static_cast<int>(std::find(children.begin(), children.end(), done) - children.begin());
      if (WIFSIGNALED(status)) stopped_by = WTERMSIG(status);
      for (pid_t c : children)
        if (c != done) ::kill(c, SIGTERM);  // the others would only wait for the lost rank until the timeout
    }
  }
  if (!errors.empty()) {
    // The first failing rank's line first: the others may only report that it went away.
    std::vector<std::string> texts;
    if (first_failed >= 0) texts.push_back(read_rank_error_channel(errors.fd(first_failed)));
    for (int rank = 0; rank < nproc; ++rank)
      if (rank != first_failed) texts.push_back(read_rank_error_channel(errors.fd(rank)));
    for (const auto& line : distinct_error_lines(texts)) std::cerr << line << "\n";
  }
  if (stopped_by != 0 && g_launcher_stopped_by == 0)  // it had no chance to say why (and the user did not ask)
    std::cerr << fmt::format("revkit: error: rank {} of {} was stopped by signal {} ({})\n", first_failed, nproc,
                             stopped_by, ::strsignal(stopped_by));
  return result;
}

}  // namespace revkit
