//! Test harness for Meerkat: in-memory clients driving the engine.
