//! Learning-rate schedules as pure `f64` maths with serialisable state.
//!
//! Every schedule is a linear warmup followed by one of the
//! [`ScheduleKind`]s: constant, linear, cosine, cosine with hard restarts,
//! warmup-stable-decay, or reduce-on-plateau (PyTorch `ReduceLROnPlateau`
//! semantics). [`Scheduler`] holds the step counter and plateau bookkeeping;
//! its [`SchedulerState`] can be serialised into a checkpoint and restored
//! with [`Scheduler::from_state`].
//!
//! ```
//! use ppo_sched::{ScheduleConfig, ScheduleKind, Scheduler};
//!
//! let config = ScheduleConfig {
//!     learning_rate: 1.0,
//!     min_lr: 0.0,
//!     warmup_steps: 3,
//!     total_steps: 7,
//!     kind: ScheduleKind::Linear,
//! };
//! let mut sched = Scheduler::new(config.clone())?;
//! let mut lrs = Vec::new();
//! for _ in 0..8 {
//!     lrs.push(sched.lr()); // use this LR for the optimiser step...
//!     sched.step(); // ...then advance
//! }
//! assert_eq!(lrs, [0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0]);
//!
//! // Resume from a checkpointed state.
//! let resumed = Scheduler::from_state(config, sched.state())?;
//! assert_eq!(resumed.lr(), 0.0);
//! assert_eq!(resumed.steps_taken(), 8);
//! # Ok::<(), ppo_sched::SchedError>(())
//! ```

mod config;
mod error;
mod plateau;
mod schedule;
mod scheduler;

pub use config::{ScheduleConfig, ScheduleKind};
pub use error::SchedError;
pub use plateau::{PlateauConfig, PlateauMode, PlateauState, ThresholdMode};
pub use scheduler::{Scheduler, SchedulerState};
