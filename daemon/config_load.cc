#include "config_load.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "config_builder.h"

namespace clusterd {
namespace {

// yaml-cpp's marks are 0-based; a null mark (-1) means "position unknown".
SourcePos position_of_mark(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

// Parses the text into exactly one document, or reports why it cannot.
std::optional<YAML::Node> parse_document(std::string_view text, DiagnosticSink& sink) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // e.msg is the bare sentence; e.what() would repeat the position in yaml-cpp's own words.
    sink.error(position_of_mark(e.mark), fmt::format("YAML syntax error: {}", e.msg));
    return std::nullopt;
  }
  if (documents.empty() || documents[0].IsNull()) {
    sink.error({1, 1}, "the file is empty; expected at least the keys 'cluster' and 'nodes'");
    return std::nullopt;
  }
  if (documents.size() > 1) {
    sink.error(position_of(documents[1]),
               fmt::format("the file holds {} YAML documents; expected one", documents.size()));
    return std::nullopt;
  }
  return documents[0];
}

}  // namespace

std::string Diagnostic::to_string() const {
  if (pos.line == 0) return fmt::format("{}: {}", file, message);
  if (pos.column == 0) return fmt::format("{}:{}: {}", file, pos.line, message);
  return fmt::format("{}:{}:{}: {}", file, pos.line, pos.column, message);
}

std::expected<ConfigPtr, Diagnostics> parse_config(std::string_view text, const std::string& file,
                                                   const TypeCatalog& catalog) {
  DiagnosticSink sink(file);
  try {
    auto root = parse_document(text, sink);
    if (!root) return std::unexpected(sink.sorted());
    ConfigBuilder builder(sink, catalog);
    Config config = builder.build(*root, file);
    if (!sink.empty()) return std::unexpected(sink.sorted());
    return std::make_shared<const Config>(std::move(config));
  } catch (const std::exception& e) {
    // Nothing in the walk should throw; if yaml-cpp or the catalog does, it is still only a bad
    // file to the caller, never an exception across the module boundary.
    sink.error({}, fmt::format("cannot read the configuration: {}", e.what()));
    return std::unexpected(sink.sorted());
  }
}

std::expected<ConfigPtr, Diagnostics> load_config(const std::string& path,
                                                  const TypeCatalog& catalog) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return std::unexpected(
        Diagnostics{{path, {}, fmt::format("cannot open the file: {}", std::strerror(err))}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::unexpected(Diagnostics{{path, {}, "cannot read the file"}});
  return parse_config(text.str(), path, catalog);
}

}  // namespace clusterd
