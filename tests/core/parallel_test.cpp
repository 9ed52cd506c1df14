#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/parallel.h"

namespace {

TEST(Parallel, RunsEveryItemExactlyOnce) {
  for (int threads : {1, 2, 3}) {
    std::vector<std::atomic<int>> hits(1000);
    qkv::core::parallel_for_dynamic(1000, threads, [&](int64_t i, int tid) {
      ASSERT_LT(tid, threads);
      hits[i].fetch_add(1);
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

TEST(Parallel, PropagatesExceptions) {
  EXPECT_THROW(qkv::core::parallel_for_dynamic(100, 2,
                                               [](int64_t i, int) {
                                                 if (i == 37) throw std::runtime_error("boom");
                                               }),
               std::runtime_error);
}

}  // namespace
