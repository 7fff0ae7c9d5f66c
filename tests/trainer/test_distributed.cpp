// The c10d layer on the CPU machine: two ranks (this test process and a forked child) meet through a
// TCPStore on loopback and sum tensors with Gloo; a rank whose peer never comes fails within the timeout
// naming itself; bad launch variables name the variable. Depends on: trainer/{distributed,launcher}.h.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.h"
#include "trainer/distributed.h"
#include "trainer/launcher.h"

namespace qtune {
namespace {

LaunchEnvironment rank_of_two(int rank, int port) {
  LaunchEnvironment e;
  e.rank = rank;
  e.world_size = 2;
  e.local_rank = rank;
  e.master_port = port;
  return e;
}

// Both ranks: [rank + 1, 10·(rank + 1)] and [[rank]] summed -> [3, 30] and [[1]]. Returns 0 when right.
int sum_on_rank(int rank, int port) {
  Distributed group(rank_of_two(rank, port), std::chrono::seconds(20));
  std::vector<torch::Tensor> tensors = {torch::tensor({rank + 1.0f, 10.0f * (rank + 1)}), torch::full({1, 1}, static_cast<float>(rank))};
  group.all_reduce_sum(tensors);
  const bool right = tensors[0].equal(torch::tensor({3.0f, 30.0f})) && tensors[1].equal(torch::ones({1, 1}));
  return right ? 0 : 1;
}

TEST(Distributed, TwoRanksSumOverGlooOnLoopback) {
  const int port = free_loopback_port();
  const pid_t child = ::fork();  // before any torch thread pool exists in this process
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 2;
    try {
      code = sum_on_rank(1, port);
    } catch (...) {
    }
    ::_exit(code);
  }
  EXPECT_EQ(sum_on_rank(0, port), 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank 1 exit status " << status;
}

TEST(Distributed, ARankAloneFailsWithinTheTimeoutNamingItself) {
  const auto start = std::chrono::steady_clock::now();
  try {
    Distributed group(rank_of_two(0, free_loopback_port()), std::chrono::seconds(2));
    ADD_FAILURE() << "joined a group whose other rank never started";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 of 2: the other ranks did not join"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST(Distributed, LaunchVariables) {
  ::unsetenv("WORLD_SIZE");
  EXPECT_EQ(launch_environment().world_size, 1);
  ::setenv("WORLD_SIZE", "2", 1);
  ::setenv("RANK", "1", 1);
  ::setenv("MASTER_ADDR", "10.0.0.5", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  LaunchEnvironment e = launch_environment();
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "10.0.0.5");
  EXPECT_EQ(e.master_port, 1234);
  ::setenv("RANK", "2", 1);
  try {
    launch_environment();
    ADD_FAILURE() << "RANK 2 accepted with WORLD_SIZE 2";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("RANK='2' must be a whole number from 0 to 1"), std::string::npos) << error.what();
  }
  ::setenv("MASTER_PORT", "http", 1);
  ::setenv("RANK", "0", 1);
  EXPECT_THROW(launch_environment(), InputError);
  for (const char* name : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
}

}  // namespace
}  // namespace qtune
