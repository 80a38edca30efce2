// The on-disk format of ledger.log: one record per line, each carrying its own checksum, so a
// record torn by a crash (power loss between write and fdatasync) is recognised at start.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace clusterd::ledger {

/// One acknowledged append: the client's id, its sequence number and the opaque payload.
struct Record {
  std::string client_id;
  uint64_t seq = 0;
  std::string payload;

  bool operator==(const Record&) const = default;
};

/// CRC-32C (Castagnoli, as iSCSI and ext4 use) of `data`, continuing from `crc` (0 to start).
uint32_t crc32c(std::string_view data, uint32_t crc = 0);

/// The record as one log line: "<crc32c as 8 hex digits> <client-id> <seq> <payload>\n"; the
/// checksum covers everything after the first space up to (not including) the newline.
std::string encode_record(const Record& record);

/// Decodes one line (without its newline); nullopt when the checksum or the layout is wrong.
std::optional<Record> decode_record(std::string_view line);

/// What reading a whole log found.
struct LogScan {
  std::vector<Record> records;  ///< Every intact record, in file order.
  uint64_t valid_bytes = 0;     ///< Length of the prefix made of intact records.
  bool torn_tail = false;       ///< The bytes after valid_bytes are one torn last record.
  bool corrupt = false;         ///< A damaged record is followed by more data: not a crash tear.
  uint64_t corrupt_offset = 0;  ///< Where the damaged record starts (when corrupt).
};

/// Scans the contents of a log. Only the last record can be torn by a crash (every append is
/// fdatasync'ed before the next is acknowledged); damage anywhere else is corruption.
LogScan scan_log(std::string_view data);

/// True when `id` is a valid client id: 1-64 characters of [A-Za-z0-9._:-].
bool valid_client_id(std::string_view id);

}  // namespace clusterd::ledger
