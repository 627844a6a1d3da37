//! Redis's data model inside the replicated state machine: hashes, lists, sets and sorted sets.
//!
//! Strings map onto the store's entries directly (the front door turns `SET` into a
//! [`Write::Put`](crate::Write::Put)). Collections cannot: a million-member sorted set held as one
//! value would rewrite a megabyte to change one member. So a Redis command on a collection travels
//! through the log *as the command* – its arguments, a [`RedisExec`] – and every replica's
//! interpreter (this module) runs it against its store, computing the same reply and the same
//! records. One `MULTI … EXEC` is one [`RedisExec`] of many [`RedisCall`]s: one log entry, one
//! revision, atomic.
//!
//! # How a collection is stored
//! Like Apache Kvrocks, one **record per member**, in the same engine as the strings, under keys
//! no client can write (keys starting with [`INTERNAL_PREFIX`], refused by the limits):
//!
//! | record | key | value |
//! |---|---|---|
//! | the key itself | `key` | empty – its revisions, version and TTL are the collection's |
//! | header | `FF FF` · `len(key)` (u32, big-endian) · `key` · `00` | [`Header`]: kind, length, list bounds |
//! | member | … · `01` · field / member / list index | hash: the value; list: the element; set: empty; sorted set: the score |
//! | score index | … · `02` · score (order-preserving) · member | empty (sorted sets: members in score order) |
//!
//! So changing one member changes two or three records, each a point write in redb; the user key's
//! entry keeps the collection's metadata, so `TTL`, `EXPIRE`, `DEL`, `WATCH` (its mod revision),
//! `KEYS` and `SCAN` treat collections and strings alike. The key's own value is empty, and a
//! string read that finds an empty value asks for the header before it answers: only then can a
//! string `""` and a collection be told apart, which keeps `GET` on the common path at one lookup.
//! Deleting or overwriting a collection (`DEL`, `SET`, expiry) removes its records
//! ([`KvStore`](crate::KvStore) does it in one place, `remove_collection`); an empty collection
//! is deleted, as Redis does.
//!
//! Records of a key share the key's length-prefixed bytes, so they sort together and a scan of one
//! collection is one range; the internal prefix sorts after every user key that does not start with
//! `FF FF`, so user-visible scans stop before it ([`user_range_end`]). Sharding hashes a record by
//! its owner's key ([`owner_key`]), so a collection moves with its key.
//!
//! # Families
//! One module per Redis group; each lists its commands in a `COMMANDS` table.
//!
//! | module | commands | worth knowing |
//! |---|---|---|
//! | [`keyspace`] | `TYPE`, `EXPIRE` and family, `PERSIST`, `DEL`, `RENAME`, `COPY`, `TOUCH`, `RANDOMKEY`, `FLUSHALL`/`FLUSHDB` | `FLUSHALL` empties the whole store in one log entry |
//! | [`hash`] | `HSET` … `HGETALL`, `HINCRBYFLOAT`, `HRANDFIELD`, `HSCAN` | `HINCRBYFLOAT` adds in emulated C `long double`, for redis-server's exact text |
//! | [`set`] | `SADD`, `SREM`, `SPOP`, `SMOVE`, `SINTER`/`SUNION`/`SDIFF` (+`STORE`), `SINTERCARD`, `SSCAN`, … | |
//! | [`list`] | `LPUSH` … `LMPOP`, blocking pops (run once; the front door waits) | |
//! | [`zset`] | `ZADD` … `ZRANGE` (all forms), `ZRANGESTORE`, `ZUNION`/`ZINTER`/`ZDIFF` (+`STORE`), `ZINTERCARD`, `ZMPOP`/`BZMPOP`, `ZSCAN` | a member record and a score-index record per member |
//! | [`string`] | every string command, `LCS` | `LCS IDX` walks the table as Redis does, for its exact ranges |
//! | [`sort`] | `SORT`, `SORT_RO` | `BY`/`GET` patterns read keys the front door cannot know in advance (refused in the sharded mode, as Redis Cluster) |
//!
//! Members, fields and `*SCAN` pages come in byte order (redis-server's order is its hash
//! table's; the differential tests compare such replies as sets). `*SCAN` cursors name the next
//! member ([`crate::cursor`]).
//!
//! # Determinism
//! The interpreter reads no clock (time arrives in the command), no randomness but a generator
//! seeded from the command and the key (`SPOP`, `SRANDMEMBER`, `HRANDFIELD`: see `random.rs`), and
//! iterates only ordered maps: every replica computes the same bytes.

pub mod hash;
pub mod keyspace;
pub mod list;
pub mod longdouble;
pub mod lua;
pub mod random;
mod reply;
pub mod script;
pub mod set;
pub mod sort;
pub mod string;
pub mod zset;

pub use reply::{format_double, Reply};

use crate::command::prefix_end;
use crate::engine::{Engine, EngineRead};
use crate::store::Entry;
use concord_core::Time;
use serde::{Deserialize, Serialize};

/// Keys starting with these bytes hold collections' records; clients cannot name them.
pub const INTERNAL_PREFIX: [u8; 2] = [0xff, 0xff];

/// One Redis command: `argv[0]` is its name (any case), the rest its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisCall {
    pub argv: Vec<Vec<u8>>,
}

impl RedisCall {
    pub fn new(argv: Vec<Vec<u8>>) -> RedisCall {
        RedisCall { argv }
    }

    /// The command's name, lowercase.
    pub fn name(&self) -> String {
        self.argv.first().map(|n| String::from_utf8_lossy(n).to_ascii_lowercase()).unwrap_or_default()
    }
}

/// Redis commands run as one atomic step of the state machine (one log entry, one revision).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisExec {
    /// Every key the calls touch, as the front door found them from the command table: shard
    /// routing and the limits look at these.
    pub keys: Vec<Vec<u8>>,
    /// `WATCH`: each key's mod revision when the client watched it (0: absent). If any differs,
    /// nothing runs and the answer's `replies` is `None` (`EXEC` answers a nil array).
    pub watch: Vec<(Vec<u8>, u64)>,
    /// The commands, in order: one, or a whole `MULTI … EXEC`.
    pub calls: Vec<RedisCall>,
}

impl RedisExec {
    /// The listed keys, then the watched ones.
    pub fn keys(&self) -> Vec<&[u8]> {
        self.keys.iter().chain(self.watch.iter().map(|(key, _)| key)).map(Vec::as_slice).collect()
    }

    /// A read-only call as a query, its keys the call's arguments after the name that the
    /// interpreter's families take as keys (the first; tests and tools – the front door computes
    /// keys from its command table).
    pub fn read(call: RedisCall) -> RedisExec {
        RedisExec { keys: call.argv.get(1).cloned().into_iter().collect(), watch: vec![], calls: vec![call] }
    }
}

/// What kind of value a key holds (Redis's `TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    String,
    Hash,
    List,
    Set,
    ZSet,
}

impl Kind {
    /// The name `TYPE` answers.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }
}

/// A collection's header record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub kind: Kind,
    /// Members (hash fields, list elements, set or sorted-set members).
    pub len: u64,
    /// Lists: the index of the first element; elements sit at `head..tail`.
    pub head: i64,
    /// Lists: one past the index of the last element.
    pub tail: i64,
}

impl Header {
    pub fn new(kind: Kind) -> Header {
        Header { kind, len: 0, head: 0, tail: 0 }
    }
}

/// Record tags: the byte after the owner key.
const HEADER_TAG: u8 = 0;
const MEMBER_TAG: u8 = 1;
const INDEX_TAG: u8 = 2;

/// The bytes every record of `key` starts with.
pub fn record_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INTERNAL_PREFIX.len() + 4 + key.len() + 1);
    out.extend_from_slice(&INTERNAL_PREFIX);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn record_key(key: &[u8], tag: u8, sub: &[u8]) -> Vec<u8> {
    let mut out = record_prefix(key);
    out.push(tag);
    out.extend_from_slice(sub);
    out
}

/// The user key a record belongs to (`None`: `key` is not a record). Sharding uses it, so a
/// collection's records hash to their key's slot.
pub fn owner_key(key: &[u8]) -> Option<&[u8]> {
    let rest = key.strip_prefix(&INTERNAL_PREFIX[..])?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    rest.get(4..4 + len)
}

/// Whether `key` is one clients may not name.
pub fn is_internal(key: &[u8]) -> bool {
    key.starts_with(&INTERNAL_PREFIX)
}

/// Where user-visible scans end: the first internal key.
pub fn user_range_end() -> &'static [u8] {
    &INTERNAL_PREFIX
}

/// The sharded mode's view of the key space: which hash slots the state machine running a command
/// serves. Scripts check their `redis.call`s against it (see [`script`]); without one (the
/// other modes) every key is local.
pub trait Slots {
    /// The key's hash slot (Redis Cluster's CRC16 of the key or its `{hash tag}`).
    fn slot(&self, key: &[u8]) -> u16;
    /// Whether this state machine serves `slot` at this point of its log.
    fn serves(&self, slot: u16) -> bool;
}

/// Read access to the store for the interpreter.
pub struct View<'a> {
    engine: &'a dyn EngineRead,
    /// The command's time when it runs through the log (inside a [`RedisExec`]); `None` for a
    /// query, which has no clock the replicas agree on (`TTL` needs one: see `keyspace`).
    pub now: Option<Time>,
    /// The slots served here, in the sharded mode.
    pub slots: Option<&'a dyn Slots>,
}

impl<'a> View<'a> {
    pub fn new(engine: &'a dyn EngineRead) -> View<'a> {
        View { engine, now: None, slots: None }
    }

    /// The key's entry (strings: the value; collections: the metadata).
    pub fn entry(&self, key: &[u8]) -> Option<Entry> {
        self.engine.get(key)
    }

    /// The kind of value `key` holds (`None`: absent).
    pub fn kind(&self, key: &[u8]) -> Option<Kind> {
        let entry = self.engine.get(key)?;
        Some(self.kind_of(key, &entry))
    }

    /// The kind of the value in `entry`, stored under `key`.
    pub fn kind_of(&self, key: &[u8], entry: &Entry) -> Kind {
        if !entry.value.is_empty() {
            return Kind::String;
        }
        self.header(key).map_or(Kind::String, |h| h.kind)
    }

    pub fn header(&self, key: &[u8]) -> Option<Header> {
        let entry = self.engine.get(&record_key(key, HEADER_TAG, &[]))?;
        postcard::from_bytes(&entry.value).ok()
    }

    /// The collection of `kind` under `key`: `Ok(None)` if absent, WRONGTYPE if another kind.
    pub fn collection(&self, key: &[u8], kind: Kind) -> Result<Option<Header>, Reply> {
        match self.kind(key) {
            None => Ok(None),
            Some(k) if k == kind => Ok(self.header(key)),
            Some(_) => Err(Reply::wrong_type()),
        }
    }

    /// The store's revision: what every replica agrees on at this point of the log.
    pub fn revision(&self) -> u64 {
        self.engine.revision()
    }

    pub fn member(&self, key: &[u8], sub: &[u8]) -> Option<Vec<u8>> {
        self.engine.get(&record_key(key, MEMBER_TAG, sub)).map(|e| e.value)
    }

    /// Visit `key`'s members with sub-keys from `from` on, in order, until `visit` returns false.
    pub fn members(&self, key: &[u8], from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
        self.scan_tag(key, MEMBER_TAG, from, visit)
    }

    /// Visit `key`'s score-index records (sorted sets) from `from` on.
    pub fn index(&self, key: &[u8], from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
        self.scan_tag(key, INDEX_TAG, from, visit)
    }

    /// Visit the user keys (not collections' records) that start with `prefix`, in order, until
    /// `visit` returns false.
    pub fn user_keys(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &Entry) -> bool) {
        self.user_keys_from(prefix, prefix, visit)
    }

    /// [`View::user_keys`] from `start` on (`start` at or after `prefix`).
    pub fn user_keys_from(&self, start: &[u8], prefix: &[u8], visit: &mut dyn FnMut(&[u8], &Entry) -> bool) {
        let end = match prefix_end(prefix) {
            Some(end) if end.as_slice() < user_range_end() => end,
            _ => user_range_end().to_vec(),
        };
        self.engine.scan(start, Some(&end), visit);
    }

    fn scan_tag(&self, key: &[u8], tag: u8, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
        let prefix = record_key(key, tag, &[]);
        let start = record_key(key, tag, from);
        let end = prefix_end(&prefix);
        self.engine.scan(&start, end.as_deref(), &mut |k, e| visit(&k[prefix.len()..], &e.value));
    }
}

/// Write access for one command: every record written gets revision `rev`.
pub struct Tx<'a> {
    engine: &'a mut dyn Engine,
    pub now: Time,
    rev: u64,
    wrote: bool,
    /// The store's `max_value_bytes`: commands that grow a value (`APPEND`, `SETRANGE`) refuse to
    /// pass it, since the limits only saw their arguments.
    pub max_value_bytes: usize,
    /// The slots served here, in the sharded mode.
    pub slots: Option<&'a dyn Slots>,
}

impl<'a> Tx<'a> {
    pub fn new(engine: &'a mut dyn Engine, now: Time, rev: u64) -> Tx<'a> {
        Tx { engine, now, rev, wrote: false, max_value_bytes: usize::MAX, slots: None }
    }

    pub fn view(&self) -> View<'_> {
        View { engine: &*self.engine, now: Some(self.now), slots: self.slots }
    }

    /// Make `dst` a copy of `src` (which exists): its value or collection records, and its
    /// deadline. Whatever `dst` held is removed first. O(members) for a collection: every record
    /// is re-keyed under `dst`'s prefix.
    pub fn copy_key(&mut self, src: &[u8], dst: &[u8]) {
        let Some(entry) = self.engine.get(src) else { return };
        let collection = self.view().kind_of(src, &entry) != Kind::String;
        self.remove(dst);
        let old = self.engine.get(dst);
        self.put_entry(dst, entry.value.clone(), entry.expires_at, old.as_ref());
        if collection {
            let prefix = record_prefix(src);
            let end = prefix_end(&prefix);
            let mut records = Vec::new();
            self.engine.scan(&prefix, end.as_deref(), &mut |k, e| {
                records.push((k[prefix.len()..].to_vec(), e.value.clone()));
                true
            });
            let target = record_prefix(dst);
            for (rest, value) in records {
                let mut key = target.clone();
                key.extend_from_slice(&rest);
                self.put_record(key, value);
            }
        }
    }

    /// The revision this command's records get (seeds [`random`]'s generator).
    pub fn revision(&self) -> u64 {
        self.rev
    }

    /// Whether anything was written (so the store's revision moves).
    pub fn wrote(&self) -> bool {
        self.wrote
    }

    /// Write a string value (keeping nothing of what was there: a collection is removed first).
    pub fn put_string(&mut self, key: &[u8], value: Vec<u8>, expires_at: Option<Time>) {
        let old = self.engine.get(key);
        if let Some(old) = &old {
            if self.view().kind_of(key, old) != Kind::String {
                self.remove_records(key);
            }
        }
        self.put_entry(key, value, expires_at, old.as_ref());
    }

    /// Change only the key's deadline (keeps the value, bumps version and mod revision).
    pub fn set_deadline(&mut self, key: &[u8], expires_at: Option<Time>) -> bool {
        let Some(old) = self.engine.get(key) else { return false };
        self.put_entry(key, old.value.clone(), expires_at, Some(&old));
        true
    }

    fn put_entry(&mut self, key: &[u8], value: Vec<u8>, expires_at: Option<Time>, old: Option<&Entry>) {
        let entry = match old {
            Some(old) => Entry {
                value,
                create_revision: old.create_revision,
                mod_revision: self.rev,
                version: old.version.saturating_add(1),
                expires_at,
            },
            None => {
                Entry { value, create_revision: self.rev, mod_revision: self.rev, version: 1, expires_at }
            }
        };
        self.engine.put(key, entry);
        self.wrote = true;
    }

    /// Remove `key` whatever it holds; whether it existed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Some(old) = self.engine.get(key) else { return false };
        if self.view().kind_of(key, &old) != Kind::String {
            self.remove_records(key);
        }
        self.engine.remove(key);
        self.wrote = true;
        true
    }

    /// Remove every entry of the store – user keys and collections' records, stray ones included
    /// (`FLUSHALL`): how many entries went. One step of the log, so every replica empties at the
    /// same revision; the doomed keys are gathered first (the engine cannot scan and delete at
    /// once), so it holds every key in memory for a moment.
    pub fn flush(&mut self) -> usize {
        let mut doomed = Vec::new();
        self.engine.scan(&[], None, &mut |k, _| {
            doomed.push(k.to_vec());
            true
        });
        for k in &doomed {
            self.engine.remove(k);
        }
        self.wrote |= !doomed.is_empty();
        doomed.len()
    }

    /// Remove every record of `key`'s collection (not the key's own entry).
    fn remove_records(&mut self, key: &[u8]) {
        let prefix = record_prefix(key);
        let end = prefix_end(&prefix);
        let mut doomed = Vec::new();
        self.engine.scan(&prefix, end.as_deref(), &mut |k, _| {
            doomed.push(k.to_vec());
            true
        });
        for k in doomed {
            self.engine.remove(&k);
        }
        self.wrote = true;
    }

    /// The collection of `kind` under `key`, created empty if absent; WRONGTYPE if another kind.
    pub fn collection(&mut self, key: &[u8], kind: Kind) -> Result<Header, Reply> {
        Ok(self.view().collection(key, kind)?.unwrap_or(Header::new(kind)))
    }

    /// Store the collection's header after a change and touch the key (new mod revision, same
    /// TTL); a collection left empty is deleted, as Redis does.
    pub fn save(&mut self, key: &[u8], header: Header) {
        if header.len == 0 {
            self.remove(key);
            return;
        }
        let old = self.engine.get(key);
        let expires_at = old.as_ref().and_then(|e| e.expires_at);
        self.put_entry(key, Vec::new(), expires_at, old.as_ref());
        let bytes = postcard::to_allocvec(&header).expect("headers serialise");
        self.put_record(record_key(key, HEADER_TAG, &[]), bytes);
    }

    pub fn put_member(&mut self, key: &[u8], sub: &[u8], value: Vec<u8>) {
        self.put_record(record_key(key, MEMBER_TAG, sub), value);
    }

    pub fn remove_member(&mut self, key: &[u8], sub: &[u8]) -> bool {
        let removed = self.engine.remove(&record_key(key, MEMBER_TAG, sub)).is_some();
        self.wrote |= removed;
        removed
    }

    /// `HDEL` / `SREM`: removes each member `key` holds, then saves the header with the new length
    /// (`save` deletes an emptied collection); how many were removed.
    pub fn remove_members(&mut self, key: &[u8], mut header: Header, members: &[Vec<u8>]) -> i64 {
        let removed = members.iter().filter(|member| self.remove_member(key, member)).count() as u64;
        if removed > 0 {
            header.len -= removed;
            self.save(key, header);
        }
        removed as i64
    }

    pub fn put_index(&mut self, key: &[u8], sub: &[u8]) {
        self.put_record(record_key(key, INDEX_TAG, sub), Vec::new());
    }

    pub fn remove_index(&mut self, key: &[u8], sub: &[u8]) -> bool {
        let removed = self.engine.remove(&record_key(key, INDEX_TAG, sub)).is_some();
        self.wrote |= removed;
        removed
    }

    fn put_record(&mut self, record: Vec<u8>, value: Vec<u8>) {
        let old = self.engine.get(&record);
        self.put_entry(&record, value, None, old.as_ref());
    }
}

/// One interpreter command: its name, whether it writes, and how it runs.
pub struct Spec {
    pub name: &'static str,
    pub write: bool,
    pub run: Run,
}

/// How a command runs: reads get a [`View`], writes a [`Tx`].
#[derive(Clone, Copy)]
pub enum Run {
    Read(fn(&View, &[Vec<u8>]) -> Outcome),
    Write(fn(&mut Tx, &[Vec<u8>]) -> Outcome),
}

/// A command's reply; `Err` is an error reply (so families can use `?`).
pub type Outcome = Result<Reply, Reply>;

const fn read(name: &'static str, run: fn(&View, &[Vec<u8>]) -> Outcome) -> Spec {
    Spec { name, write: false, run: Run::Read(run) }
}

const fn write(name: &'static str, run: fn(&mut Tx, &[Vec<u8>]) -> Outcome) -> Spec {
    Spec { name, write: true, run: Run::Write(run) }
}

/// Every command the interpreter runs, one family per module. The arity and key positions live in
/// the front door's command table (`concord-resp`): arguments arrive here already counted.
pub fn commands() -> impl Iterator<Item = &'static Spec> {
    hash::COMMANDS
        .iter()
        .chain(keyspace::COMMANDS)
        .chain(set::COMMANDS)
        .chain(list::COMMANDS)
        .chain(zset::COMMANDS)
        .chain(script::COMMANDS)
        .chain(string::COMMANDS)
        .chain(sort::COMMANDS)
}

/// The interpreter's command named `name` (lowercase).
pub fn lookup(name: &str) -> Option<&'static Spec> {
    commands().find(|spec| spec.name == name)
}

/// Whether the interpreter runs `name` and whether it writes (`None`: not an interpreter command).
pub fn is_write(name: &str) -> Option<bool> {
    lookup(name).map(|spec| spec.write)
}

/// Whether the command `name` (lowercase) reads or writes the whole store rather than named keys
/// (`FLUSHALL`, `FLUSHDB`, `RANDOMKEY`): a sharded or eventual node, where no one store holds
/// every key, must run it differently or refuse it.
pub fn spans_store(name: &str) -> bool {
    matches!(name, "flushall" | "flushdb" | "randomkey")
}

/// Run a read-only call against `engine`.
pub fn query(engine: &dyn EngineRead, call: &RedisCall) -> Reply {
    query_in(engine, call, None)
}

/// [`query`] in a state machine serving `slots` (the sharded mode).
pub fn query_in(engine: &dyn EngineRead, call: &RedisCall, slots: Option<&dyn Slots>) -> Reply {
    match lookup(&call.name()).map(|spec| spec.run) {
        Some(Run::Read(run)) => {
            run(&View { slots, ..View::new(engine) }, &call.argv[1..]).unwrap_or_else(|e| e)
        }
        Some(Run::Write(_)) => {
            Reply::error(format!("ERR '{}' writes; it cannot run as a read-only query", call.name()))
        }
        None => unknown(call),
    }
}

/// Run `exec`'s calls in order against `engine` at revision `rev`. Returns whether anything was
/// written and the replies (`None`: a watched key changed, nothing ran).
pub fn exec(engine: &mut dyn Engine, exec: &RedisExec, now: Time, rev: u64) -> (bool, Option<Vec<Reply>>) {
    exec_limited(engine, exec, now, rev, usize::MAX)
}

/// [`exec`] with the store's `max_value_bytes`, which commands growing a value check.
pub fn exec_limited(
    engine: &mut dyn Engine,
    exec: &RedisExec,
    now: Time,
    rev: u64,
    max_value_bytes: usize,
) -> (bool, Option<Vec<Reply>>) {
    exec_in(engine, exec, now, rev, max_value_bytes, None)
}

/// [`exec_limited`] in a state machine serving `slots` (the sharded mode).
pub fn exec_in(
    engine: &mut dyn Engine,
    exec: &RedisExec,
    now: Time,
    rev: u64,
    max_value_bytes: usize,
    slots: Option<&dyn Slots>,
) -> (bool, Option<Vec<Reply>>) {
    let watched_changed =
        exec.watch.iter().any(|(key, seen)| engine.get(key).map_or(0, |e| e.mod_revision) != *seen);
    if watched_changed {
        return (false, None);
    }
    let mut tx = Tx::new(engine, now, rev);
    tx.max_value_bytes = max_value_bytes;
    tx.slots = slots;
    let replies = exec
        .calls
        .iter()
        .map(|call| match lookup(&call.name()).map(|spec| spec.run) {
            Some(Run::Read(run)) => run(&tx.view(), &call.argv[1..]).unwrap_or_else(|e| e),
            Some(Run::Write(run)) => run(&mut tx, &call.argv[1..]).unwrap_or_else(|e| e),
            None => unknown(call),
        })
        .collect();
    (tx.wrote(), Some(replies))
}

fn unknown(call: &RedisCall) -> Reply {
    Reply::error(format!("ERR unknown command '{}'", String::from_utf8_lossy(&call.argv[0])))
}

/// Argument helpers shared by the families.
pub(crate) mod args {
    use super::Reply;

    /// A decimal `i64` in Redis's grammar (no `+`, no leading zero: the store's increment reads
    /// values the same way), or Redis's error.
    pub fn int(arg: &[u8]) -> Result<i64, Reply> {
        crate::store::parse_i64(arg)
            .ok_or_else(|| Reply::error("ERR value is not an integer or out of range"))
    }

    /// A count that must be 0 or more (`LPOP`, `SPOP`, `ZPOPMIN` …: Redis's
    /// getPositiveLongFromObjectOrReply, whose one error covers a negative and a non-number).
    pub fn positive(arg: &[u8]) -> Result<u64, Reply> {
        int(arg)
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Reply::error("ERR value is out of range, must be positive"))
    }

    /// Redis's error for a wrong argument count.
    pub fn wrong_arity(name: &str) -> Reply {
        Reply::error(format!("ERR wrong number of arguments for '{name}' command"))
    }

    /// Whether `arg` is `word`, ignoring ASCII case.
    pub fn is(arg: &[u8], word: &str) -> bool {
        arg.eq_ignore_ascii_case(word.as_bytes())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_listzset;
#[cfg(test)]
mod tests_set;
#[cfg(test)]
mod tests_string;
#[cfg(test)]
mod tests_zsort;
