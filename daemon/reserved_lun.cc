#include "reserved_lun.h"

#include <fmt/format.h>

#include "log.h"
#include "scsi_command.h"

namespace clusterd {
namespace {

bool lost_connection(const Error& error) {
  IoFailure kind = failure_of(error);
  return kind == IoFailure::Unreachable || kind == IoFailure::Timeout;
}

template <typename... Args>
std::unexpected<Error> fail_as(IoFailure failure, fmt::format_string<Args...> format,
                               Args&&... args) {
  return fail_errno(errno_of(failure), format, std::forward<Args>(args)...);
}

}  // namespace

std::string describe_reservation(const LunReservationView& view, std::uint32_t cluster_id) {
  std::string text = view.holder ? fmt::format("holder {} {}\n",
                                               describe_key(*view.holder, cluster_id), view.type)
                                 : std::string("holder none\n");
  for (std::uint64_t key : view.keys) text += fmt::format("key {}\n", describe_key(key, cluster_id));
  return text;
}

Result<LunReservationView> read_lun_reservation(const IscsiTarget& target) {
  auto session = IscsiSession::connect(target);
  if (!session) return std::unexpected(session.error());
  auto reservation = (*session)->pr_read_reservation();
  if (!reservation) return std::unexpected(reservation.error());
  auto keys = (*session)->pr_read_keys();
  if (!keys) return std::unexpected(keys.error());
  LunReservationView view;
  if (reservation->holder) {
    view.holder = reservation->holder->key;
    view.type = std::string(to_string(reservation->holder->type));
  }
  view.keys = keys->keys;
  return view;
}

ReservedLun::ReservedLun(std::unique_ptr<IscsiSession> session, std::uint32_t cluster_id,
                         std::uint32_t node_id)
    : session_(std::move(session)), pr_(*session_, cluster_id, node_id), cluster_id_(cluster_id) {}

ReservedLun::~ReservedLun() = default;

Result<std::unique_ptr<ReservedLun>> ReservedLun::open(const IscsiTarget& target,
                                                       std::uint32_t cluster_id,
                                                       std::uint32_t node_id, LunStart how) {
  auto session = IscsiSession::connect(target);
  if (!session) return std::unexpected(session.error());
  std::unique_ptr<ReservedLun> lun(new ReservedLun(std::move(*session), cluster_id, node_id));
  auto held = how == LunStart::TakeOver ? lun->pr_.take_over() : lun->pr_.acquire(false);
  if (held) return lun;
  if (failure_of(held.error()) != IoFailure::Conflict) return std::unexpected(held.error());
  // Name the holder the way the daemon reports it: "held by node 2".
  auto now = lun->session_->pr_read_reservation();
  if (!now || !now->holder) return std::unexpected(held.error());
  return fail_as(IoFailure::Conflict,
                 "the disk is held by {} (the daemon takes it over only once that node is down)",
                 describe_key(now->holder->key, cluster_id));
}

Result<void> ReservedLun::read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) {
  return io("read", [&] { return session_->read(lba, count, out); });
}

Result<void> ReservedLun::write(std::uint64_t lba, std::uint32_t count,
                                std::span<const std::byte> data) {
  return io("write", [&] { return session_->write(lba, count, data); });
}

Result<void> ReservedLun::flush() {
  return io("flush", [&] { return session_->flush(); });
}

Result<void> ReservedLun::refuse_io(const char* what) const {
  if (fenced_) return fail_errno(EIO, "{} refused: {}", what, *fenced_);
  if (vacant_)
    return fail_errno(EIO, "{} refused: the target lost the reservation; waiting for the daemon "
                           "to restore it", what);
  return {};
}

Result<void> ReservedLun::io(const char* what, const std::function<Result<void>()>& op) {
  if (auto refused = refuse_io(what); !refused) return refused;
  auto done = op();
  if (done) return done;
  if (lost_connection(done.error())) {
    // Once per I/O: a new nexus, our reservation moved onto it, then the I/O again.
    if (auto back = reconnect(); !back) return fail_errno(EIO, "{}: {}", what, back.error().to_string());
    done = op();
    if (done) return done;
  }
  return judge(what, done.error());
}

Result<void> ReservedLun::judge(const char* what, const Error& error) {
  // A conflict on a READ or WRITE means our Exclusive Access reservation is gone: someone
  // preempted our key. Never retried: the new owner may already have the file system mounted.
  if (failure_of(error) == IoFailure::Conflict) fence(error);
  return fail_errno(EIO, "{} failed: {}", what, fenced_ ? *fenced_ : error.to_string());
}

Result<void> ReservedLun::reconnect() {
  log(LogLevel::Warning, {}, "the iSCSI connection is lost, logging in again and reclaiming");
  if (auto ok = session_->reconnect(); !ok) return ok;
  auto ok = pr_.reclaim();
  if (ok) return ok;
  if (failure_of(ok.error()) == IoFailure::Conflict) fence(ok.error());
  if (failure_of(ok.error()) == IoFailure::Vacant) vacant_ = true;
  return ok;
}

void ReservedLun::fence(const Error& why) {
  if (fenced_) return;
  auto now = session_->pr_read_reservation();
  if (now && now->holder)
    fenced_ = fmt::format("reservation lost: held by {}", describe_key(now->holder->key, cluster_id_));
  else
    fenced_ = fmt::format("reservation lost: {}", why.to_string());
  log(LogLevel::Err, {}, "{}: every further I/O fails", *fenced_);
  if (on_fenced_) on_fenced_();
}

Result<void> ReservedLun::check_reservation() {
  if (fenced_) return fail_as(IoFailure::Conflict, "{}", *fenced_);
  auto ok = pr_.check();
  if (!ok && lost_connection(ok.error())) ok = reconnect();
  if (ok) {
    vacant_ = false;
    return ok;
  }
  if (failure_of(ok.error()) == IoFailure::Conflict) {
    fence(ok.error());
    return fail_as(IoFailure::Conflict, "{}", *fenced_);
  }
  if (failure_of(ok.error()) == IoFailure::Vacant) vacant_ = true;
  return ok;
}

Result<void> ReservedLun::restore_reservation() {
  if (fenced_) return fail_as(IoFailure::Conflict, "{}", *fenced_);
  auto ok = pr_.restore();
  if (!ok && lost_connection(ok.error())) {
    if (auto back = session_->reconnect(); !back) return back;
    ok = pr_.restore();
  }
  if (ok) {
    vacant_ = false;
    log(LogLevel::Notice, {}, "reservation restored after the target lost it");
    return ok;
  }
  if (failure_of(ok.error()) == IoFailure::Conflict) fence(ok.error());
  return ok;
}

Result<void> ReservedLun::release_reservation() {
  auto ok = pr_.release();
  if (!ok && lost_connection(ok.error())) {
    if (auto back = session_->reconnect(); !back) return back;
    ok = pr_.release();
  }
  return ok;
}

}  // namespace clusterd
