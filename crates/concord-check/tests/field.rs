//! `concord check` on the field's histories: Knossos's and Jepsen's EDN, JSON arrays, Porcupine's
//! operations, and the field's model names – each with a valid and an invalid history, the invalid
//! one reported with the operations (lines) at fault. The histories are under `tests/data/field/`,
//! written in the shape of the files Knossos, Jepsen and the course labs produce.

use concord_check::cli::{
    self, CheckOptions, ModelChoice, EXIT_LINEARIZABLE, EXIT_NOT_LINEARIZABLE, EXIT_UNKNOWN,
};
use concord_check::formats::{self, edn, Format};
use concord_check::jepsen;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/field").join(name)
}

/// Run `concord check` on `path` with `--model model` (`None`: guessed); (exit status, report).
fn check(path: PathBuf, model: Option<&str>) -> (u8, String) {
    let mut options = CheckOptions::new(path);
    options.jobs = 1;
    match model.map(|m| m.parse::<ModelChoice>().unwrap()) {
        Some(ModelChoice::Linear(m)) => options.model = Some(m),
        Some(ModelChoice::Transactional(w)) => options.transactional = Some(w),
        Some(ModelChoice::Jepsen(c)) => options.jepsen = Some(c),
        None => {}
    }
    let mut out = Vec::new();
    let status = cli::run(&options, &mut out).unwrap();
    (status, String::from_utf8(out).unwrap())
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("concord-check-field-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn knossos_cas_register_histories() {
    let (status, out) = check(data("knossos-cas-register-good.edn"), Some("cas-register"));
    assert_eq!(status, EXIT_LINEARIZABLE, "{out}");
    let (status, out) = check(data("knossos-cas-register-bad.edn"), None);
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("p1 read -> 3"), "the stale read is named: {out}");
}

#[test]
fn edn_lists_with_comments_and_independent_tuples() {
    let (status, out) = check(data("jepsen-history.edn"), None);
    assert_eq!(status, EXIT_LINEARIZABLE, "{out}");
    assert!(out.contains("4 events") && out.contains("1 lines skipped"), "{out}");
    // A missing `)` and a bad map, each with its line (and column).
    let broken =
        temp("broken.edn", "({:process 0, :type :invoke, :f :write, :value 1}\n {:process 0 :type}\n");
    let (status, out) = check(broken, None);
    assert_eq!(status, EXIT_UNKNOWN);
    assert!(out.contains("broken.edn:2: column"), "{out}");
}

#[test]
fn json_arrays_of_op_maps() {
    let (status, out) = check(data("jepsen-history.json"), None);
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("read 2"), "{out}");
    let colons = temp(
        "colons.json",
        r#"[{":process":0,":type":":invoke",":f":":write",":value":1},{":process":0,":type":":ok",":f":":write",":value":1}]"#,
    );
    assert_eq!(check(colons, None).0, EXIT_LINEARIZABLE);
    let broken = temp(
        "broken.json",
        "[\n {\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1},\n {\"process\": 0,, }\n]",
    );
    let (status, out) = check(broken, None);
    assert_eq!(status, EXIT_UNKNOWN);
    assert!(out.contains("broken.json:3: column 16: not JSON"), "the second comma: {out}");
}

#[test]
fn porcupine_kv() {
    let (status, out) = check(data("porcupine-kv-good.json"), None);
    assert_eq!(status, EXIT_LINEARIZABLE, "{out}");
    assert!(out.contains("model: porcupine-kv"), "{out}");
    let (status, out) = check(data("porcupine-kv-bad.json"), Some("porcupine-kv"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("got \"a\", but the value is \"ab\""), "{out}");
    // The same semantics from an EDN history: a missing key reads "".
    let edn = temp(
        "kv.edn",
        "{:process 0, :type :invoke, :f :get, :key \"k\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"k\", :value \"\"}\n{:process 0, :type :invoke, :f :append, :key \"k\", :value \"x\"}\n{:process 0, :type :ok, :f :append, :key \"k\", :value \"x\"}\n{:process 0, :type :invoke, :f :get, :key \"k\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"k\", :value \"xx\"}\n",
    );
    let (status, out) = check(edn, Some("porcupine-kv"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
}

#[test]
fn mutex() {
    let (status, out) = check(data("mutex-bad.edn"), None);
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("model: mutex") && out.contains("already held"), "{out}");
    let good = temp(
        "mutex.edn",
        "{:process 0, :type :invoke, :f :acquire}\n{:process 0, :type :ok, :f :acquire}\n{:process 1, :type :invoke, :f :acquire}\n{:process 0, :type :invoke, :f :release}\n{:process 0, :type :ok, :f :release}\n{:process 1, :type :ok, :f :acquire}\n",
    );
    assert_eq!(check(good, Some("mutex")).0, EXIT_LINEARIZABLE);
}

#[test]
fn jepsen_checkers() {
    let (status, out) = check(data("set-lost.edn"), Some("set"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(
        out.contains("LOST") && out.contains("1 (add ok at line 4)") && out.contains("recovered"),
        "{out}"
    );

    let (status, out) = check(data("set-lost.edn"), Some("set-full"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("1 (missing from the read at line 8)"), "{out}");

    let (status, out) = check(data("bank-bad.edn"), Some("bank"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("line 5: read by process 0: balances sum to 80"), "{out}");

    let (status, out) = check(data("long-fork.edn"), Some("long-fork"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("the read at line 6 saw 1 but not 2"), "{out}");

    // A history that is not of the checker's shape is not a verdict.
    let (status, out) = check(data("long-fork.edn"), Some("bank"));
    assert_eq!(status, EXIT_UNKNOWN, "{out}");
    assert!(out.contains("not :txn"), "{out}");

    // The bank total from the command line.
    let mut options = CheckOptions::new(data("bank-bad.edn"));
    options.jepsen = Some(jepsen::Checker::Bank);
    options.bank.total = Some(80);
    let mut out = Vec::new();
    assert_eq!(cli::run(&options, &mut out).unwrap(), EXIT_NOT_LINEARIZABLE);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("line 2: read by process 0: balances sum to 100"), "{out}");
}

#[test]
fn elle_reads_json_arrays_and_edn_lists() {
    let (status, out) = check(data("elle-list-append-g-single.json"), None);
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    assert!(out.contains("model: list-append") && out.contains("G-single"), "{out}");
    let edn = std::fs::read_to_string(data("../elle-list-append-g-single.edn")).unwrap();
    let list = temp("elle.edn", &format!("({edn})"));
    let (status, out) = check(list, Some("list-append"));
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
}

#[test]
fn rw_register_without_transactions_is_a_register() {
    let (status, out) = check(data("knossos-cas-register-bad.edn"), Some("rw-register"));
    assert!(out.contains("a linearizable register"), "{out}");
    assert_eq!(status, EXIT_NOT_LINEARIZABLE, "{out}");
    let (status, out) = check(data("jepsen-history.edn"), Some("rw-register"));
    assert_eq!(status, EXIT_LINEARIZABLE, "{out}");
}

#[test]
fn edn_written_is_edn_read() {
    let text = std::fs::read_to_string(data("concord-history.jsonl")).unwrap();
    let history = formats::parse(&text, Format::Auto).unwrap();
    for keys in [edn::KeyStyle::Field, edn::KeyStyle::Independent] {
        let written = edn::write_history(&history, keys);
        assert!(
            written.starts_with("[{:index 0, :time 1000, :process 0, :type :invoke, :f :write"),
            "{written}"
        );
        let again = formats::parse(&written, Format::Auto).unwrap();
        assert_eq!(again, history, "{written}");
    }
    // A mutex history goes out as :acquire/:release.
    let mutex =
        formats::parse(&std::fs::read_to_string(data("mutex-bad.edn")).unwrap(), Format::Auto).unwrap();
    let written = edn::write_history(&mutex, edn::KeyStyle::Field);
    assert!(written.contains(":f :acquire, :value nil") && written.contains(":f :release"), "{written}");
    assert_eq!(formats::parse(&written, Format::Auto).unwrap().events.len(), mutex.events.len());

    let mut options = CheckOptions::new(data("concord-history.jsonl"));
    options.convert = Some(cli::parse_convert("edn").unwrap());
    let mut out = Vec::new();
    assert_eq!(cli::run(&options, &mut out).unwrap(), EXIT_LINEARIZABLE);
    assert!(String::from_utf8(out).unwrap().contains(":key \"y\", :value [nil \"a b\"]"));
}
