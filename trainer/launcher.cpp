// Local rank launcher.
#include "trainer/launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace qtune {
namespace {

std::vector<pid_t> children;

extern "C" void forward_signal(int signal) {
  for (pid_t child : children) ::kill(child, signal);
}

// This process's own arguments, from /proc/self/cmdline (NUL-separated).
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (std::size_t start = 0; start < all.size();) {
    const std::size_t end = all.find('\0', start);
    args.push_back(all.substr(start, end - start));
    start = end == std::string::npos ? all.size() : end + 1;
  }
  return args;
}

std::string describe(int status) {
  return WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status)) : "was killed by signal " + std::to_string(WTERMSIG(status));
}

}  // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  return ok ? ntohs(address.sin_port) : 29500;
}

bool launched_as_rank() { return std::getenv("WORLD_SIZE") != nullptr; }

int run_local_ranks(int ranks) {
  const std::vector<std::string> args = own_arguments();
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string port = std::to_string(free_loopback_port());
  std::fflush(nullptr);
  for (int rank = 0; rank < ranks; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("error: fork");
      forward_signal(SIGKILL);
      return 2;
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(ranks).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      // As torchrun: share the cores instead of every rank starting a thread per core.
      const std::string threads = std::to_string(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN) / ranks));
      ::setenv("OMP_NUM_THREADS", threads.c_str(), 0);
      ::setenv("OPENBLAS_NUM_THREADS", threads.c_str(), 0);
      ::execv("/proc/self/exe", argv.data());
      std::perror("error: exec");
      ::_exit(2);
    }
    children.push_back(pid);
  }
  auto previous_int = std::signal(SIGINT, forward_signal);
  auto previous_term = std::signal(SIGTERM, forward_signal);
  int result = 0;
  for (std::size_t left = children.size(); left > 0;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    --left;
    const bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    if (failed && result == 0) {
      int rank = 0;
      while (children[static_cast<std::size_t>(rank)] != pid) ++rank;
      std::fprintf(stderr, "error: rank %d of %d %s; stopping the other ranks (the last complete checkpoint is kept)\n", rank, ranks,
                   describe(status).c_str());
      result = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
      for (pid_t other : children)
        if (other != pid) ::kill(other, SIGKILL);
    }
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  children.clear();
  return result;
}

}  // namespace qtune
