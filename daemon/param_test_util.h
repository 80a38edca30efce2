// Test helpers that build resource parameters the way the configuration loader does.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config.h"

namespace clusterd::testing {

/// A scalar parameter value.
inline ParamValue scalar(std::string text) {
  ParamValue v;
  v.scalar = std::move(text);
  return v;
}

/// A list parameter value.
inline ParamValue list(std::vector<std::string> items) {
  ParamValue v;
  v.kind = ParamValue::Kind::List;
  v.list = std::move(items);
  return v;
}

}  // namespace clusterd::testing
