//! lincheck
