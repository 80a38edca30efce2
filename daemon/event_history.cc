#include "event_history.h"

namespace clusterd {

const Event& EventHistory::add(Event event) {
  event.seq = next_seq_++;
  if (event.wall_usec == 0) event.wall_usec = wall_now_usec();
  if (event.mono.usec == 0) event.mono = mono_now();
  events_.push_back(store(event));
  while (events_.size() > capacity_) drop_oldest();
  last_ = std::move(event);
  if (listener_) listener_(last_);
  return last_;
}

std::vector<Event> EventHistory::since(std::uint64_t after, std::size_t limit) const {
  std::vector<Event> out;
  for (const auto& e : events_) {
    if (e.seq > after) out.push_back(expand(e));
  }
  if (limit > 0 && out.size() > limit) out.erase(out.begin(), out.end() - static_cast<long>(limit));
  return out;
}

EventHistory::Texts::iterator EventHistory::keep(const std::string& text) {
  auto [it, added] = texts_.try_emplace(text, 0);
  ++it->second;
  return it;
}

void EventHistory::release(Texts::iterator text) {
  if (--text->second == 0) texts_.erase(text);
}

EventHistory::Stored EventHistory::store(const Event& event) {
  return Stored{event.seq,
                event.wall_usec,
                event.mono,
                keep(event.kind),
                keep(event.node),
                keep(event.group),
                keep(event.resource),
                keep(event.from),
                keep(event.to),
                keep(event.reason)};
}

void EventHistory::drop_oldest() {
  const Stored& e = events_.front();
  for (auto text : {e.kind, e.node, e.group, e.resource, e.from, e.to, e.reason}) release(text);
  events_.pop_front();
}

Event EventHistory::expand(const Stored& e) {
  Event out;
  out.seq = e.seq;
  out.wall_usec = e.wall_usec;
  out.mono = e.mono;
  out.kind = e.kind->first;
  out.node = e.node->first;
  out.group = e.group->first;
  out.resource = e.resource->first;
  out.from = e.from->first;
  out.to = e.to->first;
  out.reason = e.reason->first;
  return out;
}

}  // namespace clusterd
