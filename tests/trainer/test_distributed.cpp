// The c10d layer on the CPU machine: two ranks (this test process and a forked child) meet through a
// TCPStore on loopback and sum tensors with Gloo; a rank whose peer never comes fails within the timeout
// naming itself; bad launch variables name the variable.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.h"
#include "trainer/distributed.h"
#include "tests/support/test_support.h"
#include "trainer/launcher.h"

namespace qtune {
namespace {

// Both ranks: [rank + 1, 10·(rank + 1)] and [[rank]] summed -> [3, 30] and [[1]].
std::string sum_on_rank(const LaunchEnvironment& e) {
  Distributed group(e, std::chrono::seconds(20));
  const auto rank = static_cast<float>(e.rank);
  std::vector<torch::Tensor> tensors = {torch::tensor({rank + 1.0f, 10.0f * (rank + 1)}), torch::full({1, 1}, rank)};
  group.all_reduce_sum(tensors);
  const bool right = tensors[0].equal(torch::tensor({3.0f, 30.0f})) && tensors[1].equal(torch::ones({1, 1}));
  return right ? "" : "wrong sums";
}

TEST(Distributed, TwoRanksSumOverGlooOnLoopback) { test::expect_two_ranks(sum_on_rank); }

TEST(Distributed, ARankAloneFailsWithinTheTimeoutNamingItself) {
  const auto start = std::chrono::steady_clock::now();
  try {
    Distributed group(test::rank_of_two(0, free_loopback_port()), std::chrono::seconds(2));
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
