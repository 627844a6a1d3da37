//! One module per subcommand.

pub mod check;
pub mod lab;
pub mod live;
pub mod member;
pub mod restart;
pub mod serve;
pub mod sim;
pub mod tour;
pub mod up;
pub mod view;
