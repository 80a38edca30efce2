#include "iscsi_session.h"

#include <fmt/core.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <functional>

#include "byte_order.h"

namespace clusterd {

void IscsiContextFree::operator()(iscsi_context* context) const noexcept {
  iscsi_destroy_context(context);
}

void AttentionLog::add(UnitAttention attention) {
  switch (attention) {
    case UnitAttention::PowerOnReset:
      power_on_reset = true;
      break;
    case UnitAttention::ReservationsPreempted:
      reservations_preempted = true;
      break;
    case UnitAttention::ReservationsReleased:
      reservations_released = true;
      break;
    case UnitAttention::RegistrationsPreempted:
      registrations_preempted = true;
      break;
    case UnitAttention::Other:
      other = true;
      break;
  }
}

bool AttentionLog::empty() const {
  return !power_on_reset && !reservations_preempted && !reservations_released &&
         !registrations_preempted && !other;
}

namespace {

struct TaskFree {
  void operator()(scsi_task* task) const noexcept { scsi_free_scsi_task(task); }
};
using TaskPtr = std::unique_ptr<scsi_task, TaskFree>;

/// Callback for every command, login and logout: `private_data` is an IscsiCompletion on the
/// waiting caller's stack. The context is destroyed (cancelling whatever is in flight) before
/// any wait returns with work outstanding, so it never outlives that frame.
void on_complete(iscsi_context*, int status, void*, void* private_data) {
  auto* done = static_cast<IscsiCompletion*>(private_data);
  done->status = status;
  done->finished = true;
}

std::string_view status_name(int status) {
  switch (status) {
    case SCSI_STATUS_GOOD:
      return "GOOD";
    case SCSI_STATUS_CHECK_CONDITION:
      return "CHECK CONDITION";
    case SCSI_STATUS_CONDITION_MET:
      return "CONDITION MET";
    case SCSI_STATUS_BUSY:
      return "BUSY";
    case SCSI_STATUS_RESERVATION_CONFLICT:
      return "RESERVATION CONFLICT";
    case SCSI_STATUS_TASK_SET_FULL:
      return "TASK SET FULL";
    case SCSI_STATUS_ACA_ACTIVE:
      return "ACA ACTIVE";
    case SCSI_STATUS_TASK_ABORTED:
      return "TASK ABORTED";
    case SCSI_STATUS_CANCELLED:
      return "cancelled";
    case SCSI_STATUS_TIMEOUT:
      return "timed out";
    default:
      return "transport error";
  }
}

/// "RESERVATION CONFLICT", "CHECK CONDITION ILLEGAL_REQUEST 24/00", ...
std::string describe_completion(int status, const scsi_task& task) {
  if (status != SCSI_STATUS_CHECK_CONDITION) return std::string(status_name(status));
  return fmt::format("CHECK CONDITION {} {:02x}/{:02x}", scsi_sense_key_str(task.sense.key),
                     task.sense.ascq >> 8, task.sense.ascq & 0xff);
}

constexpr int kPollSliceMs = 200;

TaskPtr task_from_cdb(std::span<const std::uint8_t> cdb, int direction, std::size_t length) {
  std::array<unsigned char, 16> copy{};
  std::copy(cdb.begin(), cdb.end(), copy.begin());
  return TaskPtr(scsi_create_task(static_cast<int>(cdb.size()), copy.data(), direction,
                                  static_cast<int>(length)));
}

/// READ CAPACITY(16) (SBC-3 5.16): SERVICE ACTION IN(16), service action 10h.
std::array<std::uint8_t, 16> read_capacity16_cdb(std::uint32_t length) {
  std::array<std::uint8_t, 16> cdb{};
  cdb[0] = 0x9e;
  cdb[1] = 0x10;
  put_be(&cdb[10], length, 4);
  return cdb;
}

/// REPORT SUPPORTED OPERATION CODES, all commands (SPC-4 6.35).
std::array<std::uint8_t, 12> rsoc_all_cdb(std::uint32_t length) {
  std::array<std::uint8_t, 12> cdb{};
  cdb[0] = 0xa3;
  cdb[1] = 0x0c;
  put_be(&cdb[6], length, 4);
  return cdb;
}

}  // namespace

struct IscsiSession::Command {
  Command(std::string name_, std::function<TaskPtr()> build_,
          std::span<const std::uint8_t> out_ = {}, std::span<std::uint8_t> in_ = {},
          std::size_t* received_ = nullptr)
      : name(std::move(name_)), build(std::move(build_)), out(out_), in(in_), received(received_) {}
  std::string name;                   ///< For messages: "READ(16)", "PREEMPT", ...
  std::function<TaskPtr()> build;     ///< A fresh task for every send.
  std::span<const std::uint8_t> out;  ///< Data-out, empty for none.
  std::span<std::uint8_t> in;         ///< Data-in lands here, empty for none.
  std::size_t* received = nullptr;    ///< Set to the data-in bytes actually sent, if given.
};

// ---- Connection -------------------------------------------------------------------------------

Result<std::unique_ptr<IscsiSession>> IscsiSession::connect(const IscsiTarget& target) {
  if (target.portals.empty()) return fail("no iSCSI portal given for {}", target.target_iqn);
  std::unique_ptr<IscsiSession> session(new IscsiSession(target));
  if (auto ok = session->login_anywhere(); !ok) return std::unexpected(ok.error());
  if (auto ok = session->read_capacity(); !ok) return std::unexpected(ok.error());
  return session;
}

IscsiSession::~IscsiSession() {
  if (!context_ || !iscsi_is_logged_in(context_.get())) return;
  // A polite logout, bounded like every command; the target drops the nexus either way.
  IscsiCompletion pending;
  if (iscsi_logout_async(context_.get(), on_complete, &pending) == 0)
    (void)wait(pending.finished, mono_now() + target_.timeout, "logout");
}

Result<void> IscsiSession::reconnect() {
  drop();
  return login_anywhere();
}

void IscsiSession::drop() { context_.reset(); }

AttentionLog IscsiSession::take_attentions() { return std::exchange(attentions_, {}); }

Result<void> IscsiSession::login_anywhere() {
  std::string why;
  for (const auto& portal : target_.portals) {
    auto ok = login(portal);
    if (ok) return {};
    why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", portal, ok.error().to_string());
    drop();
  }
  return fail_errno(ENOTCONN, "cannot log in to iSCSI target {} as {} ({})", target_.target_iqn,
                    target_.initiator_iqn, why);
}

Result<void> IscsiSession::new_context() {
  context_.reset(iscsi_create_context(target_.initiator_iqn.c_str()));
  if (!context_) return fail_errno(ENOMEM, "cannot create an iSCSI context");
  iscsi_context* c = context_.get();
  // No automatic reconnect: it would silently make a new, unregistered nexus (docs/disks.md).
  iscsi_set_noautoreconnect(c, 1);
  // Our own deadline (wait()) is exact to the millisecond; libiscsi's counts whole seconds of
  // time(NULL), so it may fire up to a second early. It stays as a backstop, set later.
  iscsi_set_timeout(c, static_cast<int>(target_.timeout.count() / 1000) + 2);
  if (iscsi_set_targetname(c, target_.target_iqn.c_str()) != 0 ||
      iscsi_set_session_type(c, ISCSI_SESSION_NORMAL) != 0 ||
      iscsi_set_header_digest(c, ISCSI_HEADER_DIGEST_NONE_CRC32C) != 0)
    return fail_errno(EINVAL, "cannot set up the iSCSI context: {}", iscsi_get_error(c));
  return {};
}

Result<void> IscsiSession::login(const std::string& portal) {
  portal_ = portal;
  if (auto ok = new_context(); !ok) return ok;
  iscsi_context* c = context_.get();
  connect_done_ = {};
  if (iscsi_connect_async(c, portal.c_str(), on_complete, &connect_done_) != 0)
    return fail_errno(ENOTCONN, "cannot start connecting: {}", iscsi_get_error(c));
  if (auto ok = wait(connect_done_.finished, mono_now() + target_.timeout, "connect"); !ok)
    return ok;
  if (connect_done_.status != SCSI_STATUS_GOOD)
    return fail_errno(ENOTCONN, "cannot connect: {}", iscsi_get_error(c));
  IscsiCompletion pending;
  if (iscsi_login_async(c, on_complete, &pending) != 0)
    return fail_errno(ENOTCONN, "cannot start the login: {}", iscsi_get_error(c));
  if (auto ok = wait(pending.finished, mono_now() + target_.timeout, "login"); !ok) return ok;
  if (pending.status != SCSI_STATUS_GOOD)
    return fail_errno(ENOTCONN, "login refused: {}", iscsi_get_error(c));
  // The first command of a new nexus meets its unit attentions (tgt: 29/00): take them here.
  return test_unit_ready();
}

Result<void> IscsiSession::read_capacity() {
  std::array<std::uint8_t, 32> data{};
  std::size_t received = 0;
  auto cdb = read_capacity16_cdb(data.size());
  Command command{"READ CAPACITY(16)",
                  [&] { return task_from_cdb(cdb, SCSI_XFER_READ, data.size()); },
                  {},
                  data,
                  &received};
  if (auto ok = execute(command); !ok) return ok;
  auto capacity = parse_read_capacity16(std::span(data).first(received));
  if (!capacity) return std::unexpected(capacity.error());
  capacity_ = *capacity;
  return {};
}

// ---- Running commands -------------------------------------------------------------------------

Result<void> IscsiSession::wait(const bool& finished, MonoTime deadline, const char* what) {
  iscsi_context* c = context_.get();
  while (!finished) {
    std::int64_t left_ms = deadline.ms_since(mono_now());
    if (left_ms <= 0) {
      drop();  // cancels what is in flight; the nexus is not to be trusted any more
      return fail_errno(ETIMEDOUT, "{} got no answer from {} within {} ms", what, portal_,
                        target_.timeout.count());
    }
    pollfd pfd{iscsi_get_fd(c), static_cast<short>(iscsi_which_events(c)), 0};
    int ready = poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left_ms, kPollSliceMs)));
    if (ready < 0 && errno != EINTR) {
      int err = errno;
      drop();
      return fail_errno(err, "cannot poll the iSCSI socket during {}", what);
    }
    // revents 0 still lets libiscsi run its own timeout scan.
    if (iscsi_service(c, ready > 0 ? pfd.revents : 0) < 0) {
      std::string why = iscsi_get_error(c);
      drop();
      return fail_errno(ENOTCONN, "connection to {} lost during {}: {}", portal_, what, why);
    }
  }
  return {};
}

Result<int> IscsiSession::send_once(const Command& command, scsi_task* task) {
  if (!context_)
    return fail_errno(ENOTCONN, "{}: no iSCSI session to {} (reconnect first)", command.name,
                      target_.target_iqn);
  if (!command.in.empty() && scsi_task_add_data_in_buffer(task, static_cast<int>(command.in.size()),
                                                          command.in.data()) != 0)
    return fail_errno(ENOMEM, "{}: cannot attach the data-in buffer", command.name);
  iscsi_data out{command.out.size(), const_cast<unsigned char*>(command.out.data())};
  IscsiCompletion pending;
  if (iscsi_scsi_command_async(context_.get(), target_.lun, task, on_complete,
                               command.out.empty() ? nullptr : &out, &pending) != 0)
    return fail_errno(ENOTCONN, "{}: cannot queue the command: {}", command.name,
                      iscsi_get_error(context_.get()));
  auto deadline = mono_now() + target_.timeout;
  if (auto ok = wait(pending.finished, deadline, command.name.c_str()); !ok)
    return std::unexpected(ok.error());
  return pending.status;
}

Result<void> IscsiSession::execute(const Command& command) {
  for (int attempt = 1;; ++attempt) {
    TaskPtr task = command.build();
    if (!task) return fail_errno(ENOMEM, "{}: cannot build the command", command.name);
    auto status = send_once(command, task.get());
    if (!status) return std::unexpected(status.error());
    Judgement verdict = judge(*status, task->sense.key, task->sense.ascq);
    if (verdict.attention) attentions_.add(*verdict.attention);
    if (verdict.verdict == Verdict::Done) {
      if (command.received) {
        std::size_t missing = task->residual_status == SCSI_RESIDUAL_UNDERFLOW ? task->residual : 0;
        *command.received = command.in.size() - std::min(missing, command.in.size());
      }
      return {};
    }
    if (verdict.verdict == Verdict::Fail || attempt >= target_.retries) {
      IoFailure failure = verdict.verdict == Verdict::Fail ? verdict.failure : IoFailure::Device;
      // A cancelled or timed-out command leaves the nexus in doubt: no further use of it.
      if (failure == IoFailure::Unreachable || failure == IoFailure::Timeout) drop();
      return fail_errno(errno_of(failure), "{} on {} failed after {} send(s): {}", command.name,
                        target_.target_iqn, attempt, describe_completion(*status, *task));
    }
  }
}

// ---- Block device -----------------------------------------------------------------------------

Result<void> IscsiSession::transfer(const char* what, std::uint64_t lba, std::uint32_t count,
                                    std::size_t bytes) const {
  if (count == 0 || lba >= capacity_.block_count || count > capacity_.block_count - lba)
    return fail_errno(EINVAL, "{} of {} blocks at {} is outside the LUN's {} blocks", what, count,
                      lba, capacity_.block_count);
  if (bytes != std::uint64_t{count} * capacity_.block_size || bytes > UINT32_MAX)
    return fail_errno(EINVAL, "{} of {} blocks needs {} bytes, the buffer has {}", what, count,
                      std::uint64_t{count} * capacity_.block_size, bytes);
  return {};
}

Result<void> IscsiSession::read(std::uint64_t lba, std::uint32_t count, std::span<std::byte> out) {
  if (auto ok = transfer("READ(16)", lba, count, out.size()); !ok) return ok;
  auto in = std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size());
  std::size_t received = 0;
  Command command{"READ(16)",
                  [&] {
                    return TaskPtr(scsi_cdb_read16(lba, static_cast<std::uint32_t>(in.size()),
                                                   static_cast<int>(block_size()), 0, 0, 0, 0, 0));
                  },
                  {},
                  in,
                  &received};
  if (auto ok = execute(command); !ok) return ok;
  if (received != in.size())
    return fail_errno(EIO, "READ(16) at {} returned {} of {} bytes", lba, received, in.size());
  return {};
}

Result<void> IscsiSession::write16(std::uint64_t lba, std::uint32_t count,
                                   std::span<const std::byte> data, bool fua) {
  if (auto ok = transfer("WRITE(16)", lba, count, data.size()); !ok) return ok;
  auto out = std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  auto bytes = static_cast<std::uint32_t>(data.size());
  int size = static_cast<int>(block_size());
  return execute(
      {fua ? "WRITE(16) FUA" : "WRITE(16)",
       [=] { return TaskPtr(scsi_cdb_write16(lba, bytes, size, 0, 0, fua ? 1 : 0, 0, 0)); }, out});
}

Result<void> IscsiSession::write(std::uint64_t lba, std::uint32_t count,
                                 std::span<const std::byte> data) {
  return write16(lba, count, data, false);
}

Result<void> IscsiSession::write_through(std::uint64_t lba, std::uint32_t count,
                                         std::span<const std::byte> data) {
  return write16(lba, count, data, true);
}

Result<void> IscsiSession::flush() {
  // Number of blocks 0 means "to the end of the LUN" (SBC-3 5.23).
  auto ok = execute(
      {"SYNCHRONIZE CACHE(16)", [] { return TaskPtr(scsi_cdb_synchronizecache16(0, 0, 0, 0)); }});
  if (ok || failure_of(ok.error()) != IoFailure::IllegalRequest) return ok;
  return execute(
      {"SYNCHRONIZE CACHE(10)", [] { return TaskPtr(scsi_cdb_synchronizecache10(0, 0, 0, 0)); }});
}

Result<void> IscsiSession::test_unit_ready() {
  return execute({"TEST UNIT READY", [] { return TaskPtr(scsi_cdb_testunitready()); }});
}

// ---- Persistent reservations ------------------------------------------------------------------

Result<void> IscsiSession::pr_out(PrOutAction action, PrType type, std::uint64_t key,
                                  std::uint64_t sa_key) {
  auto cdb = pr_out_cdb(action, type);
  auto parameters = pr_out_parameters(key, sa_key);
  auto done =
      execute({std::string(to_string(action)),
               [&] { return task_from_cdb(cdb, SCSI_XFER_WRITE, parameters.size()); }, parameters});
  // A target that listed PREEMPT AND ABORT but refuses it: believe the refusal from now on.
  if (!done && action == PrOutAction::PreemptAndAbort &&
      failure_of(done.error()) == IoFailure::IllegalRequest)
    preempt_and_abort_ = 0;
  return done;
}

Result<std::vector<std::uint8_t>> IscsiSession::pr_in(PrInAction action, std::uint16_t length) {
  std::vector<std::uint8_t> data(length);
  std::size_t received = 0;
  auto cdb = pr_in_cdb(action, length);
  Command command{std::string(to_string(action)),
                  [&] { return task_from_cdb(cdb, SCSI_XFER_READ, data.size()); },
                  {},
                  data,
                  &received};
  if (auto ok = execute(command); !ok) return std::unexpected(ok.error());
  data.resize(received);
  return data;
}

Result<PrKeys> IscsiSession::pr_read_keys() {
  // 8 bytes of header and room for 255 nodes' keys, twice over (old and new nexus).
  auto data = pr_in(PrInAction::ReadKeys, 8 + 8 * 512);
  if (!data) return std::unexpected(data.error());
  return parse_read_keys(*data);
}

Result<PrReservation> IscsiSession::pr_read_reservation() {
  auto data = pr_in(PrInAction::ReadReservation, 24);
  if (!data) return std::unexpected(data.error());
  return parse_read_reservation(*data);
}

Result<PrCapabilities> IscsiSession::pr_report_capabilities() {
  auto data = pr_in(PrInAction::ReportCapabilities, 8);
  if (!data) return std::unexpected(data.error());
  return parse_report_capabilities(*data);
}

Result<bool> IscsiSession::supports_preempt_and_abort() {
  if (preempt_and_abort_ >= 0) return preempt_and_abort_ == 1;
  std::vector<std::uint8_t> data(8192);
  std::size_t received = 0;
  auto cdb = rsoc_all_cdb(static_cast<std::uint32_t>(data.size()));
  auto ok = execute({"REPORT SUPPORTED OPERATION CODES",
                     [&] { return task_from_cdb(cdb, SCSI_XFER_READ, data.size()); },
                     {},
                     data,
                     &received});
  bool supported = false;
  if (ok) {
    auto commands = parse_supported_commands(std::span(data).first(received));
    if (!commands) return std::unexpected(commands.error());
    supported =
        lists_command(*commands, 0x5f, static_cast<std::uint16_t>(PrOutAction::PreemptAndAbort));
  } else if (failure_of(ok.error()) != IoFailure::IllegalRequest) {
    return std::unexpected(ok.error());
  }
  // A target that cannot say is treated as lacking it: PREEMPT alone fences just as well.
  preempt_and_abort_ = supported ? 1 : 0;
  return supported;
}

}  // namespace clusterd
