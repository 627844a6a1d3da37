//! One module per subcommand.

pub mod backup;
pub mod check;
pub mod lab;
pub mod live;
pub mod member;
pub mod restart;
pub mod serve;
pub mod shard;
pub mod sim;
pub mod tour;
pub mod up;
pub mod view;
