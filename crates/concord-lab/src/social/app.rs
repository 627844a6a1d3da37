//! The platform's logic: what each user action asks of storage, and what the answers mean.
//!
//! Written once against [`SocialStore`]: the same code runs on the simulated deployment and on
//! any other store that speaks the four verbs. An action becomes a few storage operations started
//! at once; the action finishes when all of them have, and its record says how it went.
//!
//! ## The keys
//!
//! | key | holds | written by | read by |
//! |---|---|---|---|
//! | `post:{id}` | author and text | post | (a post page) |
//! | `posts:{user}` | the user's newest post ids (list, ≤ [`KEEP`]) | post | timeline reads, merge-on-read |
//! | `tl:{user}` | the user's home timeline: post ids pushed by fan-out (list, ≤ [`KEEP`]) | fan-out | timeline reads |
//! | `following:{user}`, `followers:{user}` | the follow graph (sets) | follow | – |
//! | `notif:{user}` | the user's newest notifications (list, ≤ 50) | like | notification reads |
//! | `likes:{post}` | the like count (PN-counter, eventual store) | like | like-count reads |
//!
//! Post ids grow with time (a global sequence, as Snowflake ids do), so merging timelines is
//! sorting ids.
//!
//! ## The hybrid timeline (Twitter, 2013)
//!
//! *Fan-out on write*: a post is pushed into every follower's `tl:` list. A read is then one list
//! read – cheap – but a post costs one write per follower: 80 000 writes for an account with 80 000
//! followers, all at once, on every shard. *Merge on read*: a post is written once; each reader
//! fetches the lists of everyone they follow and merges – a read costs one request per followee.
//! The hybrid does the first for accounts with at most `fanout_threshold` followers and the second
//! for the few above it (the celebrities), whose `posts:` lists every reader fetches – through the
//! cache tier, since they are the hottest keys on the platform.
//!
//! **The follow graph the fan-out walks** is the model's ([`Users`]): the 100 000-user graph is
//! generated, not loaded through the store (two million writes before the run would cost more
//! than the run). Follows made during the run are written to the store (`SADD` on both sides) and
//! then join the model's graph.

use super::model::{UserId, Users};
use super::store::{Done, Reply, SocialStore, StoreOp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Entries kept in a post list or a timeline.
pub const KEEP: usize = 100;
/// Posts a timeline read shows.
pub const PAGE: usize = 20;
/// Notifications kept.
const NOTIFICATIONS: usize = 50;

/// The design decisions a student may change.
#[derive(Clone, Debug, Serialize)]
pub struct AppConfig {
    /// Accounts with more followers than this are merged on read (`usize::MAX`: fan out all).
    pub fanout_threshold: usize,
    /// Read celebrities' post lists through the cache tier.
    pub cache: bool,
    /// How long a cached post list is served (ms): a celebrity's post is this late at most.
    pub cache_ttl_ms: u64,
    /// The fan-out service's pipeline: at most this many timeline writes per request, grouped by
    /// shard ([`StoreOp::PushMany`]). 1: one request per follower.
    pub fanout_batch: usize,
}

/// What a user does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Post,
    ReadTimeline,
    Like,
    ReadLikes,
    Follow,
    ReadNotifications,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Post, Kind::ReadTimeline, Kind::Like, Kind::ReadLikes, Kind::Follow, Kind::ReadNotifications];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::ReadTimeline => "read timeline",
            Kind::Like => "like",
            Kind::ReadLikes => "read likes",
            Kind::Follow => "follow",
            Kind::ReadNotifications => "read notifications",
        }
    }
}

/// A finished user action, as the user saw it.
#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    pub kind: Kind,
    pub user: UserId,
    pub start_ms: f64,
    pub end_ms: f64,
    /// Every storage operation succeeded.
    pub ok: bool,
    /// Storage operations the action needed (a timeline read's cost).
    pub requests: usize,
    /// Shards its strong operations touched.
    pub shards: Vec<u32>,
    /// A follow whose two writes did not both succeed: the graph is now one-sided.
    pub half_done: bool,
    /// A timeline read: posts it should have shown and did not (see [`Social::missing`]), with
    /// the age of the oldest one missed (ms since it was acknowledged).
    pub missing: usize,
    pub oldest_missing_ms: f64,
    /// A like-count read: the count it returned, and the likes acknowledged before it started.
    pub count: Option<(i64, i64)>,
}

/// A post's fan-out: how many timeline writes, and when the last one finished.
#[derive(Clone, Debug, Serialize)]
pub struct FanOut {
    pub post: u64,
    pub author: UserId,
    pub followers: usize,
    /// Timeline writes issued (0 for a merged-on-read author).
    pub writes: usize,
    /// Timeline writes that failed.
    pub failed: usize,
    /// Storage operations the writes were sent in (one per write unpipelined; one pipelined
    /// operation, itself one request per shard and batch, otherwise).
    pub operations: usize,
    pub acked_ms: f64,
    /// When the last timeline write finished (the post is then in every follower's timeline).
    pub done_ms: Option<f64>,
}

/// An action in progress.
struct Task {
    kind: Kind,
    user: UserId,
    start_ms: f64,
    outstanding: usize,
    requests: usize,
    failed: usize,
    shards: BTreeSet<u32>,
    /// Lists fetched (a timeline read), counts read (a like-count read).
    lists: Vec<Vec<u64>>,
    count: Option<i64>,
    /// A post: its id; a like or like-count read: the post; a follow: the account followed.
    post: Option<u64>,
    target: Option<UserId>,
    /// The likes acknowledged for `post` when a like-count read started.
    acked_likes: i64,
    /// A like: its counter increment (the notification is the other operation).
    counter_op: Option<u64>,
}

/// The platform: the model of its users, and the actions in flight.
pub struct Social {
    pub config: AppConfig,
    pub users: Users,
    next_post: u64,
    tasks: BTreeMap<u64, Task>,
    next_task: u64,
    /// Storage operation → (task, or fan-out of a post).
    ops: BTreeMap<u64, Owner>,
    /// Each author's newest acknowledged posts: (id, acknowledged at).
    posted: BTreeMap<UserId, VecDeque<(u64, f64)>>,
    /// Follows made during the run: (follower, followee) → when.
    followed_at: BTreeMap<(UserId, UserId), f64>,
    /// The newest posts (for likes to pick from), and each post's author.
    pub recent: VecDeque<(u64, UserId)>,
    /// Likes acknowledged per post.
    pub likes_acked: BTreeMap<u64, i64>,
    /// Likes whose outcome is unknown (timed out) per post.
    pub likes_unknown: BTreeMap<u64, i64>,
    pub records: Vec<ActionRecord>,
    pub fanouts: BTreeMap<u64, FanOut>,
}

#[derive(Clone, Copy)]
enum Owner {
    Task(u64),
    /// The fan-out of a post: one timeline write, or a [`StoreOp::PushMany`] of this many.
    FanOut(u64, Option<usize>),
}

fn list_ids(reply: &Reply) -> Vec<u64> {
    match reply {
        Reply::List(items) => items.iter().filter_map(|s| s.parse().ok()).collect(),
        _ => Vec::new(),
    }
}

impl Social {
    pub fn new(config: AppConfig, users: Users) -> Social {
        Social {
            config,
            users,
            next_post: 1,
            tasks: BTreeMap::new(),
            next_task: 0,
            ops: BTreeMap::new(),
            posted: BTreeMap::new(),
            followed_at: BTreeMap::new(),
            recent: VecDeque::new(),
            likes_acked: BTreeMap::new(),
            likes_unknown: BTreeMap::new(),
            records: Vec::new(),
            fanouts: BTreeMap::new(),
        }
    }

    /// Whether `user`'s posts are merged on read rather than fanned out.
    pub fn is_celebrity(&self, user: UserId) -> bool {
        self.users.followers[user as usize].len() > self.config.fanout_threshold
    }

    fn task(&mut self, kind: Kind, user: UserId, now: f64) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.insert(
            id,
            Task {
                kind,
                user,
                start_ms: now,
                outstanding: 0,
                requests: 0,
                failed: 0,
                shards: BTreeSet::new(),
                lists: Vec::new(),
                count: None,
                post: None,
                target: None,
                acked_likes: 0,
                counter_op: None,
            },
        );
        id
    }

    fn issue(&mut self, store: &mut dyn SocialStore, task: u64, user: UserId, op: StoreOp) -> u64 {
        let id = store.submit(user, op);
        self.ops.insert(id, Owner::Task(task));
        let t = self.tasks.get_mut(&task).expect("a live task");
        t.outstanding += 1;
        t.requests += 1;
        id
    }

    /// `user` posts. The post is acknowledged once it is stored and in the author's list; the
    /// fan-out to followers' timelines starts then.
    pub fn post(&mut self, store: &mut dyn SocialStore, user: UserId) -> u64 {
        let id = self.next_post;
        self.next_post += 1;
        let task = self.task(Kind::Post, user, store.now_ms());
        self.tasks.get_mut(&task).expect("new").post = Some(id);
        let text = format!("{user}:post {id}");
        self.issue(store, task, user, StoreOp::Strong(vec![vec!["SET".into(), format!("post:{id}"), text]]));
        self.issue(store, task, user, push(format!("posts:{user}"), id, KEEP));
        id
    }

    /// `user` reads their home timeline: their fanned-out list, merged with the post lists of the
    /// celebrities they follow.
    pub fn read_timeline(&mut self, store: &mut dyn SocialStore, user: UserId) {
        let task = self.task(Kind::ReadTimeline, user, store.now_ms());
        let range = |key: String| vec!["LRANGE".to_string(), key, "0".into(), (PAGE - 1).to_string()];
        self.issue(store, task, user, StoreOp::Strong(vec![range(format!("tl:{user}"))]));
        let celebrities: Vec<UserId> =
            self.users.following[user as usize].iter().copied().filter(|&c| self.is_celebrity(c)).collect();
        for c in celebrities {
            let argv = range(format!("posts:{c}"));
            let op = if self.config.cache {
                StoreOp::CachedRead { argv, ttl_ms: self.config.cache_ttl_ms }
            } else {
                StoreOp::Strong(vec![argv])
            };
            self.issue(store, task, user, op);
        }
    }

    /// `user` likes `post` (by `author`): the counter, and a notification for the author.
    pub fn like(&mut self, store: &mut dyn SocialStore, user: UserId, post: u64, author: UserId) {
        let task = self.task(Kind::Like, user, store.now_ms());
        self.tasks.get_mut(&task).expect("new").post = Some(post);
        let add =
            self.issue(store, task, user, StoreOp::CounterAdd { key: format!("likes:{post}"), delta: 1 });
        self.tasks.get_mut(&task).expect("new").counter_op = Some(add);
        self.issue(
            store,
            task,
            user,
            push(format!("notif:{author}"), format!("like:{post}:{user}"), NOTIFICATIONS),
        );
    }

    /// `user` reads the like count of `post`.
    pub fn read_likes(&mut self, store: &mut dyn SocialStore, user: UserId, post: u64) {
        let task = self.task(Kind::ReadLikes, user, store.now_ms());
        let acked = self.likes_acked.get(&post).copied().unwrap_or(0);
        let t = self.tasks.get_mut(&task).expect("new");
        t.post = Some(post);
        t.acked_likes = acked;
        self.issue(store, task, user, StoreOp::CounterGet { key: format!("likes:{post}") });
    }

    /// `user` follows `target`: two writes, on the two users' keys – on two shards, usually.
    pub fn follow(&mut self, store: &mut dyn SocialStore, user: UserId, target: UserId) {
        let task = self.task(Kind::Follow, user, store.now_ms());
        self.tasks.get_mut(&task).expect("new").target = Some(target);
        let sadd =
            |key: String, member: UserId| StoreOp::Strong(vec![vec!["SADD".into(), key, member.to_string()]]);
        self.issue(store, task, user, sadd(format!("following:{user}"), target));
        self.issue(store, task, user, sadd(format!("followers:{target}"), user));
    }

    /// `user` reads their notifications.
    pub fn read_notifications(&mut self, store: &mut dyn SocialStore, user: UserId) {
        let task = self.task(Kind::ReadNotifications, user, store.now_ms());
        let argv = vec!["LRANGE".into(), format!("notif:{user}"), "0".into(), "19".into()];
        self.issue(store, task, user, StoreOp::Strong(vec![argv]));
    }

    /// Actions (and fan-outs) still waiting for storage.
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Hand the app the operations the store finished.
    pub fn on_done(&mut self, store: &mut dyn SocialStore, done: Vec<Done>) {
        for d in done {
            match self.ops.remove(&d.id) {
                Some(Owner::Task(task)) => self.task_op_done(store, task, d),
                Some(Owner::FanOut(post, many)) => {
                    let f = self.fanouts.get_mut(&post).expect("fan-out of a known post");
                    f.failed += match (&d.reply, many) {
                        (Ok(Reply::Int(n)), Some(keys)) => keys.saturating_sub(*n as usize),
                        (Ok(_), _) => 0,
                        (Err(_), keys) => keys.unwrap_or(1),
                    };
                    f.done_ms = Some(f.done_ms.map_or(d.done_ms, |t| t.max(d.done_ms)));
                }
                None => {}
            }
        }
    }

    fn task_op_done(&mut self, store: &mut dyn SocialStore, task: u64, d: Done) {
        let t = self.tasks.get_mut(&task).expect("a live task");
        t.outstanding -= 1;
        if let Some(s) = d.shard {
            t.shards.insert(s);
        }
        match &d.reply {
            Ok(reply) => {
                if t.kind == Kind::ReadTimeline {
                    t.lists.push(list_ids(reply));
                }
                if let (Kind::ReadLikes, Reply::Int(n)) = (t.kind, reply) {
                    t.count = Some(*n);
                }
                if t.counter_op == Some(d.id) {
                    let post = t.post.expect("a like names its post");
                    *self.likes_acked.entry(post).or_default() += 1;
                }
            }
            Err(e) => {
                t.failed += 1;
                if t.counter_op == Some(d.id) && e == "timed out" {
                    let post = t.post.expect("a like names its post");
                    *self.likes_unknown.entry(post).or_default() += 1;
                }
            }
        }
        if t.outstanding > 0 {
            return;
        }
        let t = self.tasks.remove(&task).expect("present");
        let end_ms = d.done_ms;
        let mut record = ActionRecord {
            kind: t.kind,
            user: t.user,
            start_ms: t.start_ms,
            end_ms,
            ok: t.failed == 0,
            requests: t.requests,
            shards: t.shards.into_iter().collect(),
            half_done: t.kind == Kind::Follow && t.failed == 1,
            missing: 0,
            oldest_missing_ms: 0.0,
            count: None,
        };
        match t.kind {
            Kind::Post if record.ok => {
                let post = t.post.expect("a post has an id");
                self.acknowledged(store, t.user, post, end_ms);
            }
            Kind::ReadTimeline if record.ok => {
                // The page shown is `merge(lists)`; what it lacks is judged against the model.
                let (missing, oldest) = self.missing(t.user, t.start_ms, &t.lists);
                record.missing = missing;
                record.oldest_missing_ms = oldest;
            }
            Kind::ReadLikes => record.count = t.count.map(|c| (c, t.acked_likes)),
            Kind::Follow if record.ok => {
                let target = t.target.expect("a follow names its target");
                if self.users.follow(t.user, target) {
                    self.followed_at.insert((t.user, target), end_ms);
                }
            }
            _ => {}
        }
        self.records.push(record);
    }

    /// A post was acknowledged: remember it, and fan it out unless its author is merged on read.
    fn acknowledged(&mut self, store: &mut dyn SocialStore, author: UserId, post: u64, at_ms: f64) {
        let list = self.posted.entry(author).or_default();
        list.push_front((post, at_ms));
        list.truncate(PAGE);
        self.recent.push_back((post, author));
        if self.recent.len() > 1_000 {
            self.recent.pop_front();
        }
        let followers = self.users.followers[author as usize].clone();
        let celebrity = self.is_celebrity(author);
        let mut f = FanOut {
            post,
            author,
            followers: followers.len(),
            writes: 0,
            failed: 0,
            operations: 0,
            acked_ms: at_ms,
            done_ms: None,
        };
        if !celebrity && !followers.is_empty() {
            if self.config.fanout_batch <= 1 {
                for &follower in &followers {
                    let id = store.submit(author, push(format!("tl:{follower}"), post, KEEP));
                    self.ops.insert(id, Owner::FanOut(post, None));
                }
                f.operations = followers.len();
            } else {
                let keys: Vec<String> = followers.iter().map(|u| format!("tl:{u}")).collect();
                let op = StoreOp::PushMany {
                    keys,
                    item: post.to_string(),
                    keep: KEEP,
                    per_request: self.config.fanout_batch,
                };
                let id = store.submit(author, op);
                self.ops.insert(id, Owner::FanOut(post, Some(followers.len())));
                f.operations = 1;
            }
            f.writes = followers.len();
        }
        self.fanouts.insert(post, f);
    }

    /// Posts a timeline read begun at `start_ms` should have shown and did not: posts by the
    /// accounts `user` follows, acknowledged before the read began (and after the follow), among
    /// the newest [`PAGE`] of them. Returns how many, and the age of the oldest one missed.
    fn missing(&self, user: UserId, start_ms: f64, lists: &[Vec<u64>]) -> (usize, f64) {
        let shown: BTreeSet<u64> = merge(lists).into_iter().collect();
        let mut expected: Vec<(u64, f64)> = Vec::new();
        for &c in &self.users.following[user as usize] {
            let since = self.followed_at.get(&(user, c)).copied().unwrap_or(f64::NEG_INFINITY);
            if let Some(posts) = self.posted.get(&c) {
                expected.extend(posts.iter().filter(|(_, at)| *at < start_ms && *at >= since));
            }
        }
        expected.sort_by_key(|e| std::cmp::Reverse(e.0));
        expected.truncate(PAGE);
        let missed: Vec<f64> =
            expected.iter().filter(|(id, _)| !shown.contains(id)).map(|(_, at)| start_ms - at).collect();
        (missed.len(), missed.iter().copied().fold(0.0, f64::max))
    }

    /// The newest post of `author`, if acknowledged.
    pub fn latest_post(&self, author: UserId) -> Option<u64> {
        self.posted.get(&author)?.front().map(|(id, _)| *id)
    }
}

/// `LPUSH key item` then `LTRIM key 0 keep-1`: one atomic step on the key's shard.
fn push(key: String, item: impl ToString, keep: usize) -> StoreOp {
    super::store::push_calls(&key, &item.to_string(), keep)
}

/// A timeline page: the newest [`PAGE`] ids of the lists, merged.
pub fn merge(lists: &[Vec<u64>]) -> Vec<u64> {
    let all: BTreeSet<u64> = lists.iter().flatten().copied().collect();
    all.into_iter().rev().take(PAGE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_newest_page_without_duplicates() {
        let merged = merge(&[vec![30, 20, 10], vec![25, 20, 5]]);
        assert_eq!(merged, vec![30, 25, 20, 10, 5]);
        let long: Vec<u64> = (1..=50).collect();
        assert_eq!(merge(&[long]).len(), PAGE);
    }
}
