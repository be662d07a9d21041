//! One file per subcommand: argument definitions and rendering; the work is elsewhere.

pub mod walk;
