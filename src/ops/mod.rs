//! What operators read: the admin HTTP server (`/metrics`, `/readyz`, `/debug/...`) and
//! `explain`, the decision of the answer function printed step by step. Both only read
//! published state; neither decides anything of its own.

pub mod admin;
pub mod explain;
pub mod query;
pub mod status;
pub mod time;
