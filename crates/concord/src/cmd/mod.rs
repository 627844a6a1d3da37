//! One module per subcommand.

pub mod check;
pub mod lab;
pub mod sim;
pub mod view;
