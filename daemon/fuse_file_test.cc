#include "fuse_file.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "disk_test_util.h"
#include "file_block_device.h"
#include "loop_test_util.h"

namespace clusterd {
namespace {

constexpr std::size_t kDiskBytes = 1 << 20;

// A FUSE file served by this process's loop from a patterned file, in a private mount namespace.
// Clients run in child processes: the serving process must never do I/O on its own file.
struct Fixture {
  std::unique_ptr<testing::PrivateMountNamespace> ns;
  testing::TempDir dir;
  testing::TestLoop loop;
  testing::FenceSwitch fence;
  std::unique_ptr<BlockDevice> device;
  std::unique_ptr<FuseFile> fuse;
  bool gone = false;

  bool start() {
    auto entered = testing::PrivateMountNamespace::enter();
    REQUIRE_MESSAGE(entered, entered.error().to_string());
    ns = std::move(*entered);
    REQUIRE(testing::write_pattern_file(backing(), kDiskBytes, 5) == 0);
    auto file = FileBlockDevice::open(backing());
    REQUIRE(file);
    device = std::make_unique<testing::FenceableBlockDevice>(std::move(*file), fence);
    std::filesystem::create_directory(dir.path() + "/fuse");
    auto mounted = FuseFile::mount(loop.get(), *device, {dir.path() + "/fuse", "lun"},
                                   [this] { gone = true; });
    REQUIRE_MESSAGE(mounted, mounted.error().to_string());
    fuse = std::move(*mounted);
    return true;
  }
  ~Fixture() { fuse.reset(); }
  std::string backing() const { return dir.path() + "/backing"; }
  std::string file() const { return dir.path() + "/fuse/lun"; }

  // Runs `body` in a child while this loop serves; its exit status (-1: it did not finish).
  int client(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) _exit(body());
    int status = -1;
    bool done = loop.run_until([&] { return waitpid(pid, &status, WNOHANG) == pid; },
                               std::chrono::seconds(20));
    if (!done) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

bool skip() {
  std::string why = testing::datapath_unavailable();
  if (!why.empty()) MESSAGE("skipped: " << why);
  return !why.empty();
}

TEST_CASE("FuseFile: one file of the device's size; unaligned reads and writes reach the device") {
  if (skip()) return;
  Fixture f;
  f.start();
  std::string path = f.file();
  int status = f.client([&] {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || st.st_size != static_cast<off_t>(kDiskBytes)) return 1;
    if (!testing::has_pattern(path, kDiskBytes, 5)) return 2;
    int fd = open(path.c_str(), O_RDWR);
    if (fd < 0) return 3;
    const char text[] = "hello, shared disk";
    if (pwrite(fd, text, sizeof text, 1000) != sizeof text) return 4;
    if (fsync(fd) != 0) return 5;
    char back[sizeof text] = {};
    if (pread(fd, back, sizeof back, 1000) != sizeof back || memcmp(back, text, sizeof text))
      return 6;
    char past = 0;
    if (pread(fd, &past, 1, kDiskBytes) != 0) return 7;
    return close(fd) == 0 ? 0 : 8;
  });
  CHECK(status == 0);
  char on_disk[19] = {};
  Fd backing(open(f.backing().c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(pread(backing.get(), on_disk, sizeof on_disk, 1000) == sizeof on_disk);
  CHECK(std::string(on_disk) == "hello, shared disk");
  CHECK(f.fuse->stats().writes >= 1);
  CHECK(f.fuse->stats().flushes >= 1);
  CHECK(f.fuse->stats().errors == 0);
  CHECK(!f.fuse->first_write_error());
}

TEST_CASE("FuseFile: the directory lists the file only; O_DIRECT opens; the size is fixed") {
  if (skip()) return;
  Fixture f;
  f.start();
  std::string dir = f.dir.path() + "/fuse";
  int status = f.client([&] {
    DIR* d = opendir(dir.c_str());
    if (!d) return 1;
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) names.push_back(e->d_name);
    closedir(d);
    if (names != std::vector<std::string>{".", "..", "lun"}) return 2;
    struct stat st {};
    if (stat((dir + "/other").c_str(), &st) == 0 || errno != ENOENT) return 3;
    int fd = open((dir + "/lun").c_str(), O_RDWR | O_DIRECT);
    if (fd < 0) return 4;
    if (ftruncate(fd, 4096) == 0) return 5;
    close(fd);
    return 0;
  });
  CHECK(status == 0);
}

TEST_CASE("FuseFile: a fenced device's write errors reach the writer as EIO; reads still work") {
  if (skip()) return;
  Fixture f;
  f.start();
  f.fence.fence();
  std::string path = f.file();
  int status = f.client([&] {
    int fd = open(path.c_str(), O_RDWR);
    if (fd < 0) return 1;
    char c = 0;
    if (pread(fd, &c, 1, 0) != 1) return 2;
    if (pwrite(fd, "x", 1, 0) != -1 || errno != EIO) return 3;
    close(fd);
    return 0;
  });
  CHECK(status == 0);
  CHECK(f.fuse->stats().errors == 1);
  REQUIRE(f.fuse->first_error());
  CHECK(f.fuse->first_error()->errno_value == EIO);
  CHECK(f.fuse->first_write_error());
}

TEST_CASE("FuseFile: unmounted behind its back, it says so and stops serving") {
  if (skip()) return;
  Fixture f;
  f.start();
  // A first request makes the kernel finish INIT; then the mount goes away under the server.
  CHECK(f.client([&] { return access(f.file().c_str(), F_OK); }) == 0);
  REQUIRE(umount2((f.dir.path() + "/fuse").c_str(), MNT_DETACH) == 0);
  CHECK(f.loop.run_until([&] { return f.gone; }));
  CHECK(!f.fuse->serving());
}

}  // namespace
}  // namespace clusterd
