#include "authkey.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

namespace clusterd {
namespace {

// A private temporary directory, removed with its contents.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/clusterd-authkey-XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::filesystem::remove_all(path); }

  std::string write(const char* name, std::size_t size, mode_t mode, std::uint8_t fill = 0x5a) {
    std::string file = path + "/" + name;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    std::string bytes(size, static_cast<char>(fill));
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(size));
    ::fchmod(fd, mode);
    ::close(fd);
    return file;
  }
};

}  // namespace

TEST_CASE("authkey: a 32-byte file with mode 0600 is read whole") {
  TempDir dir;
  auto key = read_authkey(dir.write("authkey", 32, 0600));
  REQUIRE_MESSAGE(key, key.error().to_string());
  CHECK(key->size() == 32);
  CHECK((*key)[31] == 0x5a);
  auto longer = read_authkey(dir.write("long", 100, 0400));
  REQUIRE(longer);
  CHECK(longer->size() == 100);
}

TEST_CASE("authkey: short, oversized, open to others, missing or not a file is refused") {
  TempDir dir;
  auto short_key = read_authkey(dir.write("short", 31, 0600));
  REQUIRE_FALSE(short_key);
  CHECK(short_key.error().message.find("fewer than the 32") != std::string::npos);
  CHECK_FALSE(read_authkey(dir.write("empty", 0, 0600)));
  CHECK_FALSE(read_authkey(dir.write("huge", kAuthKeyMaxSize + 1, 0600)));
  auto world = read_authkey(dir.write("world", 32, 0644));
  REQUIRE_FALSE(world);
  CHECK(world.error().message.find("mode 0644") != std::string::npos);
  CHECK_FALSE(read_authkey(dir.write("group", 32, 0640)));
  CHECK_FALSE(read_authkey(dir.write("gwrite", 32, 0620)));
  auto missing = read_authkey(dir.path + "/none");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().errno_value == ENOENT);
  ::chmod(dir.path.c_str(), 0700);
  CHECK_FALSE(read_authkey(dir.path));
}

TEST_CASE("authkey: subkeys are deterministic, distinct, and depend on every key byte") {
  REQUIRE(sodium_ready());
  std::vector<std::uint8_t> key(48, 7);
  ClusterKeys a = derive_keys(key);
  ClusterKeys b = derive_keys(key);
  CHECK(a.heartbeat == b.heartbeat);
  CHECK(a.transport == b.transport);
  CHECK(a.heartbeat != a.transport);
  key[47] ^= 1;  // past the first 32 bytes: still counts
  ClusterKeys c = derive_keys(key);
  CHECK(c.heartbeat != a.heartbeat);
  CHECK(c.transport != a.transport);
}

TEST_CASE("authkey: load_cluster_keys reads and derives") {
  TempDir dir;
  std::string path = dir.write("authkey", 32, 0600, 0x11);
  auto keys = load_cluster_keys(path);
  REQUIRE_MESSAGE(keys, keys.error().to_string());
  std::vector<std::uint8_t> raw(32, 0x11);
  CHECK(keys->heartbeat == derive_keys(raw).heartbeat);
  CHECK_FALSE(load_cluster_keys(dir.write("bad", 32, 0666)));
}

}  // namespace clusterd
