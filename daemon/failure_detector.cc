#include "failure_detector.h"

#include <array>

namespace clusterd {
namespace {

constexpr std::array<const char*, kDetectorEventKindCount> kKindNames = {
    "link-up", "link-down", "node-reachable", "node-unreachable", "node-restarted"};

}  // namespace

const char* to_string(DetectorEventKind kind) { return kKindNames[static_cast<std::size_t>(kind)]; }

Result<void> DetectorTiming::validate() const {
  if (interval < Duration(5) || interval > Duration(10000))
    return fail("heartbeat interval {} ms is outside 5..10000 ms", interval.count());
  if (misses < 2 || misses > 1000)
    return fail("heartbeat misses {} is outside 2..1000", misses);
  return {};
}

FailureDetector::FailureDetector(std::uint8_t self, const std::vector<std::uint8_t>& peers,
                                 std::size_t networks, DetectorTiming timing)
    : self_(self), networks_(networks), timing_(timing), peers_(256) {
  for (std::uint8_t id : peers) {
    if (id == 0 || id == self) continue;
    peers_[id].member = true;
    peers_[id].links.resize(networks);
  }
}

bool FailureDetector::stale(const Peer& peer, const HeartbeatFrame& frame) const {
  if (peer.view && frame.incarnation < peer.view->incarnation) return true;
  // Once a peer said it is leaving, frames of that incarnation still in flight on other
  // networks must not bring it back.
  return peer.left_incarnation && *peer.left_incarnation == frame.incarnation &&
         !(frame.flags & kHeartbeatLeaving);
}

void FailureDetector::heard(const HeartbeatFrame& frame, std::size_t network, MonoTime at,
                            std::vector<DetectorEvent>& events) {
  if (network >= networks_) return;
  Peer& peer = peers_[frame.node_id];
  if (!peer.member || stale(peer, frame)) return;
  note_incarnation(peer, frame, at, events);
  if (frame.flags & kHeartbeatLeaving) {
    leave(peer, frame.node_id, at, events);
    return;
  }
  Link& link = peer.links[network];
  link.last = link.last ? std::max(*link.last, at) : at;
  if (!link.up) {
    link.up = true;
    events.push_back({DetectorEventKind::LinkUp, frame.node_id, network, at, {}, false});
  }
  if (!peer.reachable) {
    peer.reachable = true;
    events.push_back({DetectorEventKind::NodeReachable, frame.node_id, {}, at, {}, false});
  }
}

void FailureDetector::note_incarnation(Peer& peer, const HeartbeatFrame& frame, MonoTime at,
                                       std::vector<DetectorEvent>& events) {
  bool restarted = peer.view && frame.incarnation > peer.view->incarnation;
  if (restarted) {
    peer.left_incarnation.reset();
    events.push_back({DetectorEventKind::NodeRestarted, frame.node_id, {}, at, {}, false});
  }
  peer.view = PeerView{frame.incarnation, frame.sequence,      frame.term, frame.coordinator,
                       frame.config_version, frame.flags, frame.hears, at};
}

void FailureDetector::leave(Peer& peer, std::uint8_t node, MonoTime at,
                            std::vector<DetectorEvent>& events) {
  if (peer.left_incarnation == peer.view->incarnation) return;
  peer.left_incarnation = peer.view->incarnation;
  for (std::size_t n = 0; n < networks_; ++n) {
    Link& link = peer.links[n];
    if (!link.up) continue;
    link.up = false;
    events.push_back({DetectorEventKind::LinkDown, node, n, at, link.last, false});
  }
  mark_unreachable_if_silent(peer, node, at, true, events);
}

void FailureDetector::expire(MonoTime now, std::vector<DetectorEvent>& events) {
  for (std::size_t id = 1; id < peers_.size(); ++id) {
    Peer& peer = peers_[id];
    if (!peer.member) continue;
    auto node = static_cast<std::uint8_t>(id);
    for (std::size_t n = 0; n < networks_; ++n) {
      Link& link = peer.links[n];
      // Heard "within" the timeout means strictly less than it ago.
      if (!link.up || *link.last + timing_.timeout() > now) continue;
      link.up = false;
      events.push_back({DetectorEventKind::LinkDown, node, n, now, link.last, false});
    }
    mark_unreachable_if_silent(peer, node, now, false, events);
  }
}

void FailureDetector::mark_unreachable_if_silent(Peer& peer, std::uint8_t node, MonoTime at,
                                                 bool leaving,
                                                 std::vector<DetectorEvent>& events) {
  if (!peer.reachable) return;
  std::optional<MonoTime> last;
  for (const Link& link : peer.links) {
    if (link.up) return;
    if (link.last && (!last || *link.last > *last)) last = link.last;
  }
  peer.reachable = false;
  events.push_back({DetectorEventKind::NodeUnreachable, node, {}, at, last, leaving});
}

std::optional<MonoTime> FailureDetector::next_deadline() const {
  std::optional<MonoTime> next;
  for (const Peer& peer : peers_)
    for (const Link& link : peer.links)
      if (link.up && (!next || *link.last + timing_.timeout() < *next))
        next = *link.last + timing_.timeout();
  return next;
}

NodeSet FailureDetector::reachable() const {
  NodeSet set;
  set.set(self_);
  for (std::size_t id = 1; id < peers_.size(); ++id)
    if (peers_[id].reachable) set.set(id);
  return set;
}

bool FailureDetector::reachable(std::uint8_t node) const {
  return node == self_ || peers_[node].reachable;
}

bool FailureDetector::link_up(std::uint8_t node, std::size_t network) const {
  const Peer& peer = peers_[node];
  return peer.member && network < networks_ && peer.links[network].up;
}

std::optional<MonoTime> FailureDetector::last_heard(std::uint8_t node,
                                                    std::size_t network) const {
  const Peer& peer = peers_[node];
  if (!peer.member || network >= networks_) return std::nullopt;
  return peer.links[network].last;
}

const PeerView* FailureDetector::view(std::uint8_t node) const {
  return peers_[node].view ? &*peers_[node].view : nullptr;
}

}  // namespace clusterd
