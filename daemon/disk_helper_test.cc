#include "disk_helper.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "disk_server.h"
#include "disk_test_util.h"
#include "file_block_device.h"
#include "filesystem.h"
#include "iscsi_session.h"
#include "loop_device.h"
#include "loop_test_util.h"
#include "pr_client.h"
#include "tgtd_fixture.h"

namespace clusterd {
namespace {

Result<DiskHelperOptions> parse(std::vector<const char*> args) {
  return parse_disk_helper_args(std::span<const char* const>(args.data(), args.size()));
}

TEST_CASE("parse_disk_helper_args: every option, both spellings") {
  auto o = parse({"--file", "/srv/lun", "--fuse-dir=/run/d", "--fuse-name", "lun0", "--mount-point",
                  "/srv/data", "--fstype=ext3", "--options", "noatime", "--mkfs", "--no-fsck",
                  "--ready-fd", "4", "--control-fd=5", "--block-size", "4096"});
  REQUIRE_MESSAGE(o, o.error().to_string());
  CHECK(o->file == "/srv/lun");
  CHECK(o->fuse_dir == "/run/d");
  CHECK(o->fuse_name == "lun0");
  CHECK(o->mount_point == "/srv/data");
  CHECK(o->fstype == "ext3");
  CHECK(o->mount_options == "noatime");
  CHECK(o->mkfs);
  CHECK(!o->fsck);
  CHECK(o->ready_fd == 4);
  CHECK(o->control_fd == 5);
  CHECK(o->block_size == 4096);
}

TEST_CASE("parse_disk_helper_args: defaults and the errors an administrator sees") {
  auto o = parse({"--file", "f", "--fuse-dir", "d"});
  REQUIRE(o);
  CHECK(o->fstype == "ext4");
  CHECK(o->fsck);
  CHECK(o->control_fd == -1);
  CHECK(parse({"--fuse-dir", "d"}).error().message ==
        "--file or --portal is required (the disk to serve)");
  CHECK(parse({"--file", "f"}).error().message == "--fuse-dir is required");
  CHECK(parse({"--file", "f", "--fuse-dir", "d", "--mkfs"}).error().message ==
        "--mkfs needs --mount-point");
  CHECK(parse({"--file", "f", "--fuse-dir", "d", "--bogus", "1"}).error().message ==
        "unknown option --bogus");
  CHECK(parse({"--file", "f", "--fuse-dir"}).error().message == "--fuse-dir needs a value");
  CHECK(parse({"--file", "f", "--fuse-dir", "d", "--ready-fd", "x"}).error().message ==
        "--ready-fd wants a number of at least 0, not 'x'");
  CHECK(!parse({"--file", "f", "--fuse-dir", "d", "--block-size", "1000"}));
  CHECK(!parse({"--file", "f", "--fuse-dir", "d", "--fuse-name", "a/b"}));
  CHECK(parse({"--cleanup", "--fuse-dir", "d"})->cleanup);
  CHECK(parse({"--help"})->help);
}

TEST_CASE("DiskServerState: the table allows the stop to overtake the start, nothing back") {
  using S = DiskServerState;
  CHECK(transition_allowed(S::Starting, S::Ready));
  CHECK(transition_allowed(S::Starting, S::Stopping));
  CHECK(transition_allowed(S::Ready, S::Done));
  CHECK(!transition_allowed(S::Ready, S::Starting));
  CHECK(!transition_allowed(S::Stopping, S::Ready));
  CHECK(!transition_allowed(S::Done, S::Stopping));
}

TEST_CASE("disk helper enums: every value has a name") {
  for (auto e : {DiskHelperExit::Stopped, DiskHelperExit::Failed, DiskHelperExit::Usage,
                 DiskHelperExit::StartFailed})
    CHECK(std::string(to_string(e)) != "?");
  for (auto s : {DiskServerState::Starting, DiskServerState::Ready, DiskServerState::Stopping,
                 DiskServerState::Done})
    CHECK(std::string(to_string(s)) != "?");
}

}  // namespace
}  // namespace clusterd

// The helper end to end, as root, in a private mount namespace (nothing leaks to the host), over
// a 64 MiB file with a real ext4, loop device and FUSE mount.
namespace clusterd {
namespace {

constexpr std::size_t kDiskBytes = 64 << 20;

struct DiskFixture {
  std::unique_ptr<testing::PrivateMountNamespace> ns;
  testing::TempDir dir;

  DiskFixture() {
    auto entered = testing::PrivateMountNamespace::enter();
    REQUIRE_MESSAGE(entered, entered.error().to_string());
    ns = std::move(*entered);
    REQUIRE(FileBlockDevice::create(lun(), kDiskBytes));
  }
  // Whatever a failed test left: a dead helper's mounts are released the way the daemon would.
  ~DiskFixture() { (void)release_disk_mounts(mount_point(), fuse_dir()); }

  std::string lun() const { return dir.path() + "/lun"; }
  std::string fuse_dir() const { return dir.path() + "/fuse"; }
  std::string mount_point() const { return dir.path() + "/mnt"; }
  std::vector<std::string> args(bool mkfs) const {
    std::vector<std::string> a = {"--file",   lun(),           "--fuse-dir",
                                  fuse_dir(), "--mount-point", mount_point()};
    if (mkfs) a.push_back("--mkfs");
    return a;
  }
  DiskHelperOptions options(bool mkfs) const {
    DiskHelperOptions o;
    o.file = lun();
    o.fuse_dir = fuse_dir();
    o.mount_point = mount_point();
    o.mkfs = mkfs;
    return o;
  }
  bool mounted(const std::string& path) const {
    auto mounts = read_mountinfo();
    return mounts && find_mount(*mounts, path).has_value();
  }
};

bool skip() {
  std::string why = testing::datapath_unavailable();
  if (!why.empty()) MESSAGE("skipped: " << why);
  return !why.empty();
}

int loop_number(const std::string& ready_line) {
  return std::atoi(ready_line.c_str() + std::strlen("ready /dev/loop"));
}

bool loop_freed_within(int number, Duration limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!loop_backing_file(number).empty()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    usleep(1000);  // sysfs has no event for a loop device going away
  }
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Writes `bytes` to a new file under `dir` in 1 MiB writes and fsyncs it; MB/s (0 on failure).
double sequential_write(const std::string& dir, std::size_t bytes) {
  std::vector<char> chunk(1 << 20);
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 31);
  std::string path = dir + "/bench";
  auto start = std::chrono::steady_clock::now();
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  bool ok = static_cast<bool>(fd);
  for (std::size_t done = 0; ok && done < bytes; done += chunk.size())
    ok = ::write(fd.get(), chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
  ok = ok && fsync(fd.get()) == 0;
  double seconds = seconds_since(start);
  unlink(path.c_str());
  return ok ? static_cast<double>(bytes) / 1e6 / seconds : 0;
}

TEST_CASE("clusterd-disk: mkfs, mount, write, stop; mounted again the data is intact") {
  if (skip()) return;
  DiskFixture f;
  auto start = std::chrono::steady_clock::now();
  auto helper = testing::HelperProcess::spawn(f.args(true));
  REQUIRE(helper);
  auto ready = (*helper)->read_line();
  REQUIRE_MESSAGE(ready, ready.error().to_string());
  REQUIRE(ready->starts_with("ready /dev/loop"));
  MESSAGE("start (mkfs) -> mounted: " << seconds_since(start) * 1000 << " ms");
  int number = loop_number(*ready);
  CHECK(loop_direct_io(number));
  CHECK(f.mounted(f.mount_point()));
  REQUIRE(testing::write_pattern_file(f.mount_point() + "/data", 4 << 20, 11) == 0);
  MESSAGE("sequential write + fsync: " << sequential_write(f.mount_point(), 32 << 20) << " MB/s");
  REQUIRE((*helper)->send("check"));
  CHECK(*(*helper)->read_line() == "ok");
  REQUIRE((*helper)->send("stop"));
  CHECK(*(*helper)->read_line() == "stopped");
  CHECK((*helper)->wait() == 0);
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
  CHECK(loop_freed_within(number, std::chrono::seconds(5)));

  start = std::chrono::steady_clock::now();
  auto again = testing::HelperProcess::spawn(f.args(false));
  REQUIRE(again);
  ready = (*again)->read_line();
  REQUIRE_MESSAGE(ready, ready.error().to_string());
  REQUIRE(ready->starts_with("ready /dev/loop"));
  MESSAGE("start (fsck) -> mounted: " << seconds_since(start) * 1000 << " ms");
  CHECK(testing::has_pattern(f.mount_point() + "/data", 4 << 20, 11));
  (*again)->kill_group(SIGTERM);
  CHECK((*again)->wait() == 0);
  CHECK(!f.mounted(f.mount_point()));
}

TEST_CASE("clusterd-disk: the daemon's end of the control socket closing stops it in order") {
  if (skip()) return;
  DiskFixture f;
  auto helper = testing::HelperProcess::spawn(f.args(true));
  REQUIRE(helper);
  REQUIRE((*helper)->read_line()->starts_with("ready "));
  (*helper)->close_control();
  CHECK((*helper)->wait() == 0);
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
}

TEST_CASE("clusterd-disk: start failures are one line on the socket and on stderr, exit 3") {
  if (skip()) return;
  DiskFixture f;
  auto missing =
      testing::HelperProcess::spawn({"--file", f.dir.path() + "/none", "--fuse-dir", f.fuse_dir()});
  REQUIRE(missing);
  auto line = (*missing)->read_line();
  REQUIRE(line);
  CHECK(line->starts_with("error cannot open disk file"));
  CHECK((*missing)->wait() == static_cast<int>(DiskHelperExit::StartFailed));

  // A blank disk without --mkfs: e2fsck finds no file system; nothing stays attached or mounted.
  auto blank = testing::HelperProcess::spawn(f.args(false));
  REQUIRE(blank);
  line = (*blank)->read_line();
  REQUIRE(line);
  CHECK(line->starts_with("error e2fsck -p /dev/loop"));
  CHECK((*blank)->wait() == static_cast<int>(DiskHelperExit::StartFailed));
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
}

// True when one byte arrived on `fd` within `limit`.
bool read_byte(int fd, Duration limit) {
  pollfd p{fd, POLLIN, 0};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(limit).count();
  char c = 0;
  return poll(&p, 1, static_cast<int>(ms)) == 1 && ::read(fd, &c, 1) == 1;
}

// True once `pid` sleeps uninterruptibly (state D: waiting in the kernel on I/O).
bool blocked_within(pid_t pid, Duration limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    char state = 0;
    pid_t group = 0;
    if (!testing::proc_stat(pid, &state, &group)) return false;
    if (state == 'D') return true;
    usleep(1000);  // /proc has no event for a state change
  }
  return false;
}

// Writes a file in `dir`, fsyncs it and then syncs the whole file system; returns the errno of
// the first call that failed, 0 when all succeeded.
int write_fsync_sync(const std::string& dir) {
  int fd = ::open((dir + "/after").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return errno;
  std::vector<char> data(1 << 20, 'f');
  int err = 0;
  if (::write(fd, data.data(), data.size()) < 0) err = errno;
  if (!err && fsync(fd) != 0) err = errno;
  if (syncfs(fd) != 0 && !err) err = errno;
  ::close(fd);
  return err;
}

TEST_CASE("clusterd-disk: fenced, fsync fails with EIO and ext4 aborts; check says so") {
  if (skip()) return;
  DiskFixture f;
  testing::FenceSwitch fence;
  std::string lun = f.lun();
  auto helper =
      testing::HelperProcess::fork(f.options(true), [&]() -> Result<std::unique_ptr<BlockDevice>> {
        auto file = FileBlockDevice::open(lun);
        if (!file) return std::unexpected(file.error());
        return std::make_unique<testing::FenceableBlockDevice>(std::move(*file), fence);
      });
  REQUIRE(helper);
  auto ready = (*helper)->read_line();
  REQUIRE(ready);
  REQUIRE(ready->starts_with("ready /dev/loop"));
  REQUIRE(testing::write_pattern_file(f.mount_point() + "/before", 1 << 20, 3) == 0);

  fence.fence();  // another node preempted our key
  std::string mnt = f.mount_point();
  auto err = testing::run_in_child([&] { return write_fsync_sync(mnt); }, std::chrono::seconds(20));
  REQUIRE(err.has_value());  // it returned: a fenced disk fails, it does not hang
  CHECK(*err == EIO);
  REQUIRE((*helper)->send("check"));
  auto answer = (*helper)->read_line();
  REQUIRE(answer);
  CHECK(answer->starts_with("error the disk refused a write: "));
  // jbd2 aborted the journal when its commit failed; ext4 notices at the next change it tries
  // and turns read-only (kernel: "Detected aborted journal").
  auto change =
      testing::run_in_child([&] { return mkdir((mnt + "/new").c_str(), 0700) == 0 ? 0 : errno; },
                            std::chrono::seconds(20));
  REQUIRE(change.has_value());
  CHECK((*change == EROFS || *change == EIO));
  auto mounts = read_mountinfo();
  REQUIRE(mounts);
  auto entry = find_mount(*mounts, f.mount_point());
  REQUIRE(entry);
  CHECK_MESSAGE(read_only_super(*entry), entry->super_options);

  REQUIRE((*helper)->send("stop"));
  CHECK((*helper)->read_line().has_value());
  CHECK((*helper)->wait().has_value());
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
}

TEST_CASE("clusterd-disk: SIGKILLed, its mount fails fast instead of hanging, and is released") {
  if (skip()) return;
  DiskFixture f;
  auto helper = testing::HelperProcess::spawn(f.args(true));
  REQUIRE(helper);
  auto ready = (*helper)->read_line();
  REQUIRE(ready);
  REQUIRE(ready->starts_with("ready /dev/loop"));
  int number = loop_number(*ready);
  REQUIRE(testing::write_pattern_file(f.mount_point() + "/before", 1 << 20, 3) == 0);

  (*helper)->kill_group(SIGKILL);
  CHECK((*helper)->wait() == 128 + SIGKILL);
  // The server's /dev/fuse closed with it, so the kernel aborted the connection: I/O below the
  // mount fails at once (ENOTCONN/EIO) rather than waiting for a server that will not come.
  std::string mnt = f.mount_point();
  auto err = testing::run_in_child([&] { return write_fsync_sync(mnt); }, std::chrono::seconds(20));
  REQUIRE(err.has_value());
  CHECK(*err != 0);
  CHECK(f.mounted(f.mount_point()));
  auto released = release_disk_mounts(f.mount_point(), f.fuse_dir());
  CHECK_MESSAGE(released, (released ? "" : released.error().to_string()));
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
  CHECK(loop_freed_within(number, std::chrono::seconds(10)));
}

TEST_CASE("clusterd-disk: a stopped (frozen) server is cut off through the fusectl abort file") {
  if (skip()) return;
  DiskFixture f;
  auto helper = testing::HelperProcess::spawn(f.args(true));
  REQUIRE(helper);
  auto ready = (*helper)->read_line();
  REQUIRE(ready);
  REQUIRE(ready->starts_with("ready /dev/loop"));

  // A writer opens a file on the disk while the server runs, then the server freezes...
  std::string mnt = f.mount_point();
  int opened_pipe[2], go_pipe[2];
  REQUIRE(pipe(opened_pipe) == 0);
  REQUIRE(pipe(go_pipe) == 0);
  std::fflush(nullptr);
  pid_t writer = fork();
  if (writer == 0) {
    int fd = ::open((mnt + "/after").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    (void)!::write(opened_pipe[1], "o", 1);
    char go = 0;
    if (fd < 0 || ::read(go_pipe[0], &go, 1) != 1) _exit(100);
    std::vector<char> data(1 << 20, 'f');
    if (::write(fd, data.data(), data.size()) < 0) _exit(101);
    _exit(fsync(fd) == 0 ? 0 : 102);
  }
  ::close(opened_pipe[1]);
  ::close(go_pipe[0]);
  Fd opened(opened_pipe[0]), go(go_pipe[1]);
  CHECK(read_byte(opened.get(), std::chrono::seconds(20)));
  (*helper)->kill_group(SIGSTOP);
  // ...and the writer's fsync blocks in the kernel, waiting on the stopped server...
  CHECK(::write(go.get(), "g", 1) == 1);
  CHECK(blocked_within(writer, std::chrono::seconds(10)));
  // ...until the connection is aborted; then it fails, and the mounts are gone from the tree.
  auto released = release_disk_mounts(f.mount_point(), f.fuse_dir());
  CHECK_MESSAGE(released, (released ? "" : released.error().to_string()));
  auto writer_status = testing::wait_for_exit(writer, std::chrono::seconds(20));
  CHECK(writer_status.has_value());
  CHECK(writer_status != 0);
  if (!writer_status) {
    kill(writer, SIGKILL);
    (void)testing::wait_for_exit(writer, std::chrono::seconds(10));
  }
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
  (*helper)->kill_group(SIGKILL);
  (*helper)->kill_group(SIGCONT);
  CHECK((*helper)->wait() == 128 + SIGKILL);
}

TEST_CASE("clusterd-disk: refuses a disk already mounted; check sees a read-only remount") {
  if (skip()) return;
  DiskFixture f;
  auto first = testing::HelperProcess::spawn(f.args(true));
  REQUIRE(first);
  REQUIRE((*first)->read_line()->starts_with("ready "));

  auto second = testing::HelperProcess::spawn(f.args(false));
  REQUIRE(second);
  auto refused = (*second)->read_line();
  REQUIRE(refused);
  CHECK(*refused == "error " + f.fuse_dir() +
                        " is already mounted (another helper, or a dead one's: clusterd-disk "
                        "--cleanup)");
  CHECK((*second)->wait() == static_cast<int>(DiskHelperExit::StartFailed));

  // Someone (an administrator, ext4 itself) made the file system read-only under us.
  REQUIRE(mount(nullptr, f.mount_point().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
  REQUIRE((*first)->send("check"));
  CHECK(*(*first)->read_line() ==
        "error the file system at " + f.mount_point() + " went read-only after an I/O error");
  REQUIRE((*first)->send("stop"));
  CHECK(*(*first)->read_line() == "stopped");
  CHECK((*first)->wait() == 0);
}

TEST_CASE("clusterd-disk on a real LUN: taken over, it says why at once, then stops in order") {
  if (skip()) return;
  testing::TgtdCase target;
  if (!target.start()) return;
  DiskFixture f;
  constexpr std::uint32_t kCluster = 9;
  const std::string iqn = "iqn.2024-01.org.clusterd.test:dh";
  auto helper = testing::HelperProcess::spawn(
      {"--portal", target.tgtd->portal(), "--target", target.tgtd->target_iqn(), "--initiator",
       iqn + "1", "--cluster-id", std::to_string(kCluster), "--node-id", "1", "--io-timeout", "2",
       "--fuse-dir", f.fuse_dir(), "--mount-point", f.mount_point(), "--mkfs"});
  REQUIRE(helper);
  auto ready = (*helper)->read_line();
  REQUIRE_MESSAGE(ready, ready.error().to_string());
  REQUIRE(ready->starts_with("ready /dev/loop"));
  REQUIRE(testing::write_pattern_file(f.mount_point() + "/before", 1 << 20, 5) == 0);

  // Node 2 takes the LUN over (the daemon declared node 1 dead).
  auto session = IscsiSession::connect(target.tgtd->target_for(iqn + "2"));
  REQUIRE_MESSAGE(session, session.error().to_string());
  PrClient node2(**session, kCluster, 2);
  REQUIRE(node2.take_over().has_value());

  // The helper's next write meets the conflict: before it unmounts anything, the daemon hears
  // the reason unasked, so that a LooksAlive finding the mount gone cannot tell a vaguer story.
  std::string mnt = f.mount_point();
  auto err = testing::run_in_child([&] { return write_fsync_sync(mnt); }, std::chrono::seconds(20));
  REQUIRE(err.has_value());
  CHECK(*err == EIO);
  auto told = (*helper)->read_line();
  REQUIRE_MESSAGE(told, told.error().to_string());
  CHECK(*told == "failed reservation lost: held by node 2");
  CHECK((*helper)->wait() == static_cast<int>(DiskHelperExit::Failed));
  CHECK(!f.mounted(f.mount_point()));
  CHECK(!f.mounted(f.fuse_dir()));
  // Its release left the new owner alone: node 2 holds the LUN, and nobody else is registered.
  REQUIRE(node2.check().has_value());
  auto keys = (*session)->pr_read_keys();
  REQUIRE(keys);
  CHECK(keys->keys == std::vector<std::uint64_t>{node2.key()});
}

}  // namespace
}  // namespace clusterd
