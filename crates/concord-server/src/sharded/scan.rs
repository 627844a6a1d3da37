//! Range reads and deletes across shards: ask each shard's group, check the slots it served, merge.
//!
//! Keys hash to slots and slots to shards, so the keys of a range – a prefix, `[start, end)`, or
//! every key – are spread over every shard. A range read is therefore a **scatter-gather**: one
//! [`ShardQuery::Range`] per shard, each through that group's own Raft read path (ReadIndex for a
//! linearizable read, its lease, or – stale – any replica's applied state), sent at once and
//! forwarded inside the cluster like a key's request; the pages are then merged in key order.
//!
//! Two scopes:
//!
//! | scope | shards asked | used by |
//! |---|---|---|
//! | [`Scope::Cluster`] | every shard of the map | `GET /v1/kv?prefix=…` on any node |
//! | [`Scope::Node`] | the shards this node serves to the connection ([`super::served_here`]) | RESP `KEYS`, `SCAN`, `DBSIZE`: per node, as in Redis Cluster, where `redis-cli --cluster` and cluster clients fan them out to every primary |
//!
//! # No key missed or seen twice, while slots move
//! Each group answers for the slots it *serves* at its read's point in its log, and says which
//! ([`ShardResponse::Range`]'s `served`). A cluster read checks that the served slots of all its
//! pages cover the 16 384 slots **exactly once** ([`covers_once`]). If they do, every slot was read
//! at a group that served it when it was read – so each key is reported once, with its value as
//! of that read – and a key present throughout the request is never missed. If they do not – a
//! slot between a move's fence and its activation is served by no group; a gather whose reads
//! straddle a move's hand-off may see a slot at both groups, or at neither – the whole page is read
//! again (10 ms, doubling to 200 ms) until the request deadline, then answered "moving" (503).
//!
//! Each page is linearizable *per shard*; a page gathered from several shards is not one snapshot
//! of the cluster (as in TiKV or CockroachDB without a distributed timestamp: shards are read at
//! different moments). A node-scope read makes no coverage check – a Redis Cluster node answers
//! for what it holds now; slots moving through it are served by no node for that moment.
//!
//! # Range deletes
//! `DELETE /v1/kv?prefix=` is a scatter too: one [`ShardCommand::DeleteRange`] proposed to each
//! shard's group, which deletes the range's keys in the slots it serves **when the command is
//! applied** – all of them, at one revision of that shard – and says which slots those were. A
//! slot moving in or out of a group is not touched there (a frozen slot is never half-deleted: its
//! state at the fence is what the target copies). The slots no group served are asked again –
//! of their owners and of both ends of their moves – 10 ms later, doubling to 200 ms, until every
//! slot was served once or the deadline passes (503 `moving`, with the keys deleted so far:
//! deleting again is safe). So a key of the range present throughout the request is deleted
//! wherever its slot went; the answer is the sum of the shards' counts. As with reads, it is not
//! one atomic step of the cluster: each shard deletes at its own moment, and a key written
//! during the request may survive it.
//!
//! # Paging
//! Every shard returns at most `limit` keys (and at most `max_range_bytes`) from the page's start.
//! The keys before the smallest `next_key` of any shard that stopped early are complete: the page
//! is the first `limit` of them ([`merge`]), and its `next_key` the first key it leaves out. The
//! next page starts there, so a cursor walks every key once even if shards change in between.

use super::{served_here, KeyError, ShardedHandle};
use crate::front::ClientError;
use concord_kv::{KeyRange, KeyValue, RangePage, RangeRequest};
use concord_raft::ReadConsistency;
use concord_shard::kv::{ShardQuery, ShardResponse};
use concord_shard::map::ShardId;
use concord_shard::{ShardCommand, Slot, SlotRange, SLOTS};
use std::collections::BTreeSet;
use std::time::Instant;

/// Which shards a range read asks (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every shard of the map; the served slots must cover the key space exactly once.
    Cluster,
    /// The shards this node serves to a RESP connection at this consistency.
    Node,
}

impl ShardedHandle {
    /// One page of `request` over `scope`'s shards, read at `consistency`, merged in key order.
    pub async fn scan(
        &self,
        scope: Scope,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<RangePage, KeyError> {
        let deadline = self.deadline();
        let max_bytes = self.limits().max_range_bytes;
        let mut wait = super::RETRY_MIN;
        loop {
            let status = self.status();
            if !status.map.bootstrapped {
                return Err(KeyError::ClusterDown("the shard map is not bootstrapped yet".into()));
            }
            let shards: Vec<ShardId> = match scope {
                Scope::Cluster => status.map.shards.keys().copied().collect(),
                Scope::Node => served_here(&status, consistency == ReadConsistency::Stale),
            };
            let query = ShardQuery::Range { slots: None, request: request.clone() };
            let pages = self.gather(&shards, query, consistency, deadline).await?;
            if scope == Scope::Cluster {
                if let Err(slot) = covers_once(pages.iter().map(|(_, served)| served.as_slice())) {
                    if Instant::now() + wait >= deadline {
                        return Err(KeyError::Moving { slot: slot.get() });
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(super::RETRY_MAX);
                    continue;
                }
            }
            return Ok(merge(pages.into_iter().map(|(page, _)| page).collect(), request.limit, max_bytes));
        }
    }

    /// Every key of every shard, walked a page at a time (at most `max_range_limit` keys each) at
    /// linearizable consistency – what a sharded cluster's backup holds. Each page is checked as
    /// [`ShardedHandle::scan`] says; the walk as a whole is not one snapshot (see the module docs).
    pub async fn every_key(&self) -> Result<Vec<KeyValue>, KeyError> {
        let limit = self.limits().max_range_limit.max(1);
        let mut kvs = Vec::new();
        let mut start = Vec::new();
        loop {
            let request = RangeRequest::new(KeyRange::from(start), limit);
            let page = self.scan(Scope::Cluster, request, ReadConsistency::Linearizable).await?;
            kvs.extend(page.kvs);
            match page.next_key {
                Some(next) => start = next,
                None => return Ok(kvs),
            }
        }
    }

    /// Delete every key of `range` in every shard (see "Range deletes" in the module docs): the
    /// keys deleted, or why not with how many were deleted before it went wrong.
    pub async fn delete_range(&self, range: KeyRange) -> Result<u64, (KeyError, u64)> {
        let deadline = self.deadline();
        let mut wait = super::RETRY_MIN;
        let mut missing = vec![SlotRange::everything()];
        let mut deleted = 0u64;
        loop {
            let status = self.status();
            if !status.map.bootstrapped {
                return Err((KeyError::ClusterDown("the shard map is not bootstrapped yet".into()), deleted));
            }
            let command = ShardCommand::DeleteRange { range: range.clone(), slots: missing.clone() };
            // Spawned, so that one shard's retries do not hold up the others'.
            let tasks: Vec<_> = shards_for(&status.map, &missing)
                .into_iter()
                .map(|shard| tokio::spawn(self.shard_write(shard, command.clone(), deadline)))
                .collect();
            let mut served = Vec::new();
            let mut failed = None;
            for task in tasks {
                let answer = task.await.unwrap_or_else(|e| {
                    Err(KeyError::Client(ClientError::Unknown(format!("a shard's range delete failed: {e}"))))
                });
                match answer {
                    Ok(ShardResponse::Deleted { deleted: n, served: runs, .. }) => {
                        deleted += n;
                        served.extend(runs);
                    }
                    Ok(other) => failed = failed.or(Some(unexpected(&other))),
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                return Err((e, deleted));
            }
            missing = subtract(&missing, &served);
            let Some(first) = missing.first() else { return Ok(deleted) };
            // Slots no group served: moving (between a fence and an activation) or moved since the
            // map was read. Ask again for those only.
            if Instant::now() + wait >= deadline {
                return Err((KeyError::Moving { slot: first.start.get() }, deleted));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(super::RETRY_MAX);
        }
    }

    /// `RANDOMKEY`: a key of the shards this node serves to the connection (`None`: they hold
    /// none). Each shard's keys are counted (`ShardQuery::Count`), a shard is drawn in proportion
    /// and a position in it, then that shard's pages are walked to the position – O(keys of the
    /// shard), as the interpreter's own `RANDOMKEY`.
    pub async fn random_key(&self, consistency: ReadConsistency) -> Result<Option<Vec<u8>>, KeyError> {
        let status = self.status();
        if !status.map.bootstrapped {
            return Err(KeyError::ClusterDown("the shard map is not bootstrapped yet".into()));
        }
        let deadline = self.deadline();
        let mut counts = Vec::new();
        for shard in served_here(&status, consistency == ReadConsistency::Stale) {
            match self.shard_read(shard, ShardQuery::Count { slots: None }, consistency, deadline).await? {
                ShardResponse::Count { keys, .. } => counts.push((shard, keys)),
                other => return Err(unexpected(&other)),
            }
        }
        let total: u64 = counts.iter().map(|(_, keys)| keys).sum();
        if total == 0 {
            return Ok(None);
        }
        let mut pick = random_below(total);
        let mut chosen = None;
        for (shard, keys) in counts {
            if pick < keys {
                chosen = Some(shard);
                break;
            }
            pick -= keys;
        }
        let Some(shard) = chosen else { return Ok(None) };
        // A group's count includes its collections' records (a range read does not): a position
        // past its user keys is drawn again among the keys the walk saw.
        let limit = self.limits().max_range_limit.max(1);
        for _pass in 0..2 {
            let (mut start, mut seen) = (Some(Vec::new()), 0u64);
            while let Some(from) = start.take() {
                let request = RangeRequest::new(KeyRange::from(from), limit);
                match self
                    .shard_read(shard, ShardQuery::Range { slots: None, request }, consistency, deadline)
                    .await?
                {
                    ShardResponse::Range { mut page, .. } => {
                        let n = page.kvs.len() as u64;
                        if pick < n {
                            return Ok(Some(page.kvs.swap_remove(pick as usize).key));
                        }
                        pick -= n;
                        seen += n;
                        start = page.next_key;
                    }
                    other => return Err(unexpected(&other)),
                }
            }
            if seen == 0 {
                return Ok(None);
            }
            pick = random_below(seen);
        }
        Ok(None)
    }

    /// How many keys of `slot` this node serves to the connection (0 if it serves no shard owning
    /// it: Redis's answer for a slot a node does not hold).
    pub async fn count_slot(&self, slot: Slot, consistency: ReadConsistency) -> Result<u64, KeyError> {
        let Some(shard) = self.slot_shard(slot, consistency)? else { return Ok(0) };
        let query = ShardQuery::Count { slots: Some(SlotRange::single(slot)) };
        let deadline = self.deadline();
        let mut wait = super::RETRY_MIN;
        loop {
            match self.shard_read(shard, query.clone(), consistency, deadline).await? {
                ShardResponse::Count { keys, served } if !served.is_empty() => return Ok(keys),
                ShardResponse::Count { .. } => {}
                other => return Err(unexpected(&other)),
            }
            wait = not_served_yet(slot, wait, deadline).await?;
        }
    }

    /// At most `count` keys of `slot` this node serves to the connection, in key order.
    pub async fn keys_in_slot(
        &self,
        slot: Slot,
        count: usize,
        consistency: ReadConsistency,
    ) -> Result<Vec<Vec<u8>>, KeyError> {
        let Some(shard) = self.slot_shard(slot, consistency)? else { return Ok(Vec::new()) };
        let limit = self.limits().max_range_limit.max(1);
        let deadline = self.deadline();
        let mut wait = super::RETRY_MIN;
        let mut keys = Vec::new();
        let mut start = Some(Vec::new());
        while let Some(from) = start.take() {
            if keys.len() >= count {
                break;
            }
            let request = RangeRequest::new(KeyRange::from(from), limit.min(count - keys.len()));
            let query = ShardQuery::Range { slots: Some(SlotRange::single(slot)), request };
            match self.shard_read(shard, query, consistency, deadline).await? {
                ShardResponse::Range { page, served } if !served.is_empty() => {
                    keys.extend(page.kvs.into_iter().map(|kv| kv.key));
                    start = page.next_key;
                }
                ShardResponse::Range { .. } => {
                    // The slot is moving: start over once it is served again.
                    wait = not_served_yet(slot, wait, deadline).await?;
                    keys.clear();
                    start = Some(Vec::new());
                }
                other => return Err(unexpected(&other)),
            }
        }
        keys.truncate(count);
        Ok(keys)
    }

    /// The shard owning `slot` if this node serves it to the connection (see [`served_here`]).
    fn slot_shard(&self, slot: Slot, consistency: ReadConsistency) -> Result<Option<ShardId>, KeyError> {
        let status = self.status();
        if !status.map.bootstrapped {
            return Err(KeyError::ClusterDown("the shard map is not bootstrapped yet".into()));
        }
        let served = served_here(&status, consistency == ReadConsistency::Stale);
        Ok(status.map.owner(slot).filter(|shard| served.contains(shard)))
    }

    /// Ask every one of `shards` for the range read `query` at once; their pages in the same
    /// order, each with the slots it served. The first error is the answer.
    async fn gather(
        &self,
        shards: &[ShardId],
        query: ShardQuery,
        consistency: ReadConsistency,
        deadline: Instant,
    ) -> Result<Vec<(RangePage, Vec<SlotRange>)>, KeyError> {
        // Spawned, so that one shard's retries do not hold up the others'.
        let tasks: Vec<_> = shards
            .iter()
            .map(|&shard| tokio::spawn(self.shard_read(shard, query.clone(), consistency, deadline)))
            .collect();
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            let answer = task
                .await
                .map_err(|e| KeyError::Client(ClientError::Unknown(format!("a shard read failed: {e}"))))?;
            match answer? {
                ShardResponse::Range { page, served } => answers.push((page, served)),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(answers)
    }
}

/// A number in `0..n` (`n > 0`) from the OS's randomness (a front-door pick: no replica has to
/// agree on it).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness the first key is as good an answer as any.
    let _ = getrandom::getrandom(&mut bytes);
    ((u128::from(u64::from_le_bytes(bytes)) * u128::from(n)) >> 64) as u64
}

fn unexpected(answer: &ShardResponse) -> KeyError {
    KeyError::Client(ClientError::Unknown(format!("unexpected answer {answer:?}")))
}

/// Wait `wait` before asking again for `slot`, which its shard does not serve now (it is moving);
/// the next wait, or `Moving` once the deadline would pass.
async fn not_served_yet(
    slot: Slot,
    wait: std::time::Duration,
    deadline: Instant,
) -> Result<std::time::Duration, KeyError> {
    if Instant::now() + wait >= deadline {
        return Err(KeyError::Moving { slot: slot.get() });
    }
    tokio::time::sleep(wait).await;
    Ok((wait * 2).min(super::RETRY_MAX))
}

/// The shards a range delete of the slots `missing` is asked of: their owners in `map`, and both
/// ends of any move of theirs under way (whichever serves a slot when the delete gets there).
pub fn shards_for(map: &super::MapView, missing: &[SlotRange]) -> BTreeSet<ShardId> {
    let touches = |range: SlotRange| missing.iter().any(|m| m.overlaps(range));
    let owners = map.ranges.iter().filter(|(range, _)| touches(*range)).map(|&(_, shard)| shard);
    let moving = map.moves.iter().filter(|m| touches(m.range)).flat_map(|m| [m.from, m.to]);
    owners.chain(moving).filter(|shard| map.shards.contains_key(shard)).collect()
}

/// The slots of `runs` that none of `served` covers, as ordered disjoint runs.
pub fn subtract(runs: &[SlotRange], served: &[SlotRange]) -> Vec<SlotRange> {
    let mut left = vec![false; usize::from(SLOTS)];
    for run in runs {
        left[usize::from(run.start.get())..=usize::from(run.end.get())].fill(true);
    }
    for run in served {
        left[usize::from(run.start.get())..=usize::from(run.end.get())].fill(false);
    }
    let mut out: Vec<SlotRange> = Vec::new();
    for (n, _) in left.iter().enumerate().filter(|(_, &l)| l) {
        let s = slot(n as u32);
        match out.last_mut() {
            Some(last) if usize::from(last.end.get()) + 1 == n => last.end = s,
            _ => out.push(SlotRange::single(s)),
        }
    }
    out
}

/// Whether the `served` slot runs of all pages together cover every slot exactly once; else the
/// first slot served by none of them or by two.
pub fn covers_once<'a>(served: impl IntoIterator<Item = &'a [SlotRange]>) -> Result<(), Slot> {
    let mut runs: Vec<SlotRange> = served.into_iter().flatten().copied().collect();
    runs.sort();
    let mut next = 0u32; // the first slot not covered yet
    for run in runs {
        let (start, end) = (u32::from(run.start.get()), u32::from(run.end.get()));
        match start.cmp(&next) {
            // A gap before this run, or an overlap with the one before.
            std::cmp::Ordering::Greater => return Err(slot(next)),
            std::cmp::Ordering::Less => return Err(slot(start)),
            std::cmp::Ordering::Equal => next = end + 1,
        }
    }
    match next == u32::from(SLOTS) {
        true => Ok(()),
        false => Err(slot(next)),
    }
}

fn slot(n: u32) -> Slot {
    Slot::new(i64::from(n)).expect("below SLOTS")
}

/// Merge shards' pages of one range read into one page of at most `limit` keys and about
/// `max_bytes` (at least one key), in key order (see "Paging" in the module docs). A key found in
/// two pages (a node-scope read straddling a move) is kept once.
pub fn merge(pages: Vec<RangePage>, limit: usize, max_bytes: usize) -> RangePage {
    // Keys from the smallest point where some shard stopped early on are not known to be complete.
    let bound: Option<Vec<u8>> = pages.iter().filter_map(|p| p.next_key.clone()).min();
    let mut kvs: Vec<KeyValue> = pages
        .into_iter()
        .flat_map(|p| p.kvs)
        .filter(|kv| bound.as_ref().is_none_or(|b| kv.key < *b))
        .collect();
    kvs.sort_by(|a, b| a.key.cmp(&b.key));
    kvs.dedup_by(|b, a| a.key == b.key);
    let mut bytes = 0usize;
    let mut taken = 0;
    for kv in &kvs {
        let size = kv.key.len() + kv.value.len();
        if taken >= limit || (taken > 0 && bytes.saturating_add(size) > max_bytes) {
            break;
        }
        bytes += size;
        taken += 1;
    }
    let next_key = match kvs.get(taken) {
        Some(first_left) => Some(first_left.key.clone()),
        None => bound,
    };
    kvs.truncate(taken);
    RangePage { kvs, next_key }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: u16, b: u16) -> SlotRange {
        SlotRange::new(Slot::new(a.into()).unwrap(), Slot::new(b.into()).unwrap()).unwrap()
    }

    fn page(keys: &[&str], next: Option<&str>) -> RangePage {
        RangePage {
            kvs: keys
                .iter()
                .map(|k| KeyValue {
                    key: k.as_bytes().to_vec(),
                    value: b"v".to_vec(),
                    create_revision: 1,
                    mod_revision: 1,
                    version: 1,
                    expires_at: None,
                })
                .collect(),
            next_key: next.map(|n| n.as_bytes().to_vec()),
        }
    }

    fn keys(page: &RangePage) -> (Vec<String>, Option<String>) {
        (
            page.kvs.iter().map(|kv| String::from_utf8(kv.key.clone()).unwrap()).collect(),
            page.next_key.as_ref().map(|k| String::from_utf8(k.clone()).unwrap()),
        )
    }

    /// A range delete asks again for exactly the slots no shard served, of their owners and of
    /// both ends of a move of theirs.
    #[test]
    fn a_range_delete_asks_again_for_the_unserved_slots_only() {
        let all = [SlotRange::everything()];
        assert_eq!(subtract(&all, &[range(0, 16383)]), vec![]);
        assert_eq!(subtract(&all, &[range(200, 16383), range(0, 99)]), vec![range(100, 199)]);
        // Served twice (a shard before a move's fence, another after its activation): once is enough.
        assert_eq!(subtract(&all, &[range(0, 8200), range(8192, 16383)]), vec![]);
        assert_eq!(subtract(&[range(100, 199)], &[range(150, 150)]), vec![range(100, 149), range(151, 199)]);
        assert_eq!(subtract(&all, &[]), all.to_vec());

        // Two shards, slots 100-199 moving from shard 1 to shard 2.
        let status = super::super::tests::two_shards(concord_shard::map::Phase::Fenced { source_index: 1 });
        let map = &status.map;
        let both: BTreeSet<ShardId> = [ShardId(1), ShardId(2)].into();
        assert_eq!(shards_for(map, &all), both);
        assert_eq!(shards_for(map, &[range(150, 160)]), both, "the move's source and target");
        assert_eq!(shards_for(map, &[range(0, 99)]), [ShardId(1)].into());
        assert_eq!(shards_for(map, &[range(9000, 9001)]), [ShardId(2)].into());
    }

    #[test]
    fn slots_must_be_covered_exactly_once() {
        assert_eq!(covers_once([&[range(0, 16383)][..]]), Ok(()));
        assert_eq!(covers_once([&[range(8192, 16383)][..], &[range(0, 8191)][..]]), Ok(()));
        // A moving slot served by nobody; the same slot served by two shards; the ends missing.
        let gap = [&[range(0, 99), range(101, 8191)][..], &[range(8192, 16383)][..]];
        assert_eq!(covers_once(gap), Err(Slot::new(100).unwrap()));
        let twice = [&[range(0, 8200)][..], &[range(8192, 16383)][..]];
        assert_eq!(covers_once(twice), Err(Slot::new(8192).unwrap()));
        assert_eq!(covers_once([&[range(1, 16383)][..]]), Err(Slot::new(0).unwrap()));
        assert_eq!(covers_once([&[range(0, 16382)][..]]), Err(Slot::new(16383).unwrap()));
        assert_eq!(covers_once(Vec::<&[SlotRange]>::new()), Err(Slot::new(0).unwrap()));
    }

    #[test]
    fn pages_merge_in_key_order_up_to_the_limit() {
        // Both complete: the first `limit` of all, and the next starts at the first left out.
        let merged = merge(vec![page(&["a", "d", "e"], None), page(&["b", "c"], None)], 4, usize::MAX);
        assert_eq!(keys(&merged), (vec!["a".into(), "b".into(), "c".into(), "d".into()], Some("e".into())));
        let merged = merge(vec![page(&["a", "d"], None), page(&["b"], None)], 4, usize::MAX);
        assert_eq!(keys(&merged), (vec!["a".into(), "b".into(), "d".into()], None));
        // A shard that stopped at "c" (its limit): keys from "c" on are not complete anywhere.
        let merged = merge(vec![page(&["a", "b"], Some("c")), page(&["bb", "d", "e"], None)], 2, usize::MAX);
        assert_eq!(keys(&merged), (vec!["a".into(), "b".into()], Some("bb".into())));
        let merged = merge(vec![page(&["a", "b"], Some("c")), page(&["bb", "d"], None)], 5, usize::MAX);
        assert_eq!(keys(&merged), (vec!["a".into(), "b".into(), "bb".into()], Some("c".into())));
        // Bytes: at least one key, then no more past the bound.
        let merged = merge(vec![page(&["a", "b", "c"], None)], 10, 1);
        assert_eq!(keys(&merged), (vec!["a".into()], Some("b".into())));
        // A key seen twice is kept once; nothing at all is an empty last page.
        let merged = merge(vec![page(&["a", "b"], None), page(&["b"], None)], 10, usize::MAX);
        assert_eq!(keys(&merged), (vec!["a".into(), "b".into()], None));
        assert_eq!(keys(&merge(vec![], 10, usize::MAX)), (vec![], None));
    }

    /// Paging through merged pages of shards that each hold part of the keys visits every key
    /// once, in order, whatever the page size.
    #[test]
    fn a_cursor_walks_every_key_once() {
        let shards: Vec<Vec<String>> =
            (0..3).map(|s| (0..20).map(|i| format!("k{:03}", i * 3 + s)).collect()).collect();
        let read = |shard: &[String], start: &str, limit: usize| {
            let rest: Vec<&str> = shard.iter().map(String::as_str).filter(|k| *k >= start).collect();
            page(&rest[..rest.len().min(limit)], rest.get(limit).copied())
        };
        for limit in [1, 2, 5, 7, 100] {
            let mut seen = Vec::new();
            let mut start = String::new();
            loop {
                let pages = shards.iter().map(|s| read(s, &start, limit)).collect();
                let (page, next) = keys(&merge(pages, limit, usize::MAX));
                assert!(page.len() <= limit && !page.is_empty());
                seen.extend(page);
                match next {
                    Some(next) => start = next,
                    None => break,
                }
            }
            let mut all: Vec<String> = shards.concat();
            all.sort();
            assert_eq!(seen, all, "limit {limit}");
        }
    }
}
