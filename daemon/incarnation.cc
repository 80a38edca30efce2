#include "incarnation.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "clock.h"
#include "handle.h"

namespace clusterd {
namespace {

// The stored value, or 0 when there is no file yet.
Result<std::uint64_t> read_counter(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno == ENOENT) return 0;
  if (!fd) return fail_errno(errno, "cannot open incarnation file {}", path);
  char text[32];
  ssize_t n = ::read(fd.get(), text, sizeof text);
  if (n < 0) return fail_errno(errno, "cannot read incarnation file {}", path);
  std::size_t len = static_cast<std::size_t>(n);
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) --len;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text, text + len, value);
  if (len == 0 || ec != std::errc() || end != text + len)
    return fail("incarnation file {} does not hold a number", path);
  return value;
}

Result<void> write_all(int fd, const std::string& text, const std::string& path) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "cannot write {}", path);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

// Replaces `path` with `text` atomically and durably.
Result<void> store_counter(const std::string& dir, const std::string& path,
                           const std::string& text) {
  std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno(errno, "cannot create {}", tmp);
  if (auto ok = write_all(fd.get(), text, tmp); !ok) return ok;
  if (::fsync(fd.get()) < 0) return fail_errno(errno, "cannot fsync {}", tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) < 0)
    return fail_errno(errno, "cannot rename {} to {}", tmp, path);
  // The rename itself is durable only once the directory is synced.
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) return fail_errno(errno, "cannot open state directory {}", dir);
  if (::fsync(dfd.get()) < 0) return fail_errno(errno, "cannot fsync state directory {}", dir);
  return {};
}

}  // namespace

Result<std::uint64_t> next_incarnation(const std::string& state_dir) {
  std::string path = state_dir + "/" + kIncarnationFile;
  auto stored = read_counter(path);
  if (!stored) return stored;
  std::uint64_t wall_seconds = wall_now_usec() / 1000000;
  std::uint64_t next = std::max(*stored + 1, wall_seconds);
  if (auto ok = store_counter(state_dir, path, std::to_string(next) + "\n"); !ok)
    return std::unexpected(ok.error());
  return next;
}

}  // namespace clusterd
