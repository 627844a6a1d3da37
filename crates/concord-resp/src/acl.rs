//! Users, passwords and roles: the one credential check every front door of a node uses.
//!
//! Redis has one superuser (`default`, whose password is `requirepass`) and named users made with
//! `ACL SETUSER`. Concord keeps that model and its wire syntax, but a user's permissions are one of
//! three **roles** rather than Redis's per-command rules:
//!
//! | role | may | Redis rules that mean it |
//! |---|---|---|
//! | [`Role::ReadOnly`] | read keys | `+@read` |
//! | [`Role::ReadWrite`] | read and write keys | `+@read +@write`, or `+@all -@admin` |
//! | [`Role::Admin`] | everything: users (`ACL SETUSER`…), membership, backups, the lab | `+@all` (`allcommands`) |
//!
//! Key patterns are all or nothing: `~*` (`allkeys`) gives a user the keys, and without it (a new
//! user's default, as in Redis) a user reaches no key. Any other rule – `+get`, `~app:*`,
//! `%R~*`, selectors – is refused with an error naming it, never half applied: `ACL SETUSER`
//! checks every rule before it changes anything.
//!
//! Connection commands (`PING`, `HELLO`, `CLIENT`, `ACL WHOAMI`, …) need no role, only an
//! authenticated connection.
//!
//! **Passwords** are kept as SHA-256 digests (Redis does the same; `ACL LIST` shows them as
//! `#<hex>`), and compared in constant time. The `default` user starts `on`, with `requirepass` as
//! its password – or `nopass` when there is none, which is what makes a node without a password
//! open to every client, as Redis is.
//!
//! **Where the users live**: in the node's memory, per node, as in Redis. `ACL SETUSER` changes the
//! node it is sent to until that node restarts; users meant to last, on every node, belong in each
//! node's configuration (`[[users]]` in node.toml), which is read at start.
//!
//! The same [`Acl`] value answers the RESP server (`AUTH`, `HELLO … AUTH`, every command's
//! [`Need`]) and the HTTP API (`Authorization: Basic`/`Bearer`, every route's [`Need`]), so the two
//! doors cannot disagree about who may do what.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

/// What a user may do, least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Role {
    /// `read-only`, `read-write` or `admin` (what node.toml's `role` takes).
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "read-only" | "readonly" => Ok(Role::ReadOnly),
            "read-write" | "readwrite" => Ok(Role::ReadWrite),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role `{other}`: expected read-only, read-write or admin")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }

    /// The Redis rules `ACL LIST` shows for this role.
    fn rules(self) -> &'static str {
        match self {
            Role::ReadOnly => "+@read",
            Role::ReadWrite => "+@read +@write",
            Role::Admin => "+@all",
        }
    }

    /// Whether this role covers `need`.
    pub fn allows(self, need: Need) -> bool {
        match need {
            Need::Nothing => true,
            Need::Read => true,
            Need::Write => self >= Role::ReadWrite,
            Need::Admin => self == Role::Admin,
        }
    }
}

/// What a command or an HTTP route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// An authenticated connection, nothing more.
    Nothing,
    /// Reading keys.
    Read,
    /// Writing keys.
    Write,
    /// Administration: users, membership, backups, fault injection.
    Admin,
}

impl Need {
    /// The verb of a NOPERM message.
    pub fn verb(self) -> &'static str {
        match self {
            Need::Nothing => "connect",
            Need::Read => "read keys",
            Need::Write => "write keys",
            Need::Admin => "administer the node",
        }
    }
}

/// Why a request may not go ahead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The user was deleted or switched off since the connection authenticated.
    #[error("user {0} no longer exists or is disabled")]
    Gone(String),
    /// The user's role does not cover the need.
    #[error("user {user} ({}) has no permissions to {}", role.map_or("no role", Role::name), need.verb())]
    NoPerm { user: String, role: Option<Role>, need: Need },
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq)]
struct User {
    enabled: bool,
    /// Any password is accepted (`nopass`).
    nopass: bool,
    /// SHA-256 digests of the passwords.
    passwords: BTreeSet<[u8; 32]>,
    /// The command categories granted: `@read`, `@write`, `@admin`.
    read: bool,
    write: bool,
    admin: bool,
    /// `~*`: every key.
    all_keys: bool,
}

impl User {
    /// A new user, as Redis makes one: off, no password, no commands, no keys.
    fn new() -> User {
        User {
            enabled: false,
            nopass: false,
            passwords: BTreeSet::new(),
            read: false,
            write: false,
            admin: false,
            all_keys: false,
        }
    }

    /// A configured user: on, with a password digest and a role, every key.
    fn with_role(password: [u8; 32], role: Role) -> User {
        let mut user = User { enabled: true, all_keys: true, ..User::new() };
        user.passwords.insert(password);
        user.set_role(Some(role));
        user
    }

    fn set_role(&mut self, role: Option<Role>) {
        self.read = role.is_some();
        self.write = role >= Some(Role::ReadWrite);
        self.admin = role == Some(Role::Admin);
    }

    /// The role the categories add up to; `Err` for a combination that is not one of the three.
    fn role(&self) -> Result<Option<Role>, String> {
        match (self.read, self.write, self.admin) {
            (false, false, false) => Ok(None),
            (true, false, false) => Ok(Some(Role::ReadOnly)),
            (true, true, false) => Ok(Some(Role::ReadWrite)),
            (true, true, true) => Ok(Some(Role::Admin)),
            _ => {
                Err("Concord users have one of three roles: +@read (read-only), +@read +@write (read-write) \
                      or +@all (admin); @write needs @read, and @admin needs both"
                    .into())
            }
        }
    }

    /// The role that applies to requests (no keys: no key access, whatever the commands).
    fn effective(&self, need: Need) -> Option<Role> {
        let role = self.role().ok().flatten();
        match need {
            Need::Read | Need::Write if !self.all_keys => None,
            _ => role,
        }
    }

    /// Apply one `ACL SETUSER` rule.
    fn apply(&mut self, rule: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(rule);
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "~*" | "allkeys" => self.all_keys = true,
            "resetkeys" => self.all_keys = false,
            // Concord has no pub/sub: channel rules change nothing, and are accepted.
            "&*" | "allchannels" | "resetchannels" => {}
            "+@all" | "allcommands" => self.set_role(Some(Role::Admin)),
            "-@all" | "nocommands" => self.set_role(None),
            "+@read" => self.read = true,
            "-@read" => self.read = false,
            "+@write" => self.write = true,
            "-@write" => self.write = false,
            "+@admin" => self.admin = true,
            "-@admin" | "-@dangerous" => self.admin = false,
            "reset" => *self = User::new(),
            _ => match rule.first() {
                Some(b'>') => {
                    self.passwords.insert(digest(&rule[1..]));
                    self.nopass = false;
                }
                Some(b'<') => {
                    self.passwords.remove(&digest(&rule[1..]));
                }
                Some(b'#') => {
                    self.passwords.insert(parse_digest(&text[1..])?);
                    self.nopass = false;
                }
                Some(b'!') => {
                    self.passwords.remove(&parse_digest(&text[1..])?);
                }
                _ => {
                    return Err("not supported by Concord, which grants roles, not single commands or key \
                                patterns: use on|off, >pass, <pass, #sha256, !sha256, nopass, resetpass, ~* \
                                (allkeys), resetkeys, +@read, +@write, +@all (allcommands), -@admin, -@all, \
                                reset"
                        .into())
                }
            },
        }
        Ok(())
    }

    /// `ACL LIST`'s line for this user.
    fn describe(&self, name: &str) -> String {
        let mut parts = vec![format!("user {name}"), (if self.enabled { "on" } else { "off" }).to_string()];
        if self.nopass {
            parts.push("nopass".into());
        }
        parts.extend(self.passwords.iter().map(|d| format!("#{}", hex(d))));
        if self.all_keys {
            parts.push("~*".into());
        }
        parts.push("resetchannels".into());
        parts.push(match self.role().ok().flatten() {
            Some(role) => role.rules().into(),
            None => "-@all".into(),
        });
        parts.join(" ")
    }

    fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        let given = digest(password);
        // Every stored digest is compared, so the time does not say which one matched.
        let matched = self.passwords.iter().fold(false, |acc, d| acc | constant_time_eq(d, &given));
        self.nopass || matched
    }
}

/// Users of one node (see the module docs). Shared by its front doors behind an `Arc`.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<String, User>>,
}

/// The name of the superuser, whose password is `requirepass`.
pub const DEFAULT_USER: &str = "default";

impl Acl {
    /// The `default` user only: `on`, every permission, `requirepass` as its password (`nopass`
    /// without one).
    pub fn new(requirepass: Option<&str>) -> Acl {
        let mut default = User { enabled: true, all_keys: true, ..User::new() };
        default.set_role(Some(Role::Admin));
        match requirepass {
            Some(p) => {
                default.passwords.insert(digest(p.as_bytes()));
            }
            None => default.nopass = true,
        }
        Acl { users: RwLock::new(BTreeMap::from([(DEFAULT_USER.to_string(), default)])) }
    }

    /// Add (or replace) a user with a role. `password_sha256` is the SHA-256 digest of its password.
    pub fn add_user(&self, name: &str, password_sha256: [u8; 32], role: Role) -> Result<(), String> {
        valid_name(name)?;
        self.write().insert(name.to_string(), User::with_role(password_sha256, role));
        Ok(())
    }

    /// Whether a client that presents nothing is refused: the `default` user needs a password (or
    /// is off). When `false`, such a client acts as `default`.
    pub fn auth_required(&self) -> bool {
        !self.read().get(DEFAULT_USER).is_some_and(|u| u.enabled && u.nopass)
    }

    /// Whether `user` exists and is on, with `nopass` (AUTH's "no password configured" error).
    pub fn is_nopass(&self, user: &str) -> bool {
        self.read().get(user).is_some_and(|u| u.nopass)
    }

    /// Check a user's password. `Err` is Redis's `WRONGPASS` sentence (without the code), the same
    /// for an unknown user, a disabled one and a wrong password.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Result<(), String> {
        match self.read().get(user) {
            Some(u) if u.accepts(password) => Ok(()),
            _ => Err("invalid username-password pair or user is disabled.".into()),
        }
    }

    /// Whether `user` (already authenticated) may do what `need` says, now: a user changed or
    /// deleted since is judged by what it is now.
    pub fn check(&self, user: &str, need: Need) -> Result<(), Denied> {
        let users = self.read();
        let Some(u) = users.get(user).filter(|u| u.enabled) else {
            return Err(Denied::Gone(user.to_string()));
        };
        match need {
            Need::Nothing => Ok(()),
            need => match u.effective(need) {
                Some(role) if role.allows(need) => Ok(()),
                role => Err(Denied::NoPerm { user: user.to_string(), role, need }),
            },
        }
    }

    /// The role `user` has (for messages and `ACL WHOAMI`-like displays).
    pub fn role_of(&self, user: &str) -> Option<Role> {
        self.read().get(user).and_then(|u| u.role().ok().flatten())
    }

    /// `ACL SETUSER name rule…`: every rule is checked first; on an error nothing changes. `Err`
    /// is the reply's text without `-`.
    pub fn set_user(&self, name: &[u8], rules: &[impl AsRef<[u8]>]) -> Result<(), String> {
        let name = std::str::from_utf8(name).map_err(|_| "ERR Usernames must be UTF-8".to_string())?;
        valid_name(name).map_err(|e| format!("ERR {e}"))?;
        let mut users = self.write();
        let mut user = users.get(name).cloned().unwrap_or_else(User::new);
        for rule in rules {
            let rule = rule.as_ref();
            user.apply(rule).map_err(|why| {
                format!("ERR Error in ACL SETUSER modifier '{}': {why}", String::from_utf8_lossy(rule))
            })?;
        }
        user.role().map_err(|why| format!("ERR Error in ACL SETUSER for user '{name}': {why}"))?;
        users.insert(name.to_string(), user);
        Ok(())
    }

    /// `ACL DELUSER name…`: how many existed. `default` cannot be deleted (Redis's error).
    pub fn delete_users(&self, names: &[impl AsRef<[u8]>]) -> Result<usize, String> {
        if names.iter().any(|n| n.as_ref() == DEFAULT_USER.as_bytes()) {
            return Err("ERR The 'default' user cannot be removed".into());
        }
        let mut users = self.write();
        Ok(names.iter().filter(|n| users.remove(&*String::from_utf8_lossy(n.as_ref())).is_some()).count())
    }

    /// `ACL LIST`: one line per user, in name order.
    pub fn list(&self) -> Vec<String> {
        self.read().iter().map(|(name, u)| u.describe(name)).collect()
    }

    /// `ACL USERS`: the names, in order.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, User>> {
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, User>> {
        self.users.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("user name {name:?}: 1 to 128 printable characters without spaces"));
    }
    Ok(())
}

/// The SHA-256 digest of a password.
pub fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

/// A digest written as 64 hex digits (`#…` rules, node.toml's `sha256`).
pub fn parse_digest(text: &str) -> Result<[u8; 32], String> {
    let bad = || format!("'{text}' is not a SHA-256 digest (64 hex digits)");
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `a == b`, in a time that does not depend on where they differ (for secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<u8>> {
        text.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn redis_rules_map_to_the_three_roles() {
        let acl = Acl::new(Some("pw"));
        for (rules, role) in [
            ("on >a ~* +@read", Role::ReadOnly),
            ("on >a ~* +@read +@write", Role::ReadWrite),
            ("on >a ~* +@all -@admin", Role::ReadWrite),
            ("on >a ~* +@all", Role::Admin),
            ("on >a allkeys allcommands", Role::Admin),
        ] {
            acl.set_user(b"u", &words(rules)).unwrap();
            assert_eq!(acl.role_of("u"), Some(role), "{rules}");
            acl.set_user(b"u", &words("reset")).unwrap();
        }
        assert!(acl.auth_required());
    }

    #[test]
    fn unsupported_rules_are_refused_and_change_nothing() {
        let acl = Acl::new(None);
        acl.set_user(b"alice", &words("on >secret ~* +@read")).unwrap();
        let before = acl.list();
        let err = acl.set_user(b"alice", &words("+@all +get")).unwrap_err();
        assert!(err.starts_with("ERR Error in ACL SETUSER modifier '+get': not supported"), "{err}");
        let err = acl.set_user(b"alice", &words("~app:*")).unwrap_err();
        assert!(err.contains("'~app:*'"), "{err}");
        let err = acl.set_user(b"alice", &words("-@read +@write")).unwrap_err();
        assert!(err.contains("one of three roles"), "{err}");
        assert_eq!(acl.list(), before, "a refused SETUSER changes nothing");
    }

    #[test]
    fn passwords_roles_and_keys_decide_each_need() {
        let acl = Acl::new(Some("root"));
        acl.set_user(b"reader", &words("on >r ~* +@read")).unwrap();
        acl.set_user(b"nokeys", &words("on >n +@all")).unwrap();
        assert!(acl.authenticate("reader", b"r").is_ok());
        assert!(acl.authenticate("reader", b"x").is_err());
        assert!(acl.authenticate("nobody", b"r").is_err());
        assert!(acl.authenticate("default", b"root").is_ok());
        assert_eq!(acl.check("reader", Need::Read), Ok(()));
        let denied = acl.check("reader", Need::Write).unwrap_err();
        assert_eq!(denied.to_string(), "user reader (read-only) has no permissions to write keys");
        assert!(acl.check("nokeys", Need::Read).is_err(), "no ~*: no keys");
        assert_eq!(acl.check("nokeys", Need::Admin), Ok(()));
        acl.set_user(b"reader", &words("off")).unwrap();
        assert!(acl.authenticate("reader", b"r").is_err(), "off: refused");
        assert_eq!(acl.check("reader", Need::Read), Err(Denied::Gone("reader".into())));
        assert_eq!(acl.delete_users(&words("reader ghost")), Ok(1));
        assert!(acl.delete_users(&words("default")).is_err());
        assert_eq!(acl.names(), vec!["default".to_string(), "nokeys".to_string()]);
    }

    #[test]
    fn acl_list_shows_digests_not_passwords() {
        let acl = Acl::new(None);
        acl.set_user(b"alice", &words("on >secret ~* +@read")).unwrap();
        let list = acl.list();
        assert_eq!(list[0], format!("user alice on #{} ~* resetchannels +@read", hex(&digest(b"secret"))));
        assert_eq!(list[1], "user default on nopass ~* resetchannels +@all");
        assert!(!acl.auth_required());
        // The digest form is accepted back.
        let line = format!("on #{} ~* +@read +@write", hex(&digest(b"pw")));
        acl.set_user(b"bob", &words(&line)).unwrap();
        assert!(acl.authenticate("bob", b"pw").is_ok());
    }
}
