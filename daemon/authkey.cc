#include "authkey.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "handle.h"

namespace clusterd {
namespace {

// crypto_kdf's context is exactly 8 bytes; it separates our subkeys from any other use of
// the same master key.
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES] = {'c', 'l', 'u', 's', 't', 'e', 'r', 'd'};
constexpr std::uint64_t kHeartbeatSubkeyId = 1;
constexpr std::uint64_t kTransportSubkeyId = 2;

Result<void> check_key_file(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return fail("cluster key {} is not a regular file", path);
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return fail("cluster key {} is owned by uid {}, not by root or us", path, st.st_uid);
  if ((st.st_mode & 0077) != 0)
    return fail("cluster key {} is accessible by group or others (mode {:04o}); chmod 0600 it",
                path, st.st_mode & 07777);
  if (st.st_size < static_cast<off_t>(kAuthKeyMinSize))
    return fail("cluster key {} has {} bytes, fewer than the {} required", path, st.st_size,
                kAuthKeyMinSize);
  if (st.st_size > static_cast<off_t>(kAuthKeyMaxSize))
    return fail("cluster key {} has {} bytes, more than the {} accepted", path, st.st_size,
                kAuthKeyMaxSize);
  return {};
}

Result<std::vector<std::uint8_t>> read_all(int fd, const std::string& path, std::size_t size) {
  std::vector<std::uint8_t> key(size);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, key.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "cannot read cluster key {}", path);
    if (n == 0) return fail("cluster key {} shrank while being read", path);
    done += static_cast<std::size_t>(n);
  }
  return key;
}

}  // namespace

Result<void> sodium_ready() {
  // sodium_init is thread-safe and returns 1 when already initialised.
  if (sodium_init() < 0) return fail("cannot initialise libsodium");
  return {};
}

Result<std::vector<std::uint8_t>> read_authkey(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return fail_errno(errno, "cannot open cluster key {}", path);
  // fstat on the open descriptor: the checks apply to the file actually read.
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) return fail_errno(errno, "cannot stat cluster key {}", path);
  if (auto ok = check_key_file(path, st); !ok) return std::unexpected(ok.error());
  return read_all(fd.get(), path, static_cast<std::size_t>(st.st_size));
}

ClusterKeys derive_keys(std::span<const std::uint8_t> cluster_key) {
  // crypto_kdf wants exactly 32 bytes of master key; the file may be longer, so compress it
  // with unkeyed BLAKE2b first (every byte of the file counts).
  std::uint8_t master[crypto_kdf_KEYBYTES];
  crypto_generichash(master, sizeof master, cluster_key.data(), cluster_key.size(), nullptr, 0);
  ClusterKeys keys{};
  crypto_kdf_derive_from_key(keys.heartbeat.data(), keys.heartbeat.size(), kHeartbeatSubkeyId,
                             kKdfContext, master);
  crypto_kdf_derive_from_key(keys.transport.data(), keys.transport.size(), kTransportSubkeyId,
                             kKdfContext, master);
  sodium_memzero(master, sizeof master);
  return keys;
}

Result<ClusterKeys> load_cluster_keys(const std::string& path) {
  if (auto ok = sodium_ready(); !ok) return std::unexpected(ok.error());
  auto raw = read_authkey(path);
  if (!raw) return std::unexpected(raw.error());
  ClusterKeys keys = derive_keys(*raw);
  sodium_memzero(raw->data(), raw->size());
  return keys;
}

}  // namespace clusterd
