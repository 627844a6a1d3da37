//! The sorted-set combinations (`ZUNION`, `ZINTER`, `ZDIFF`, their `STORE`s, `ZINTERCARD`),
//! `ZRANGESTORE`, `ZMPOP`/`BZMPOP`, `LCS` and `SORT`/`SORT_RO` against a real store. Every
//! expected reply was taken from redis-server 7.0.

use super::tests::{b, bulks, err, i, run, scored};
use super::*;
use crate::KvStore;

/// Bulk strings and nils (`-`) from a space-separated line.
fn bulks_or_nil(line: &str) -> Reply {
    Reply::Array(line.split_whitespace().map(|w| if w == "-" { Reply::Nil } else { b(w) }).collect())
}

fn zsets(s: &mut KvStore) {
    run(s, "ZADD a 1 x 2 y 3 z");
    run(s, "ZADD b 5 y 1 w 0.5 z");
    run(s, "SADD s x w");
    run(s, "SET str hello");
}

#[test]
fn zunion_zinter_zdiff_answer_in_score_order() {
    let mut s = KvStore::default();
    zsets(&mut s);
    assert_eq!(run(&mut s, "ZUNION 2 a b WITHSCORES"), scored("w 1 x 1 z 3.5 y 7"));
    assert_eq!(run(&mut s, "ZUNION 2 a b"), bulks("w x z y"));
    assert_eq!(run(&mut s, "ZUNION 2 a b WEIGHTS 2 3 AGGREGATE MAX WITHSCORES"), scored("x 2 w 3 z 6 y 15"));
    assert_eq!(run(&mut s, "ZUNION 2 a s WITHSCORES"), scored("w 1 x 2 y 2 z 3"));
    assert_eq!(run(&mut s, "ZINTER 2 a b WITHSCORES"), scored("z 3.5 y 7"));
    assert_eq!(run(&mut s, "ZINTER 2 a b AGGREGATE MIN WITHSCORES"), scored("z 0.5 y 2"));
    assert_eq!(run(&mut s, "ZINTER 3 a b s"), bulks(""));
    assert_eq!(run(&mut s, "ZDIFF 2 a b WITHSCORES"), scored("x 1"));
    assert_eq!(run(&mut s, "ZDIFF 1 a AGGREGATE SUM"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "ZUNION 2 a str"), Reply::wrong_type());
    assert_eq!(run(&mut s, "ZUNION 3 a b"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "ZINTER 0 a"), err("ERR at least 1 input key is needed for 'zinter' command"));
    assert_eq!(run(&mut s, "ZINTERCARD 2 a b"), i(2));
    assert_eq!(run(&mut s, "ZINTERCARD 2 a b LIMIT 1"), i(1));
    assert_eq!(run(&mut s, "ZINTERCARD 2 a b LIMIT 0"), i(2));
    assert_eq!(run(&mut s, "ZINTERCARD 1 a LIMIT x"), err("ERR LIMIT can't be negative"));
    assert_eq!(run(&mut s, "ZINTERCARD 1 a LIMIT -1"), err("ERR LIMIT can't be negative"));
    assert_eq!(run(&mut s, "ZINTERCARD 1 a WITHSCORES"), err("ERR syntax error"));
    assert_eq!(
        run(&mut s, "ZINTERCARD 0 a"),
        err("ERR at least 1 input key is needed for 'zintercard' command")
    );
    assert_eq!(run(&mut s, "ZDIFFSTORE d 2 a s"), i(2));
    assert_eq!(run(&mut s, "ZRANGE d 0 -1 WITHSCORES"), scored("y 2 z 3"));
    assert_eq!(run(&mut s, "ZDIFFSTORE d 2 a a"), i(0));
    assert_eq!(run(&mut s, "EXISTS d"), i(0));
    assert_eq!(
        run(&mut s, "ZDIFFSTORE d 0 a"),
        err("ERR at least 1 input key is needed for 'zdiffstore' command")
    );
}

#[test]
fn an_increment_of_minus_zero_answers_minus_zero_for_a_new_member() {
    let mut s = KvStore::default();
    let minus_zero = Reply::Double(-0.0);
    assert_eq!(run(&mut s, "ZINCRBY q -0 m"), minus_zero);
    assert_eq!(run(&mut s, "ZSCORE q m"), Reply::Double(0.0));
    assert_eq!(run(&mut s, "ZINCRBY q -0 m"), Reply::Double(0.0));
    assert_eq!(run(&mut s, "ZADD q3 INCR -0 m"), minus_zero);
    assert_eq!(run(&mut s, "ZADD q3 INCR -0 m"), Reply::Double(0.0));
}

#[test]
fn zrangestore_stores_every_zrange_form() {
    let mut s = KvStore::default();
    zsets(&mut s);
    assert_eq!(run(&mut s, "ZRANGESTORE d a 1 -1"), i(2));
    assert_eq!(run(&mut s, "ZRANGE d 0 -1 WITHSCORES"), scored("y 2 z 3"));
    assert_eq!(run(&mut s, "ZRANGESTORE d a +inf (1 BYSCORE REV LIMIT 0 1"), i(1));
    assert_eq!(run(&mut s, "ZRANGE d 0 -1 WITHSCORES"), scored("z 3"));
    assert_eq!(run(&mut s, "ZRANGESTORE d a (1 +inf BYSCORE REV LIMIT 0 1"), i(0));
    assert_eq!(run(&mut s, "EXISTS d"), i(0));
    assert_eq!(run(&mut s, "ZRANGESTORE d a [x [y BYLEX"), i(2));
    assert_eq!(run(&mut s, "ZRANGE d 0 -1 WITHSCORES"), scored("x 1 y 2"));
    assert_eq!(run(&mut s, "ZRANGESTORE d a 0 -1 WITHSCORES"), err("ERR syntax error"));
    assert_eq!(
        run(&mut s, "ZRANGESTORE d a 0 -1 LIMIT 0 1"),
        err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
    );
    assert_eq!(run(&mut s, "ZRANGESTORE d nokey 0 -1"), i(0));
    assert_eq!(run(&mut s, "ZRANGESTORE d str 0 -1"), Reply::wrong_type());
    // The destination may be the source.
    assert_eq!(run(&mut s, "ZRANGESTORE a a 0 0"), i(1));
    assert_eq!(run(&mut s, "ZRANGE a 0 -1 WITHSCORES"), scored("x 1"));
}

#[test]
fn zmpop_nests_pairs_and_bzmpop_runs_once() {
    let mut s = KvStore::default();
    zsets(&mut s);
    let pop = |key: &str, pairs: &[(&str, f64)]| {
        Reply::Array(vec![
            b(key),
            Reply::Array(pairs.iter().map(|(m, sc)| Reply::Array(vec![b(m), Reply::Double(*sc)])).collect()),
        ])
    };
    assert_eq!(run(&mut s, "ZMPOP 1 a MIN COUNT 2"), pop("a", &[("x", 1.0), ("y", 2.0)]));
    assert_eq!(run(&mut s, "ZMPOP 2 nokey b MAX COUNT 2"), pop("b", &[("y", 5.0), ("w", 1.0)]));
    assert_eq!(run(&mut s, "ZMPOP 1 nokey MIN"), Reply::NilArray);
    assert_eq!(run(&mut s, "ZMPOP 0 a MIN"), err("ERR numkeys should be greater than 0"));
    assert_eq!(run(&mut s, "ZMPOP 1 a MIDDLE"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "ZMPOP 1 a MIN COUNT 0"), err("ERR count should be greater than 0"));
    assert_eq!(run(&mut s, "ZMPOP 1 a MIN COUNT -3 x"), err("ERR count should be greater than 0"));
    assert_eq!(run(&mut s, "ZMPOP 1 a MIN COUNT 1 COUNT 2"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "ZMPOP 1 a MIN COUNT"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "LMPOP 1 a LEFT COUNT 0 x"), err("ERR count should be greater than 0"));
    assert_eq!(run(&mut s, "ZMPOP 1 str MIN"), Reply::wrong_type());
    assert_eq!(run(&mut s, "BZMPOP -1 1 a MIN"), err("ERR timeout is negative"));
    assert_eq!(run(&mut s, "BZMPOP x 1 a MIN"), err("ERR timeout is not a float or out of range"));
    // The other arguments are read before the timeout.
    assert_eq!(run(&mut s, "BZMPOP -1 -1 a MIN"), err("ERR numkeys should be greater than 0"));
    assert_eq!(run(&mut s, "BZMPOP abc 2 a MIN"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "BLMPOP -1 1 a RIGHT COUNT 3 x"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "BZMPOP 0 2 a b MAX COUNT 5"), pop("a", &[("z", 3.0)]));
    assert_eq!(run(&mut s, "BZMPOP 0.1 1 a MAX"), Reply::NilArray);
    assert_eq!(run(&mut s, "EXISTS a"), i(0));
}

#[test]
fn lcs_answers_the_string_its_length_or_ranges() {
    let mut s = KvStore::default();
    run(&mut s, "MSET k1 ohmytext k2 mynewtext");
    run(&mut s, "RPUSH l 1");
    let range = |a: (i64, i64), b: (i64, i64), len: Option<i64>| {
        let mut out = vec![Reply::Array(vec![i(a.0), i(a.1)]), Reply::Array(vec![i(b.0), i(b.1)])];
        out.extend(len.map(i));
        Reply::Array(out)
    };
    let idx = |matches: Vec<Reply>| Reply::Map(vec![(b("matches"), Reply::Array(matches)), (b("len"), i(6))]);
    assert_eq!(run(&mut s, "LCS k1 k2"), b("mytext"));
    assert_eq!(run(&mut s, "LCS k1 k2 LEN"), i(6));
    assert_eq!(
        run(&mut s, "LCS k1 k2 IDX"),
        idx(vec![range((4, 7), (5, 8), None), range((2, 3), (0, 1), None)])
    );
    assert_eq!(
        run(&mut s, "LCS k1 k2 IDX WITHMATCHLEN"),
        idx(vec![range((4, 7), (5, 8), Some(4)), range((2, 3), (0, 1), Some(2))])
    );
    assert_eq!(
        run(&mut s, "LCS k1 k2 IDX MINMATCHLEN 4 WITHMATCHLEN"),
        idx(vec![range((4, 7), (5, 8), Some(4))])
    );
    assert_eq!(
        run(&mut s, "LCS k1 k2 LEN IDX"),
        err("ERR If you want both the length and indexes, please just use IDX.")
    );
    assert_eq!(run(&mut s, "LCS k1 nokey"), b(""));
    assert_eq!(run(&mut s, "LCS k1 l"), err("ERR The specified keys must contain string values"));
    assert_eq!(run(&mut s, "LCS k1 k2 MINMATCHLEN"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "LCS k1 k2 MINMATCHLEN x"), err("ERR value is not an integer or out of range"));
}

fn sortable(s: &mut KvStore) {
    run(s, "RPUSH l 3 1 2 10");
    run(s, "SADD s b a c");
    run(s, "ZADD z 3 a 1 b 2 c");
    run(s, "MSET w1 30 w2 20 w3 10 w10 5");
    run(s, "HSET h1 f x1");
    run(s, "HSET h2 f x2");
    run(s, "RPUSH bad 1 x 2");
    run(s, "SET str v");
}

#[test]
fn sort_orders_limits_and_reads_patterns() {
    let mut s = KvStore::default();
    sortable(&mut s);
    assert_eq!(run(&mut s, "SORT l"), bulks("1 2 3 10"));
    assert_eq!(run(&mut s, "SORT l DESC"), bulks("10 3 2 1"));
    assert_eq!(run(&mut s, "SORT l LIMIT 1 2"), bulks("2 3"));
    assert_eq!(run(&mut s, "SORT l LIMIT 5 2"), bulks(""));
    assert_eq!(run(&mut s, "SORT l LIMIT -1 2"), bulks("1 2"));
    assert_eq!(run(&mut s, "SORT l LIMIT 0 0"), bulks(""));
    assert_eq!(run(&mut s, "SORT l BY w*"), bulks("10 3 2 1"));
    assert_eq!(
        run(&mut s, "SORT l BY w* GET # GET h*->f GET nokey*"),
        bulks_or_nil("10 - - 3 - - 2 x2 - 1 x1 -")
    );
    assert_eq!(run(&mut s, "SORT l BY h*->f ALPHA"), bulks("3 10 1 2"));
    assert_eq!(run(&mut s, "SORT l BY h*->f"), err("ERR One or more scores can't be converted into double"));
    assert_eq!(run(&mut s, "SORT l BY nosort"), bulks("3 1 2 10"));
    assert_eq!(run(&mut s, "SORT l BY nosort DESC LIMIT 1 2"), bulks("2 1"));
    assert_eq!(run(&mut s, "SORT z BY nosort DESC"), bulks("a c b"));
    assert_eq!(run(&mut s, "SORT z ALPHA"), bulks("a b c"));
    assert_eq!(run(&mut s, "SORT s ALPHA DESC"), bulks("c b a"));
    assert_eq!(run(&mut s, "SORT l GET h*->f ALPHA"), bulks_or_nil("x1 - x2 -"));
    // Missing BY keys: numeric ties broken by the elements' bytes, ALPHA ties kept in order.
    assert_eq!(run(&mut s, "SORT l BY w*->f"), bulks("1 10 2 3"));
    assert_eq!(run(&mut s, "SORT l BY k* ALPHA"), bulks("3 1 2 10"));
    assert_eq!(run(&mut s, "SORT l GET #x"), bulks_or_nil("- - - -"));
    assert_eq!(run(&mut s, "SORT_RO l DESC"), bulks("10 3 2 1"));
}

#[test]
fn sort_errors_are_redis_words() {
    let mut s = KvStore::default();
    sortable(&mut s);
    let nan = err("ERR One or more scores can't be converted into double");
    assert_eq!(run(&mut s, "SORT z"), nan);
    assert_eq!(run(&mut s, "SORT bad"), nan);
    assert_eq!(run(&mut s, "SORT bad ALPHA"), bulks("1 2 x"));
    // strtod's view of a value: leading spaces and a NUL-terminated prefix are fine.
    let values = ["", " 2", "1e400", "0x10", "\0x", "nan", "-inf"];
    let parsed: Vec<Option<f64>> = values.iter().map(|v| sort::strtod(v.as_bytes())).collect();
    assert_eq!(parsed, [Some(0.0), Some(2.0), None, Some(16.0), Some(0.0), None, Some(f64::NEG_INFINITY)]);
    assert_eq!(run(&mut s, "SORT str"), Reply::wrong_type());
    assert_eq!(run(&mut s, "SORT_RO l STORE x"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SORT l LIMIT 1"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SORT l foo"), err("ERR syntax error"));
    assert_eq!(run(&mut s, "SORT l LIMIT x 1"), err("ERR value is not an integer or out of range"));
    // Options are parsed before the key is looked up.
    assert_eq!(run(&mut s, "SORT str foo"), err("ERR syntax error"));
    let cluster = |line: &str| sort::parse(&tests::argv(line), false, true);
    assert_eq!(cluster("l BY w*").unwrap_err(), err("ERR BY option of SORT denied in Cluster mode."));
    assert_eq!(cluster("l GET #").unwrap_err(), err("ERR GET option of SORT denied in Cluster mode."));
    assert!(cluster("l BY nosort DESC").is_ok());
    assert_eq!(cluster("l foo GET #").unwrap_err(), err("ERR syntax error"));
}

#[test]
fn sort_store_writes_a_list() {
    let mut s = KvStore::default();
    sortable(&mut s);
    assert_eq!(run(&mut s, "SORT l STORE dst"), i(4));
    assert_eq!(run(&mut s, "LRANGE dst 0 -1"), bulks("1 2 3 10"));
    assert_eq!(run(&mut s, "SORT l BY nosort GET h*->f STORE dst"), i(4));
    assert_eq!(run(&mut s, "LRANGE dst 0 -1"), Reply::Array(vec![b(""), b("x1"), b("x2"), b("")]));
    // A set is sorted (ALPHA) when stored even with BY nosort.
    assert_eq!(run(&mut s, "SORT s BY nosort DESC STORE dst"), i(3));
    assert_eq!(run(&mut s, "LRANGE dst 0 -1"), bulks("c b a"));
    assert_eq!(run(&mut s, "SORT nokey STORE dst"), i(0));
    assert_eq!(run(&mut s, "EXISTS dst"), i(0));
    // The destination may be the sorted key; it becomes a list.
    assert_eq!(run(&mut s, "SORT z ALPHA STORE z"), i(3));
    assert_eq!(run(&mut s, "TYPE z"), Reply::Status("list".into()));
    assert_eq!(sort::key_positions(&tests::argv("SORT l BY x STORE a LIMIT 0 1 STORE b")), vec![1, 10]);
    assert_eq!(sort::key_positions(&tests::argv("SORT_RO l STORE a")), vec![1]);
    assert_eq!(sort::key_positions(&tests::argv("SORT l GET STORE")), vec![1]);
}
