// STUB: replaced by the agents module.
#include "resource_types.h"

namespace clusterd {

SystemTypeCatalog::SystemTypeCatalog(std::string ocf_root) : ocf_root_(std::move(ocf_root)) {}
Result<TypeInfo> SystemTypeCatalog::lookup(const std::string& type, const std::string&) const {
  if (type == "process") return process_type_info();
  return fail("unknown resource type '{}'", type);
}
std::vector<std::string> SystemTypeCatalog::type_names() const { return {"process", "ocf"}; }
TypeInfo process_type_info() {
  TypeInfo info;
  info.name = "process";
  return info;
}

}  // namespace clusterd
