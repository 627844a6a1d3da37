//! `history`: the history files `concord check` reads – Concord's JSON Lines, Jepsen/Knossos text
//! logs and EDN op maps – and the checker behind them.
//!
//! Properties, beyond no panic:
//! * every error names a line that exists;
//! * a parsed history survives Concord's own format: written as JSON Lines and read back, it is the
//!   same history;
//! * the linearizability checker answers (yes, no or unknown within its time limit) for every
//!   model, on whatever history the readers accept.

use super::label;
use crate::driver::Target;
use concord_check::formats::{parse, Format};
use concord_check::{linearizability, Model};
use std::path::Path;
use std::time::Duration;

pub const TARGET: Target = Target {
    name: "history",
    about: "history readers (JSON Lines, Jepsen log, EDN) and the checker behind them",
    seeds,
    dictionary: &[
        b"{\"process\":",
        b"\"type\":\"invoke\"",
        b"\"type\":\"ok\"",
        b"\"type\":\"fail\"",
        b"\"type\":\"info\"",
        b"\"f\":\"cas\"",
        b"\"f\":\"read\"",
        b"\"f\":\"write\"",
        b"\"key\":",
        b"\"value\":",
        b"\"time\":",
        b"\"witness\":",
        b"jepsen.util - ",
        b" :invoke ",
        b" :ok ",
        b" :fail ",
        b" :info ",
        b":cas",
        b":read",
        b":write",
        b":append",
        b":enqueue",
        b":dequeue",
        b":add",
        b"nil",
        b"[",
        b"]",
        b"{",
        b"}",
        b"#{",
        b"#_",
        b":process",
        b":type",
        b":f",
        b":value",
        b":key",
        b":time",
        b"\"",
        b"\\",
        b"\n",
        b"\t",
        b";",
        b":nemesis",
    ],
    max_len: 8 * 1024,
    max_alloc_bytes: 16 << 20,
    run,
};

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        &br#"{"process":0,"type":"invoke","f":"write","key":"x","value":1,"time":1}
{"process":0,"type":"ok","f":"write","key":"x","value":1,"time":2}
{"process":1,"type":"invoke","f":"cas","key":"x","value":[1,4],"time":3}
{"process":1,"type":"ok","f":"cas","key":"x","value":[1,4],"time":4}
{"process":2,"type":"invoke","f":"read","key":"x","value":null,"time":5}
{"process":2,"type":"ok","f":"read","key":"x","value":4,"time":6}
"#[..],
        b"INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]\nINFO  jepsen.util - 3\t:ok\t:cas\t[1 4]\n0 :invoke :read nil\n0 :ok :read 4\n:nemesis :info :start nil\n",
        b"[{:process 0, :type :invoke, :f :write, :value 3}\n {:process 0, :type :ok, :f :write, :value 3}\n {:process 1, :type :invoke, :f :read, :value nil, :key :x, :time 5}\n {:process 1, :type :fail, :f :read}]\n",
        b"{:process 0 :type :invoke :f :enqueue :value 1} {:process 0 :type :ok :f :enqueue :value 1}\n{:process 1 :type :invoke :f :dequeue :value nil #_ignored}\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../concord-check/tests/data");
    if let Ok(dir) = std::fs::read_dir(data) {
        let mut files: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            if let Ok(mut bytes) = std::fs::read(file) {
                bytes.truncate(TARGET.max_len);
                seeds.push(bytes);
            }
        }
    }
    seeds
}

const FORMATS: [Format; 4] = [Format::Auto, Format::JsonLines, Format::JepsenLog, Format::Edn];

fn run(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let lines = text.lines().count().max(1);
    let mut outcome = Vec::new();
    for format in FORMATS {
        match parse(&text, format) {
            Err(errors) => {
                assert!(!errors.is_empty(), "{format:?}: an error without any message");
                for e in &errors {
                    assert!(
                        (1..=lines + 1).contains(&e.line),
                        "{format:?}: an error names line {} of a {lines}-line text: {}",
                        e.line,
                        e.message
                    );
                }
                // The reader that was asked for by name is the label's detail; the others only
                // say whether they refused (four messages would make every input an outcome).
                outcome.push(match format {
                    Format::Auto => label("auto", &errors[0].message),
                    _ => format!("{format:?}: refused"),
                });
            }
            Ok(history) => {
                let again = parse(&history.to_jsonl(), Format::JsonLines).unwrap_or_else(|e| {
                    panic!("{format:?}: a parsed history, as JSON Lines, does not parse: {e:?}")
                });
                assert_eq!(again, history, "{format:?}: a history changed through JSON Lines");
                if history.len() <= 64 {
                    for model in Model::ALL {
                        // Answers are yes, no or unknown; none may be a panic or a hang.
                        let _ = linearizability::check(&history, model, Duration::from_millis(200));
                    }
                }
                outcome.push(format!("{format:?}: {} events", history.len().min(8)));
            }
        }
    }
    outcome.join("; ")
}
