//! Paved's reconcilers, as a library: `run::run` is the operator; the modules are
//! what it is made of (and what tests reach without a process).

pub mod applied;
pub mod apply;
pub mod claim;
pub mod composition;
pub mod context;
pub mod crash;
pub mod error;
pub mod grants;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod namespaces;
pub mod ownership;
pub mod postgresql;
pub mod registry;
pub mod run;
pub mod service;
pub mod team;
pub mod temporal;
pub mod tolerant;
pub mod watches;

pub use crash::crash_point;
pub use error::Error;
