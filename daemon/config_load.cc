// STUB: replaced by the configuration module.
#include "config_load.h"

namespace clusterd {

std::string Diagnostic::to_string() const {
  return file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " + message;
}

std::expected<ConfigPtr, Diagnostics> parse_config(std::string_view, const std::string& file,
                                                   const TypeCatalog&) {
  return std::unexpected(Diagnostics{{file, {}, "not implemented"}});
}

std::expected<ConfigPtr, Diagnostics> load_config(const std::string& path,
                                                  const TypeCatalog& catalog) {
  return parse_config("", path, catalog);
}

Result<Duration> parse_duration(std::string_view) { return fail("not implemented"); }

std::string format_duration(Duration d) { return std::to_string(d.count()) + "ms"; }

}  // namespace clusterd
