#include "resource_types.h"

#include "ocf_agent.h"
#include "ocf_metadata.h"

namespace clusterd {
namespace {

ParamSpec param(std::string name, std::string type, std::string description,
                ParamValue::Kind kind = ParamValue::Kind::Scalar, std::string default_value = "",
                bool required = false) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = std::move(type);
  spec.description = std::move(description);
  spec.kind = kind;
  spec.default_value = std::move(default_value);
  spec.required = required;
  return spec;
}

}  // namespace

TypeInfo process_type_info() {
  using Kind = ParamValue::Kind;
  TypeInfo info;
  info.name = "process";
  info.params = {
      param("command", "string", "Program to run: a path, or a name searched in PATH",
            Kind::Scalar, "", true),
      param("args", "list", "Arguments after the program name", Kind::List),
      param("env", "map", "Environment variables added to PATH and CLUSTER_*", Kind::Map),
      param("cwd", "string", "Working directory", Kind::Scalar, "/"),
      param("user", "string", "User to run as (name or uid); default: the daemon's"),
      param("group", "string", "Group to run as (name or gid); default: the user's"),
      param("stop_signal", "signal", "Signal that asks the process to stop", Kind::Scalar,
            "TERM"),
      param("umask", "octal", "File mode creation mask", Kind::Scalar, "022"),
      param("hostname", "string",
            "network-name: a UTS namespace of its own named after the group's network name; "
            "or a host name"),
  };
  return info;
}

SystemTypeCatalog::SystemTypeCatalog(std::string ocf_root) : ocf_root_(std::move(ocf_root)) {}

Result<TypeInfo> SystemTypeCatalog::lookup(const std::string& type,
                                           const std::string& agent) const {
  if (type != "ocf") {
    for (const auto& builtin : builtin_types())
      if (type == builtin.name && builtin.info) return builtin.info();
    return fail("unknown resource type '{}' (known: {})", type, builtin_type_names());
  }
  auto path = resolve_ocf_agent(ocf_root_, agent);
  if (!path) return std::unexpected(path.error());
  std::string name = path->name();
  for (const auto& info : cache_)
    if (info.name == name) return info;
  auto info = read_ocf_metadata(*path, ocf_root_);
  if (!info) return info;
  cache_.push_back(*info);
  return info;
}

std::vector<std::string> SystemTypeCatalog::type_names() const {
  std::vector<std::string> names;
  for (const auto& builtin : builtin_types()) names.emplace_back(builtin.name);
  return names;
}

}  // namespace clusterd
