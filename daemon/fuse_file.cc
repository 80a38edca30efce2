#include "fuse_file.h"

#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse3/fuse_lowlevel.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "block_io.h"
#include "log.h"

namespace clusterd {
namespace {

constexpr fuse_ino_t kFileIno = 2;
// The file never changes size or identity, so the kernel may cache its attributes for long.
constexpr double kAttrTimeout = 3600.0;
// One request moves at most this much: libfuse's largest buffer (FUSE_MAX_MAX_PAGES pages).
constexpr unsigned kMaxTransfer = 1 << 20;
// Requests served per wakeup before the loop looks at its other sources (control, signals).
constexpr int kRequestsPerWakeup = 64;

}  // namespace

struct FuseFile::Request {
  fuse_buf buf{};
};

void FuseFile::RequestFree::operator()(Request* request) const noexcept {
  std::free(request->buf.mem);
  delete request;
}

Result<void> set_io_flusher() {
  if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0)
    return fail_errno(errno, "cannot mark the disk helper as an I/O flusher (PR_SET_IO_FLUSHER)");
  return {};
}

// The fuse_lowlevel_ops handlers: each finds its FuseFile in the request and answers at once.
struct FuseOps {
  static FuseFile& self(fuse_req_t req) { return *static_cast<FuseFile*>(fuse_req_userdata(req)); }

  static void init(void* userdata, fuse_conn_info* conn) {
    (void)userdata;
    conn->max_write = kMaxTransfer;
    conn->max_readahead = 0;  // direct I/O: the page cache is the loop device's, not ours
    conn->want &= ~FUSE_CAP_SPLICE_READ;
  }

  static void destroy(void* userdata) {
    // The kernel's DESTROY: nothing to free here, the owner unmounts and frees.
    (void)userdata;
  }

  static void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    FuseFile& file = self(req);
    if (parent != FUSE_ROOT_ID || file.options_.file_name != name) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    fuse_entry_param entry{};
    entry.ino = kFileIno;
    entry.generation = 1;
    entry.attr = file.attributes(kFileIno);
    entry.attr_timeout = kAttrTimeout;
    entry.entry_timeout = kAttrTimeout;
    fuse_reply_entry(req, &entry);
  }

  static void forget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
  static void forget_multi(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

  static void getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    if (ino != FUSE_ROOT_ID && ino != kFileIno) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    struct stat st = self(req).attributes(ino);
    fuse_reply_attr(req, &st, kAttrTimeout);
  }

  static void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                      fuse_file_info*) {
    FuseFile& file = self(req);
    struct stat st = file.attributes(ino);
    // A LUN's size is fixed; owners, modes and times are not ours to keep: accept and ignore.
    if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size) {
      fuse_reply_err(req, EPERM);
      return;
    }
    fuse_reply_attr(req, &st, kAttrTimeout);
  }

  static void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (ino != kFileIno) {
      fuse_reply_err(req, EISDIR);
      return;
    }
    fi->direct_io = 1;  // no second page cache: the loop device above has one
    fi->keep_cache = 0;
    fuse_reply_open(req, fi);
  }

  static void read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
    FuseFile& file = self(req);
    ++file.stats_.reads;
    if (file.buffer_.size() < size) file.buffer_.resize(size);
    auto n = read_bytes(file.device_, static_cast<std::uint64_t>(off),
                        std::span(file.buffer_.data(), size));
    if (!n) {
      file.note_error(n.error(), false);
      fuse_reply_err(req, EIO);
      return;
    }
    fuse_reply_buf(req, reinterpret_cast<const char*>(file.buffer_.data()), *n);
  }

  static void write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
                    fuse_file_info*) {
    FuseFile& file = self(req);
    ++file.stats_.writes;
    auto n = write_bytes(file.device_, static_cast<std::uint64_t>(off),
                         std::span(reinterpret_cast<const std::byte*>(buf), size));
    if (!n) {
      if (n.error().errno_value == ENOSPC) {
        fuse_reply_err(req, ENOSPC);
        return;
      }
      file.note_error(n.error(), true);
      fuse_reply_err(req, EIO);
      return;
    }
    fuse_reply_write(req, *n);
  }

  static void flush_device(fuse_req_t req) {
    FuseFile& file = self(req);
    ++file.stats_.flushes;
    auto ok = file.device_.flush();
    if (!ok) file.note_error(ok.error(), true);
    fuse_reply_err(req, ok ? 0 : EIO);
  }

  // fsync is where the loop device sends its flushes (REQ_OP_FLUSH -> vfs_fsync) and where ext4's
  // journal commits become durable; flush (on close) is made durable too, it is rare.
  static void fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { flush_device(req); }
  static void flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { flush_device(req); }
  static void release(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

  static void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (ino != FUSE_ROOT_ID) {
      fuse_reply_err(req, ENOTDIR);
      return;
    }
    fuse_reply_open(req, fi);
  }

  static void readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
    FuseFile& file = self(req);
    struct Entry {
      const char* name;
      fuse_ino_t ino;
    };
    const Entry entries[] = {
        {".", FUSE_ROOT_ID}, {"..", FUSE_ROOT_ID}, {file.options_.file_name.c_str(), kFileIno}};
    std::vector<char> out(size);
    std::size_t used = 0;
    for (off_t i = off; i < static_cast<off_t>(std::size(entries)); ++i) {
      struct stat st = file.attributes(entries[i].ino);
      std::size_t need =
          fuse_add_direntry(req, out.data() + used, size - used, entries[i].name, &st, i + 1);
      if (need > size - used) break;
      used += need;
    }
    fuse_reply_buf(req, out.data(), used);
  }

  static void releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

  static const fuse_lowlevel_ops& table() {
    static const fuse_lowlevel_ops ops = [] {
      fuse_lowlevel_ops o{};
      o.init = init;
      o.destroy = destroy;
      o.lookup = lookup;
      o.forget = forget;
      o.forget_multi = forget_multi;
      o.getattr = getattr;
      o.setattr = setattr;
      o.open = open;
      o.read = read;
      o.write = write;
      o.flush = flush;
      o.fsync = fsync;
      o.release = release;
      o.opendir = opendir;
      o.readdir = readdir;
      o.releasedir = releasedir;
      return o;
    }();
    return ops;
  }
};

FuseFile::FuseFile(BlockDevice& device, FuseFileOptions options, GoneHandler on_gone)
    : device_(device),
      options_(std::move(options)),
      on_gone_(std::move(on_gone)),
      request_(new Request) {}

Result<std::unique_ptr<FuseFile>> FuseFile::mount(sd_event* loop, BlockDevice& device,
                                                  const FuseFileOptions& options,
                                                  GoneHandler on_gone) {
  if (options.file_name.empty() || options.file_name.find('/') != std::string::npos)
    return fail("FUSE file name '{}' must be one non-empty path component", options.file_name);
  std::unique_ptr<FuseFile> file(new FuseFile(device, options, std::move(on_gone)));
  if (auto ok = file->start(loop); !ok) return std::unexpected(ok.error());
  return file;
}

Result<void> FuseFile::start(sd_event* loop) {
  // fsname shows the device in /proc/self/mountinfo; subtype makes the type "fuse.clusterd-disk",
  // by which a restarted daemon finds a dead helper's mounts.
  const char* argv[] = {"clusterd-disk", "-o", "fsname=clusterd-disk,subtype=clusterd-disk",
                        nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  session_ = fuse_session_new(&args, &FuseOps::table(), sizeof(fuse_lowlevel_ops), this);
  fuse_opt_free_args(&args);
  if (!session_) return fail("cannot create a FUSE session (is /dev/fuse there?)");
  if (fuse_session_mount(session_, options_.directory.c_str()) != 0)
    return fail("cannot mount the FUSE file system at {}", options_.directory);
  mounted_ = true;
  int fd = fuse_session_fd(session_);
  // Non-blocking, so that one wakeup drains the queued requests and then returns to the loop.
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
    return fail_errno(errno, "cannot make /dev/fuse non-blocking");
  sd_event_source* source = nullptr;
  int r = sd_event_add_io(loop, &source, fd, EPOLLIN, on_readable, this);
  if (r < 0) return fail_errno(r, "cannot watch /dev/fuse");
  source_.reset(source);
  sd_event_source_set_description(source, "fuse-file");
  return {};
}

FuseFile::~FuseFile() {
  unmount();
  if (session_) fuse_session_destroy(session_);
}

std::string FuseFile::file_path() const { return options_.directory + "/" + options_.file_name; }

void FuseFile::unmount() {
  source_.reset();
  if (mounted_) fuse_session_unmount(session_);
  mounted_ = false;
}

int FuseFile::on_readable(sd_event_source*, int, uint32_t, void* userdata) noexcept {
  static_cast<FuseFile*>(userdata)->serve_pending();
  return 0;
}

void FuseFile::serve_pending() {
  for (int i = 0; i < kRequestsPerWakeup; ++i) {
    int r = fuse_session_receive_buf(session_, &request_->buf);
    if (r == -EAGAIN) return;
    if (r == -EINTR) continue;
    if (r <= 0 || fuse_session_exited(session_)) {
      // 0 is ENODEV: unmounted behind our back, or aborted through fusectl.
      gone();
      return;
    }
    fuse_session_process_buf(session_, &request_->buf);
  }
}

void FuseFile::gone() {
  source_.reset();
  if (on_gone_) on_gone_();
}

struct stat FuseFile::attributes(std::uint64_t ino) const {
  struct stat st {};
  st.st_ino = ino;
  st.st_uid = getuid();
  st.st_gid = getgid();
  if (ino == FUSE_ROOT_ID) {
    st.st_mode = S_IFDIR | 0700;
    st.st_nlink = 2;
    return st;
  }
  st.st_mode = S_IFREG | 0600;
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(device_bytes(device_));
  st.st_blksize = static_cast<blksize_t>(device_.block_size());
  st.st_blocks = st.st_size / 512;
  return st;
}

void FuseFile::note_error(const Error& error, bool lost_write) {
  ++stats_.errors;
  if (lost_write && !first_write_error_) first_write_error_ = error;
  if (first_error_) return;
  // Logged once: a fenced device fails every write from then on.
  first_error_ = error;
  log(LogLevel::Err, {}, "disk I/O failed, answering EIO: {}", error.to_string());
}

}  // namespace clusterd
