#!/usr/bin/python3
"""Detection time distribution: from the fault (the owner's switch ports cut, then every process
of it SIGKILLed, at a random moment) to the new view installed, i.e. the membership event "node
X is unreachable" recorded by each survivor (`clusterctl events --json`; wall clock, ms). The
time printed per run is the slowest survivor's (the view is installed on every survivor), with
the coordinator's failure-detector time (the timeline's `detected` phase, wall clock µs) and the
first survivor beside it.

Settings: `default` (100 ms x 5, the ledger group) and `aggressive` (10 ms x --misses, the
ip-only group); one 3-node lab per setting, the killed node started again after each run and
the cluster whole again before the next kill."""
import argparse

import labbench as lb


SETTINGS = {
    "default": ("ledger", "ledger", []),
    "aggressive": ("ip-only", "vip", ["--heartbeat-interval", lb.AGGRESSIVE_INTERVAL]),
}


def whole_again(lab, group):
    """Every node up and quorate in every node's view, the group online somewhere."""
    for n in lab.nodes:
        c = lab.cluster(n)
        if not c or not c["quorate"] or any(x["state"] != "up" for x in c["nodes"]):
            return False
    return lb.online_on(lab, lab.nodes, group)


def run_setting(setting, args):
    kind, group, extra = SETTINGS[setting]
    if setting == "aggressive":
        extra = extra + ["--heartbeat-misses", str(args.misses)]
    lab = lb.make_lab(args.name, args.nodes, "--group", kind, *extra)
    slowest, fastest, detected = [], [], []
    try:
        for i in range(args.runs):
            owner = lb.harness.wait_for(lambda: whole_again(lab, group), timeout=30,
                                        what="the cluster whole with the group online")
            lb.random_pause()
            _, fault_wall = lb.crash(lab, owner)
            survivors = [n for n in lab.nodes if n != owner]
            views = lb.view_installed(lab, survivors, owner, fault_wall)
            slowest.append(max(views.values()) * 1000)
            fastest.append(min(views.values()) * 1000)
            new_owner = lb.harness.wait_for(
                lambda: lb.online_on(lab, survivors, group) in survivors and
                lb.online_on(lab, survivors, group), timeout=20, what="failover")
            timeline = (lab.json(new_owner, "timeline", group) or [{}])[-1]
            det = next((p["at_usec"] / 1e6 - fault_wall for p in timeline.get("phases", [])
                        if p["phase"] == "detected"), None)
            if det is not None:
                detected.append(det * 1000)
            det_text = f"{det * 1000:.0f} ms" if det is not None else "none"
            print(f"  {setting} run {i + 1}: {owner} killed; view installed on every survivor "
                  f"after {slowest[-1]:.0f} ms (first {fastest[-1]:.0f} ms); coordinator's "
                  f"detected {det_text}", flush=True)
            lab.run("start-node", owner)
    finally:
        lab.down()
    lb.distribution(f"{setting}: fault -> view installed on every survivor", slowest)
    lb.distribution(f"{setting}: fault -> view installed on the first survivor", fastest)
    if detected:
        lb.distribution(f"{setting}: fault -> coordinator's detected phase", detected)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="kills per setting (default 10)")
    ap.add_argument("--settings", choices=("default", "aggressive", "both"), default="both")
    ap.add_argument("--misses", type=int, default=lb.AGGRESSIVE_MISSES,
                    help=f"misses at aggressive settings (default {lb.AGGRESSIVE_MISSES})")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--name", default="i4b", help="lab name (default i4b)")
    args = ap.parse_args()
    for setting in ("default", "aggressive"):
        if args.settings in (setting, "both"):
            run_setting(setting, args)


if __name__ == "__main__":
    main()
