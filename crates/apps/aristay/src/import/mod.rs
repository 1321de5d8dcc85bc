//! The booking import (DESIGN.md §6): [`xlsx`] reads a workbook within limits,
//! [`mapping`] turns its rows into booking fields, [`run`] tries and commits them, and
//! [`report`] is what an import is asked and answers.

pub mod mapping;
pub mod report;
pub mod run;
pub mod xlsx;
