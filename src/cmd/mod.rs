//! One file per subcommand: argument definitions and rendering; the work is elsewhere.

pub mod args;
pub mod path;
pub mod plumb;
pub mod probe;
pub mod routers;
pub mod walk;
