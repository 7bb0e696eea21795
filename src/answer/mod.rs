//! The answer function: (snapshot, question, client) -> answer. Synchronous and pure but for
//! the round-robin counter and the weighted draw, so that tests, benches and `explain` all
//! aim at the same code the server runs.
//!
//! Architecture invariant: no I/O, no locks, no awaits, and nothing a client sends can make
//! it panic; every failure is an RCODE.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use ipnet::IpNet;

use crate::config::{AllUnhealthy, GeoKey, PolicyKind};
use crate::dnssec::Denial;
use crate::dnssec::online::NXNAME;
use crate::health::Health;
use crate::snapshot::scope::ScopeMap;
use crate::snapshot::{ClusterId, FedName, Located, LocationSource, Member, Snapshot};

mod policy;
mod rank;
pub mod scope;

pub use policy::{Spill, network_share};

/// How many CNAMEs inside the zone an answer follows before it stops (loops are config
/// mistakes, but must not hang or grow a reply without bound).
const MAX_CHAIN: usize = 8;

/// What was asked.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    /// As the client wrote it; its case is kept in the answer's owner names.
    pub name: &'a Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

/// Who asked: the packet's source and, when present and enabled, the EDNS Client Subnet.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub source: IpAddr,
    /// The validated ECS source network (prefix length > 0).
    pub ecs: Option<IpNet>,
}

impl Client {
    /// The address that locates the client: ECS first, else the source.
    pub fn locating_address(&self) -> IpAddr {
        self.ecs.map_or(self.source, |n| n.addr())
    }
}

/// The reply, before it is encoded.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    /// ECS scope prefix length: how much of the client's address the answer depends on.
    pub scope: u8,
    /// The geo decisions taken, in chain order; filled only when tracing (explain).
    pub decisions: Vec<Decision>,
    /// Only drained clusters were healthy for a name, so the drains were set aside.
    pub drains_held: bool,
    /// What the first geo decision did, for metrics, the query log and dnstap.
    pub first_cluster: Option<ClusterId>,
    pub first_policy: Option<PolicyKind>,
    pub located_by: Option<LocationSource>,
    pub fail_open: bool,
    /// The answer depends on where the client is (the ECS scope is then the deciding
    /// network's prefix); when false, every client gets this answer.
    pub client_dependent: bool,
    /// The answer was drawn (`weighted`) or rotated (`all`): the next one may differ, so it
    /// must not be cached.
    pub varies: bool,
    /// Capacity spillover was weighed: the answer depends on the client's network (its
    /// hash), not only on the place that network is in, so caches key it by network.
    pub per_network: bool,
    /// What steered the answer, for metrics: a per-geography failover order, a client
    /// sent on by capacity spillover.
    pub steered: Steered,
    /// For each decision that depended on where the client is, its scope map (None: the
    /// locating network's prefix is the scope): what a cached copy of this answer needs
    /// to give another client of the same place its own scope.
    pub scope_maps: Vec<Option<Arc<ScopeMap>>>,
    /// The ECS scope is wider than the network that placed the client (for metrics).
    pub widened: bool,
    /// What a negative answer (or a delegation without DS) denies, for the NSEC of a
    /// signed reply.
    pub denial: Option<Denial>,
}

/// Steering rules that decided an answer (counted per answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Steered {
    pub geo_order: bool,
    pub spilled: bool,
}

/// One cluster considered for a federated name.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub cluster: ClusterId,
    pub healthy: bool,
    /// Drained by an operator (out of the answer unless the drains are held).
    pub drained: bool,
    pub distance_km: Option<f64>,
    /// The distance that ranked it: `distance_km` scaled by the cluster's bias.
    pub biased_km: Option<f64>,
    /// The bias its distance ranks by for this name.
    pub bias: i8,
    /// Ready endpoints, where Kubernetes counts them.
    pub ready_endpoints: Option<u32>,
    /// Its load-balancer addresses and their health.
    pub addresses: Vec<(IpAddr, Health)>,
}

/// How a federated name was answered.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// The federated name (`ns/name` or host) and the level asked (global, region, zone).
    pub name: String,
    pub level: String,
    pub policy: PolicyKind,
    pub located: Option<Located>,
    /// Every cluster that has the name at this level, best first.
    pub candidates: Vec<Candidate>,
    pub chosen: Vec<ClusterId>,
    /// No candidate was healthy and the answer treats them all as healthy.
    pub fail_open: bool,
    /// The per-geography failover order that applied.
    pub geo_order: Option<GeoKey>,
    /// Capacity spillover, when it was weighed, and this client's network's share.
    pub spill: Option<(Spill, f64)>,
    /// The widest block around the client with this answer, and whether a scope map
    /// told it (else it is the network that placed the client).
    pub widest: Option<(IpNet, bool)>,
}

/// Which clusters of a federated name a name asks for.
#[derive(Clone, Copy, Debug)]
enum Level<'s> {
    Global,
    Region(&'s [u8], &'s [ClusterId]),
    Zone(&'s [u8], &'s [u8], &'s [ClusterId]),
}

/// Answers one question. `trace` fills `Answer::decisions` for `explain`.
pub fn answer(snap: &Snapshot, q: &Question<'_>, client: &Client, trace: bool) -> Answer {
    answer_with(snap, q, client, None, trace)
}

/// Answers one question for a client placed at `located` rather than by its address: what
/// the status page asks for a whole country. The ECS scope then means nothing.
pub fn answer_placed(snap: &Snapshot, q: &Question<'_>, located: &Located, trace: bool) -> Answer {
    let client = Client {
        source: IpAddr::from([0, 0, 0, 0]),
        ecs: None,
    };
    answer_with(snap, q, &client, Some(located), trace)
}

fn answer_with(
    snap: &Snapshot,
    q: &Question<'_>,
    client: &Client,
    placed: Option<&Located>,
    trace: bool,
) -> Answer {
    let mut ans = Answer {
        authoritative: true,
        ..Answer::default()
    };
    if q.qclass != DNSClass::IN && q.qclass != DNSClass::ANY {
        ans.rcode = ResponseCode::Refused;
        ans.authoritative = false;
        return ans;
    }
    if u16::from(q.qtype) == NXNAME {
        // A meta-type that exists only in compact denial's NSEC (RFC 9824 section 3.5).
        ans.rcode = ResponseCode::FormErr;
        return ans;
    }
    let lower = LowerName::new(q.name);
    if !snap.apex_lower.zone_of(&lower) {
        // Not an open resolver: names outside the zone are refused.
        ans.rcode = ResponseCode::Refused;
        ans.authoritative = false;
        return ans;
    }
    let mut ctx = Resolution {
        snap,
        client,
        qtype: q.qtype,
        trace,
        ans,
        placing: None,
        placed,
    };
    let mut owner = q.name.clone();
    owner.set_fqdn(true);
    ctx.resolve(owner, lower, 0);
    ctx.ans.widened = ctx.placing.is_some_and(|p| ctx.ans.scope < p);
    ctx.ans
}

struct Resolution<'a> {
    snap: &'a Snapshot,
    client: &'a Client,
    qtype: RecordType,
    trace: bool,
    ans: Answer,
    /// The scope the placing network alone would give, once a decision depended on
    /// where the client is.
    placing: Option<u8>,
    /// Where the client is, when the caller placed it (see `answer_placed`).
    placed: Option<&'a Located>,
}

impl Resolution<'_> {
    /// Answers for `owner` (emitted as given) and follows CNAMEs inside the zone.
    fn resolve(&mut self, owner: Name, lower: LowerName, depth: usize) {
        let snap = self.snap;
        if depth > MAX_CHAIN {
            self.ans.rcode = ResponseCode::ServFail;
            return;
        }
        if self.referral(&lower) {
            return;
        }
        if let Some(records) = snap.statics.get(&lower) {
            self.static_records(owner, records, depth);
            return;
        }
        if let Some((fed, level)) = federated(snap, &lower) {
            self.geo(owner, fed, level, depth);
            return;
        }
        if let Some(fed) = snap.hosts.get(&lower) {
            self.geo(owner, fed, Level::Global, depth);
            return;
        }
        if snap.is_empty_non_terminal(&lower) {
            self.negative(ResponseCode::NoError, owner, Vec::new());
        } else {
            self.negative(ResponseCode::NXDomain, owner, Vec::new());
        }
    }

    /// A name at or below a delegation (NS records below the apex) gets a referral.
    fn referral(&mut self, lower: &LowerName) -> bool {
        let snap = self.snap;
        if !snap.has_delegations {
            return false;
        }
        let mut cut: Option<Name> = None;
        let mut n = Name::from(lower);
        while n.num_labels() > snap.apex.num_labels() {
            let l = LowerName::new(&n);
            if snap
                .statics
                .get(&l)
                .is_some_and(|rs| rs.iter().any(|r| r.record_type() == RecordType::NS))
            {
                cut = Some(n.clone());
            }
            n = n.base_name();
        }
        let Some(cut) = cut else {
            return false;
        };
        // DS belongs to the parent side of a cut: answered here, not referred.
        if self.qtype == RecordType::DS && LowerName::new(&cut) == *lower {
            return false;
        }
        let ns: Vec<Record> = snap.statics[&LowerName::new(&cut)]
            .iter()
            .filter(|r| r.record_type() == RecordType::NS)
            .cloned()
            .collect();
        self.ans.authoritative = false;
        self.glue(&ns);
        self.ans.authority.extend(ns);
        // No DS at the cut: a signed reply proves it (the delegation is insecure).
        self.ans.denial = Some(Denial {
            owner: cut,
            types: vec![RecordType::NS],
            nxname: false,
        });
        true
    }

    /// A and AAAA records inside the zone for the NS targets in `ns`.
    fn glue(&mut self, ns: &[Record]) {
        for r in ns {
            if let RData::NS(target) = &r.data
                && let Some(rs) = self.snap.statics.get(&LowerName::new(&target.0))
            {
                self.ans.additionals.extend(
                    rs.iter()
                        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                        .cloned(),
                );
            }
        }
    }

    fn static_records(&mut self, owner: Name, records: &[Record], depth: usize) {
        // ANY gets one RRset, the first at the name (RFC 8482 section 4.2): a minimal
        // answer that cannot be used to amplify.
        let wanted = match self.qtype {
            RecordType::ANY => records.first().map_or(RecordType::ANY, |r| r.record_type()),
            t => t,
        };
        let matching: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == wanted)
            .map(|r| with_owner(r, &owner))
            .collect();
        if !matching.is_empty() {
            if self.qtype == RecordType::NS {
                self.glue(&matching);
            }
            self.ans.answers.extend(matching);
            return;
        }
        if let Some(cname) = records
            .iter()
            .find(|r| r.record_type() == RecordType::CNAME)
        {
            self.ans.answers.push(with_owner(cname, &owner));
            if let RData::CNAME(target) = &cname.data {
                self.chase(target.0.clone(), depth);
            }
            return;
        }
        let mut types: Vec<RecordType> = records.iter().map(|r| r.record_type()).collect();
        types.dedup();
        self.negative(ResponseCode::NoError, owner, types);
    }

    /// Follows a CNAME target if it is inside the zone.
    fn chase(&mut self, target: Name, depth: usize) {
        if self.qtype == RecordType::CNAME {
            return;
        }
        let lower = LowerName::new(&target);
        if self.snap.apex_lower.zone_of(&lower) {
            self.resolve(target, lower, depth + 1);
        }
    }

    /// SOA in the authority section, for NXDOMAIN and NODATA (RFC 2308). In a CNAME chain
    /// the RCODE is the last name's (RFC 6604). `types` exist at `owner` (for a NODATA),
    /// what a signed reply's NSEC says.
    fn negative(&mut self, rcode: ResponseCode, owner: Name, types: Vec<RecordType>) {
        self.ans.rcode = rcode;
        self.ans.denial = Some(Denial {
            owner,
            types,
            nxname: rcode == ResponseCode::NXDomain,
        });
        let mut soa = self.snap.soa.clone();
        soa.ttl = self.snap.negative_ttl;
        self.ans.authority.push(soa);
    }

    /// Answers a federated name at a level: the chosen clusters' addresses, a CNAME to a
    /// hostname load balancer, or a CNAME up the hierarchy when no cluster here is healthy.
    fn geo(&mut self, owner: Name, fed: &FedName, level: Level<'_>, depth: usize) {
        let snap = self.snap;
        let in_level: Vec<&Member> = match level {
            Level::Global => fed.members.iter().collect(),
            Level::Region(_, ids) | Level::Zone(_, _, ids) => fed
                .members
                .iter()
                .filter(|m| ids.contains(&m.cluster))
                .collect(),
        };
        let (eligible, fail_open) = match plan(
            &in_level,
            matches!(level, Level::Global),
            snap.on_all_unhealthy,
        ) {
            Plan::Up => {
                // Federation v1 semantics: nothing healthy (or nothing but drained
                // clusters) here, so point one level up.
                if let Some(target) = up_name(&owner) {
                    self.record(owner, RData::CNAME(CNAME(target.clone())));
                    self.chase(target, depth);
                } else {
                    self.ans.rcode = ResponseCode::ServFail;
                }
                return;
            }
            Plan::ServFail => {
                self.ans.rcode = ResponseCode::ServFail;
                return;
            }
            Plan::Decide {
                eligible,
                fail_open,
                drains_held,
            } => {
                self.ans.drains_held |= drains_held;
                (eligible, fail_open)
            }
        };
        let decision = self.decide(fed, &in_level, level, eligible, fail_open);
        let ttl = fed.ttl.unwrap_or(snap.ttl);
        let mut wrote = false;
        let mut hostname = None;
        for id in &decision.chosen {
            let Some(m) = in_level.iter().find(|m| m.cluster == *id) else {
                continue;
            };
            let usable = |h: Health| decision.fail_open || h == Health::Healthy;
            if matches!(self.qtype, RecordType::A | RecordType::ANY) {
                for (a, h) in &m.v4 {
                    if usable(*h) {
                        self.record_ttl(owner.clone(), ttl, RData::A(A(*a)));
                        wrote = true;
                    }
                }
            }
            // ANY (RFC 8482): one RRset, the A records, or AAAA when there is no A.
            if self.qtype == RecordType::AAAA || (self.qtype == RecordType::ANY && !wrote) {
                for (a, h) in &m.v6 {
                    if usable(*h) {
                        self.record_ttl(owner.clone(), ttl, RData::AAAA(AAAA(*a)));
                        wrote = true;
                    }
                }
            }
            if hostname.is_none() {
                hostname = m.hostname.clone();
            }
        }
        if self.trace {
            self.ans.decisions.push(decision);
        }
        if wrote {
            return;
        }
        let wants_target = matches!(
            self.qtype,
            RecordType::A | RecordType::AAAA | RecordType::CNAME | RecordType::ANY
        );
        match hostname {
            Some(h) if wants_target => self.record_ttl(owner, ttl, RData::CNAME(CNAME(h))),
            _ => {
                // What some cluster could answer here, but not the type asked (which this
                // client gets no answer of): a validator then accepts the NODATA.
                let mut types = Vec::new();
                if fed.members.iter().any(|m| !m.v4.is_empty()) {
                    types.push(RecordType::A);
                }
                if fed.members.iter().any(|m| !m.v6.is_empty()) {
                    types.push(RecordType::AAAA);
                }
                types.retain(|t| *t != self.qtype);
                self.negative(ResponseCode::NoError, owner, types)
            }
        }
    }

    fn record(&mut self, owner: Name, rdata: RData) {
        self.record_ttl(owner, self.snap.ttl, rdata);
    }

    fn record_ttl(&mut self, owner: Name, ttl: u32, rdata: RData) {
        self.ans.answers.push(Record::from_rdata(owner, ttl, rdata));
    }

    /// Ranks the clusters of a name for this client, picks by policy, and records in the
    /// answer what the pick depended on (location, ECS scope, fail-open).
    fn decide(
        &mut self,
        fed: &FedName,
        members: &[&Member],
        level: Level<'_>,
        eligible: Vec<ClusterId>,
        fail_open: bool,
    ) -> Decision {
        let snap = self.snap;
        let policy = &fed.policy;
        let located = (self.trace || policy::needs_location(policy, &eligible)).then(|| {
            self.placed
                .cloned()
                .unwrap_or_else(|| snap.locator.locate(self.client.locating_address()))
        });
        let member = |c: ClusterId| members.iter().find(|m| m.cluster == c);
        let bias = |c: ClusterId| member(c).map_or(0, |m| m.bias);
        let ranked = rank::rank(snap, &eligible, located.as_ref(), &bias);
        let pick = policy::pick(&policy::Ask {
            policy,
            eligible: &eligible,
            ranked: &ranked,
            located: located.as_ref(),
            address: self.client.locating_address(),
            ready: &|c| member(c).and_then(|m| m.ready_endpoints),
        });
        self.ans.varies |= pick.varies;
        self.ans.per_network |= pick.spill.is_some();
        self.ans.steered.geo_order |= pick.geo_order.is_some();
        self.ans.steered.spilled |= pick.spill.is_some_and(|s| s.spilled);
        if self.ans.first_policy.is_none() {
            self.ans.first_cluster = pick.chosen.first().copied();
            self.ans.first_policy = Some(policy.kind);
        }
        if self.ans.located_by.is_none() {
            self.ans.located_by = located.as_ref().map(|l| l.source.clone());
        }
        self.ans.fail_open |= fail_open;
        let mut widest_block = None;
        if pick.by_location
            && let Some(l) = &located
        {
            // The widest block around the client with this answer, where the decision's
            // scope map can tell; else the network that placed the client.
            let map = scope::decision_key(snap, policy, &eligible, members)
                .and_then(|k| snap.scopes.get(&k).cloned());
            let widest = scope_prefix(
                map.as_deref(),
                self.client.locating_address(),
                l.network.prefix_len(),
            );
            if self.trace && self.placed.is_none() {
                widest_block = IpNet::new(self.client.locating_address().to_canonical(), widest)
                    .ok()
                    .map(|n| {
                        (
                            n.trunc(),
                            map.as_deref().and_then(|m| m.prefix(n.addr())).is_some(),
                        )
                    });
            }
            self.ans.client_dependent = true;
            let scope = ecs_scope(widest, self.client);
            // The client's placing network is the same for every decision of a chain.
            self.placing = Some(ecs_scope(l.network.prefix_len(), self.client));
            self.ans.scope = self.ans.scope.max(scope);
            self.ans.scope_maps.push(map);
        }
        if !self.trace {
            return Decision {
                policy: policy.kind,
                chosen: pick.chosen,
                fail_open,
                ..Decision::default()
            };
        }
        let mut d = trace(
            snap,
            fed,
            members,
            level,
            &ranked,
            located,
            pick.chosen,
            fail_open,
        );
        d.geo_order = pick.geo_order;
        d.widest = widest_block;
        d.spill = pick
            .spill
            .zip(d.located.as_ref().map(|l| network_share(l.network)));
        d
    }
}

/// What a federated name at one level does before any client is considered: point one
/// level up, fail, or decide among its eligible clusters.
pub(crate) enum Plan {
    /// Nothing serving below the global level: a CNAME one level up.
    Up,
    /// Nothing healthy, and `on_all_unhealthy: servfail`.
    ServFail,
    Decide {
        eligible: Vec<ClusterId>,
        /// Nothing is healthy: every cluster counts as healthy.
        fail_open: bool,
        /// Only drained clusters are healthy, so the drains are set aside.
        drains_held: bool,
    },
}

/// The plan for the members of a name at one level (`global`: the name itself, not a
/// region or zone name). A drain never takes out the last healthy clusters of a name:
/// when only drained ones are healthy, the drains are set aside for this name. With
/// nothing healthy at all (fail-open), drained clusters stay out unless every cluster is
/// drained.
pub(crate) fn plan(in_level: &[&Member], global: bool, on_all_unhealthy: AllUnhealthy) -> Plan {
    let any_healthy = in_level.iter().any(|m| m.healthy());
    let any_serving = in_level.iter().any(|m| m.serving());
    if !any_serving && !global {
        return Plan::Up;
    }
    if !any_healthy && on_all_unhealthy == AllUnhealthy::Servfail {
        return Plan::ServFail;
    }
    let drains_held = !any_serving && any_healthy;
    let drop_drained = !drains_held && !in_level.iter().all(|m| m.drained);
    let fail_open = !any_healthy;
    Plan::Decide {
        eligible: in_level
            .iter()
            .filter(|m| !(drop_drained && m.drained))
            .filter(|m| fail_open || m.healthy())
            .map(|m| m.cluster)
            .collect(),
        fail_open,
        drains_held,
    }
}

/// The ECS scope of an answer that depends on where the client is: the widest block with
/// this answer, never longer than the client's source prefix (RFC 7871 section 7.2.1).
fn ecs_scope(widest: u8, client: &Client) -> u8 {
    client
        .ecs
        .map_or(widest, |ecs| widest.min(ecs.prefix_len()))
}

/// The prefix of the widest block around `ip` with the answer a decision gave: its scope
/// map's, else the prefix of the network that placed the client (`network`).
pub fn scope_prefix(map: Option<&ScopeMap>, ip: IpAddr, network: u8) -> u8 {
    map.and_then(|m| m.prefix(ip)).unwrap_or(network)
}

/// The decision as `explain` prints it: every candidate in rank order with its distance
/// and health, and what was chosen.
#[allow(clippy::too_many_arguments)]
fn trace(
    snap: &Snapshot,
    fed: &FedName,
    members: &[&Member],
    level: Level<'_>,
    ranked: &[ClusterId],
    located: Option<Located>,
    chosen: Vec<ClusterId>,
    fail_open: bool,
) -> Decision {
    let distance = |c: ClusterId| {
        located
            .as_ref()
            .and_then(|l| l.location)
            .map(|loc| snap.distance_km(loc, c))
    };
    let mut candidates: Vec<Candidate> = members
        .iter()
        .map(|m| Candidate {
            cluster: m.cluster,
            healthy: m.healthy(),
            drained: m.drained,
            distance_km: distance(m.cluster),
            biased_km: located
                .as_ref()
                .and_then(|l| l.location)
                .map(|loc| snap.biased_km(loc, m.cluster, m.bias)),
            bias: m.bias,
            ready_endpoints: m.ready_endpoints,
            addresses: (m.v4.iter().map(|&(a, h)| (IpAddr::V4(a), h)))
                .chain(m.v6.iter().map(|&(a, h)| (IpAddr::V6(a), h)))
                .collect(),
        })
        .collect();
    candidates.sort_by_key(|c| {
        ranked
            .iter()
            .position(|r| *r == c.cluster)
            .unwrap_or(usize::MAX)
    });
    Decision {
        name: fed.display.clone(),
        level: match level {
            Level::Global => "global".into(),
            Level::Region(r, _) => format!("region {}", String::from_utf8_lossy(r)),
            Level::Zone(r, z, _) => format!(
                "zone {}.{}",
                String::from_utf8_lossy(z),
                String::from_utf8_lossy(r)
            ),
        },
        policy: fed.policy.kind,
        located,
        candidates,
        chosen,
        fail_open,
        geo_order: None,
        spill: None,
        widest: None,
    }
}

/// Recognises `<svc>.<ns>.<F>.svc[.<zone>][.<region>].<Z>`.
fn federated<'s>(snap: &'s Snapshot, lower: &LowerName) -> Option<(&'s FedName, Level<'s>)> {
    let rel = lower.num_labels().checked_sub(snap.apex.num_labels())? as usize;
    if !(4..=6).contains(&rel) {
        return None;
    }
    let name = Name::from(lower);
    let labels: Vec<&[u8]> = name.iter().take(rel).collect();
    if labels[2] != snap.federation.as_slice() || labels[3] != b"svc" {
        return None;
    }
    let level = match rel {
        4 => Level::Global,
        5 => {
            let (r, ids) = snap.regions.get_key_value(labels[4])?;
            Level::Region(r, ids)
        }
        _ => {
            let ((r, z), ids) = snap
                .zones
                .get_key_value(&(labels[5].to_vec(), labels[4].to_vec()))?;
            Level::Zone(r, z, ids)
        }
    };
    let ns = std::str::from_utf8(labels[1]).ok()?;
    let svc = std::str::from_utf8(labels[0]).ok()?;
    let fed = snap.services.get(&format!("{ns}/{svc}"))?;
    Some((fed, level))
}

/// The name one level up the hierarchy: `<svc>.<ns>.<F>.svc.<zone>.<region>.<Z>` becomes
/// `<svc>.<ns>.<F>.svc.<region>.<Z>`, which becomes `<svc>.<ns>.<F>.svc.<Z>`: both drop the
/// label right after `svc`.
fn up_name(owner: &Name) -> Option<Name> {
    let labels: Vec<&[u8]> = owner.iter().collect();
    if labels.len() < 5 {
        return None;
    }
    let mut n = Name::from_labels(labels[..4].iter().chain(&labels[5..]).copied()).ok()?;
    n.set_fqdn(true);
    Some(n)
}

fn with_owner(r: &Record, owner: &Name) -> Record {
    let mut r = r.clone();
    r.name = owner.clone();
    r
}
