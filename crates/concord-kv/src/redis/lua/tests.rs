//! The expected replies and error lines were taken from redis-server 7.0.15 running the same
//! scripts (the SHA-1 in each error line is the script's, so it checks `sha1hex` too).

use super::*;
use std::collections::BTreeMap;

/// A tiny Redis for `redis.call`: strings only, with redis-server's replies and error words.
#[derive(Default)]
struct Fake {
    strings: BTreeMap<Vec<u8>, Vec<u8>>,
    calls: Vec<Vec<Vec<u8>>>,
}

impl Fake {
    fn call(&mut self, argv: Vec<Vec<u8>>) -> Reply {
        self.calls.push(argv.clone());
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        let arity = |n: usize| argv.len() == n;
        match name.as_str() {
            "ping" if arity(1) => Reply::Status("PONG".into()),
            "get" if arity(2) => self.strings.get(&argv[1]).cloned().map_or(Reply::Nil, Reply::Bulk),
            "set" if arity(3) => {
                self.strings.insert(argv[1].clone(), argv[2].clone());
                Reply::Ok
            }
            "incr" if arity(2) => {
                let old = self.strings.get(&argv[1]).cloned().unwrap_or_else(|| b"0".to_vec());
                match String::from_utf8_lossy(&old).parse::<i64>() {
                    Ok(n) => {
                        self.strings.insert(argv[1].clone(), (n + 1).to_string().into_bytes());
                        Reply::Int(n + 1)
                    }
                    Err(_) => Reply::Error("ERR value is not an integer or out of range".into()),
                }
            }
            "zscore" if arity(3) => Reply::Double(0.1),
            "hgetall" if arity(2) => {
                Reply::Map(vec![(Reply::Bulk(b"f".to_vec()), Reply::Bulk(b"v".to_vec()))])
            }
            "smembers" if arity(2) => Reply::Set(vec![Reply::Bulk(b"m".to_vec())]),
            "ping" | "get" | "set" | "incr" | "zscore" | "hgetall" | "smembers" => {
                Reply::Error(format!("ERR wrong number of arguments for '{name}' command"))
            }
            _ => Reply::Error(format!("ERR unknown command '{name}', with args beginning with: ")),
        }
    }
}

fn eval_with(fake: &mut Fake, budget: &Budget, body: &str, keys: &[&str], args: &[&str]) -> Reply {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    run(body.as_bytes(), &keys, &args, budget, &mut |argv| fake.call(argv))
}

/// Runs `body` against a fake holding `s = "abc"`.
fn eval(body: &str) -> Reply {
    let mut fake = Fake::default();
    fake.strings.insert(b"s".to_vec(), b"abc".to_vec());
    eval_with(&mut fake, &Budget::default(), body, &[], &[])
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}

#[test]
fn sha1hex_is_redis_script_name() {
    assert_eq!(sha1hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_eq!(eval("return redis.sha1hex('')"), bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    assert_eq!(eval("return redis.sha1hex(12)"), bulk("7b52009b64fd0a2a49e6d8a939753077792b0554"));
}

#[test]
fn lua_values_become_redis_replies() {
    assert_eq!(eval("return 3.99"), Reply::Int(3));
    assert_eq!(eval("return -3.99"), Reply::Int(-3));
    assert_eq!(eval("return 1e300"), Reply::Int(i64::MIN));
    assert_eq!(eval("return 0/0"), Reply::Int(i64::MIN));
    assert_eq!(eval("return true"), Reply::Int(1));
    assert_eq!(eval("return false"), Reply::Nil);
    assert_eq!(eval("return nil"), Reply::Nil);
    assert_eq!(eval("return 'x' .. string.rep('a', 3)"), bulk("xaaa"));
    // Arrays stop at the first nil; values with no Redis shape (functions) are nil inside.
    assert_eq!(eval("return {1,2,nil,3}"), Reply::Array(vec![Reply::Int(1), Reply::Int(2)]));
    assert_eq!(
        eval("return {1, function() end, 2}"),
        Reply::Array(vec![Reply::Int(1), Reply::Nil, Reply::Int(2)])
    );
    assert_eq!(
        eval("return {true,false,'a',{ok='fine'}, {err='bad thing'}}"),
        Reply::Array(vec![
            Reply::Int(1),
            Reply::Nil,
            bulk("a"),
            Reply::Status("fine".into()),
            err("bad thing")
        ])
    );
    assert_eq!(eval("return {ok='OK'}"), Reply::Ok);
    assert_eq!(eval("return {ok=5}"), Reply::Array(vec![]));
    assert_eq!(eval("return {err='x', ok='y'}"), err("x"));
    assert_eq!(eval("return {err='My\\r\\nError'}"), err("My  Error"));
    assert_eq!(eval("return {double=3.5}"), Reply::Double(3.5));
    assert_eq!(eval("return {map={a=1}}"), Reply::Map(vec![(bulk("a"), Reply::Int(1))]));
    assert_eq!(eval("return {set={a=true}}"), Reply::Set(vec![bulk("a")]));
    assert_eq!(
        eval("local t = {} t[1] = t return t").to_string_lossy_error(),
        Some("ERR reached lua stack limit".into())
    );
}

impl Reply {
    /// The innermost error of a nested reply, for the self-referencing table test.
    fn to_string_lossy_error(&self) -> Option<String> {
        match self {
            Reply::Error(e) => Some(e.clone()),
            Reply::Array(items) => items.first().and_then(Reply::to_string_lossy_error),
            _ => None,
        }
    }
}

#[test]
fn error_and_status_helpers() {
    assert_eq!(eval("return redis.error_reply('My Error')"), err("My Error"));
    assert_eq!(eval("return redis.error_reply('ERR My Error')"), err("ERR My Error"));
    assert_eq!(eval("return redis.error_reply('Oops')"), err("ERR Oops"));
    assert_eq!(eval("return redis.error_reply('-Oops')"), err("ERR Oops"));
    assert_eq!(eval("return redis.error_reply('-WRONGTYPE Oops\\r\\n')"), err("WRONGTYPE Oops"));
    assert_eq!(eval("return redis.error_reply()"), err("ERR wrong number or type of arguments"));
    assert_eq!(eval("return redis.status_reply('FINE')"), Reply::Status("FINE".into()));
    assert_eq!(eval("return redis.status_reply()"), err("ERR wrong number or type of arguments"));
}

#[test]
fn errors_are_worded_as_redis_7() {
    let cases = [
        ("error('boom')", "ERR user_script:1: boom script: 82903a0434f1503e152f89c03c9acd881a0e8150, on @user_script:1."),
        ("error({err='tbl boom'})", "tbl boom script: fe6a4454cd688358ade3e1f5607379e257707a0a, on @user_script:1."),
        ("error('ERR x', 0)", "ERR ERR x script: 686da790825891727607d7ceb8120a5b32074cf2, on @user_script:1."),
        ("error({err=1})", "1 script: 70f082e4ab042f55a6e12465953fb84757fb372f, on @user_script:1."),
        ("x = 1", "ERR user_script:1: Attempt to modify a readonly table script: 34bce5f775de97f557a34088509c8bfe1ea17e52, on @user_script:1."),
        ("string.x = 1", "ERR user_script:1: Attempt to modify a readonly table script: c3eb0a2a15b3d4790b323c4104029c1ae425a769, on @user_script:1."),
        ("redis.x = 1", "ERR user_script:1: Attempt to modify a readonly table script: 0e3b052f72a1147275fd3ab2c8c15d4453b9010f, on @user_script:1."),
        ("return y", "ERR user_script:1: Script attempted to access nonexistent global variable 'y' script: e278681ed961e2fb52881313e5c90fdd93749940, on @user_script:1."),
        ("return os", "ERR user_script:1: Script attempted to access nonexistent global variable 'os' script: f03b5ad6e7d58786b6a5e879efbea4a4408f5c2f, on @user_script:1."),
        ("return redis.call('incr','s')", "ERR value is not an integer or out of range script: c243b9f46db13ba8f69da41b45a77708832babed, on @user_script:1."),
        ("error(redis.pcall('incr','s'))", "ERR value is not an integer or out of range script: 9dabf1978de421d16be40f535c233992df33b8b4, on @user_script:1."),
        ("local ok, e = pcall(redis.call,'incr','s'); error(e, 0)", "ERR ERR value is not an integer or out of range script: 6696f5583c98e0484182395850b140472b1915e9, on @user_script:1."),
        ("local ok, e = pcall(redis.call,'incr','s'); error(e)", "ERR user_script:1: ERR value is not an integer or out of range script: 883f842f1a3e0e730cf660fac2c2e6b5725f3d36, on @user_script:1."),
        ("local function f() return redis.call('incr','s') end\nlocal x = 1\nreturn f()", "ERR value is not an integer or out of range script: a7593605f97292c3cefd4845a292074a43e2ec2e, on @user_script:1."),
        ("local co = coroutine.wrap(function() error('zz') end) co()", "ERR user_script:1: user_script:1: zz script: 57109b41c15dc0a6b81af67c5ae4dcf9539117e1, on @user_script:1."),
        ("return redis.call('nosuch')", "ERR Unknown Redis command called from script script: 206396248e12c6e742fd7296250433c8d7343b74, on @user_script:1."),
        ("return redis.call()", "ERR Please specify at least one argument for this redis lib call script: 0a907e1429221a4d85516cab7fd219a82a9439d8, on @user_script:1."),
        ("return redis.call('get', {})", "ERR Lua redis lib command arguments must be strings or integers script: 4368e88f98d93af9caf358186e5fbf273374ee91, on @user_script:1."),
        ("return redis.call('set','kk',true)", "ERR Lua redis lib command arguments must be strings or integers script: 1f0781cbbc40aafd330a9495e3c0e2924fcb4800, on @user_script:1."),
        ("return redis.call('set','kk')", "ERR Wrong number of args calling Redis command from script script: d60cebf58368fc19191b435c62458173067b3e7e, on @user_script:1."),
        ("return redis.log(99,'x')", "ERR Invalid debug level. script: d3e310038e3f6f369aa185b963c2b8b0c440cb17, on @user_script:1."),
        ("return redis.log('x')", "ERR redis.log() requires two arguments or more. script: 1fcd6a303159eb531344e55c3a1258a5faf371df, on @user_script:1."),
        ("return redis.sha1hex()", "ERR wrong number of arguments script: 3c7ce947ae74a835cc575b6ee87fb27503cb7ba4, on @user_script:1."),
        ("return redis.setresp(4)", "ERR RESP version must be 2 or 3. script: 921c0a48021d97dfd5884aeea41875972c7804d9, on @user_script:1."),
        ("return +", "ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'"),
        ("return 1 end", "ERR Error compiling script (new function): user_script:1: '<eof>' expected near 'end'"),
    ];
    for (body, want) in cases {
        assert_eq!(eval(body), err(want), "{body}");
    }
}

#[test]
fn pcall_returns_what_redis_7_returns() {
    // An error table raised by redis.call reaches pcall as its message.
    assert_eq!(
        eval("local ok, e = pcall(redis.call,'incr','s'); return e"),
        bulk("ERR value is not an integer or out of range")
    );
    assert_eq!(eval("local ok, e = pcall(error, {err='x'}); return type(e)"), bulk("string"));
    // redis.pcall returns the error table, which the script may return as an error reply.
    assert_eq!(eval("return redis.pcall('incr','s')"), err("ERR value is not an integer or out of range"));
    assert_eq!(
        eval("local ok, e = pcall(function() x = 1 end) return e"),
        bulk("user_script:1: Attempt to modify a readonly table")
    );
    assert_eq!(eval("return select('#', pcall())"), Reply::Int(2));
}

#[test]
fn redis_call_sees_earlier_writes_and_converts_replies() {
    let mut fake = Fake::default();
    let body = "redis.call('set', KEYS[1], ARGV[1]); redis.call('incr', KEYS[1]); \
                return {redis.call('get', KEYS[1]), redis.call('get', 'absent'), redis.call('ping'), #KEYS, #ARGV}";
    assert_eq!(
        eval_with(&mut fake, &Budget::default(), body, &["k"], &["41", "extra"]),
        Reply::Array(vec![
            bulk("42"),
            Reply::Nil,
            Reply::Status("PONG".into()),
            Reply::Int(1),
            Reply::Int(2)
        ])
    );
    // A nil bulk is false in Lua, and the array went on past it (it is not nil).
    assert_eq!(eval("return type(redis.call('get','nokey'))"), bulk("boolean"));
    assert_eq!(eval("redis.setresp(3); return type(redis.call('get','nokey'))"), bulk("nil"));
    // RESP2: maps are flat, sets are arrays, doubles are %.17g strings.
    assert_eq!(eval("return redis.call('hgetall', 'h')"), Reply::Array(vec![bulk("f"), bulk("v")]));
    assert_eq!(eval("return redis.call('smembers', 's')"), Reply::Array(vec![bulk("m")]));
    assert_eq!(eval("return redis.call('zscore', 'z', 'm')"), bulk("0.10000000000000001"));
    // RESP3: the typed tables, which the script may return as they are.
    assert_eq!(
        eval("redis.setresp(3); return redis.call('hgetall', 'h')"),
        Reply::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(eval("redis.setresp(3); return redis.call('smembers', 's')"), Reply::Set(vec![bulk("m")]));
    assert_eq!(eval("redis.setresp(3); return redis.call('zscore', 'z', 'm')"), Reply::Double(0.1));
    // Booleans: 1 and null in RESP2 (redis-server 7.0: `:1`, `$-1`), booleans after setresp(3)
    // (`#t`, `#f`).
    assert_eq!(eval("return true"), Reply::Int(1));
    assert_eq!(eval("return false"), Reply::Nil);
    assert_eq!(eval("redis.setresp(3); return true"), Reply::Bool(true));
    assert_eq!(eval("redis.setresp(3); return {false}"), Reply::Array(vec![Reply::Bool(false)]));
}

#[test]
fn numbers_become_arguments_as_redis_formats_them() {
    let cases = [
        ("123456789012345", "123456789012345"),
        ("0.1", "0.10000000000000001"),
        ("1.5", "1.5"),
        ("1e20", "1e+20"),
        ("2^53", "9007199254740992"),
        ("-0.0", "-0"),
        ("1/3", "0.33333333333333331"),
        ("1e-7", "9.9999999999999995e-08"),
        ("3.0", "3"),
        ("1e16", "10000000000000000"),
        ("0/0", "-nan"),
        ("1/0", "inf"),
    ];
    for (lua, want) in cases {
        let mut fake = Fake::default();
        let body = format!("redis.call('set','kk',{lua}); return redis.call('get','kk')");
        assert_eq!(eval_with(&mut fake, &Budget::default(), &body, &[], &[]), bulk(want), "{lua}");
    }
}

#[test]
fn commands_that_nest_or_block_are_refused() {
    let mut fake = Fake::default();
    let reply =
        eval_with(&mut fake, &Budget::default(), "return redis.pcall('EVAL', 'return 1', '0')", &[], &[]);
    assert_eq!(reply, err("ERR This Redis command is not allowed from script"));
    assert!(fake.calls.is_empty(), "a refused command never reaches the store");
}

#[test]
fn random_is_redis_rand48_reseeded_for_every_script() {
    // What redis-server 7.0.15 answers after math.randomseed(0) – and what Redis 6 answered for
    // every script, because it reseeded with 0 before each.
    let body =
        "return {tostring(math.random()), math.random(100), math.random(5,10), tostring(math.random())}";
    let want =
        Reply::Array(vec![bulk("0.17082803611217"), Reply::Int(75), Reply::Int(5), bulk("0.87046522734243")]);
    assert_eq!(eval(body), want);
    assert_eq!(eval(body), want, "the second script starts the same sequence again");
    assert_eq!(
        eval("math.randomseed(-7); return {tostring(math.random()), math.random(100)}"),
        Reply::Array(vec![bulk("0.07521187517569"), Reply::Int(82)])
    );
}

#[test]
fn no_clock_files_modules_or_addresses() {
    for name in [
        "os", "io", "debug", "package", "require", "dofile", "loadfile", "print", "setfenv", "getfenv",
        "newproxy", "gcinfo", "cjson",
    ] {
        let reply = eval(&format!("return type({name})"));
        let Reply::Error(e) = reply else { panic!("{name} is reachable: {reply:?}") };
        assert!(e.contains(&format!("nonexistent global variable '{name}'")), "{e}");
    }
    // Heap addresses differ between replicas; tostring numbers objects instead.
    assert_eq!(
        eval("local a, b = {}, function() end; return {tostring(a), tostring(b), tostring(a)}"),
        Reply::Array(vec![
            bulk("table: 0x00000001"),
            bulk("function: 0x00000002"),
            bulk("table: 0x00000001")
        ])
    );
    let Reply::Error(e) = eval("return collectgarbage('count')") else { panic!() };
    assert!(e.contains("is not available in Concord scripts"), "{e}");
    assert_eq!(eval("return collectgarbage()"), Reply::Int(0));
}

#[test]
fn loadstring_compiles_text_into_the_sandbox() {
    assert_eq!(eval("return loadstring('return 1+1')()"), Reply::Int(2));
    assert_eq!(eval("return loadstring('return KEYS')() == KEYS"), Reply::Int(1));
    let Reply::Error(e) = eval("return loadstring('x = 1')()") else { panic!() };
    assert!(e.contains("Attempt to modify a readonly table"), "{e}");
    // A binary chunk could corrupt the interpreter's memory: refused.
    let reply =
        eval("local f, e = loadstring(string.dump(function() return 1 end)); return {tostring(f), e}");
    let Reply::Array(items) = reply else { panic!("{reply:?}") };
    assert_eq!(items[0], bulk("nil"));
    assert!(
        matches!(&items[1], Reply::Bulk(e) if String::from_utf8_lossy(e).contains("binary")),
        "{items:?}"
    );
}

fn killed(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with("ERR Script killed by the instruction budget"))
}

#[test]
fn the_instruction_budget_stops_loops_and_cannot_be_caught() {
    let budget = Budget { instructions: 1_000_000, ..Budget::default() };
    let mut fake = Fake::default();
    for body in [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        "while true do redis.pcall('ping') end",
    ] {
        let reply = eval_with(&mut fake, &budget, body, &[], &[]);
        assert!(killed(&reply), "{body}: {reply:?}");
    }
    // Just under the budget runs to the end.
    let reply =
        eval_with(&mut fake, &budget, "local n = 0 for i = 1, 1000 do n = n + i end return n", &[], &[]);
    assert_eq!(reply, Reply::Int(500500));
}

#[test]
fn the_budget_stops_at_the_same_point_every_time() {
    // Deterministic: the same script makes the same number of calls before it is killed.
    let budget = Budget { instructions: 200_000, ..Budget::default() };
    let counts: Vec<usize> = (0..3)
        .map(|_| {
            let mut fake = Fake::default();
            let reply = eval_with(&mut fake, &budget, "while true do redis.call('incr', 'n') end", &[], &[]);
            assert!(killed(&reply), "{reply:?}");
            fake.calls.len()
        })
        .collect();
    assert!(counts[0] > 100, "{counts:?}");
    assert!(counts.iter().all(|c| *c == counts[0]), "{counts:?}");
}

#[test]
fn the_memory_limit_stops_a_growing_script() {
    let budget = Budget { memory_bytes: 4 * 1024 * 1024, ..Budget::default() };
    let mut fake = Fake::default();
    let reply =
        eval_with(&mut fake, &budget, "local t = {} for i = 1, 1e8 do t[i] = i end return #t", &[], &[]);
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("ERR Script killed: out of memory")),
        "{reply:?}"
    );
    // Caught, the failure leaves the script free to go on within the limit.
    let reply = eval_with(
        &mut fake,
        &budget,
        "local ok = pcall(function() local t = {} for i = 1, 1e8 do t[i] = i end end) return ok",
        &[],
        &[],
    );
    assert_eq!(reply, Reply::Nil);
}
