//! Real partitions: three `fedns serve` processes, each in its own network namespace,
//! voting through two imitation API servers, with paths cut by nftables rules inside the
//! replicas' namespaces (`fedns_testkit::fleet_lab`). These need root, iproute2 and
//! nftables (`.ci/run` installs them and runs as root); without them they fail and say so.

use std::time::{Duration, Instant};

use fedns_testkit::fleet_lab::{APP, EU_LB, FleetLab, LB_PORT, NEW_YORK, Options, US_LB};
use fedns_testkit::sys::run;
use fedns_testkit::wait::until;

const BIN: &str = env!("CARGO_BIN_EXE_fedns");
const PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn lab() -> FleetLab {
    FleetLab::start(BIN.as_ref(), &Options::fast()).unwrap_or_else(|e| panic!("{e}"))
}

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The fleet at rest: every replica answers New York with us-east, counts the others
/// fresh, and has every vote up.
fn settled(lab: &FleetLab) {
    ok(lab.until_settled(US_LB, PATIENCE));
}

/// The down targets of replica `name`'s view, as its Lease in us-east says.
fn published_down(lab: &FleetLab, name: &str) -> String {
    lab.lease(0, name)
        .and_then(|l| {
            l["metadata"]["annotations"]["fleet.fedns.io/down"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn until_published_down(lab: &FleetLab, name: &str, want: &str) {
    until(PATIENCE, || match published_down(lab, name) {
        d if d == want => Ok(()),
        d => Err(format!("{name}'s Lease says down {d:?}, want {want:?}")),
    });
}

/// Every running replica answers `want`, `polls` times `POLL` apart.
fn holds(lab: &FleetLab, want: std::net::Ipv4Addr, polls: usize, why: &str) {
    for _ in 0..polls {
        for i in lab.running() {
            let got = lab.answer(i, Duration::from_secs(2));
            assert_eq!(
                got,
                Ok(vec![want]),
                "{why}: {} answered {got:?}; /debug/fleet: {}",
                lab.replicas[i].name,
                lab.admin_get(i, "/debug/fleet").1
            );
        }
        std::thread::sleep(POLL);
    }
}

fn us_key() -> String {
    format!("tcp:{US_LB}:{LB_PORT}")
}

#[test]
fn one_cut_path_is_outvoted_and_a_real_outage_moves_every_replica() {
    let mut lab = lab();
    settled(&lab);
    // Three configs that differ only in each replica's own name: one digest.
    for i in lab.running() {
        let (_, body) = lab.admin_get(i, "/debug/fleet");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        for r in v["replicas"].as_array().into_iter().flatten() {
            assert!(
                r["same_config"] == true && r["same_geoip"] == true,
                "{}: {body}",
                lab.replicas[i].name
            );
            // Each region from its replica's FEDNS_REGION.
            let other = lab.replicas.iter().find(|o| r["name"] == o.name.as_str());
            assert_eq!(r["region"], other.unwrap().region.as_str(), "{body}");
        }
    }
    // r1's path to us-east's load balancer breaks: its probes time out and its Lease says
    // so, but r2 and r3 still reach it. Outvoted two to one, no replica moves a client,
    // r1 included.
    ok(lab.cut_lb(0, 0));
    until_published_down(&lab, "r1", &us_key());
    holds(&lab, US_LB, 40, "one vantage point's broken path");
    // r1's explain shows the votes that keep us-east in.
    let (_, text) = lab.admin_get(0, &format!("/debug/explain?name={APP}&client={NEW_YORK}"));
    let votes = format!(
        "probe {}: up r2 r3; down r1 -> Healthy by quorum majority",
        us_key()
    );
    assert!(text.contains(&votes), "want `{votes}` in:\n{text}");
    // The load balancer really dies: every replica sees it, and every one moves.
    lab.lb_down(0);
    ok(lab.until_all_answer(EU_LB, POLL, PATIENCE));
    // It comes back and r1's path heals: all return.
    ok(lab.lb_up(0));
    ok(lab.heal(0));
    ok(lab.until_all_answer(US_LB, POLL, PATIENCE));
}

#[test]
fn a_killed_replica_stops_voting_when_its_lease_expires_a_stopped_one_at_once() {
    let mut lab = lab();
    settled(&lab);
    // r1 and r2 cannot reach us-east's load balancer; r3 can. Two of three say down: every
    // replica, r3 too, answers eu-west.
    ok(lab.cut_lb(0, 0));
    ok(lab.cut_lb(1, 0));
    ok(lab.until_all_answer(EU_LB, POLL, PATIENCE));
    // r1 dies without a word. Its Lease stays, but once it is older than its duration its
    // vote no longer counts: one down (r2) of two is no majority, and us-east is back.
    let killed = Instant::now();
    lab.kill(0);
    let lease = lab.lease(0, "r1").expect("r1's Lease stays after SIGKILL");
    ok(lab.until_all_answer(US_LB, POLL, PATIENCE));
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "r1's vote was dropped {:?} after the kill, before its 4 s Lease could expire \
         (renewed every 1 s): {lease}",
        killed.elapsed()
    );
    for i in [1, 2] {
        let fresh = lab.fresh_peers(i);
        assert!(
            !fresh.contains(&"r1".to_owned()),
            "{} still counts r1: {fresh:?}",
            lab.replicas[i].name
        );
    }
    // r2 stops as it should (SIGTERM): it deletes its Leases, so its vote ends at once.
    lab.terminate(1);
    for c in 0..lab.clusters.len() {
        assert_eq!(lab.lease(c, "r2"), None, "r2 stopped but its Lease stays");
    }
    until(PATIENCE, || {
        let (_, body) = lab.admin_get(2, "/debug/fleet");
        if body.contains("\"r2\"") {
            Err(format!("r3 still knows r2: {body}"))
        } else {
            Ok(())
        }
    });
}

#[test]
fn a_replica_cut_from_every_api_server_keeps_answering_and_rejoins() {
    let mut lab = lab();
    settled(&lab);
    let renewed = |lab: &FleetLab| lab.lease(1, "r1").map(|l| l["spec"]["renewTime"].clone());
    // r1 loses every API server (its watches and writes hang); its load balancer paths are
    // fine. It keeps answering from its own view plus the last-known votes, then, once
    // those Leases are older than their duration, from its own view alone.
    ok(lab.cut_apis(0));
    holds(&lab, US_LB, 120, "r1 cut from the API servers");
    let fresh = lab.fresh_peers(0);
    assert!(
        fresh.is_empty(),
        "after 6 s without an API server, r1 should count only its own view, not {fresh:?}"
    );
    // Deciding alone shows in its metrics (and its log).
    let (_, metrics) = lab.admin_get(0, "/metrics");
    assert!(
        metrics.contains("fedns_fleet_replicas{state=\"fresh\"} 0"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(&lab.replicas[0].log).unwrap_or_default();
    assert!(
        log.contains("no other replica's view is fresh; deciding alone"),
        "{log}"
    );
    for i in [1, 2] {
        assert!(
            !lab.fresh_peers(i).contains(&"r1".to_owned()),
            "{} still counts r1, whose Lease it cannot renew",
            lab.replicas[i].name
        );
    }
    // While r1 decides alone, a real outage still moves it (and the others).
    lab.lb_down(0);
    ok(lab.until_all_answer(EU_LB, POLL, PATIENCE));
    ok(lab.lb_up(0));
    ok(lab.until_all_answer(US_LB, POLL, PATIENCE));
    // The path to the API servers heals: r1 renews its Lease and counts the others again.
    let before = renewed(&lab);
    ok(lab.heal(0));
    settled(&lab);
    until(PATIENCE, || {
        let now = renewed(&lab);
        if now != before {
            Ok(())
        } else {
            Err(format!("r1's Lease in eu-west stayed {now:?}"))
        }
    });
}

#[test]
fn a_drain_reaches_every_replica_and_expires() {
    let mut lab = lab();
    settled(&lab);
    // Drained for the whole fleet from the hub, by the CLI with a replica's config.
    let drain = |cluster: &str, for_: &str| {
        run(lab
            .net
            .hub()
            .command(BIN)
            .args(["drain", "--config"])
            .arg(&lab.replicas[0].config)
            .args([cluster, "--for", for_, "--reason", "partition test"]));
    };
    // Long enough for the steps below on a slow machine (it ends on a whole second).
    drain("us-east", "20s");
    ok(lab.until_all_answer(EU_LB, POLL, PATIENCE));
    // eu-west's load balancer dies: the drained us-east is the last healthy cluster, so
    // the drain is held and every replica answers us-east.
    lab.lb_down(1);
    ok(lab.until_all_answer(US_LB, POLL, PATIENCE));
    for i in lab.running() {
        let (_, records) = lab.admin_get(i, "/debug/records");
        let v: serde_json::Value = serde_json::from_str(&records).unwrap_or_default();
        let held = v["names"].as_array().into_iter().flatten();
        assert!(
            held.filter(|n| n["drains_held"] == true).count() == 1,
            "{} does not say the drain is held: {records}\nanswer now {:?}\n/debug/fleet {}",
            lab.replicas[i].name,
            lab.answer(i, Duration::from_secs(1)),
            lab.admin_get(i, "/debug/fleet").1
        );
    }
    // eu-west is back: the drain applies again.
    ok(lab.lb_up(1));
    ok(lab.until_all_answer(EU_LB, POLL, PATIENCE));
    // The drain expires, with nobody writing: us-east is back everywhere.
    ok(lab.until_all_answer(US_LB, POLL, PATIENCE));
}
