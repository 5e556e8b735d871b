//! Unit tests of the migration planner: every phase, failure and resume point.
