//! The parsers never panic, whatever they are fed: random bytes, random text built from the
//! formats' own punctuation, and damaged copies of valid histories. Every failure names lines that
//! exist.

use concord_check::formats::edn::{write_history, KeyStyle};
use concord_check::formats::{parse, Format};
use concord_check::gen::{self, GenConfig, Workload};
use proptest::prelude::*;

const FORMATS: [Format; 5] =
    [Format::Auto, Format::JsonLines, Format::JsonArray, Format::JepsenLog, Format::Edn];

fn check_never_panics(text: &str) {
    let lines = text.lines().count().max(1);
    for format in FORMATS {
        if let Err(errors) = parse(text, format) {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}: {}", e.line, e.message);
            }
        }
    }
}

/// Text made of the characters that matter to the parsers.
fn edn_ish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just("{\"process\":".to_string()),
            Just(",".to_string()),
            Just("]".to_string()),
            Just("#{".to_string()),
            Just("#_".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just(":process".to_string()),
            Just(":type :invoke".to_string()),
            Just(":f :cas".to_string()),
            Just("\n".to_string()),
            Just(" ".to_string()),
            Just("jepsen.util - ".to_string()),
            Just("99999999999999999999".to_string()),
            Just("-".to_string()),
            Just(";".to_string()),
            Just("nil".to_string()),
            "[0-9]{1,3}".prop_map(|s| s),
            "\\PC{0,4}".prop_map(|s| s),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_never_panics(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn format_like_text_never_panics(text in edn_ish()) {
        check_never_panics(&text);
    }

    #[test]
    fn damaged_histories_never_panic(seed in any::<u64>(), cut in any::<usize>(), junk in "\\PC{0,8}") {
        let h = gen::history(&GenConfig { seed, workload: Workload::Register { keys: 2 }, ops: 10, ..GenConfig::default() });
        let text = h.to_jsonl();
        // Cut at a character boundary and splice junk in.
        let mut at = cut % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let damaged = format!("{}{}{}", &text[..at], junk, &text[at..]);
        check_never_panics(&damaged);
    }

    /// What the EDN writer writes, the EDN reader reads back as the same history – whatever the
    /// workload, keys (also in Jepsen's independent tuples) and values.
    #[test]
    fn edn_written_is_read_back(seed in any::<u64>(), workload in 0..5usize, independent in any::<bool>()) {
        let workload = [
            Workload::Register { keys: 3 },
            Workload::Register { keys: 0 },
            Workload::Counter,
            Workload::Set,
            Workload::Queue,
        ][workload];
        let h = gen::history(&GenConfig { seed, workload, ops: 20, ..GenConfig::default() });
        let keys = if independent { KeyStyle::Independent } else { KeyStyle::Field };
        let written = write_history(&h, keys);
        prop_assert_eq!(parse(&written, Format::Edn).unwrap(), h, "{}", written);
    }
}

#[test]
fn a_valid_history_survives_the_round_trip() {
    let h = gen::history(&GenConfig {
        seed: 3,
        workload: Workload::Register { keys: 3 },
        ..GenConfig::default()
    });
    assert_eq!(parse(&h.to_jsonl(), Format::Auto).unwrap(), h);
    // The fuzz checks above are meaningful only if damage is noticed: one bad line is reported.
    let mut text = h.to_jsonl();
    text.insert_str(0, "{\"process\": oops}\n");
    let errors = parse(&text, Format::Auto).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 1);
}
