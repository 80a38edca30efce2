// The help texts of clusterctl: what each command does, with examples.
#include <map>

#include "ctl_args.h"

namespace clusterd {
namespace {

constexpr const char* kToolHelp =
    R"(clusterctl - look at and control the failover cluster (clusterd)

Usage: clusterctl [--bus PATH] COMMAND [ARGS] [OPTIONS]

Reading (anyone may; add --json for machine-readable output):
  status [--watch]         cluster, nodes, groups and resources; --watch follows changes
  nodes                    the nodes and their state, the term and the coordinator
  cluster                  membership, quorum, consensus and heartbeat counters
  timeline [GROUP]         failover timelines: each phase with its time
  groups                   the resource groups, their state and owner
  resources [GROUP]        every resource (of GROUP), with state, pid, restarts, reason
  events [--since N] [--follow]
                           the event history (state changes and why); --follow keeps going

Changing (root, or a member of the cluster's admin_group):
  online GROUP|GROUP/RESOURCE    bring a group (or one resource and what it needs) online
  offline GROUP|GROUP/RESOURCE   take a group (or one resource and what needs it) offline
                           both wait until done or failed: --timeout DURATION (default 60s),
                           --no-wait to return at once
  apply FILE               send a new configuration to the daemon; it checks, saves and applies
                           it, and prints what changed (or every problem of the file)
  reload                   make the daemon re-read its configuration file (like SIGHUP)
  move GROUP [NODE]        move a group (to NODE, else the best other node)
  pause NODE | drain NODE | resume NODE
                           pause: keep its groups, take no new ones; drain: move them away
                           move and drain return once the coordinator accepted; --wait waits
                           until the groups are online on their new owner (or failed),
                           --timeout DURATION (default 60s)
  maintenance on|off       freeze (or resume) automatic placement decisions

Local (no daemon needed):
  validate FILE [--ocf-root DIR]
                           check a configuration file; prints FILE:LINE:COLUMN: message

Options:
  --bus PATH    the daemon's socket (default: $CLUSTERD_BUS, else /run/clusterd/bus)
  --json        JSON output for reading commands
  -h, --help    help; "clusterctl COMMAND --help" explains one command
  --version     print the version

Exit status: 0 ok; 1 failed, refused, invalid file or timed out; 2 usage error;
3 the daemon is unreachable; 4 permission denied.

Examples:
  clusterctl status
  clusterctl online web
  clusterctl offline web/app --timeout 2m
  clusterctl events --since 120 --follow
  clusterctl validate /etc/clusterd/cluster.yaml && clusterctl apply /etc/clusterd/cluster.yaml
)";

const std::map<std::string, std::string>& command_help() {
  static const std::map<std::string, std::string> help = {
      {"status", R"(clusterctl status [--watch] [--json]

Shows the cluster: its name, this node, the configuration file, every node, every group with
its state and owner, and every resource with its state, main pid, restart count and the reason
for its state. --watch prints it again whenever anything changes (Ctrl-C to stop).
--json prints {"cluster","node","config","nodes":[...],"groups":[...]}; with --watch one such
object per line.

Examples:
  clusterctl status
  clusterctl status --watch
  clusterctl status --json | jq '.groups[] | {name, state}'
)"},
      {"nodes", R"(clusterctl nodes [--json]

Lists the nodes of the configuration with their id and state ("up" for the node answering,
"unknown" for the others until membership exists).

Example:
  clusterctl nodes --json
)"},
      {"cluster", R"(clusterctl cluster [--json]

Shows this node's view of the cluster: term, role, coordinator, whether a quorum confirms this
node, the committed configuration version, each node's state and when it was last heard, and
the heartbeat and transport counters, including frames dropped as forged, foreign or replayed.

Example:
  clusterctl cluster --json
)"},
      {"timeline", R"(clusterctl timeline [GROUP] [--json]

Shows the recorded failovers and moves (of GROUP) with the time of each phase: decided,
detected, offline confirmed, online.

Example:
  clusterctl timeline ledger
)"},
      {"move", R"(clusterctl move GROUP [NODE] [--wait [--timeout DURATION]]

Asks the coordinator to move GROUP to NODE (or to the best other node): offline on its owner,
confirmed, then online on the new one. Returns once the coordinator accepted the move (exit 1
with the reason when it refused at once; a later refusal is recorded in the events). With
--wait, returns once GROUP is online on its new owner; exit 1 when the move is refused, the
group fails, or --timeout (default 60s) passes.

Examples:
  clusterctl move ledger node2
  clusterctl move ledger --wait --timeout 30s
)"},
      {"pause", R"(clusterctl pause NODE

Pauses NODE: it keeps its groups but takes no new ones.

Example:
  clusterctl pause node2
)"},
      {"drain", R"(clusterctl drain NODE [--wait [--timeout DURATION]]

Drains NODE: its groups move to other nodes and it takes no new ones. With --wait, returns
once every group that ran on NODE is online on another node; exit 1 when one fails or
--timeout (default 60s) passes (e.g. no other node may take it).

Examples:
  clusterctl drain node1
  clusterctl drain node1 --wait
)"},
      {"resume", R"(clusterctl resume NODE

Ends a pause or drain of NODE.

Example:
  clusterctl resume node1
)"},
      {"maintenance", R"(clusterctl maintenance on|off

Maintenance mode freezes automatic placement (no failover, failback or autostart); explicit
requests still act.

Example:
  clusterctl maintenance on
)"},
      {"groups", R"(clusterctl groups [--json]

Lists the resource groups: state (offline, online, partial-online, pending, failed), owner
and the reason of the last change.

Example:
  clusterctl groups
)"},
      {"resources", R"(clusterctl resources [GROUP] [--json]

Lists every resource (or those of GROUP): group, type, agent, state (offline, online-pending,
online, offline-pending, failed), main pid, restarts within the restart period, reason.

Examples:
  clusterctl resources
  clusterctl resources web --json
)"},
      {"events", R"(clusterctl events [--since N] [--follow] [--json]

Prints the recent events (state transitions with their reasons, configuration changes, daemon
start and stop), oldest first, each with its sequence number. --since N shows only events after
number N; --follow keeps printing new events until interrupted. --json prints an array of
{"seq","time","kind","node","group","resource","from","to","reason"}; with --follow one object
per line.

Examples:
  clusterctl events
  clusterctl events --since 42 --follow
)"},
      {"online", R"(clusterctl online GROUP|GROUP/RESOURCE [--timeout DURATION] [--no-wait]

Brings a group online (every resource, in dependency order), or one resource together with the
resources it depends on. Waits until the target is online (exit 0) or failed (exit 1), at most
--timeout (default 60s; e.g. 30s, 2m). --no-wait returns once the daemon accepted the request.
Needs root or membership of the cluster's admin_group (exit 4 otherwise).

Examples:
  clusterctl online web
  clusterctl online web/app --timeout 2m
)"},
      {"offline", R"(clusterctl offline GROUP|GROUP/RESOURCE [--timeout DURATION] [--no-wait]

Takes a group offline (every resource, in reverse dependency order), or one resource together
with the resources that depend on it. Waits until the target is offline (exit 0) or failed
(exit 1), at most --timeout (default 60s). --no-wait returns at once.
Needs root or membership of the cluster's admin_group (exit 4 otherwise).

Examples:
  clusterctl offline web
  clusterctl offline web/app --no-wait
)"},
      {"validate", R"(clusterctl validate FILE [--ocf-root DIR]

Checks a configuration file locally, without the daemon: YAML syntax, every key, every
reference, every resource type and OCF agent (found under --ocf-root, default /usr/lib/ocf).
Prints every problem as FILE:LINE:COLUMN: message and exits 1 if there is any, else 0.

Example:
  clusterctl validate ./cluster.yaml
)"},
      {"apply", R"(clusterctl apply FILE

Sends FILE to the daemon, which validates it like "validate", and if it is valid saves it as its
configuration file and applies it: new groups and resources appear offline, removed ones are
taken offline first, changed online resources restart with their new definition. Prints the
changes, or every problem of the file (exit 1). Needs root or the admin group (exit 4).

Example:
  clusterctl apply ./cluster.yaml
)"},
      {"reload", R"(clusterctl reload

Makes the daemon re-read its configuration file (the same as systemctl reload clusterd or
SIGHUP) and prints the changes; a bad file is rejected with its problems and the running
configuration stays (exit 1). Needs root or the admin group (exit 4).

Example:
  clusterctl reload
)"},
      {"help", R"(clusterctl help [COMMAND]

Prints the help of clusterctl or of COMMAND.
)"},
  };
  return help;
}

}  // namespace

std::string ctl_help(const std::string& command) {
  if (command.empty()) return kToolHelp;
  auto it = command_help().find(command);
  return it == command_help().end() ? "" : it->second;
}

}  // namespace clusterd
