//! Replies about the server itself: `INFO`, `COMMAND …` and `CONFIG GET`.
//!
//! Clients call these at startup: `redis-cli` (interactive) asks `COMMAND DOCS` for its hints,
//! `redis-benchmark` asks `CONFIG GET save` and `CONFIG GET appendonly`. The answers describe
//! Concord honestly (no persistence settings of Redis's apply: `save` is empty, `appendonly` is
//! `no` – Concord's durability is its Raft log, described in `INFO`'s `# Raft` section).

use crate::command::{CommandRequest, CommandSpec, COMMANDS};
use crate::frame::Frame;
use crate::glob;
use bytes::Bytes;

/// The Redis version Concord reports in `HELLO` and `INFO`: the protocol and command behaviour it
/// follows (clients use it to pick features).
pub const REDIS_VERSION: &str = "7.0.0";

/// `INFO [section …]`: `# Name` headers and `key:value` lines, sections separated by a blank line.
/// No argument, `default`, `all` or `everything` give every section; names are case-insensitive.
pub fn info(sections: &[(String, Vec<(String, String)>)], wanted: &[Bytes]) -> String {
    let everything = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| ["default", "all", "everything"].iter().any(|a| w.eq_ignore_ascii_case(a.as_bytes())));
    let mut text = String::new();
    for (name, fields) in sections {
        if !everything && !wanted.iter().any(|w| w.eq_ignore_ascii_case(name.as_bytes())) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!("# {name}\r\n"));
        for (key, value) in fields {
            text.push_str(&format!("{key}:{value}\r\n"));
        }
    }
    text
}

/// One command's `COMMAND INFO` entry (Redis 7 shape: name, arity, flags, first key, last key,
/// step, ACL categories, tips, key specifications, subcommands).
fn command_info(spec: &CommandSpec) -> Frame {
    let (first, last, step) = spec.keys;
    Frame::Array(vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity),
        Frame::Set(spec.flags.iter().map(|f| Frame::simple(*f)).collect()),
        Frame::Integer(first),
        Frame::Integer(last),
        Frame::Integer(step),
        Frame::Set(vec![Frame::simple(format!("@{}", spec.group))]),
        Frame::Set(vec![]),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
    ])
}

/// One command's `COMMAND DOCS` entry.
fn command_docs(spec: &CommandSpec) -> Frame {
    Frame::map_of([
        ("summary", Frame::bulk(spec.summary)),
        ("since", Frame::bulk(spec.since)),
        ("group", Frame::bulk(spec.group)),
    ])
}

fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

pub fn command(request: &CommandRequest) -> Frame {
    match request {
        CommandRequest::All => Frame::Array(COMMANDS.iter().map(command_info).collect()),
        CommandRequest::Count => Frame::Integer(COMMANDS.len() as i64),
        CommandRequest::List => Frame::Array(COMMANDS.iter().map(|s| Frame::bulk(s.name)).collect()),
        CommandRequest::Info(names) if names.is_empty() => {
            Frame::Array(COMMANDS.iter().map(command_info).collect())
        }
        CommandRequest::Info(names) => {
            Frame::Array(names.iter().map(|n| find(n).map_or(Frame::Null, command_info)).collect())
        }
        CommandRequest::Docs(names) => {
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| find(n)).collect()
            };
            Frame::Map(specs.into_iter().map(|s| (Frame::bulk(s.name), command_docs(s))).collect())
        }
    }
}

/// `CONFIG GET pattern …` over `parameters` (name, value); each parameter at most once, in table
/// order. Parameter names are lowercase; patterns match case-insensitively, as in Redis.
pub fn config_get(parameters: &[(&str, String)], patterns: &[Bytes]) -> Frame {
    let patterns: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
    Frame::Map(
        parameters
            .iter()
            .filter(|(name, _)| patterns.iter().any(|p| glob::matches(p, name.as_bytes())))
            .map(|(name, value)| (Frame::bulk(name.to_string()), Frame::bulk(value.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_sections_filter_case_insensitively() {
        let sections = vec![
            ("Server".to_string(), vec![("redis_version".to_string(), "7.0.0".to_string())]),
            ("Raft".to_string(), vec![("raft_role".to_string(), "leader".to_string())]),
        ];
        assert_eq!(
            info(&sections, &[]),
            "# Server\r\nredis_version:7.0.0\r\n\r\n# Raft\r\nraft_role:leader\r\n"
        );
        assert_eq!(info(&sections, &[Bytes::from("raft")]), "# Raft\r\nraft_role:leader\r\n");
        assert_eq!(info(&sections, &[Bytes::from("nosuch")]), "");
    }

    #[test]
    fn config_get_matches_globs() {
        let params =
            [("save", String::new()), ("appendonly", "no".to_string()), ("maxclients", "10".to_string())];
        assert_eq!(
            config_get(&params, &[Bytes::from("SAVE")]),
            Frame::Map(vec![(Frame::bulk("save"), Frame::bulk(""))])
        );
        let Frame::Map(all) = config_get(&params, &[Bytes::from("*"), Bytes::from("save")]) else { panic!() };
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn command_count_and_info() {
        assert_eq!(command(&CommandRequest::Count), Frame::Integer(COMMANDS.len() as i64));
        let Frame::Array(infos) =
            command(&CommandRequest::Info(vec![Bytes::from("GET"), Bytes::from("nope")]))
        else {
            panic!()
        };
        assert_eq!(infos[1], Frame::Null);
        let Frame::Array(get) = &infos[0] else { panic!() };
        assert_eq!(get[..2], [Frame::bulk("get"), Frame::Integer(2)]);
    }
}
