// The loader's walk over one YAML document: builds the Config section by section, reporting every
// problem to the sink, then checks what refers across sections (owners, addresses, dependencies).
// Internal to the configuration module: use parse_config()/load_config() from config_load.h.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "config_yaml.h"
#include "resource_types.h"

namespace clusterd {

/// Builds one Config from a parsed YAML document.
class ConfigBuilder {
 public:
  ConfigBuilder(DiagnosticSink& sink, const TypeCatalog& catalog)
      : sink_(sink), catalog_(catalog) {}

  /// Walks `root`; the result is valid only when the sink is still empty afterwards.
  Config build(const YAML::Node& root, std::string source);

 private:
  // Sections (config_builder.cc).
  void read_cluster(const Field& field);
  void read_nodes(const Field& field);
  void read_node(const YAML::Node& node, std::size_t index);
  void read_networks(const Field& field);
  void read_network(const YAML::Node& node, std::size_t index);
  void read_heartbeat(const Field& field);
  void read_quorum(const Field& field);
  void read_quorum_disk(const Field& field);

  // Groups and resources (config_groups.cc).
  void read_groups(const Field& field);
  void read_group(const YAML::Node& node, std::size_t index);
  void read_owners(const MapReader& map, GroupConfig& group);
  void read_failover(const Field& field, FailoverPolicy& policy);
  void read_failback(const Field& field, FailbackPolicy& policy);
  std::optional<std::pair<int, int>> read_failback_window(const MapReader& map,
                                                          const std::string& label);
  std::optional<ResourceConfig> read_resource(const YAML::Node& node, std::size_t index,
                                              const std::string& group_where);
  void read_monitor(const Field& field, ResourceConfig& resource);
  void read_timeouts(const Field& field, ResourceConfig& resource);
  void read_restart(const Field& field, RestartPolicy& policy);
  Params read_params(const Field& field);
  std::optional<TypeInfo> resolve_type(const MapReader& map, const ResourceConfig& resource);
  void check_params(const MapReader& map, const ResourceConfig& resource, const TypeInfo& info);
  void apply_advised(const TypeInfo& info, ResourceConfig& resource);

  // References across sections (config_refs.cc).
  void check_references();
  void check_addresses();
  void check_heartbeat_reach();
  void check_votes();
  void check_quorum_disk();
  void check_owners(const GroupConfig& group);
  void check_dependencies(const GroupConfig& group);
  void check_cycles(const GroupConfig& group);

  // Where things were written, for the reference checks that run after the walk.
  struct NodeRefs {
    std::string where;
    std::vector<std::pair<Located, Located>> addresses;  ///< network -> address
  };
  struct ResourceRefs {
    std::string where;
    std::vector<Located> depends;
  };
  struct GroupRefs {
    std::string where;
    std::vector<Located> preferred;
    std::vector<Located> possible;
    std::map<std::string, ResourceRefs> resources;
  };
  /// Which timeouts the file set itself (the rest may come from the type's advice).
  struct SetByFile {
    bool start = false, stop = false, monitor_timeout = false, looks_alive = false;
  };

  DiagnosticSink& sink_;
  const TypeCatalog& catalog_;
  Config config_;
  SourcePos nodes_pos_;
  std::map<std::string, NodeRefs> node_refs_;
  std::map<std::string, GroupRefs> group_refs_;
  GroupRefs current_group_;  ///< Of the group being read.
  SetByFile set_by_file_;    ///< Of the resource being read.
  bool quorum_disk_given_ = false;  ///< quorum.disk is in the file (valid or not).
};

/// False, after reporting it, when a list item is empty ("- " with nothing after it): an empty
/// mapping elsewhere means "all defaults", but an empty item is a mistake.
bool check_item_present(DiagnosticSink& sink, const std::string& where, const YAML::Node& node);

/// "group 'web'" for an item with a name, "group #2" before its name is known or when it has none.
std::string item_label(std::string_view kind, const YAML::Node& node, std::size_t index);

}  // namespace clusterd
