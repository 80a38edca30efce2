// Test helpers for code on the sd-event loop: run the real loop until a condition holds, with a
// deadline instead of sleeps; ask the kernel whether processes are gone; temporary directories.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <systemd/sd-event.h>

#include "clock.h"
#include "handle.h"

namespace clusterd::testing {

/// An sd-event loop of its own.
EventPtr new_loop();

/// Runs `loop` until `done()` holds or `limit` passes; returns done(). The condition is also
/// re-checked every few milliseconds, for conditions outside the loop (files, /proc).
bool run_until(sd_event* loop, const std::function<bool()>& done,
               Duration limit = std::chrono::seconds(5));

/// Runs `loop` for `span` (to show that something does NOT happen within it).
void run_for(sd_event* loop, Duration span);

/// A private event loop for one test.
class TestLoop {
 public:
  TestLoop() : loop_(new_loop()) {}
  sd_event* get() const { return loop_.get(); }
  /// See run_until() above.
  bool run_until(const std::function<bool()>& done, Duration limit = std::chrono::seconds(5)) {
    return testing::run_until(loop_.get(), done, limit);
  }
  /// See run_for() above.
  void run_for(Duration span) { testing::run_for(loop_.get(), span); }

 private:
  EventPtr loop_;
};

/// The state letter and process group of `pid` from /proc/PID/stat; false when it is gone.
inline bool proc_stat(pid_t pid, char* state, pid_t* pgrp) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto paren = line.rfind(')');
  if (paren == std::string::npos) return false;
  std::istringstream fields(line.substr(paren + 1));
  pid_t ppid = 0;
  fields >> *state >> ppid >> *pgrp;
  return true;
}

/// True when `pid` no longer runs (gone, or a zombie nobody reaped yet).
inline bool process_gone(pid_t pid) {
  char state = 0;
  pid_t pgrp = 0;
  return !proc_stat(pid, &state, &pgrp) || state == 'Z' || state == 'X';
}

/// True when no live process is left in process group `pgid`.
inline bool group_gone(pid_t pgid) {
  DIR* dir = opendir("/proc");
  if (!dir) return false;
  bool gone = true;
  while (dirent* entry = readdir(dir)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    char state = 0;
    pid_t pgrp = 0;
    if (pid > 0 && proc_stat(pid, &state, &pgrp) && pgrp == pgid && state != 'Z' && state != 'X')
      gone = false;
  }
  closedir(dir);
  return gone;
}

/// The directory of source file `file` (pass __FILE__). Meson compiles with paths relative to
/// the build directory, which is the parent of the test binary's directory (build/daemon/).
inline std::string source_dir(const char* file) {
  std::filesystem::path path(file);
  if (path.is_relative())
    path = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / path;
  return std::filesystem::weakly_canonical(path).parent_path().string();
}

/// tests/fixtures/ocf of this source tree (an OCF_ROOT with test agents).
inline std::string fixture_ocf_root() { return source_dir(__FILE__) + "/../tests/fixtures/ocf"; }

/// A fresh temporary directory, removed (with its files) at the end of the test.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/clusterd-test-XXXXXX";
    if (mkdtemp(templ)) path_ = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace clusterd::testing
