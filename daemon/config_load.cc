#include "config_load.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
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

// Where each document of a stream starts, read with the event API and no node tree.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Checks that the text holds one document. yaml-cpp 0.7 never consumes a stray ',' outside a
// flow collection: its parser then yields empty documents at the same place forever (LoadAll
// eats all memory), so read at most two document starts and treat "no progress" as the error.
bool check_single_document(const std::string& text, DiagnosticSink& sink) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts handler;
  while (handler.starts.size() < 2 && parser.HandleNextDocument(handler)) {
  }
  if (handler.starts.size() < 2) return true;
  const YAML::Mark& second = handler.starts[1];
  if (second.pos == handler.starts[0].pos) {
    char c = static_cast<std::size_t>(second.pos) < text.size() ? text[second.pos] : ' ';
    sink.error(position_of_mark(second), fmt::format("YAML syntax error: unexpected '{}'", c));
  } else {
    sink.error(position_of_mark(second),
               "the file holds more than one YAML document (a second '---'); expected one");
  }
  return false;
}

// Parses the text into exactly one document, or reports why it cannot.
std::optional<YAML::Node> parse_document(std::string_view view, DiagnosticSink& sink) {
  std::string text(view);
  YAML::Node root;
  try {
    if (!check_single_document(text, sink)) return std::nullopt;
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // e.msg is the bare sentence; e.what() would repeat the position in yaml-cpp's own words.
    sink.error(position_of_mark(e.mark), fmt::format("YAML syntax error: {}", e.msg));
    return std::nullopt;
  }
  if (root.IsNull()) {
    sink.error({1, 1}, "the file is empty; expected at least the keys 'cluster' and 'nodes'");
    return std::nullopt;
  }
  return root;
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
