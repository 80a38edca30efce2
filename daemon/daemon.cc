#include "daemon.h"

#include <build_config.h>
#include <malloc.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config_load.h"
#include "daemon_policy.h"
#include "disk_driver.h"
#include "log.h"
#include "netlink_watcher.h"
#include "systemd_manager.h"

namespace clusterd {
namespace {

void log_diagnostics(LogLevel level, const Diagnostics& diagnostics) {
  for (const auto& d : diagnostics) log(level, {{"CONFIG_FILE", d.file}}, "{}", d.to_string());
}

/// A copy of `config` whose source is `source` (Apply saves the text under the daemon's path).
ConfigPtr with_source(const ConfigPtr& config, const std::string& source) {
  auto copy = std::make_shared<Config>(*config);
  copy->source = source;
  return copy;
}

}  // namespace

int check_config(const std::string& path, const std::string& ocf_root) {
  SystemTypeCatalog catalog(ocf_root);
  auto loaded = load_config(path, catalog);
  if (!loaded) {
    for (const auto& d : loaded.error()) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return 1;
  }
  const Config& c = **loaded;
  std::printf("%s: valid (cluster %s, %zu nodes, %zu groups)\n", path.c_str(),
              c.cluster.name.c_str(), c.nodes.size(), c.groups.size());
  return 0;
}

std::string local_hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) < 0) return "";
  return name;
}

Daemon::Daemon(sd_event* loop, const DaemonOptions& options)
    : loop_(loop),
      options_(options),
      node_(options.node_name.empty() ? local_hostname() : options.node_name),
      catalog_(options.ocf_root) {}

Daemon::~Daemon() {
  // The manager records events while it is torn down; nobody must hear them any more.
  history_.set_listener(nullptr);
  if (manager_) manager_->set_change_listener(nullptr);
  if (manager_) manager_->set_group_failed_listener(nullptr);
  cluster_.reset();
  server_.reset();
}

Result<std::unique_ptr<Daemon>> Daemon::start(sd_event* loop, const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon(loop, options));
  if (auto r = d->load_initial_config(); !r) return std::unexpected(r.error());
  if (auto r = d->prepare_state_dir(); !r) return std::unexpected(r.error());
  if (auto r = d->add_change_flush(); !r) return std::unexpected(r.error());
  d->start_manager();
  if (auto r = d->watch_signals(); !r) return std::unexpected(r.error());
  if (auto r = d->start_api(); !r) return std::unexpected(r.error());
  if (int r = sd_event_set_watchdog(loop, 1); r < 0)
    return fail_errno(r, "could not enable the systemd watchdog");
  d->record("daemon", fmt::format("clusterd {} started on node {}", CLUSTERD_VERSION, d->node_));
  sd_notifyf(0, "READY=1\nSTATUS=%s", status_line(d->manager_->status()).c_str());
  d->schedule_trim();
  if (d->config_->nodes.size() > 1) {
    // Groups run where the committed placement says (the coordinator autostarts them).
    if (auto r = d->start_cluster(); !r) return std::unexpected(r.error());
  } else {
    d->autostart();
  }
  return d;
}

// yaml-cpp's nodes for a large file peak at megabytes; the configuration is allocated between
// them, so once they are freed the holes stay resident (measured with bench/footprint.py --heap:
// 9.7 MiB RSS at 100 groups x 3 resources without this, 8.1 MiB with it).
void Daemon::schedule_trim() {
  if (!trim_) {
    sd_event_source* source = nullptr;
    auto trim = [](sd_event_source*, void*) noexcept -> int {
      malloc_trim(0);
      return 0;
    };
    if (sd_event_add_defer(loop_, &source, trim, nullptr) < 0) return;
    trim_.reset(source);
    sd_event_source_set_priority(source, SD_EVENT_PRIORITY_IDLE);
    sd_event_source_set_description(source, "malloc-trim");
  }
  sd_event_source_set_enabled(trim_.get(), SD_EVENT_ONESHOT);
}

Result<void> Daemon::load_initial_config() {
  auto loaded = load_config(options_.config_path, catalog_);
  if (!loaded) {
    log_diagnostics(LogLevel::Err, loaded.error());
    std::size_t n = loaded.error().size();
    return fail("the configuration {} is invalid ({} problem{})", options_.config_path, n,
                n == 1 ? "" : "s");
  }
  if (node_.empty()) return fail("the hostname is empty; name this node with --node");
  if ((*loaded)->find_node(node_) == nullptr)
    return fail("node \"{}\" is not a node of {} (use --node NAME)", node_, options_.config_path);
  config_ = *loaded;
  return {};
}

Result<void> Daemon::prepare_state_dir() {
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  if (ec)
    return fail_errno(ec.value(), "could not create the state directory {}", options_.state_dir);
  return {};
}

void Daemon::start_manager() {
  DriverContext context;
  context.loop = loop_;
  context.node_name = node_;
  context.cluster_name = config_->cluster.name;
  context.cluster_id = config_->cluster.id;
  context.node_id = config_->find_node(node_)->id;  // checked in load_initial_config()
  context.disk_helper = default_disk_helper();
  context.ocf_root = options_.ocf_root;
  context.state_dir = options_.state_dir;
  // One rtnetlink watcher for every ip resource. Without it only ip resources fail (with this
  // reason), so a daemon managing processes alone still runs.
  if (auto netlink = NetlinkWatcher::create(loop_)) {
    context.netlink = std::move(*netlink);
  } else {
    log(LogLevel::Warning, {}, "ip resources are unavailable: {}", netlink.error().to_string());
  }
  // One systemd connection for every service resource, opened at the first use. A bad
  // $CLUSTERD_SYSTEMD_BUS makes only service resources fail (with this reason).
  if (auto systemd = SystemdManager::from_environment(loop_)) {
    context.systemd = std::move(*systemd);
  } else {
    log(LogLevel::Warning, {}, "service resources are unavailable: {}",
        systemd.error().to_string());
  }
  manager_ = std::make_unique<ResourceManager>(loop_, history_, context);
  history_.set_listener([this](const Event&) { on_change(); });
  manager_->set_change_listener([this] { on_change(); });
  manager_->set_group_failed_listener([this](const std::string& group) {
    if (cluster_) {
      log(LogLevel::Err, {{"GROUP", group}}, "group {} failed; reporting it to the coordinator",
          group);
      cluster_->on_group_failed(group);
      return;
    }
    log(LogLevel::Err, {{"GROUP", group}}, "group {} failed; it stays failed on this node", group);
  });
  manager_->apply(config_);
}

Result<void> Daemon::start_api() {
  auto server = BusServer::listen(loop_, options_.bus_socket,
                                  [this](sd_bus* bus) { return bus_manager_.add_to(bus); });
  if (!server) return std::unexpected(server.error());
  server_ = std::move(*server);
  log(LogLevel::Info, {}, "D-Bus API listening on {}", options_.bus_socket);
  return {};
}

Result<void> Daemon::watch_signals() {
  // main() blocked these signals, as sd_event_add_signal requires.
  struct Watch {
    int signal;
    EventSourcePtr* slot;
  };
  for (auto [signal, slot] :
       {Watch{SIGTERM, &sigterm_}, Watch{SIGINT, &sigint_}, Watch{SIGHUP, &sighup_}}) {
    sd_event_source* source = nullptr;
    int r = sd_event_add_signal(loop_, &source, signal, on_signal, this);
    if (r < 0) return fail_errno(r, "could not watch signal {}", strsignal(signal));
    slot->reset(source);
  }
  return {};
}

Result<void> Daemon::add_change_flush() {
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(loop_, &source, on_flush, this);
  if (r < 0) return fail_errno(r, "could not add the change notifier");
  flush_.reset(source);
  sd_event_source_set_description(source, "change-flush");
  sd_event_source_set_enabled(source, SD_EVENT_OFF);
  return {};
}

void Daemon::autostart() {
  for (const auto& group : autostart_groups(*config_, node_)) {
    auto r = manager_->online_group(group, "autostart: this node is the group's first owner");
    if (!r)
      log(LogLevel::Err, {{"GROUP", group}}, "autostart of group {} failed: {}", group,
          r.error().to_string());
  }
}

int Daemon::on_signal(sd_event_source*, const signalfd_siginfo* info, void* userdata) noexcept {
  auto* self = static_cast<Daemon*>(userdata);
  int signal = static_cast<int>(info->ssi_signo);
  if (signal == SIGHUP) {
    auto r = self->reload(fmt::format("SIGHUP from pid {}", info->ssi_pid));
    if (!r) log(LogLevel::Err, {}, "reload failed: {}", r.error().to_string());
    return 0;
  }
  self->stop(fmt::format("{} from pid {}", sigabbrev_np(signal), info->ssi_pid));
  return 0;
}

void Daemon::stop(const std::string& reason) {
  if (stopping_) {
    log(LogLevel::Notice, {}, "already stopping, ignoring {}", reason);
    return;
  }
  stopping_ = true;
  sd_notify(0, "STOPPING=1\nSTATUS=Taking every group offline");
  record("daemon", fmt::format("stopping: {}", reason));
  manager_->shutdown([this] {
    log(LogLevel::Notice, {}, "every group is offline, exiting");
    // Only now: peers take over our groups as soon as we leave.
    if (cluster_) cluster_->leave();
    sd_event_exit(loop_, 0);
  });
}

Result<void> Daemon::online_group(const std::string& group, const std::string& reason) {
  if (cluster_) {
    auto r = run_command({"online", group, "", false, ""});
    if (!r) return std::unexpected(r.error());
    return {};
  }
  return manager_->online_group(group, reason);
}

Result<void> Daemon::offline_group(const std::string& group, const std::string& reason) {
  if (cluster_) {
    auto r = run_command({"offline", group, "", false, ""});
    if (!r) return std::unexpected(r.error());
    return {};
  }
  return manager_->offline_group(group, reason);
}

std::vector<GroupStatus> Daemon::group_status() const {
  return cluster_ ? cluster_->groups(manager_->status()) : manager_->status();
}

std::vector<NodeView> Daemon::nodes() const {
  return cluster_ ? cluster_->nodes() : ApiBackend::nodes();
}

std::string Daemon::cluster_json() const {
  return cluster_ ? cluster_->describe().dump() : ApiBackend::cluster_json();
}

std::string Daemon::timelines_json() const {
  return cluster_ ? cluster_->timelines().dump() : ApiBackend::timelines_json();
}

Result<std::string> Daemon::cluster_command(const ClusterCommand& command,
                                            const std::string& reason) {
  if (!cluster_) return ApiBackend::cluster_command(command, reason);
  return run_command(command);
}

Result<std::string> Daemon::run_command(const ClusterCommand& command) {
  // Answered at once when this node coordinates or the command cannot go anywhere; otherwise it
  // is forwarded to the coordinator and its answer is logged.
  std::optional<Result<std::string>> answer;
  auto shared = std::make_shared<bool>(true);
  std::weak_ptr<bool> waiting = shared;
  cluster_->submit(command, [&answer, waiting, kind = command.kind](Result<std::string> r) {
    if (waiting.lock()) {
      answer = std::move(r);
      return;
    }
    if (r)
      log(LogLevel::Info, {}, "coordinator: {}", *r);
    else
      log(LogLevel::Warning, {}, "the coordinator refused {}: {}", kind, r.error().to_string());
  });
  shared.reset();
  if (answer) return *answer;
  return fmt::format("{} forwarded to the coordinator", command.kind);
}

Result<void> Daemon::start_cluster() {
  ClusterContext context;
  context.loop = loop_;
  context.node = node_;
  context.state_dir = options_.state_dir;
  context.config = config_;
  context.manager = manager_.get();
  context.history = &history_;
  context.apply_config = [this](const std::string& yaml) { return apply_committed_config(yaml); };
  auto cluster = ClusterService::start(std::move(context));
  if (!cluster) return std::unexpected(cluster.error());
  cluster_ = std::move(*cluster);
  return {};
}

Result<void> Daemon::apply_committed_config(const std::string& yaml) {
  auto parsed = parse_config(yaml, "<committed>", catalog_);
  if (parsed) parsed = with_source(*parsed, options_.config_path);
  auto result = take_config(std::move(parsed), "committed by the cluster", yaml);
  if (!result) return std::unexpected(result.error());
  if (!result->applied)
    return fail("the committed configuration has {} problem(s) here",
                result->diagnostics.size());
  if (cluster_) cluster_->set_config(config_);
  return {};
}

Result<void> Daemon::online_resource(const std::string& group, const std::string& resource,
                                     const std::string& reason) {
  return manager_->online_resource(group, resource, reason);
}

Result<void> Daemon::offline_resource(const std::string& group, const std::string& resource,
                                      const std::string& reason) {
  return manager_->offline_resource(group, resource, reason);
}

Result<ApplyResult> Daemon::reload(const std::string& reason) {
  sd_notify(0, "RELOADING=1");
  auto result = take_config(load_config(options_.config_path, catalog_), reason, {});
  sd_notifyf(0, "READY=1\nSTATUS=%s", status_line(manager_->status()).c_str());
  return result;
}

Result<ApplyResult> Daemon::apply(std::string_view text, const std::string& file,
                                  const std::string& reason) {
  auto parsed = parse_config(text, file, catalog_);
  if (parsed) parsed = with_source(*parsed, options_.config_path);
  if (!cluster_) return take_config(std::move(parsed), reason, text);
  // A cluster: validate here, then the coordinator commits it and every node applies it.
  ApplyResult result;
  if (parsed)
    result.diagnostics = check_new_config(**parsed);
  else
    result.diagnostics = std::move(parsed.error());
  if (!result.diagnostics.empty()) return result;
  auto submitted = run_command({"apply", "", "", false, std::string(text)});
  if (!submitted) return std::unexpected(submitted.error());
  result.applied = true;
  result.changes = summarize_changes(*config_, **parsed);
  return result;
}

Diagnostics Daemon::check_new_config(const Config& config) const {
  if (config.find_node(node_) != nullptr) return {};
  return {{config.source, {}, fmt::format("there is no node called \"{}\" (this node)", node_)}};
}

Result<ApplyResult> Daemon::take_config(std::expected<ConfigPtr, Diagnostics> loaded,
                                        const std::string& reason, std::string_view save_text) {
  if (stopping_) return fail("clusterd is shutting down");
  ApplyResult result;
  if (loaded)
    result.diagnostics = check_new_config(**loaded);
  else
    result.diagnostics = std::move(loaded.error());
  if (!result.diagnostics.empty()) {
    log_diagnostics(LogLevel::Warning, result.diagnostics);
    record("config", fmt::format("configuration from {} rejected ({}): {} problem{}; the running "
                                 "configuration stays",
                                 result.diagnostics.front().file, reason, result.diagnostics.size(),
                                 result.diagnostics.size() == 1 ? "" : "s"));
    return result;
  }
  if (!save_text.empty()) {
    if (auto saved = save_config_text(save_text); !saved) return std::unexpected(saved.error());
  }
  result.applied = true;
  result.changes = summarize_changes(*config_, **loaded);
  config_ = *loaded;
  manager_->apply(config_);
  schedule_trim();
  record("config",
         fmt::format("configuration from {} applied ({}): {} change{}", config_->source, reason,
                     result.changes.size(), result.changes.size() == 1 ? "" : "s"));
  return result;
}

Result<void> Daemon::save_config_text(std::string_view text) const {
  // Write-then-rename, so that a crash leaves either the old file or the new one.
  std::string tmp = options_.config_path + ".new";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return fail_errno(errno, "could not write {}", tmp);
  }
  if (std::rename(tmp.c_str(), options_.config_path.c_str()) < 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return fail_errno(err, "could not replace {}", options_.config_path);
  }
  return {};
}

void Daemon::record(const std::string& kind, const std::string& reason) {
  log(LogLevel::Notice, {{"EVENT", kind}}, "{}", reason);
  Event event;
  event.kind = kind;
  event.node = node_;
  event.reason = reason;
  history_.add(std::move(event));
}

void Daemon::on_change() {
  // Coalesced: many transitions in one loop iteration give one signal and one STATUS=.
  if (flush_) sd_event_source_set_enabled(flush_.get(), SD_EVENT_ONESHOT);
}

int Daemon::on_flush(sd_event_source*, void* userdata) noexcept {
  static_cast<Daemon*>(userdata)->flush_changes();
  return 0;
}

void Daemon::flush_changes() {
  if (cluster_) cluster_->on_local_change();
  if (!stopping_) sd_notifyf(0, "STATUS=%s", status_line(manager_->status()).c_str());
  if (server_) server_->broadcast([this](sd_bus* bus) { return bus_manager_.emit_changed(bus); });
}

}  // namespace clusterd
