#include "incarnation.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "clock.h"

namespace clusterd {

TEST_CASE("incarnation: grows with every start, persisted, never below wall-clock seconds") {
  char name[] = "/tmp/clusterd-incarnation-XXXXXX";
  REQUIRE(mkdtemp(name) != nullptr);
  std::string dir = name;
  auto first = next_incarnation(dir);
  REQUIRE_MESSAGE(first, first.error().to_string());
  CHECK(*first >= wall_now_usec() / 1000000 - 1);
  auto second = next_incarnation(dir);
  REQUIRE(second);
  CHECK(*second > *first);

  // A counter ahead of the clock (a clock set back) still grows by one.
  std::uint64_t ahead = wall_now_usec() / 1000000 + 1000000;
  std::ofstream(dir + "/incarnation") << ahead << "\n";
  auto third = next_incarnation(dir);
  REQUIRE(third);
  CHECK(*third == ahead + 1);
  std::ifstream in(dir + "/incarnation");
  std::uint64_t stored = 0;
  in >> stored;
  CHECK(stored == ahead + 1);
  CHECK_FALSE(std::filesystem::exists(dir + "/incarnation.tmp"));

  std::ofstream(dir + "/incarnation") << "garbage";
  auto bad = next_incarnation(dir);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("does not hold a number") != std::string::npos);
  std::filesystem::remove_all(dir);
  CHECK_FALSE(next_incarnation(dir + "/missing-dir"));
}

}  // namespace clusterd
