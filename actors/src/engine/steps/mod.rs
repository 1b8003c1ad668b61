//! One module per step type; the scheduler in [`super::run`] dispatches to them.

pub mod action;
pub mod gate;
pub mod loop_step;
pub mod notification;
pub mod upsert;
pub mod wait;
