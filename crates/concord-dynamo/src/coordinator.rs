//! # Coordinating requests: quorums, sloppy quorums, hinted handoff, read repair
//!
//! **Quorums (§4.5).** A key has `n` home replicas. A write succeeds once `w` of them (the
//! coordinator's own durable copy included) have synced it; a read answers once `r` have replied,
//! with the merge of their copies. `r + w > n` makes every read quorum meet every write quorum –
//! but not in the presence of sloppy quorums, and never with any promise of linearizability.
//!
//! **Sloppy quorum and hinted handoff (§4.6).** The targets of a request are the home replicas
//! that SWIM believes up; each home believed down – or silent for `replica_timeout` – is replaced by
//! the next healthy node further round the ring, which stores the object *as a hint* naming the
//! intended owner (durably, under its own disk prefix) and counts towards the quorum. Every
//! `handoff_interval` a node offers its hints to their owners that are up again and deletes each
//! hint once the owner has synced it (and only if it did not change meanwhile).
//!
//! **Read repair.** A read that sees replicas disagree sends the merged object to the ones that
//! were behind (also those answering after the client got its reply).
//!
//! **Outcomes.** A request that misses its deadline is answered: a read with `Fail` (reads change
//! nothing), a write with `Unknown` once it was sent to or stored on any replica (it may still
//! spread), and with `Fail` when no replica could be reached at all (it certainly was not written).

use crate::crdt::{LwwMap, OrSet};
use crate::store::{self, Object};
use crate::version::{Sibling, VersionVector, Versions};
use crate::{AckRecord, DynamoMessage, DynamoNode, DynamoRequest, DynamoResponse, DynamoTimer};
use concord_core::{Io, NodeId, RequestId};
use std::collections::BTreeSet;

/// Who is waiting for the answer.
#[derive(Clone, Copy, Debug)]
pub enum Client {
    Local(RequestId),
    /// A node that forwarded the request, with its token.
    Remote {
        node: NodeId,
        token: u64,
    },
}

/// A replica a request goes to; `hint` names the home it stands in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub node: NodeId,
    pub hint: Option<NodeId>,
}

#[derive(Debug)]
pub enum Pending {
    /// Forwarded to a home replica; waiting for its answer.
    Forwarded { client: Client },
    Write {
        client: Client,
        key: String,
        object: Object,
        record: Option<AckRecord>,
        /// For a set or map write: what it changed at this replica (see `DynamoResponse::Updated`).
        changed: Option<u64>,
        needed: usize,
        targets: Vec<Target>,
        acked: BTreeSet<NodeId>,
        /// Nodes already used as targets (homes and fallbacks).
        used: BTreeSet<NodeId>,
        replied: bool,
    },
    Read {
        client: Client,
        key: String,
        needed: usize,
        targets: Vec<Target>,
        replies: Vec<(NodeId, Option<Object>)>,
        merged: Option<Object>,
        replied: bool,
    },
}

impl DynamoNode {
    fn respond(&mut self, io: &mut Io<'_, Self>, client: Client, response: DynamoResponse) {
        match client {
            Client::Local(request) => io.reply(request, response),
            Client::Remote { node, token } => io.send(node, DynamoMessage::ForwardReply { token, response }),
        }
    }

    /// The key's targets: homes believed up, fallbacks (with hints) for the others.
    pub fn targets(&self, key: &str) -> Vec<Target> {
        let walk = self.ring.walk(self.ring.range_of(key));
        let n = self.config.n.min(walk.len());
        let mut fallbacks = walk[n..].iter().copied().filter(|&f| self.swim.is_up(f));
        walk[..n]
            .iter()
            .map(|&home| {
                if self.swim.is_up(home) || !self.config.hinted_handoff {
                    Target { node: home, hint: None }
                } else {
                    match fallbacks.next() {
                        Some(f) => Target { node: f, hint: Some(home) },
                        None => Target { node: home, hint: None },
                    }
                }
            })
            .collect()
    }

    /// A request from a client (or forwarded by a node that is not a home replica).
    pub(crate) fn accept(&mut self, io: &mut Io<'_, Self>, client: Client, req: DynamoRequest) {
        match req {
            DynamoRequest::Unsupported { what } => {
                self.respond(io, client, DynamoResponse::Fail(format!("dynamo does not support {what}")))
            }
            DynamoRequest::Get { key, r } => self.coordinate_read(io, client, key, r),
            write => {
                let key = write.key().expect("writes have keys").to_string();
                if self.is_home(&key) {
                    self.coordinate_write(io, client, write);
                    return;
                }
                if matches!(client, Client::Remote { .. }) {
                    // Rings disagree (membership is changing): do not forward twice.
                    let msg = format!("{} is not a home replica of {key:?}", self.me);
                    self.respond(io, client, DynamoResponse::Fail(msg));
                    return;
                }
                let homes = self.ring.preference_list(&key, self.config.n);
                let Some(&home) = homes.iter().find(|&&h| self.swim.is_up(h)) else {
                    let msg = format!("no home replica of {key:?} is reachable");
                    self.respond(io, client, DynamoResponse::Fail(msg));
                    return;
                };
                let token = self.token();
                self.pending.insert(token, Pending::Forwarded { client });
                io.send(home, DynamoMessage::Forward { token, request: write });
                io.set_timer(DynamoTimer::Request(token), self.config.request_timeout);
            }
        }
    }

    pub(crate) fn on_forward(&mut self, io: &mut Io<'_, Self>, from: NodeId, token: u64, req: DynamoRequest) {
        self.accept(io, Client::Remote { node: from, token }, req);
    }

    pub(crate) fn on_forward_reply(&mut self, io: &mut Io<'_, Self>, token: u64, response: DynamoResponse) {
        if let Some(Pending::Forwarded { client }) = self.pending.remove(&token) {
            io.cancel_timer(DynamoTimer::Request(token));
            self.respond(io, client, response);
        }
    }

    /// Coordinate a write as a home replica: new version, local durable copy, replicate to the
    /// other targets, answer after `w` acknowledgements.
    fn coordinate_write(&mut self, io: &mut Io<'_, Self>, client: Client, req: DynamoRequest) {
        let key = req.key().expect("writes have keys").to_string();
        let w = req.w().unwrap_or(self.config.w).clamp(1, self.config.n);
        debug_assert!((1..=self.config.n).contains(&w), "a write quorum is 1 ≤ w ≤ n");
        let local = self.store.get(&key).cloned();
        // A key keeps its kind: a write of another kind is refused (Redis's WRONGTYPE), never
        // merged over the object, which would drop one kind's acknowledged writes.
        let wanted = match &req {
            DynamoRequest::Increment { .. } => "counter",
            DynamoRequest::Put { .. } | DynamoRequest::Delete { .. } => "register",
            DynamoRequest::SetAdd { .. } | DynamoRequest::SetRemove { .. } => "set",
            DynamoRequest::MapSet { .. } | DynamoRequest::MapRemove { .. } => "hash",
            _ => unreachable!("only writes are coordinated here"),
        };
        if let Some(held) = local.as_ref().map(Object::kind).filter(|&held| held != wanted) {
            let msg = format!("{key:?} holds a {held}, not a {wanted}");
            return self.respond(io, client, DynamoResponse::Fail(msg));
        }
        // `changed`: what a set or map write answers (`DynamoResponse::Updated`).
        let (object, record, changed) = match req {
            DynamoRequest::Increment { delta, .. } => {
                let mut counter = match local {
                    Some(Object::Counter(c)) => c,
                    _ => crate::crdt::PnCounter::default(),
                };
                counter.add(self.me, delta);
                (Object::Counter(counter), None, None)
            }
            DynamoRequest::Put { .. } | DynamoRequest::Delete { .. } => {
                let mut versions = match local {
                    Some(Object::Register(v)) => v,
                    _ => Versions::default(),
                };
                let (value, context) = match req {
                    DynamoRequest::Put { value, context, .. } => (Some(value), context),
                    DynamoRequest::Delete { context, .. } => (None, context),
                    _ => unreachable!(),
                };
                // A blind write supersedes what this replica has seen.
                let seen: VersionVector = context.unwrap_or_else(|| versions.context.clone());
                let dot = self.issue_dot(io);
                let sibling = Sibling { dot, timestamp: io.now().as_nanos(), value: value.clone() };
                versions.write(self.config.resolution, &seen, sibling);
                (Object::Register(versions), Some(AckRecord { key: key.clone(), dot, value }), None)
            }
            // Sets and maps: the write acts on this home replica's copy (which holds every dot
            // this node issued for the key) and ships the whole object, as registers do.
            DynamoRequest::SetAdd { members, .. } => {
                let mut set = match local {
                    Some(Object::Set(s)) => s,
                    _ => OrSet::default(),
                };
                let dot = self.issue_dot(io);
                let changed = set.add_all(dot, members);
                (Object::Set(set), None, Some(changed as u64))
            }
            DynamoRequest::SetRemove { members, .. } => {
                let mut set = match local {
                    Some(Object::Set(s)) => s,
                    _ => OrSet::default(),
                };
                let changed = members.iter().filter(|m| set.remove(m)).count();
                (Object::Set(set), None, Some(changed as u64))
            }
            DynamoRequest::MapSet { fields, .. } => {
                let mut map = match local {
                    Some(Object::Map(m)) => m,
                    _ => LwwMap::default(),
                };
                let dot = self.issue_dot(io);
                let now = io.now().as_nanos();
                let changed = map.set_all(dot, now, fields);
                (Object::Map(map), None, Some(changed as u64))
            }
            DynamoRequest::MapRemove { fields, .. } => {
                let mut map = match local {
                    Some(Object::Map(m)) => m,
                    _ => LwwMap::default(),
                };
                let changed = fields.iter().filter(|f| map.remove(f)).count();
                (Object::Map(map), None, Some(changed as u64))
            }
            _ => unreachable!(),
        };
        self.store.insert(key.clone(), object.clone());
        self.store_changed(&key);
        io.put(store::data_key(&key), store::encode(&object));
        // Durable here before it is acknowledged or sent anywhere.
        io.sync();
        let targets = self.targets(&key);
        let token = self.token();
        let mut acked = BTreeSet::new();
        acked.insert(self.me);
        for t in targets.iter().filter(|t| t.node != self.me) {
            let msg =
                DynamoMessage::Replicate { token, key: key.clone(), object: object.clone(), hint: t.hint };
            io.send(t.node, msg);
        }
        let used = targets.iter().map(|t| t.node).chain([self.me]).collect();
        debug_assert!(targets.len() <= self.config.n, "at most n targets, one per home replica");
        debug_assert!(!self.pending.contains_key(&token), "tokens are never reused within a life");
        self.pending.insert(
            token,
            Pending::Write {
                client,
                key,
                object,
                record,
                changed,
                needed: w,
                targets,
                acked,
                used,
                replied: false,
            },
        );
        io.set_timer(DynamoTimer::Request(token), self.config.request_timeout);
        io.set_timer(DynamoTimer::Retry(token), self.config.replica_timeout);
        self.check_write_quorum(io, token);
    }

    fn check_write_quorum(&mut self, io: &mut Io<'_, Self>, token: u64) {
        let Some(Pending::Write { client, acked, needed, replied, record, changed, targets, object, .. }) =
            self.pending.get_mut(&token)
        else {
            return;
        };
        // The coordinator's own durable copy counts, from the start to the end of the request.
        debug_assert!(acked.contains(&self.me), "the coordinator's own copy is acknowledged");
        if !*replied && acked.len() >= *needed {
            // The client is answered here and only here, once: `replied` guards it.
            *replied = true;
            let (client, record) = (*client, record.take());
            let done = targets.iter().all(|t| acked.contains(&t.node));
            let dot = record.as_ref().map(|r| r.dot);
            // As Riak's `returnvalue`: the counter as this coordinator wrote it, not a quorum read.
            let counter = match object {
                Object::Counter(c) => Some(c.value()),
                _ => None,
            };
            let changed = *changed;
            if let Some(record) = record {
                self.record_ack(record);
            }
            let response = match changed {
                Some(changed) => DynamoResponse::Updated { changed },
                None => DynamoResponse::Written { dot, counter },
            };
            self.respond(io, client, response);
            if done {
                self.finish(io, token);
            }
        }
    }

    /// Forget a request whose every replica has answered. Precondition: its client was answered
    /// already (a request never ends silently; only the deadline ends an unanswered one).
    fn finish(&mut self, io: &mut Io<'_, Self>, token: u64) {
        let done = self.pending.remove(&token);
        debug_assert!(
            matches!(done, Some(Pending::Write { replied: true, .. } | Pending::Read { replied: true, .. })),
            "a request finishes only after its client was answered: {done:?}"
        );
        io.cancel_timer(DynamoTimer::Request(token));
        io.cancel_timer(DynamoTimer::Retry(token));
    }

    pub(crate) fn on_replicate_ack(&mut self, io: &mut Io<'_, Self>, from: NodeId, token: u64) {
        let Some(Pending::Write { acked, targets, replied, used, .. }) = self.pending.get_mut(&token) else {
            return;
        };
        // Tokens are unique across this node's lives (`first_token`): an ack carrying this
        // request's token comes from a node this request was sent to.
        debug_assert!(used.contains(&from), "ack for token {token} from {from}, which was never sent it");
        acked.insert(from);
        let all = targets.iter().all(|t| acked.contains(&t.node));
        let replied = *replied;
        if replied && all {
            self.finish(io, token);
        } else {
            self.check_write_quorum(io, token);
        }
    }

    /// Replicas silent for `replica_timeout`: send the object to fallbacks, with hints.
    pub(crate) fn on_retry(&mut self, io: &mut Io<'_, Self>, token: u64) {
        if !self.config.hinted_handoff {
            return;
        }
        let Some(Pending::Write { key, .. }) = self.pending.get(&token) else { return };
        let walk = self.ring.walk(self.ring.range_of(key));
        let n = self.config.n.min(walk.len());
        let Some(Pending::Write { key, object, targets, acked, used, .. }) = self.pending.get_mut(&token)
        else {
            return;
        };
        let spare: Vec<NodeId> =
            walk[n..].iter().copied().filter(|f| !used.contains(f) && self.swim.is_up(*f)).collect();
        let mut spare = spare.into_iter();
        let mut sends = Vec::new();
        for t in targets.iter_mut() {
            if acked.contains(&t.node) || t.node == self.me {
                continue;
            }
            let Some(f) = spare.next() else { break };
            let home = t.hint.unwrap_or(t.node);
            used.insert(f);
            *t = Target { node: f, hint: Some(home) };
            sends.push((
                f,
                DynamoMessage::Replicate {
                    token,
                    key: key.clone(),
                    object: object.clone(),
                    hint: Some(home),
                },
            ));
        }
        for (to, msg) in sends {
            io.send(to, msg);
        }
        io.set_timer(DynamoTimer::Retry(token), self.config.replica_timeout);
    }

    fn coordinate_read(&mut self, io: &mut Io<'_, Self>, client: Client, key: String, r: Option<usize>) {
        let targets = self.targets(&key);
        let needed = r.unwrap_or(self.config.r).clamp(1, targets.len().max(1));
        debug_assert!(needed >= 1 && (targets.is_empty() || needed <= targets.len()), "1 ≤ r ≤ targets");
        let token = self.token();
        debug_assert!(!self.pending.contains_key(&token), "tokens are never reused within a life");
        let mut replies = Vec::new();
        for t in &targets {
            if t.node == self.me {
                replies.push((self.me, self.local_read(&key)));
            } else {
                io.send(t.node, DynamoMessage::Read { token, key: key.clone() });
            }
        }
        self.pending.insert(
            token,
            Pending::Read { client, key, needed, targets, replies: Vec::new(), merged: None, replied: false },
        );
        io.set_timer(DynamoTimer::Request(token), self.config.request_timeout);
        for (node, object) in replies {
            self.on_read_reply(io, node, token, object);
        }
    }

    pub(crate) fn on_read_reply(
        &mut self,
        io: &mut Io<'_, Self>,
        from: NodeId,
        token: u64,
        object: Option<Object>,
    ) {
        let resolution = self.config.resolution;
        let read_repair = self.config.read_repair;
        let Some(Pending::Read { client, key, needed, targets, replies, merged, replied }) =
            self.pending.get_mut(&token)
        else {
            return;
        };
        if replies.iter().any(|(n, _)| *n == from) {
            return; // a duplicate
        }
        replies.push((from, object));
        let mut answer = None;
        let mut repairs = Vec::new();
        if !*replied && replies.len() >= *needed {
            // The client is answered here and only here, once: `replied` guards it.
            *replied = true;
            let mut m: Option<Object> = None;
            for (_, o) in replies.iter() {
                match (&mut m, o) {
                    (Some(acc), Some(o)) => acc.merge(resolution, o),
                    (None, Some(o)) => m = Some(o.clone()),
                    _ => {}
                }
            }
            // Postcondition (DVV): the answer covers every register reply it was built from – a read
            // never hides a version one of its replicas returned. (LWW keeps the winner's context.)
            debug_assert!(
                resolution != crate::version::Resolution::Dvv
                    || replies.iter().all(|(_, o)| match (o, &m) {
                        (Some(Object::Register(v)), Some(Object::Register(acc))) => {
                            acc.context.descends_from(&v.context)
                        }
                        _ => true,
                    }),
                "a read's merged answer covers every reply"
            );
            *merged = m;
            answer = Some((*client, merged.clone()));
            if read_repair {
                repairs.extend(replies.iter().map(|(n, o)| (*n, o.clone())));
            }
        } else if *replied && read_repair {
            repairs.push((from, replies.last().and_then(|(_, o)| o.clone())));
        }
        let repair_msgs: Vec<(NodeId, DynamoMessage)> = match merged {
            Some(m) => repairs
                .into_iter()
                .filter(|(_, o)| o.as_ref() != Some(&*m))
                .map(|(n, _)| {
                    let hint = targets.iter().find(|t| t.node == n).and_then(|t| t.hint);
                    (n, DynamoMessage::Replicate { token: 0, key: key.clone(), object: m.clone(), hint })
                })
                .collect(),
            None => Vec::new(),
        };
        let all_in = replies.len() >= targets.len();
        for (to, msg) in repair_msgs {
            if to == self.me {
                if let DynamoMessage::Replicate { key, object, hint, .. } = msg {
                    if self.absorb(io, &key, &object, hint) {
                        io.sync();
                    }
                }
            } else {
                io.send(to, msg);
            }
        }
        if let Some((client, merged)) = answer {
            let response = match merged {
                None => DynamoResponse::Found {
                    values: Vec::new(),
                    context: VersionVector::default(),
                    counter: None,
                },
                Some(Object::Counter(c)) => DynamoResponse::Found {
                    values: Vec::new(),
                    context: VersionVector::default(),
                    counter: Some(c.value()),
                },
                Some(Object::Register(v)) => DynamoResponse::Found {
                    values: v.values().into_iter().map(<[u8]>::to_vec).collect(),
                    context: v.context.clone(),
                    counter: None,
                },
                Some(Object::Set(s)) => DynamoResponse::Members(s.elements().cloned().collect()),
                Some(Object::Map(m)) => {
                    DynamoResponse::Fields(m.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect())
                }
            };
            self.respond(io, client, response);
        }
        if all_in {
            self.finish(io, token);
        }
    }

    pub(crate) fn on_request_timeout(&mut self, io: &mut Io<'_, Self>, token: u64) {
        let Some(pending) = self.pending.remove(&token) else { return };
        io.cancel_timer(DynamoTimer::Retry(token));
        match pending {
            Pending::Forwarded { client } => {
                let msg = "the home replica did not answer in time; the write may or may not have happened";
                self.respond(io, client, DynamoResponse::Unknown(msg.into()));
            }
            Pending::Write { client, acked, needed, replied: false, .. } => {
                // The coordinator's own copy is durable: the write may still spread.
                let msg = format!(
                    "{} of {needed} replicas acknowledged in time; the write may still spread",
                    acked.len()
                );
                self.respond(io, client, DynamoResponse::Unknown(msg));
            }
            Pending::Read { client, replies, needed, replied: false, .. } => {
                let msg = format!("{} of {needed} replicas answered in time", replies.len());
                self.respond(io, client, DynamoResponse::Fail(msg));
            }
            Pending::Write { .. } | Pending::Read { .. } => {}
        }
    }

    /// Offer hints to their owners that are up again.
    pub(crate) fn hand_off(&mut self, io: &mut Io<'_, Self>) {
        const BATCH: usize = 32;
        let mut batches: std::collections::BTreeMap<NodeId, Vec<(String, Object)>> = Default::default();
        for ((owner, key), object) in &self.hints {
            if self.swim.is_up(*owner) {
                let batch = batches.entry(*owner).or_default();
                if batch.len() < BATCH {
                    batch.push((key.clone(), object.clone()));
                }
            }
        }
        for (owner, items) in batches {
            io.send(owner, DynamoMessage::Handoff { items });
        }
    }
}
