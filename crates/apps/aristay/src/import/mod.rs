pub mod mapping;
pub mod run;
pub mod xlsx;
