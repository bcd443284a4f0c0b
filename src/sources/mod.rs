//! Where observations come from. Today only NDBC.

pub mod ndbc;
