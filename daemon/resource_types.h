// Resource type metadata: which parameters a type takes, which are required, their defaults and
// advised timeouts. Built-in types describe themselves; OCF agents through their meta-data XML.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "error.h"

namespace clusterd {

/// One parameter a resource type accepts.
struct ParamSpec {
  std::string name;
  bool required = false;
  std::string default_value;  ///< Empty: none.
  ParamValue::Kind kind = ParamValue::Kind::Scalar;
  std::string type;           ///< "string", "integer", "boolean", "duration", ... (informational)
  std::string description;    ///< One line.
  bool unique = false;        ///< OCF unique="1": no two resources may share the value.
  /// A Scalar parameter that also takes a list of single values (`portal: [a, b]`); the type's
  /// driver reads both forms.
  bool or_list = false;
};

/// What the configuration loader and the engine need to know about a type (or an OCF agent).
struct TypeInfo {
  std::string name;  ///< "process", or for OCF "ocf:heartbeat:Dummy".
  std::vector<ParamSpec> params;
  std::optional<Duration> advised_start_timeout;
  std::optional<Duration> advised_stop_timeout;
  std::optional<Duration> advised_monitor_timeout;
  std::optional<Duration> advised_monitor_interval;

  /// The parameter called `name`, or nullptr.
  const ParamSpec* find(const std::string& param) const {
    for (const auto& p : params)
      if (p.name == param) return &p;
    return nullptr;
  }
};

/// Looks up type metadata. The real catalog knows the built-in types and runs OCF agents'
/// `meta-data`; tests use a fixed one.
class TypeCatalog {
 public:
  virtual ~TypeCatalog() = default;
  /// Metadata of `type`; for "ocf", of the agent `agent` ("provider:type" or a path).
  virtual Result<TypeInfo> lookup(const std::string& type, const std::string& agent) const = 0;
  /// Names of every known type, for "did you mean".
  virtual std::vector<std::string> type_names() const = 0;
};

/// The catalog of this machine: built-in types plus OCF agents under `ocf_root`
/// (resource.d/PROVIDER/TYPE). Agent meta-data is read once per agent and cached.
class SystemTypeCatalog : public TypeCatalog {
 public:
  explicit SystemTypeCatalog(std::string ocf_root = "/usr/lib/ocf");
  Result<TypeInfo> lookup(const std::string& type, const std::string& agent) const override;
  std::vector<std::string> type_names() const override;
  /// OCF_ROOT this catalog uses.
  const std::string& ocf_root() const { return ocf_root_; }

 private:
  std::string ocf_root_;
  mutable std::vector<TypeInfo> cache_;
};

/// Metadata of the built-in `process` type.
TypeInfo process_type_info();

}  // namespace clusterd
