#include "bus_wire.h"

#include <cerrno>

namespace clusterd {
namespace {

/// Reads one "s" into `out`.
int read_string(sd_bus_message* m, std::string* out) {
  const char* s = nullptr;
  int r = sd_bus_message_read_basic(m, 's', &s);
  if (r < 0) return r;
  if (r == 0) return -ENXIO;
  *out = s;
  return 0;
}

/// Reads several "s" in a row.
int read_strings(sd_bus_message* m, std::initializer_list<std::string*> outs) {
  for (auto* out : outs) {
    if (int r = read_string(m, out); r < 0) return r;
  }
  return 0;
}

/// Appends an array of `items` with element signature `sig`, each by `append_one`.
template <typename T, typename F>
int append_array(sd_bus_message* m, const char* sig, const std::vector<T>& items, F append_one) {
  int r = sd_bus_message_open_container(m, 'a', sig);
  for (const auto& item : items) {
    if (r < 0) return r;
    r = append_one(m, item);
  }
  if (r < 0) return r;
  return sd_bus_message_close_container(m);
}

/// Reads an array with element signature `sig`, each element by `read_one`.
template <typename T, typename F>
int read_array(sd_bus_message* m, const char* sig, std::vector<T>* items, F read_one) {
  int r = sd_bus_message_enter_container(m, 'a', sig);
  if (r <= 0) return r < 0 ? r : -ENXIO;
  items->clear();
  while ((r = sd_bus_message_at_end(m, false)) == 0) {
    T item;
    if ((r = read_one(m, &item)) < 0) return r;
    items->push_back(std::move(item));
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int append_node(sd_bus_message* m, const NodeView& n) {
  return sd_bus_message_append(m, CLUSTERD_SIG_NODE, n.name.c_str(), n.id, n.state.c_str());
}

int read_node(sd_bus_message* m, NodeView* n) {
  int r = sd_bus_message_enter_container(m, 'r', "sus");
  if (r <= 0) return r < 0 ? r : -ENXIO;
  if ((r = read_string(m, &n->name)) < 0) return r;
  if ((r = sd_bus_message_read(m, "u", &n->id)) < 0) return r;
  if ((r = read_string(m, &n->state)) < 0) return r;
  return sd_bus_message_exit_container(m);
}

int append_resource(sd_bus_message* m, const ResourceView& x) {
  return sd_bus_message_append(m, CLUSTERD_SIG_RESOURCE, x.name.c_str(), x.type.c_str(),
                               x.agent.c_str(), x.state.c_str(), x.reason.c_str(), x.restarts,
                               x.pid, static_cast<uint64_t>(x.since_wall_usec),
                               x.last_looks_alive.c_str(), x.last_is_alive.c_str(),
                               x.last_failure.c_str());
}

int read_resource(sd_bus_message* m, ResourceView* x) {
  int r = sd_bus_message_enter_container(m, 'r', "sssssuutsss");
  if (r <= 0) return r < 0 ? r : -ENXIO;
  if ((r = read_strings(m, {&x->name, &x->type, &x->agent, &x->state, &x->reason})) < 0) return r;
  uint64_t since = 0;
  if ((r = sd_bus_message_read(m, "uut", &x->restarts, &x->pid, &since)) < 0) return r;
  x->since_wall_usec = since;
  if ((r = read_strings(m, {&x->last_looks_alive, &x->last_is_alive, &x->last_failure})) < 0) return r;
  return sd_bus_message_exit_container(m);
}

int append_group(sd_bus_message* m, const GroupView& g) {
  int r = sd_bus_message_open_container(m, 'r', "ssssa" CLUSTERD_SIG_RESOURCE);
  if (r < 0) return r;
  r = sd_bus_message_append(m, "ssss", g.name.c_str(), g.state.c_str(), g.owner.c_str(),
                            g.reason.c_str());
  if (r < 0) return r;
  r = append_array(m, CLUSTERD_SIG_RESOURCE, g.resources, append_resource);
  if (r < 0) return r;
  return sd_bus_message_close_container(m);
}

int read_group(sd_bus_message* m, GroupView* g) {
  int r = sd_bus_message_enter_container(m, 'r', "ssssa" CLUSTERD_SIG_RESOURCE);
  if (r <= 0) return r < 0 ? r : -ENXIO;
  if ((r = read_strings(m, {&g->name, &g->state, &g->owner, &g->reason})) < 0) return r;
  if ((r = read_array(m, CLUSTERD_SIG_RESOURCE, &g->resources, read_resource)) < 0) return r;
  return sd_bus_message_exit_container(m);
}

int append_event(sd_bus_message* m, const Event& e) {
  return sd_bus_message_append(m, CLUSTERD_SIG_EVENT, static_cast<uint64_t>(e.seq),
                               static_cast<uint64_t>(e.wall_usec), e.kind.c_str(), e.node.c_str(),
                               e.group.c_str(), e.resource.c_str(), e.from.c_str(), e.to.c_str(),
                               e.reason.c_str());
}

int read_event(sd_bus_message* m, Event* e) {
  int r = sd_bus_message_enter_container(m, 'r', "ttsssssss");
  if (r <= 0) return r < 0 ? r : -ENXIO;
  uint64_t seq = 0, wall = 0;
  if ((r = sd_bus_message_read(m, "tt", &seq, &wall)) < 0) return r;
  e->seq = seq;
  e->wall_usec = wall;
  r = read_strings(m, {&e->kind, &e->node, &e->group, &e->resource, &e->from, &e->to, &e->reason});
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int append_diagnostic(sd_bus_message* m, const Diagnostic& d) {
  return sd_bus_message_append(m, CLUSTERD_SIG_DIAGNOSTIC, d.file.c_str(),
                               static_cast<uint32_t>(d.pos.line),
                               static_cast<uint32_t>(d.pos.column), d.message.c_str());
}

int read_diagnostic(sd_bus_message* m, Diagnostic* d) {
  int r = sd_bus_message_enter_container(m, 'r', "suus");
  if (r <= 0) return r < 0 ? r : -ENXIO;
  uint32_t line = 0, column = 0;
  if ((r = read_string(m, &d->file)) < 0) return r;
  if ((r = sd_bus_message_read(m, "uu", &line, &column)) < 0) return r;
  if ((r = read_string(m, &d->message)) < 0) return r;
  d->pos = {static_cast<int>(line), static_cast<int>(column)};
  return sd_bus_message_exit_container(m);
}

int append_string(sd_bus_message* m, const std::string& s) {
  return sd_bus_message_append_basic(m, 's', s.c_str());
}

}  // namespace

int bus_append(sd_bus_message* m, const std::vector<NodeView>& nodes) {
  return append_array(m, CLUSTERD_SIG_NODE, nodes, append_node);
}

int bus_append(sd_bus_message* m, const GroupView& group) { return append_group(m, group); }

int bus_append(sd_bus_message* m, const std::vector<GroupView>& groups) {
  return append_array(m, CLUSTERD_SIG_GROUP, groups, append_group);
}

int bus_append(sd_bus_message* m, const StatusView& s) {
  int r = sd_bus_message_append(m, "sss", s.cluster.c_str(), s.node.c_str(), s.config.c_str());
  if (r < 0) return r;
  if ((r = bus_append(m, s.nodes)) < 0) return r;
  return bus_append(m, s.groups);
}

int bus_append(sd_bus_message* m, const std::vector<Event>& events) {
  return append_array(m, CLUSTERD_SIG_EVENT, events, append_event);
}

int bus_append(sd_bus_message* m, const ApplyResult& result) {
  int r = sd_bus_message_append(m, "b", static_cast<int>(result.applied));
  if (r < 0) return r;
  if ((r = append_array(m, CLUSTERD_SIG_DIAGNOSTIC, result.diagnostics, append_diagnostic)) < 0)
    return r;
  return append_array(m, "s", result.changes, append_string);
}

int bus_read(sd_bus_message* m, std::vector<NodeView>* nodes) {
  return read_array(m, CLUSTERD_SIG_NODE, nodes, read_node);
}

int bus_read(sd_bus_message* m, GroupView* group) { return read_group(m, group); }

int bus_read(sd_bus_message* m, std::vector<GroupView>* groups) {
  return read_array(m, CLUSTERD_SIG_GROUP, groups, read_group);
}

int bus_read(sd_bus_message* m, StatusView* s) {
  int r = read_strings(m, {&s->cluster, &s->node, &s->config});
  if (r < 0) return r;
  if ((r = bus_read(m, &s->nodes)) < 0) return r;
  return bus_read(m, &s->groups);
}

int bus_read(sd_bus_message* m, std::vector<Event>* events) {
  return read_array(m, CLUSTERD_SIG_EVENT, events, read_event);
}

int bus_read(sd_bus_message* m, ApplyResult* result) {
  int applied = 0;
  int r = sd_bus_message_read(m, "b", &applied);
  if (r < 0) return r;
  result->applied = applied != 0;
  if ((r = read_array(m, CLUSTERD_SIG_DIAGNOSTIC, &result->diagnostics, read_diagnostic)) < 0)
    return r;
  return read_array(m, "s", &result->changes, read_string);
}

}  // namespace clusterd
