//! The store against an independent, deliberately naive model: an unsorted list of keys searched
//! linearly, sorted only when a range is read, every rule written out as the crate docs state it.
//! Random command sequences must give the same output from both, command by command, and the same
//! final contents – so a bookkeeping bug in the store (ordering, paging, revisions, the deadline
//! index) shows up as a difference, not just as a disagreement between two copies of itself.

use concord_core::{StateMachine, Time};
use concord_kv::{
    validate, Cas, Command, Compare, CompareOp, CompareTarget, ExpireKey, KeyRange, KeyValue, KvError,
    KvLimits, KvResult, KvStore, Put, RangePage, RangeRequest, Response, Txn, TxnOp, Write,
};
use proptest::prelude::*;
use std::cmp::Ordering;

const MS: u64 = 1_000_000;

#[derive(Clone, Debug, Default)]
struct Model {
    revision: u64,
    keys: Vec<KeyValue>,
    limits: KvLimits,
}

impl Model {
    fn find(&self, key: &[u8]) -> Option<&KeyValue> {
        self.keys.iter().find(|kv| kv.key == key)
    }

    fn write(&mut self, key: &[u8], value: &[u8], expires_at: Option<Time>, rev: u64) {
        match self.keys.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => {
                kv.value = value.to_vec();
                kv.mod_revision = rev;
                kv.version += 1;
                kv.expires_at = expires_at;
            }
            None => self.keys.push(KeyValue {
                key: key.to_vec(),
                value: value.to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                expires_at,
            }),
        }
    }

    fn delete(&mut self, key: &[u8]) -> u64 {
        let before = self.keys.len();
        self.keys.retain(|kv| kv.key != key);
        (before - self.keys.len()) as u64
    }

    fn in_range(range: &KeyRange, key: &[u8]) -> bool {
        key >= range.start.as_slice() && range.end.as_ref().is_none_or(|end| key < end.as_slice())
    }

    fn delete_range(&mut self, range: &KeyRange) -> u64 {
        let before = self.keys.len();
        self.keys.retain(|kv| !Model::in_range(range, &kv.key));
        (before - self.keys.len()) as u64
    }

    fn sorted(&self) -> Vec<KeyValue> {
        let mut all = self.keys.clone();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    fn page(&self, request: &RangeRequest) -> RangePage {
        let matching: Vec<KeyValue> =
            self.sorted().into_iter().filter(|kv| Model::in_range(&request.range, &kv.key)).collect();
        let mut page = RangePage::default();
        let mut bytes = 0;
        for kv in matching {
            let size = kv.key.len() + kv.value.len();
            if page.kvs.len() == request.limit
                || (!page.kvs.is_empty() && bytes + size > self.limits.max_range_bytes)
            {
                page.next_key = Some(kv.key);
                break;
            }
            bytes += size;
            page.kvs.push(kv);
        }
        page
    }

    fn holds(&self, c: &Compare) -> bool {
        let kv = self.find(&c.key);
        let ordering = match &c.target {
            CompareTarget::Value(v) => match (kv, v) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(kv), Some(v)) => kv.value.cmp(v),
            },
            CompareTarget::Version(n) => kv.map_or(0, |kv| kv.version).cmp(n),
            CompareTarget::CreateRevision(n) => kv.map_or(0, |kv| kv.create_revision).cmp(n),
            CompareTarget::ModRevision(n) => kv.map_or(0, |kv| kv.mod_revision).cmp(n),
        };
        match c.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        }
    }

    fn apply(&mut self, command: &Command) -> KvResult {
        validate(command, &self.limits)?;
        let now = command.now;
        let rev = self.revision + 1;
        let deadline = |ttl_ms: Option<u64>| ttl_ms.map(|t| Time(now.0.saturating_add(t.saturating_mul(MS))));
        let before = self.sorted();
        let response = match &command.write {
            Write::Put(put) => {
                self.write(&put.key, &put.value, deadline(put.ttl_ms), rev);
                Response::Put { revision: rev }
            }
            Write::Delete { key } => {
                let deleted = self.delete(key);
                Response::Delete { revision: self.revision + u64::from(deleted > 0), deleted }
            }
            Write::DeleteRange(range) => {
                let deleted = self.delete_range(range);
                Response::Delete { revision: self.revision + u64::from(deleted > 0), deleted }
            }
            Write::Cas(Cas { key, expect, value, ttl_ms }) => {
                if self.holds(&Compare { key: key.clone(), op: CompareOp::Equal, target: expect.clone() }) {
                    self.write(key, value, deadline(*ttl_ms), rev);
                    Response::Cas { succeeded: true, revision: rev, current: self.find(key).cloned() }
                } else {
                    Response::Cas {
                        succeeded: false,
                        revision: self.revision,
                        current: self.find(key).cloned(),
                    }
                }
            }
            Write::Increment { key, delta } => {
                let (current, expires_at) = match self.find(key) {
                    None => (0, None),
                    Some(kv) => match std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => (n, kv.expires_at),
                        None => return Err(not_an_integer()),
                    },
                };
                let Some(value) = current.checked_add(*delta) else { return Err(overflow()) };
                let text = value.to_string();
                if text.len() > self.limits.max_value_bytes {
                    return Err(KvError::ValueTooLarge {
                        value_bytes: text.len(),
                        max_value_bytes: self.limits.max_value_bytes,
                    });
                }
                self.write(key, text.as_bytes(), expires_at, rev);
                Response::Increment { value, revision: rev }
            }
            Write::Redis(_) => {
                unreachable!("the generator makes KV commands; crate::redis has its own tests")
            }
            Write::Txn(Txn { compares, success, failure }) => {
                let succeeded = compares.iter().all(|c| self.holds(c));
                let mut responses = Vec::new();
                let mut wrote = false;
                for op in if succeeded { success } else { failure } {
                    responses.push(match op {
                        TxnOp::Get { key } => Response::Get(self.find(key).cloned()),
                        TxnOp::Range(request) => Response::Range(self.page(request)),
                        TxnOp::Put(Put { key, value, ttl_ms }) => {
                            self.write(key, value, deadline(*ttl_ms), rev);
                            wrote = true;
                            Response::Put { revision: 0 }
                        }
                        TxnOp::Delete { key } => {
                            let deleted = self.delete(key);
                            wrote |= deleted > 0;
                            Response::Delete { revision: 0, deleted }
                        }
                        TxnOp::DeleteRange(range) => {
                            let deleted = self.delete_range(range);
                            wrote |= deleted > 0;
                            Response::Delete { revision: 0, deleted }
                        }
                    });
                }
                // Revisions inside a txn are the txn's final revision, known only at the end. A txn
                // that wrote moves the revision even if its writes cancel out (put, then delete).
                let revision = self.revision + u64::from(wrote);
                for r in &mut responses {
                    match r {
                        Response::Put { revision: r } | Response::Delete { revision: r, .. } => *r = revision,
                        _ => {}
                    }
                }
                if wrote {
                    self.revision = rev;
                }
                Response::Txn { succeeded, revision, responses }
            }
            Write::Expire { keys } => {
                let mut expired = 0;
                for ExpireKey { key, mod_revision } in keys {
                    let due = self.find(key).is_some_and(|kv| {
                        kv.mod_revision == *mod_revision && kv.expires_at.is_some_and(|at| at <= now)
                    });
                    if due {
                        expired += self.delete(key);
                    }
                }
                Response::Expire { revision: self.revision + u64::from(expired > 0), expired }
            }
        };
        if self.sorted() != before {
            self.revision = rev;
        }
        Ok(response)
    }
}

/// The model does not re-create the store's error excerpts; errors are compared by kind.
fn not_an_integer() -> KvError {
    KvError::NotAnInteger { key: String::new(), value: String::new() }
}

fn overflow() -> KvError {
    KvError::IncrementOverflow { key: String::new(), current: 0, delta: 0 }
}

fn same(store: &KvResult, model: &KvResult) -> bool {
    match (store, model) {
        (Err(KvError::NotAnInteger { .. }), Err(KvError::NotAnInteger { .. })) => true,
        (Err(KvError::IncrementOverflow { .. }), Err(KvError::IncrementOverflow { .. })) => true,
        _ => store == model,
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => prop::sample::select(vec!["a", "b", "ba", "c", "d"]).prop_map(|k| k.as_bytes().to_vec()),
        1 => Just(Vec::new()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-3i64..3).prop_map(|i| i.to_string().into_bytes()),
        Just(i64::MIN.to_string().into_bytes()),
        prop::collection::vec(b'a'..=b'c', 0..4),
        Just(vec![b'x'; 25]),
    ]
}

fn ttl_ms() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (1u64..30).prop_map(Some)]
}

fn key_range() -> impl Strategy<Value = KeyRange> {
    (key(), prop::option::of(key())).prop_map(|(start, end)| KeyRange { start, end })
}

fn target() -> impl Strategy<Value = CompareTarget> {
    prop_oneof![
        prop::option::of(value()).prop_map(CompareTarget::Value),
        (0u64..3).prop_map(CompareTarget::Version),
        (0u64..8).prop_map(CompareTarget::CreateRevision),
        (0u64..8).prop_map(CompareTarget::ModRevision),
    ]
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        key().prop_map(|key| TxnOp::Get { key }),
        (key_range(), 1usize..4).prop_map(|(range, limit)| TxnOp::Range(RangeRequest { range, limit })),
        (key(), value(), ttl_ms()).prop_map(|(key, value, ttl_ms)| TxnOp::Put(Put { key, value, ttl_ms })),
        key().prop_map(|key| TxnOp::Delete { key }),
        key_range().prop_map(TxnOp::DeleteRange),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    let op = prop::sample::select(vec![
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Greater,
        CompareOp::Less,
    ]);
    let compare = (key(), op, target()).prop_map(|(key, op, target)| Compare { key, op, target });
    let ops = || prop::collection::vec(txn_op(), 0..4);
    prop_oneof![
        4 => (key(), value(), ttl_ms())
            .prop_map(|(key, value, ttl_ms)| Write::Put(Put { key, value, ttl_ms })),
        2 => key().prop_map(|key| Write::Delete { key }),
        1 => key_range().prop_map(Write::DeleteRange),
        3 => (key(), target(), value(), ttl_ms())
            .prop_map(|(key, expect, value, ttl_ms)| Write::Cas(Cas { key, expect, value, ttl_ms })),
        2 => (key(), prop_oneof![-2i64..3, Just(i64::MIN)])
            .prop_map(|(key, delta)| Write::Increment { key, delta }),
        3 => (prop::collection::vec(compare, 0..3), ops(), ops())
            .prop_map(|(compares, success, failure)| Write::Txn(Txn { compares, success, failure })),
        // Expiries with arbitrary (possibly stale or wrong) revisions, not only housekeeping's.
        1 => prop::collection::vec((key(), 0u64..8), 0..3).prop_map(|keys| Write::Expire {
            keys: keys.into_iter().map(|(key, mod_revision)| ExpireKey { key, mod_revision }).collect(),
        }),
    ]
}

fn limits() -> KvLimits {
    KvLimits {
        max_key_bytes: 4,
        max_value_bytes: 20,
        max_txn_ops: 7,
        max_range_limit: 3,
        max_range_bytes: 12,
        max_expire_keys: 2,
        max_command_bytes: 100,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_naive_model(
        steps in prop::collection::vec((0u64..12, write(), any::<bool>()), 1..50),
    ) {
        let mut store = KvStore::new(limits());
        let mut model = Model { limits: limits(), ..Model::default() };
        let mut now = Time(0);
        for (advance_ms, write, housekeeping) in steps {
            now = Time(now.0 + advance_ms * MS);
            let mut commands = vec![Command::new(now, write)];
            if housekeeping {
                commands.extend(store.housekeeping(now));
            }
            for command in commands {
                let expected = model.apply(&command);
                let actual = store.apply(0, &command);
                prop_assert!(
                    same(&actual, &expected),
                    "{:?}\n store: {:?}\n model: {:?}", command, actual, expected
                );
                prop_assert_eq!(store.revision(), model.revision);
            }
            // Housekeeping proposes exactly the overdue keys (up to the batch bound), earliest first.
            let mut overdue: Vec<&KeyValue> =
                model.keys.iter().filter(|kv| kv.expires_at.is_some_and(|at| at <= now)).collect();
            overdue.sort_by(|a, b| (a.expires_at, &a.key).cmp(&(b.expires_at, &b.key)));
            let want: Vec<ExpireKey> = overdue
                .iter()
                .take(2)
                .map(|kv| ExpireKey { key: kv.key.clone(), mod_revision: kv.mod_revision })
                .collect();
            let got = match store.housekeeping(now).as_slice() {
                [] => vec![],
                [Command { write: Write::Expire { keys }, now: at }] if *at == now => keys.clone(),
                other => return Err(TestCaseError::fail(format!("unexpected housekeeping {other:?}"))),
            };
            prop_assert_eq!(got, want);
        }
        let all = RangeRequest::new(KeyRange::from(""), 3);
        let mut contents = Vec::new();
        let mut request = all;
        loop {
            let Ok(Response::Range(page)) = store.query(&concord_kv::Query::Range(request.clone())) else {
                panic!("a valid range query failed")
            };
            contents.extend(page.kvs);
            match page.next_key {
                Some(next) => request.range.start = next,
                None => break,
            }
        }
        prop_assert_eq!(contents, model.sorted());
    }
}
