//! Integration tests for `lincheck`, in one binary so they build once.

mod corpus;
mod crosscheck;
mod perf;
mod support;
mod witness;
