#include "ocf_metadata.h"

#include <cctype>
#include <charconv>

#include <pugixml.hpp>

#include "child.h"

namespace clusterd {
namespace {

std::string_view trim(std::string_view text) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// The first line of a description, with runs of whitespace kept as they are.
std::string first_line(std::string_view text) {
  text = trim(text);
  return std::string(trim(text.substr(0, text.find('\n'))));
}

// The English shortdesc (or any, or the longdesc's first line).
std::string description_of(const pugi::xml_node& node) {
  pugi::xml_node chosen;
  for (auto desc : node.children("shortdesc")) {
    std::string_view lang = desc.attribute("lang").value();
    if (!chosen || lang == "en") chosen = desc;
  }
  std::string text = chosen ? first_line(chosen.child_value()) : "";
  if (text.empty()) text = first_line(node.child("longdesc").child_value());
  return text;
}

bool flag(const pugi::xml_attribute& attribute) {
  std::string_view value = attribute.value();
  return value == "1" || value == "true" || value == "yes";
}

ParamSpec param_of(const pugi::xml_node& node) {
  ParamSpec spec;
  spec.name = node.attribute("name").value();
  spec.required = flag(node.attribute("required"));
  spec.unique = flag(node.attribute("unique"));
  auto content = node.child("content");
  spec.type = content.attribute("type").as_string("string");
  spec.default_value = content.attribute("default").value();
  spec.description = description_of(node);
  return spec;
}

void read_action(const pugi::xml_node& node, TypeInfo& info) {
  std::string_view name = node.attribute("name").value();
  auto timeout = parse_ocf_duration(node.attribute("timeout").value());
  auto interval = parse_ocf_duration(node.attribute("interval").value());
  if (name == "start" && !info.advised_start_timeout) info.advised_start_timeout = timeout;
  if (name == "stop" && !info.advised_stop_timeout) info.advised_stop_timeout = timeout;
  if (name != "monitor" || info.advised_monitor_timeout) return;
  // Several monitor actions differ by depth or role; the plain one (depth 0) is LooksAlive's.
  std::string_view depth = node.attribute("depth").value();
  if (!depth.empty() && depth != "0") return;
  info.advised_monitor_timeout = timeout;
  info.advised_monitor_interval = interval;
}

}  // namespace

std::optional<Duration> parse_ocf_duration(std::string_view text) {
  text = trim(text);
  long long number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || number < 0) return std::nullopt;
  std::string unit(trim(std::string_view(end, text.data() + text.size() - end)));
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.empty() || unit == "s" || unit == "sec" || unit == "secs")
    return std::chrono::seconds(number);
  if (unit == "ms" || unit == "msec") return Duration(number);
  if (unit == "m" || unit == "min" || unit == "mins") return std::chrono::minutes(number);
  if (unit == "h" || unit == "hr" || unit == "hour" || unit == "hours")
    return std::chrono::hours(number);
  return std::nullopt;
}

Result<TypeInfo> parse_ocf_metadata(std::string_view xml, const std::string& name) {
  pugi::xml_document doc;
  auto parsed = doc.load_buffer(xml.data(), xml.size());
  if (!parsed)
    return fail("{}: meta-data is not valid XML ({} at byte {})", name, parsed.description(),
                parsed.offset);
  auto root = doc.child("resource-agent");
  if (!root) return fail("{}: meta-data has no <resource-agent> element", name);
  TypeInfo info;
  info.name = name;
  for (auto node : root.child("parameters").children("parameter")) {
    ParamSpec spec = param_of(node);
    if (spec.name.empty()) return fail("{}: meta-data has a parameter without a name", name);
    info.params.push_back(std::move(spec));
  }
  for (auto node : root.child("actions").children("action")) read_action(node, info);
  return info;
}

Result<TypeInfo> read_ocf_metadata(const OcfAgentPath& agent, const std::string& ocf_root,
                                   Duration timeout) {
  ChildSpec spec;
  spec.argv = {agent.path, "meta-data"};
  spec.env = {std::string("PATH=") + kDefaultPath, "OCF_ROOT=" + ocf_root,
              "OCF_RA_VERSION_MAJOR=1", "OCF_RA_VERSION_MINOR=0",
              "OCF_RESOURCE_TYPE=" + agent.type, "OCF_RESOURCE_PROVIDER=" + agent.provider};
  spec.output_limit = 1 << 20;  // Meta-data of big agents runs to tens of KiB.
  spec.capture_stderr = false;  // Warnings on stderr would corrupt the XML.
  auto exit = run_child_sync(spec, timeout);
  if (!exit) return fail("{}: {}", agent.name(), exit.error().to_string());
  if (!exit->success()) {
    std::string what = exit->end == ChildEnd::Timeout
                           ? fmt::format("timed out after {} ms", timeout.count())
                           : exit->describe();
    return fail("{}: meta-data {}", agent.name(), what);
  }
  return parse_ocf_metadata(exit->output, agent.name());
}

}  // namespace clusterd
