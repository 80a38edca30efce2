// OCF agent meta-data: the XML an agent prints for `meta-data` (OCF RA API 1.0, section 4),
// read into TypeInfo so configuration loading can check parameters and advise timeouts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "clock.h"
#include "error.h"
#include "ocf_agent.h"
#include "resource_types.h"

namespace clusterd {

/// How long an agent may take to print its meta-data.
inline constexpr Duration kMetadataTimeout = std::chrono::seconds(5);

/// Parses an OCF duration: "20s", "20" (seconds), "2min", "2m", "100ms", "1h"; nullopt if it
/// is none of those.
std::optional<Duration> parse_ocf_duration(std::string_view text);

/// Reads meta-data XML into a TypeInfo called `name` (pure).
Result<TypeInfo> parse_ocf_metadata(std::string_view xml, const std::string& name);

/// Runs `AGENT meta-data` (synchronously, with `timeout`) and parses what it prints.
Result<TypeInfo> read_ocf_metadata(const OcfAgentPath& agent, const std::string& ocf_root,
                                   Duration timeout = kMetadataTimeout);

}  // namespace clusterd
