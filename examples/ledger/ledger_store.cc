#include "ledger_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace clusterd::ledger {
namespace {

Result<void> check_directory(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) < 0) {
    if (errno == ENOENT) return fail_errno(errno, "data directory {} does not exist", dir);
    return fail_errno(errno, "data directory {} is not usable", dir);
  }
  if (!S_ISDIR(st.st_mode)) return fail("data directory {} is not a directory", dir);
  if (::access(dir.c_str(), W_OK | X_OK) < 0) {
    return fail_errno(errno, "data directory {} is not writable", dir);
  }
  return {};
}

/// Makes the log's directory entry durable: a new file's name is not on disk until its
/// directory is synced (fsync(2), "Notes").
Result<void> sync_directory(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) < 0) return fail_errno(errno, "cannot sync data directory {}", dir);
  return {};
}

Result<std::string> read_all(int fd, const std::string& path) {
  std::string data;
  char buffer[1 << 16];
  for (off_t offset = 0;;) {
    ssize_t n = ::pread(fd, buffer, sizeof buffer, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(errno, "cannot read {}", path);
    if (n == 0) return data;
    data.append(buffer, static_cast<size_t>(n));
    offset += n;
  }
}

}  // namespace

Result<LedgerStore> LedgerStore::open(const std::string& dir) {
  if (auto ok = check_directory(dir); !ok) return std::unexpected(ok.error());
  std::string path = dir + "/ledger.log";
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd) return fail_errno(errno, "cannot open {} for writing", path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK) return fail("{} is in use by another ledgerd", path);
    return fail_errno(errno, "cannot lock {}", path);
  }
  if (auto ok = sync_directory(dir); !ok) return std::unexpected(ok.error());
  LedgerStore store(std::move(path), std::move(fd));
  if (auto ok = store.load(); !ok) return std::unexpected(ok.error());
  return store;
}

Result<void> LedgerStore::load() {
  auto data = read_all(fd_.get(), path_);
  if (!data) return std::unexpected(data.error());
  LogScan scan = scan_log(*data);
  if (scan.corrupt) {
    return fail(
        "{} is damaged at byte {} with records after it (not a torn last record); "
        "refusing to start",
        path_, scan.corrupt_offset);
  }
  for (const Record& record : scan.records) index(record);
  count_ = scan.records.size();
  size_ = scan.valid_bytes;
  report_ = {count_, clients_.size(), data->size() - scan.valid_bytes};
  if (scan.torn_tail && ::ftruncate(fd_.get(), static_cast<off_t>(size_)) < 0) {
    return fail_errno(errno, "cannot truncate the torn last record of {}", path_);
  }
  // A server killed between write and fdatasync leaves its last records in the page cache
  // only; we are about to answer DUP for them, so make them durable first.
  if (::fdatasync(fd_.get()) < 0) return fail_errno(errno, "cannot fdatasync {}", path_);
  return {};
}

bool LedgerStore::index(const Record& record) {
  ClientIndex& client = clients_[record.client_id];
  if (!client.stored.insert(record.seq).second) return false;
  client.order.push_back(record.seq);
  return true;
}

Result<LedgerStore::Outcome> LedgerStore::append(const Record& record) {
  if (broken_) return fail("the log {} is in an unknown state", path_);
  auto it = clients_.find(record.client_id);
  if (it != clients_.end() && it->second.stored.contains(record.seq)) return Outcome::Duplicate;
  if (auto ok = write_all(encode_record(record)); !ok) return std::unexpected(ok.error());
  index(record);
  ++count_;
  dirty_ = true;
  return Outcome::Stored;
}

Result<void> LedgerStore::write_all(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      // Undo a partial record so the next append does not land behind garbage.
      if (::ftruncate(fd_.get(), static_cast<off_t>(size_)) < 0) broken_ = true;
      return fail_errno(err, "cannot write to {}", path_);
    }
    done += static_cast<size_t>(n);
  }
  size_ += bytes.size();
  return {};
}

Result<void> LedgerStore::sync() {
  if (!dirty_) return {};
  if (::fdatasync(fd_.get()) < 0) {
    // After a failed fdatasync the kernel may have dropped the dirty pages; a retry could
    // "succeed" without the data on disk (the PostgreSQL fsync lesson). Never acknowledge.
    broken_ = true;
    return fail_errno(errno, "cannot fdatasync {}", path_);
  }
  dirty_ = false;
  return {};
}

const std::vector<uint64_t>& LedgerStore::seqs(const std::string& client_id) const {
  static const std::vector<uint64_t> kNone;
  auto it = clients_.find(client_id);
  return it == clients_.end() ? kNone : it->second.order;
}

}  // namespace clusterd::ledger
