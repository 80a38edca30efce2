#include "event_history.h"

namespace clusterd {

const Event& EventHistory::add(Event event) {
  event.seq = next_seq_++;
  if (event.wall_usec == 0) event.wall_usec = wall_now_usec();
  if (event.mono.usec == 0) event.mono = mono_now();
  events_.push_back(std::move(event));
  while (events_.size() > capacity_) events_.pop_front();
  if (listener_) listener_(events_.back());
  return events_.back();
}

std::vector<Event> EventHistory::since(std::uint64_t after, std::size_t limit) const {
  std::vector<Event> out;
  for (const auto& e : events_) {
    if (e.seq > after) out.push_back(e);
  }
  if (limit > 0 && out.size() > limit) out.erase(out.begin(), out.end() - static_cast<long>(limit));
  return out;
}

}  // namespace clusterd
